package gpio

import (
	"sync"
	"time"
)

// bounded feeds values to a channel in order without ever blocking the
// producer, holding at most limit of them. A value that does not fit is
// handed to fold instead, and from then on every value is folded until
// the queue has drained; flush then turns what was folded into values to
// deliver (a bounded number of them), after which queuing resumes. fold
// and flush run with the queue's lock held and must not call back into
// it.
//
// This is the one queue between a producer that must never wait (the
// guest's path through a Sim, a host GPIO reader) and a consumer that may
// stall (a Controller whose guest does not take its interrupts, a watch
// client suspended with Ctrl-Z).
type bounded[V any] struct {
	out    chan V
	wake   chan struct{}
	done   chan struct{} // closed by stop
	exited chan struct{} // closed when run has returned and closed out
	once   sync.Once
	limit  int
	fold   func(V)
	flush  func() []V

	mu      sync.Mutex
	q       []V  // queued, not yet taken by run
	n       int  // queued or taken by run, not yet sent: at most limit
	folding bool // a value did not fit; fold until drained
}

func newBounded[V any](limit int, fold func(V), flush func() []V) *bounded[V] {
	b := &bounded[V]{
		out:    make(chan V),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		limit:  limit,
		fold:   fold,
		flush:  flush,
	}
	go b.run()
	return b
}

// push queues v, or folds it. It never blocks and is a no-op after stop.
func (b *bounded[V]) push(v V) {
	select {
	case <-b.done:
		return
	default:
	}
	b.mu.Lock()
	if b.folding || b.n >= b.limit {
		b.folding = true
		b.fold(v)
		b.mu.Unlock()
		return
	}
	b.q = append(b.q, v)
	b.n++
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// stop ends the goroutine and returns once out is closed; values still
// queued are dropped.
func (b *bounded[V]) stop() {
	b.once.Do(func() { close(b.done) })
	<-b.exited
}

func (b *bounded[V]) run() {
	defer close(b.exited)
	defer close(b.out)
	for {
		b.mu.Lock()
		q := b.q
		b.q = nil
		if len(q) == 0 && b.folding {
			// Drained: deliver what was folded, then queue again.
			q = b.flush()
			b.n += len(q)
			b.folding = false
		}
		b.mu.Unlock()
		for _, v := range q {
			select {
			case b.out <- v:
			case <-b.done:
				return
			}
			b.mu.Lock()
			b.n--
			b.mu.Unlock()
		}
		if len(q) > 0 {
			continue // look again before sleeping
		}
		select {
		case <-b.wake:
		case <-b.done:
			return
		}
	}
}

// EdgeQueueLimit is how many events an EdgeQueue holds before it folds.
const EdgeQueueLimit = 4096

// foldKeep is how many of a line's newest events an EdgeQueue keeps while
// it folds: enough for two edges of each kind.
const foldKeep = 4

// EdgeQueue carries a backend's edge events to its Events channel (and so
// to Controller.Run) in order, without ever blocking the backend, in
// bounded memory. Sim uses one, and so does the host-passthrough backend
// (package cdev).
//
// When EdgeQueueLimit events wait unread (the Controller is not keeping
// up: a burst faster than the guest takes its interrupts), further events
// are folded per line until the queue has drained: a line keeps only its
// four newest events, which are delivered, in order, once the queue has
// drained. Edges alternate, so those are two of each kind, ending at the
// line's newest level: enough for everything the Controller can make of
// them in a row, an edge that completes a held buffer and one that is
// latched behind it, of either kind. Older edges would have collapsed into
// that latch, as the spec allows while a line is masked. Dropped counts the
// events folded away; the memory held is at most EdgeQueueLimit events
// plus four per line.
type EdgeQueue struct {
	q *bounded[Event]

	// Guarded by q.mu.
	folded  map[int]*foldedLine
	order   []int // lines in the order they were first folded
	dropped uint64
}

// foldedLine is a line's newest events while its queue folds.
type foldedLine struct {
	last [foldKeep]Event // a ring: the newest at (n-1) % foldKeep
	n    uint64          // events folded
}

// NewEdgeQueue returns an empty queue whose Events channel is open.
func NewEdgeQueue() *EdgeQueue {
	e := &EdgeQueue{folded: map[int]*foldedLine{}}
	e.q = newBounded(EdgeQueueLimit, e.fold, e.flush)
	return e
}

// Push queues ev. It never blocks; after Close it does nothing.
func (e *EdgeQueue) Push(ev Event) { e.q.push(ev) }

// Events is the channel events are delivered on, closed by Close.
func (e *EdgeQueue) Events() <-chan Event { return e.q.out }

// Close stops delivery and returns once the Events channel is closed;
// events still queued are dropped.
func (e *EdgeQueue) Close() { e.q.stop() }

// Dropped is the number of events folded away so far (counted when the
// line's newest events are delivered).
func (e *EdgeQueue) Dropped() uint64 {
	e.q.mu.Lock()
	defer e.q.mu.Unlock()
	return e.dropped
}

func (e *EdgeQueue) fold(ev Event) {
	f := e.folded[ev.Line]
	if f == nil {
		f = &foldedLine{}
		e.folded[ev.Line] = f
		e.order = append(e.order, ev.Line)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	f.last[f.n%foldKeep] = ev
	f.n++
}

func (e *EdgeQueue) flush() []Event {
	var out []Event
	for _, line := range e.order {
		f := e.folded[line]
		kept := min(f.n, foldKeep)
		for i := f.n - kept; i < f.n; i++ {
			out = append(out, f.last[i%foldKeep])
		}
		e.dropped += f.n - kept
	}
	clear(e.folded)
	e.order = nil
	return out
}
