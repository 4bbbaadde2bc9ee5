package gpio

// Bursts: what the spec lets the device collapse.
//
// An eventq buffer carries one interrupt, and the device holds at most one
// latched edge per line ("MUST latch an edge interrupt if the interrupt is
// enabled but still masked"; a latch is a flag, not a counter). So with E
// matching edges and B buffers queued by the driver over a burst, the
// number D of VALID completions satisfies
//
//	D <= min(E, B)      one interrupt per buffer, none without an edge
//	D >= B - 1          every buffer but the last one queued is completed,
//	                    because edges keep coming after it was queued
//	                    (latched edges complete a buffer as it is queued)
//
// and, once the burst is over, no edge is lost: if any edge happened after
// the last completion, the next buffer is completed at once. Edges beyond
// one per buffer collapse; this is what the spec allows and all it allows.

import (
	"sync"
	"testing"
	"time"
)

// Deterministic: 1000 toggles with EDGE_BOTH, the driver requeueing only
// after every 7th toggle.
func TestBurstDeterministic(t *testing.T) {
	b := newBench(t, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	const edges = 1000
	tok, queued, delivered := 0, 0, 0
	held := false
	requeue := func() {
		queued++
		tok++
		if got := b.queue(0, tok); len(got) == 1 && got[0] == valid(tok) {
			delivered++
			return
		}
		held = true
	}
	requeue()
	for i := 1; i <= edges; i++ {
		if got := b.host(0, uint8(i&1)); len(got) == 1 {
			delivered++
			held = false
		}
		if i%7 == 0 && !held {
			requeue()
		}
	}
	if delivered > min(edges, queued) || delivered < queued-1 {
		t.Fatalf("delivered %d, queued %d, edges %d: outside [B-1, min(E,B)]", delivered, queued, edges)
	}
	// The first buffer, then one at every 7th toggle (142 of them), each
	// completed at once by the edge latched since the previous one.
	if queued != 143 || delivered != 143 || held {
		t.Fatalf("queued %d delivered %d held %v, want 143, 143, false", queued, delivered, held)
	}
	// Toggles 995-1000 came after the last completion: latched, reported
	// as soon as the driver queues a buffer.
	want(t, "requeue after the burst", b.queue(0, 1000), valid(1000))
	want(t, "requeue again", b.queue(0, 1001))
}

// Concurrent: a host goroutine toggles 1000 times through the Sim, Run
// delivers interrupts, and a slow driver goroutine requeues each completed
// buffer after a pause.
func TestBurstConcurrent(t *testing.T) {
	sim := mustSim(t, 1)
	completions := make(chan Completion[int], 4)
	c, err := NewController(sim, true, func(d []Completion[int]) {
		for _, x := range d {
			completions <- x
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Negotiate(1 << FeatureIRQ)
	b := &bench{t: t, sim: sim, c: c}
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))

	// Count the events Run processes, to know when the burst is applied.
	processed := make(chan struct{}, 1)
	var mu sync.Mutex
	events := 0
	go func() {
		for ev := range sim.Events() {
			if d := c.HandleEvent(ev); len(d) > 0 {
				c.complete(d)
			}
			mu.Lock()
			events++
			if events == 1000 {
				processed <- struct{}{}
			}
			mu.Unlock()
		}
	}()

	var queued, delivered int
	stop := make(chan struct{})
	driverDone := make(chan struct{})
	queue := func(tok int) {
		queued++
		for _, x := range c.QueueEvent(IRQRequest(0), 1, tok) {
			if x.Status != EventValid {
				t.Errorf("completion %+v", x)
			}
			completions <- x
		}
	}
	go func() { // the driver
		defer close(driverDone)
		tok := 0
		queue(tok)
		for {
			select {
			case x := <-completions:
				if x.Status != EventValid || x.Token != tok {
					t.Errorf("completion %+v, want VALID %d", x, tok)
				}
				delivered++
				time.Sleep(20 * time.Microsecond) // a slow handler
				tok++
				queue(tok)
			case <-stop:
				return
			}
		}
	}()
	for i := 1; i <= 1000; i++ {
		if err := sim.SetInput(0, uint8(i&1)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-processed:
	case <-time.After(10 * time.Second):
		t.Fatal("events not processed")
	}
	// Let the driver drain what the burst completed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		idle := c.lines[0].held && !c.lines[0].latched
		c.mu.Unlock()
		if idle && len(completions) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("driver never idle: an edge left undelivered?")
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-driverDone
	t.Logf("1000 edges, %d buffers queued, %d interrupts", queued, delivered)
	if delivered < 1 || delivered > min(1000, queued) || delivered < queued-1 {
		t.Fatalf("delivered %d, queued %d: outside [B-1, min(E,B)]", delivered, queued)
	}
	// Quiescent: the last buffer is held, nothing latched, so no edge
	// since the last completion is unreported.
}
