package gpio

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Which edges each edge trigger type reports: the buffer is held, the host
// drives a level sequence, and every step says whether it completes.
// (Level types: TestLevelRefiresWhileActive.)
func TestEdgeTypes(t *testing.T) {
	type step struct {
		level uint8
		fires bool
	}
	tests := []struct {
		typ   IRQType
		start uint8
		steps []step
	}{
		{IRQTypeEdgeRising, 0, []step{{1, true}, {0, false}, {1, true}, {0, false}}},
		{IRQTypeEdgeFalling, 0, []step{{1, false}, {0, true}, {1, false}, {0, true}}},
		{IRQTypeEdgeBoth, 0, []step{{1, true}, {0, true}, {1, true}, {0, true}}},
		{IRQTypeEdgeFalling, 1, []step{{0, true}, {1, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.typ.String(), func(t *testing.T) {
			b := newBench(t, 2)
			b.host(1, tc.start)
			b.ok(MsgTypeSetDirection, 1, uint32(DirectionIn))
			b.ok(MsgTypeSetIRQType, 1, uint32(tc.typ))
			tok := 0
			want(t, "unmask", b.queue(1, tok))
			for _, s := range tc.steps {
				got := b.host(1, s.level)
				if !s.fires {
					want(t, "step", got)
					continue
				}
				want(t, "step", got, valid(tok))
				tok++
				want(t, "requeue", b.queue(1, tok))
			}
		})
	}
}

// A latch holds one edge: any number of edges while masked give one
// interrupt on unmask, and edges of the wrong kind are not latched.
func TestLatchHoldsOneEdge(t *testing.T) {
	b := newBench(t, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeRising))
	b.host(0, 1) // rising: latched
	want(t, "unmask", b.queue(0, 1), valid(1))
	for range 50 {
		b.host(0, 0)
		b.host(0, 1)
	}
	want(t, "unmask after 50 edges", b.queue(0, 2), valid(2))
	want(t, "unmask again", b.queue(0, 3))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeNone))
	want(t, "disable", b.rec.take(), invalid(3))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeRising))
	b.host(0, 0) // falling: not latched for EDGE_RISING
	want(t, "unmask after a falling edge", b.queue(0, 4))
}

// "In order to change the trigger type of an already enabled interrupt,
// the driver MUST first disable the interrupt and then re-enable it with
// appropriate trigger type." A driver that does not gets what the
// prescribed sequence would give: the held buffer back INVALID (which
// gpio-virtio.c's ignore_irq() requeues), the latch dropped, the new type
// enabled. Setting the current type again changes nothing.
func TestTypeChangeWhileEnabled(t *testing.T) {
	b := newBench(t, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeRising))
	want(t, "unmask", b.queue(0, 1))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeRising))
	want(t, "same type again", b.rec.take())
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeFalling))
	want(t, "type change", b.rec.take(), invalid(1))
	if s, _ := b.sim.Line(0); s.IRQType != IRQTypeEdgeFalling {
		t.Fatalf("backend type %v", s.IRQType)
	}
	want(t, "requeue", b.queue(0, 2))
	b.host(0, 1)
	want(t, "falling edge", b.host(0, 0), valid(2))

	// A latched edge is dropped by a change.
	b.host(0, 1)
	b.host(0, 0) // latched
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	want(t, "requeue after change", b.queue(0, 3))
	// Changing to a level type whose level is active fires on requeue.
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeLevelLow))
	want(t, "change to level", b.rec.take(), invalid(3))
	want(t, "requeue, level low active", b.queue(0, 4), valid(4))
}

// Eventq buffers the device cannot use come back INVALID at once.
func TestQueueEventRejects(t *testing.T) {
	b := newBench(t, 2)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	tests := []struct {
		name string
		req  []byte
		cap  int
	}{
		{"empty request", nil, 1},
		{"1-byte request", []byte{0}, 1},
		{"3-byte request", []byte{0, 0, 0}, 1},
		{"no response buffer", IRQRequest(0), 0},
		{"gpio = ngpio", IRQRequest(2), 1},
		{"gpio = 0xffff", IRQRequest(0xffff), 1},
	}
	for i, tc := range tests {
		want(t, tc.name, b.c.QueueEvent(tc.req, tc.cap, i), invalid(i))
	}
	// "The driver MUST NOT add multiple pairs of buffers for the same GPIO
	// line": the second is returned, the first stays.
	want(t, "first", b.queue(0, 100))
	want(t, "second", b.queue(0, 101), invalid(101))
	want(t, "edge", b.host(0, 1), valid(100))
	if v, i := valid(1).Bytes(), invalid(1).Bytes(); len(v) != 1 || v[0] != 1 || len(i) != 1 || i[0] != 0 {
		t.Fatalf("Completion.Bytes: %x %x", v, i)
	}
}

// Events for unknown lines, for lines whose interrupt is disabled, and
// events the backend saw before the interrupt was enabled are ignored.
func TestHandleEventIgnores(t *testing.T) {
	b := newBench(t, 2)
	before := time.Now()
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	want(t, "unmask", b.queue(0, 1))
	now := time.Now()
	for _, ev := range []Event{
		{Line: -1, Value: 1, Time: now},
		{Line: 2, Value: 1, Time: now},
		{Line: 1, Value: 1, Time: now},    // disabled
		{Line: 0, Value: 1, Time: before}, // before the enable
	} {
		want(t, fmt.Sprintf("ignored event %+v", ev), b.c.HandleEvent(ev))
	}
	want(t, "value 7 counts as high", b.c.HandleEvent(Event{Line: 0, Value: 7, Time: now}), valid(1))
	want(t, "unmask", b.queue(0, 2))
	want(t, "a zero time counts as current", b.c.HandleEvent(Event{Line: 0, Value: 0}), valid(2))
}

// An edge the backend sees after enabling but before the level is read
// (so the level read already shows it) still fires: "For edge trigger
// type, the device should latch the interrupt events from this point
// onward".
func TestEdgeRightAfterEnable(t *testing.T) {
	for _, tc := range []struct {
		typ  IRQType
		to   uint8
		fire bool
	}{
		{IRQTypeEdgeRising, 1, true},
		{IRQTypeEdgeBoth, 1, true},
		{IRQTypeEdgeFalling, 1, false},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			sim := mustSim(t, 1)
			eb := &edgeOnEnable{Sim: sim, to: tc.to}
			rec := &recorder{}
			c, err := NewController(eb, true, rec.complete)
			if err != nil {
				t.Fatal(err)
			}
			c.Negotiate(1 << FeatureIRQ)
			b := &bench{t: t, sim: sim, c: c, rec: rec}
			b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
			b.ok(MsgTypeSetIRQType, 0, uint32(tc.typ))
			want(t, "unmask", b.queue(0, 1))
			var wantDone []Completion[int]
			if tc.fire {
				wantDone = append(wantDone, valid(1))
			}
			want(t, "the edge", c.HandleEvent(<-sim.Events()), wantDone...)
		})
	}
}

// edgeOnEnable is a Sim whose input moves to level to just after the
// interrupt is enabled.
type edgeOnEnable struct {
	*Sim
	to uint8
}

func (e *edgeOnEnable) SetIRQType(line int, t IRQType) error {
	if err := e.Sim.SetIRQType(line, t); err != nil || t == IRQTypeNone {
		return err
	}
	return e.Sim.SetInput(line, e.to)
}

// Events still queued from an earlier enable do not fire after a disable
// and a new enable: "MUST discard any latched interrupt for a GPIO line,
// once interrupt is disabled" covers what the backend saw meanwhile too.
func TestStaleEventsAfterReenable(t *testing.T) {
	b := newBench(t, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	for _, v := range []uint8{1, 0} { // seen by the backend, not yet applied
		if err := b.sim.SetInput(0, v); err != nil {
			t.Fatal(err)
		}
	}
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeNone))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	for range 2 {
		want(t, "stale event", b.c.HandleEvent(<-b.sim.Events()))
	}
	want(t, "unmask: nothing latched", b.queue(0, 1))
	want(t, "a new edge fires", b.host(0, 1), valid(1))
	if s := b.c.Stats(); s.StaleEvents != 2 || s.EdgesFired != 1 {
		t.Errorf("stats %+v: want 2 stale events, 1 edge fired", s)
	}
}

// Reset drops held buffers without completing them, forgets latches and
// kept values, releases every line in the backend and un-negotiates
// VIRTIO_GPIO_F_IRQ.
func TestReset(t *testing.T) {
	b := newBench(t, 3)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	want(t, "unmask", b.queue(0, 1))
	b.ok(MsgTypeSetDirection, 1, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 1, uint32(IRQTypeEdgeBoth))
	b.host(1, 1) // latched
	b.ok(MsgTypeSetValue, 2, 1)
	b.ok(MsgTypeSetDirection, 2, uint32(DirectionOut))

	if err := b.c.Reset(); err != nil {
		t.Fatal(err)
	}
	want(t, "reset completes nothing", b.rec.take())
	// The latch Reset dropped is counted, so the latches still add up.
	checkReconcile(t, "after Reset", b.c.Stats(), 1)
	for _, s := range b.sim.Snapshot() {
		if s.Direction != DirectionNone || s.IRQType != IRQTypeNone {
			t.Fatalf("backend line after reset: %+v", s)
		}
	}
	if b.c.IRQ() {
		t.Fatal("F_IRQ still negotiated")
	}
	b.fail(MsgTypeSetIRQType, 1, uint32(IRQTypeEdgeBoth))
	b.c.Negotiate(1 << FeatureIRQ)
	if st := b.state(1); st.latched || st.held || st.irqType != IRQTypeNone {
		t.Fatalf("line 1 after reset: %+v", st)
	}
	b.ok(MsgTypeSetIRQType, 1, uint32(IRQTypeEdgeBoth))
	want(t, "latch gone", b.queue(1, 2))
	b.ok(MsgTypeSetDirection, 2, uint32(DirectionOut))
	if out, _, _ := b.sim.Output(2); out != 0 {
		t.Fatal("kept value survived reset")
	}
}

// Run feeds backend events to the state machine and hands completions to
// the callback; it stops when the context is cancelled.
func TestRun(t *testing.T) {
	sim := mustSim(t, 1)
	done := make(chan Completion[int], 1)
	c, err := NewController(sim, true, func(d []Completion[int]) {
		for _, x := range d {
			done <- x
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Negotiate(1 << FeatureIRQ)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { c.Run(ctx); close(stopped) }()

	b := &bench{t: t, sim: sim, c: c}
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeRising))
	want(t, "unmask", b.queue(0, 42))
	if err := sim.SetInput(0, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got != valid(42) {
			t.Fatalf("completion %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no interrupt")
	}
	cancel()
	<-stopped

	// Run returns when the events channel closes, and at once without one.
	go func() { c.Run(context.Background()); close(done) }()
	sim.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return on a closed channel")
	}
	nb := &noEvents{Sim: mustSim(t, 1)}
	c2, err := NewController[int](nb, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.Run(context.Background())
	if _, err := NewController[int](nb, true, func([]Completion[int]) {}); err == nil {
		t.Fatal("interrupts offered by a backend without events")
	}
	if _, err := NewController[int](sim, true, nil); err == nil {
		t.Fatal("interrupts offered without a callback")
	}
}

type noEvents struct{ *Sim }

func (noEvents) Events() <-chan Event { return nil }
