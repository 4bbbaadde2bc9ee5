package gpio

import (
	"fmt"
	"testing"
	"time"
)

// drain reads ch until nothing arrives for a while.
func drain[V any](ch <-chan V) []V {
	var got []V
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, v)
		case <-time.After(100 * time.Millisecond):
			return got
		}
	}
}

// TestEdgeQueueFolds: a reader that does not read while many edges arrive
// gets the first EdgeQueueLimit in order, then each line's four newest,
// and Dropped accounts for the rest.
func TestEdgeQueueFolds(t *testing.T) {
	tests := []struct {
		name   string
		edges  int // alternating 1, 0, 1, ... on line 3
		folded []uint8
	}{
		{"fits", EdgeQueueLimit, nil},
		{"one over, rising", EdgeQueueLimit + 1, []uint8{1}},
		{"two over", EdgeQueueLimit + 2, []uint8{1, 0}},
		{"four over", EdgeQueueLimit + 4, []uint8{1, 0, 1, 0}},
		{"many over, ends low", 10 * EdgeQueueLimit, []uint8{1, 0, 1, 0}},
		{"many over, ends high", 10*EdgeQueueLimit + 1, []uint8{0, 1, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewEdgeQueue()
			defer q.Close()
			for i := range tt.edges {
				q.Push(Event{Line: 3, Value: uint8(1 - i%2)})
			}
			// Folded events stay bounded however many arrive.
			q.q.mu.Lock()
			n, folded := q.q.n, len(q.folded)
			q.q.mu.Unlock()
			if n > EdgeQueueLimit || folded > 1 {
				t.Fatalf("%d events queued, %d lines folded", n, folded)
			}
			got := drain(q.Events())
			if len(got) != min(tt.edges, EdgeQueueLimit)+len(tt.folded) {
				t.Fatalf("%d events delivered for %d edges", len(got), tt.edges)
			}
			for i, ev := range got[:min(tt.edges, EdgeQueueLimit)] {
				if ev.Line != 3 || ev.Value != uint8(1-i%2) {
					t.Fatalf("event %d: %+v", i, ev)
				}
			}
			var tail []uint8
			for _, ev := range got[min(tt.edges, EdgeQueueLimit):] {
				tail = append(tail, ev.Value)
			}
			if fmt.Sprint(tail) != fmt.Sprint(tt.folded) {
				t.Errorf("folded events %v, want %v", tail, tt.folded)
			}
			if want := uint64(tt.edges - len(got)); q.Dropped() != want {
				t.Errorf("Dropped = %d, want %d", q.Dropped(), want)
			}
			// Once drained, events queue one by one again.
			q.Push(Event{Line: 1, Value: 1})
			if got := drain(q.Events()); len(got) != 1 || got[0].Line != 1 {
				t.Errorf("after the fold: %+v", got)
			}
		})
	}
}

// TestEdgeQueueFoldsPerLine: lines folded together keep their own newest
// edges, in order.
func TestEdgeQueueFoldsPerLine(t *testing.T) {
	q := NewEdgeQueue()
	defer q.Close()
	for range EdgeQueueLimit {
		q.Push(Event{Line: 0, Value: 1})
	}
	q.Push(Event{Line: 5, Value: 1}) // one edge
	for i := range 9 {               // 1, 0, 1, ..., 1
		q.Push(Event{Line: 7, Value: uint8(1 - i%2)})
	}
	got := drain(q.Events())[EdgeQueueLimit:]
	want := []Event{{Line: 5, Value: 1}, {Line: 7, Value: 0}, {Line: 7, Value: 1}, {Line: 7, Value: 0}, {Line: 7, Value: 1}}
	if len(got) != len(want) {
		t.Fatalf("folded events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Line != want[i].Line || got[i].Value != want[i].Value || got[i].Time.IsZero() {
			t.Errorf("folded event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestWatchBounded: a watcher that stops reading (gvmm gpio watch
// suspended with Ctrl-Z) while the guest keeps changing a line holds at
// most WatchLimit changes; when it reads again it gets them, then one
// ChangeLost counting the rest, then the changes that follow.
func TestWatchBounded(t *testing.T) {
	s, err := NewSim(2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	changes, cancel := s.Watch()
	defer cancel()
	if err := s.SetDirection(0, DirectionOut, 0); err != nil {
		t.Fatal(err)
	}
	const sets = 3 * WatchLimit
	for i := range sets {
		if err := s.Set(0, uint8(1-i%2)); err != nil {
			t.Fatal(err)
		}
	}
	for w := range s.watchers {
		w.mu.Lock()
		n := w.n
		w.mu.Unlock()
		if n > WatchLimit {
			t.Fatalf("watcher holds %d changes, limit %d", n, WatchLimit)
		}
	}
	got := drain(changes)
	if len(got) != WatchLimit+1 {
		t.Fatalf("%d changes delivered, want %d and a ChangeLost", len(got), WatchLimit)
	}
	last := got[len(got)-1]
	if want := uint64(1 + sets - WatchLimit); last.Kind != ChangeLost || last.Lost != want {
		t.Errorf("last change %v (%+v), want %d lost", last, last, want)
	}
	if err := s.SetInput(1, 1); err != nil {
		t.Fatal(err)
	}
	if got := drain(changes); len(got) != 1 || got[0].Kind != ChangeInput || got[0].Line != 1 {
		t.Errorf("after the loss: %v", got)
	}
}

// drainInto applies every event the Sim has queued to the Controller, as a
// Run that was stalled and catches up, and returns the VALID completions.
func (b *bench) drainInto() int {
	b.t.Helper()
	valid := 0
	for _, ev := range drain(b.sim.Events()) {
		for _, c := range b.c.HandleEvent(ev) {
			if c.Status == EventValid {
				valid++
			}
		}
	}
	return valid
}

// TestFoldKeepsFireAndLatch: with EDGE_RISING and a buffer held, the
// edges rising, falling, rising give two interrupts (the first fires the
// buffer, the second is latched and fires the next one), also when they
// arrive folded because the Controller fell behind.
func TestFoldKeepsFireAndLatch(t *testing.T) {
	b := newBench(t, 2)
	for line, typ := range []IRQType{IRQTypeEdgeRising, IRQTypeEdgeBoth} {
		b.ok(MsgTypeSetDirection, uint16(line), uint32(DirectionIn))
		b.ok(MsgTypeSetIRQType, uint16(line), uint32(typ))
	}
	want(t, "queue a buffer for line 0", b.queue(0, 1))
	for i := range EdgeQueueLimit { // line 1 fills the queue
		if err := b.sim.SetInput(1, uint8(1-i%2)); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []uint8{1, 0, 1} { // folded
		if err := b.sim.SetInput(0, v); err != nil {
			t.Fatal(err)
		}
	}
	b.drainInto()
	want(t, "line 0's buffer after the burst", b.rec.take())
	want(t, "a new buffer for line 0", b.queue(0, 2), valid(2))
	// Line 1, with no buffer, latched its first edge and collapsed the rest.
	if s := b.c.Stats(); s.EdgesFired != 1 || s.LatchesDelivered != 1 {
		t.Errorf("stats %+v: want line 0's one edge fired, one latch delivered", s)
	}
}

// TestFoldReconciles: the Stats identity with EventsFolded holds when the
// Controller falls far behind a burst on an EDGE_BOTH line: every edge the
// host made is fired, latched, collapsed or folded.
func TestFoldReconciles(t *testing.T) {
	const edges = 3*EdgeQueueLimit + 7
	b := newBench(t, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	want(t, "queue a buffer", b.queue(0, 1))
	for i := range edges {
		if err := b.sim.SetInput(0, uint8(1-i%2)); err != nil {
			t.Fatal(err)
		}
	}
	// The folded events come once the queue has drained, from the queue's
	// own goroutine, which a loaded machine (-race, two cores) may run
	// later than drain's 100 ms of quiet: drain until they came.
	b.drainInto()
	for deadline := time.Now().Add(30 * time.Second); b.sim.EventsFolded() == 0 && time.Now().Before(deadline); {
		b.drainInto()
	}
	s := b.c.Stats()
	s.EventsFolded = b.sim.EventsFolded()
	if s.EventsFolded == 0 {
		t.Fatalf("nothing folded: %+v", s)
	}
	checkReconcile(t, "after a folded burst", s, edges-s.EventsFolded)
}
