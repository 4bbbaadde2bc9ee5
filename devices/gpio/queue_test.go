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
// gets the first EdgeQueueLimit in order, then each line folded into the
// opposite edge and its final level, and Dropped accounts for the rest.
func TestEdgeQueueFolds(t *testing.T) {
	tests := []struct {
		name   string
		edges  int // alternating 1, 0, 1, ... on line 3
		folded []uint8
	}{
		{"fits", EdgeQueueLimit, nil},
		{"one over, rising", EdgeQueueLimit + 1, []uint8{1}},
		{"two over", EdgeQueueLimit + 2, []uint8{1, 0}},
		{"many over, ends low", 10 * EdgeQueueLimit, []uint8{1, 0}},
		{"many over, ends high", 10*EdgeQueueLimit + 1, []uint8{0, 1}},
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

// TestEdgeQueueFoldsPerLine: lines folded together keep their own edges.
func TestEdgeQueueFoldsPerLine(t *testing.T) {
	q := NewEdgeQueue()
	defer q.Close()
	for range EdgeQueueLimit {
		q.Push(Event{Line: 0, Value: 1})
	}
	q.Push(Event{Line: 5, Value: 1}) // rising only
	q.Push(Event{Line: 7, Value: 0})
	q.Push(Event{Line: 7, Value: 1})
	q.Push(Event{Line: 7, Value: 0}) // both, ends low
	got := drain(q.Events())[EdgeQueueLimit:]
	want := []Event{{Line: 5, Value: 1}, {Line: 7, Value: 1}, {Line: 7, Value: 0}}
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
