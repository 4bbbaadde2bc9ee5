package gpio

import (
	"errors"
	"testing"
	"time"
)

var errInjected = errors.New("injected")

// errBackend is a Sim whose methods fail, or return out-of-range values,
// on demand (after rust-vmm's mock_gpio.rs).
type errBackend struct {
	*Sim
	fail     map[string]bool // method name -> return errInjected
	badValue bool            // Get returns 2
	badDir   bool            // Direction returns 3
}

func (e *errBackend) Direction(line int) (Direction, error) {
	if e.fail["Direction"] {
		return 0, errInjected
	}
	if e.badDir {
		return 3, nil
	}
	return e.Sim.Direction(line)
}

func (e *errBackend) SetDirection(line int, d Direction, v uint8) error {
	if e.fail["SetDirection"] {
		return errInjected
	}
	return e.Sim.SetDirection(line, d, v)
}

func (e *errBackend) Get(line int) (uint8, error) {
	if e.fail["Get"] {
		return 0, errInjected
	}
	if e.badValue {
		return 2, nil
	}
	return e.Sim.Get(line)
}

func (e *errBackend) Set(line int, v uint8) error {
	if e.fail["Set"] {
		return errInjected
	}
	return e.Sim.Set(line, v)
}

func (e *errBackend) SetIRQType(line int, t IRQType) error {
	if e.fail["SetIRQType"] {
		return errInjected
	}
	return e.Sim.SetIRQType(line, t)
}

func newErrBench(t *testing.T) (*bench, *errBackend) {
	t.Helper()
	eb := &errBackend{Sim: mustSim(t, 2), fail: map[string]bool{}}
	rec := &recorder{}
	c, err := NewController(eb, true, rec.complete)
	if err != nil {
		t.Fatal(err)
	}
	c.Negotiate(1 << FeatureIRQ)
	return &bench{t: t, sim: eb.Sim, c: c, rec: rec}, eb
}

// Every backend failure, and every out-of-range answer from a backend,
// becomes VIRTIO_GPIO_STATUS_ERR for the request that caused it.
func TestBackendErrorsMapToStatusERR(t *testing.T) {
	type setup func(b *bench)
	out := func(b *bench) {
		b.ok(MsgTypeSetValue, 0, 1)
		b.ok(MsgTypeSetDirection, 0, uint32(DirectionOut))
	}
	in := func(b *bench) { b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn)) }
	enabled := func(b *bench) {
		in(b)
		b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	}
	tests := []struct {
		name   string
		setup  setup
		inject func(e *errBackend)
		req    Request
	}{
		{"GET_DIRECTION fails", nil, func(e *errBackend) { e.fail["Direction"] = true },
			Request{Type: MsgTypeGetDirection}},
		{"GET_DIRECTION out of range", nil, func(e *errBackend) { e.badDir = true },
			Request{Type: MsgTypeGetDirection}},
		{"SET_DIRECTION IN fails", nil, func(e *errBackend) { e.fail["SetDirection"] = true },
			Request{Type: MsgTypeSetDirection, Value: uint32(DirectionIn)}},
		{"SET_DIRECTION OUT fails", nil, func(e *errBackend) { e.fail["SetDirection"] = true },
			Request{Type: MsgTypeSetDirection, Value: uint32(DirectionOut)}},
		{"SET_DIRECTION NONE fails", out, func(e *errBackend) { e.fail["SetDirection"] = true },
			Request{Type: MsgTypeSetDirection, Value: uint32(DirectionNone)}},
		{"SET_DIRECTION NONE, irq disable fails", enabled, func(e *errBackend) { e.fail["SetIRQType"] = true },
			Request{Type: MsgTypeSetDirection, Value: uint32(DirectionNone)}},
		{"GET_VALUE fails", in, func(e *errBackend) { e.fail["Get"] = true },
			Request{Type: MsgTypeGetValue}},
		{"GET_VALUE out of range", in, func(e *errBackend) { e.badValue = true },
			Request{Type: MsgTypeGetValue}},
		{"SET_VALUE on output fails", out, func(e *errBackend) { e.fail["Set"] = true },
			Request{Type: MsgTypeSetValue, Value: 0}},
		{"SET_IRQ_TYPE enable fails", in, func(e *errBackend) { e.fail["SetIRQType"] = true },
			Request{Type: MsgTypeSetIRQType, Value: uint32(IRQTypeEdgeRising)}},
		{"SET_IRQ_TYPE level read fails", in, func(e *errBackend) { e.fail["Get"] = true },
			Request{Type: MsgTypeSetIRQType, Value: uint32(IRQTypeLevelHigh)}},
		{"SET_IRQ_TYPE level out of range", in, func(e *errBackend) { e.badValue = true },
			Request{Type: MsgTypeSetIRQType, Value: uint32(IRQTypeLevelHigh)}},
		{"SET_IRQ_TYPE disable fails", enabled, func(e *errBackend) { e.fail["SetIRQType"] = true },
			Request{Type: MsgTypeSetIRQType, Value: uint32(IRQTypeNone)}},
		{"SET_IRQ_TYPE change fails", enabled, func(e *errBackend) { e.fail["SetIRQType"] = true },
			Request{Type: MsgTypeSetIRQType, Value: uint32(IRQTypeEdgeRising)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, eb := newErrBench(t)
			if tc.setup != nil {
				tc.setup(b)
			}
			tc.inject(eb)
			b.fail(tc.req.Type, tc.req.GPIO, tc.req.Value)
		})
	}
}

// What a failed request leaves behind.
func TestBackendErrorState(t *testing.T) {
	// A failed SET_VALUE on an output keeps the old kept value.
	b, eb := newErrBench(t)
	b.ok(MsgTypeSetValue, 0, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionOut))
	eb.fail["Set"] = true
	b.fail(MsgTypeSetValue, 0, 0)
	eb.fail["Set"] = false
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionOut))
	if out, _, _ := b.sim.Output(0); out != 1 {
		t.Fatal("failed SET_VALUE changed the kept value")
	}

	// A failed enable leaves the interrupt disabled, in the backend too
	// when the level read failed after enabling.
	b, eb = newErrBench(t)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	eb.fail["Get"] = true
	b.fail(MsgTypeSetIRQType, 0, uint32(IRQTypeLevelHigh))
	eb.fail["Get"] = false
	if s, _ := b.sim.Line(0); s.IRQType != IRQTypeNone {
		t.Fatalf("backend interrupt left enabled: %v", s.IRQType)
	}
	// gpio-virtio.c ignores the ERR and queues its buffer anyway: held,
	// not bounced (see TestDriverEnableRefused), and never VALID.
	want(t, "queue", b.queue(0, 1))
	if err := b.sim.SetInput(0, 1); err != nil {
		t.Fatal(err)
	}
	want(t, "event while disabled", b.c.HandleEvent(Event{Line: 0, Value: 1, Time: time.Now()}))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeNone))
	want(t, "disable returns it", b.rec.take(), invalid(1))

	// A failed disable still returns the buffer INVALID and disables the
	// interrupt at the device: the spec's MUST does not depend on the
	// backend.
	b, eb = newErrBench(t)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeRising))
	want(t, "queue", b.queue(0, 2))
	eb.fail["SetIRQType"] = true
	b.fail(MsgTypeSetIRQType, 0, uint32(IRQTypeNone))
	want(t, "failed disable", b.rec.take(), invalid(2))
	want(t, "queue after failed disable", b.queue(0, 3))
	if st := b.state(0); st.irqType != IRQTypeNone {
		t.Fatalf("interrupt still enabled at the device after a failed disable: %v", st.irqType)
	}
	want(t, "edge after failed disable", b.c.HandleEvent(Event{Line: 0, Value: 1, Time: time.Now()}))

	// Reset reports backend failures and resets the device anyway.
	eb.fail["SetDirection"] = true
	if err := b.c.Reset(); !errors.Is(err, errInjected) {
		t.Fatalf("Reset() = %v", err)
	}

	// NewController fails if the backend cannot report directions.
	eb = &errBackend{Sim: mustSim(t, 1), fail: map[string]bool{"Direction": true}}
	if _, err := NewController[int](eb, false, nil); !errors.Is(err, errInjected) {
		t.Fatalf("NewController() = %v", err)
	}
}

// The driver's view of a refused enable: bus_sync_unlock() ignores the
// SET_IRQ_TYPE error and queues the buffer. The device holds it; an
// INVALID return would make ignore_irq() requeue it forever.
func TestDriverEnableRefused(t *testing.T) {
	b, eb := newErrBench(t)
	d := probe(t, b)
	d.directionInput(0)
	eb.fail["SetIRQType"] = true
	d.requestIRQ(0, IRQTypeEdgeBoth)
	eb.fail["SetIRQType"] = false
	if n := d.eventVQ(); n != 0 || !d.irq[0].queued || !b.state(0).held {
		t.Fatalf("%d eventq round trips, driver queued %v, device held %v; want 0, true, true", n, d.irq[0].queued, b.state(0).held)
	}
	d.freeIRQ(0)
	if d.irq[0].queued || b.state(0).held || d.warns != 0 {
		t.Fatalf("after free_irq: driver queued %v, device held %v, %d WARN_ONs", d.irq[0].queued, b.state(0).held, d.warns)
	}
}
