package gpio

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder collects what the Controller passes to its complete callback.
type recorder struct {
	mu   sync.Mutex
	done []Completion[int]
}

func (r *recorder) complete(d []Completion[int]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = append(r.done, d...)
}

// take returns and forgets what was recorded.
func (r *recorder) take() []Completion[int] {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.done
	r.done = nil
	return d
}

// bench is a Controller over a Sim, with interrupts negotiated, whose
// backend events are applied synchronously by host().
type bench struct {
	t   *testing.T
	sim *Sim
	c   *Controller[int]
	rec *recorder
}

func newBench(t *testing.T, n int, names ...string) *bench {
	t.Helper()
	sim, err := NewSim(n, names...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	rec := &recorder{}
	c, err := NewController(sim, true, rec.complete)
	if err != nil {
		t.Fatal(err)
	}
	c.Negotiate(1 << FeatureIRQ)
	return &bench{t: t, sim: sim, c: c, rec: rec}
}

// req sends one request with an exact-size response buffer and returns
// status and value, failing on a response of the wrong length.
func (b *bench) req(typ MsgType, gpio uint16, value uint32) (Status, uint8) {
	b.t.Helper()
	r := Request{Type: typ, GPIO: gpio, Value: value}.Bytes()
	resp := b.c.HandleRequest(r, b.c.ResponseSize(r))
	if len(resp) != ResponseSize {
		b.t.Fatalf("%v(%d, %d): response %x, want %d bytes", typ, gpio, value, resp, ResponseSize)
	}
	return Status(resp[0]), resp[1]
}

// ok sends a request that must succeed and returns its value.
func (b *bench) ok(typ MsgType, gpio uint16, value uint32) uint8 {
	b.t.Helper()
	st, v := b.req(typ, gpio, value)
	if st != StatusOK {
		b.t.Fatalf("%v(%d, %d) = %v, want OK", typ, gpio, value, st)
	}
	return v
}

// fail sends a request that must fail with StatusERR and a zero value.
func (b *bench) fail(typ MsgType, gpio uint16, value uint32) {
	b.t.Helper()
	st, v := b.req(typ, gpio, value)
	if st != StatusERR || v != 0 {
		b.t.Fatalf("%v(%d, %d) = %v %d, want ERR 0", typ, gpio, value, st, v)
	}
}

// queue queues eventq buffer tok for gpio and returns what came back at once.
func (b *bench) queue(gpio uint16, tok int) []Completion[int] {
	return b.c.QueueEvent(IRQRequest(gpio), IRQResponseSize, tok)
}

// host drives the input of line to v and, if the Sim reports an event for
// it, applies that event to the Controller and returns what it completed.
func (b *bench) host(line int, v uint8) []Completion[int] {
	b.t.Helper()
	before, err := b.sim.Line(line)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := b.sim.SetInput(line, v); err != nil {
		b.t.Fatal(err)
	}
	if before.IRQType == IRQTypeNone || before.Direction == DirectionOut || before.Input == v {
		return nil
	}
	select {
	case ev := <-b.sim.Events():
		if ev.Line != line || ev.Value != v {
			b.t.Fatalf("event %+v, want line %d value %d", ev, line, v)
		}
		return b.c.HandleEvent(ev)
	case <-time.After(5 * time.Second):
		b.t.Fatalf("no event for line %d -> %d", line, v)
	}
	return nil
}

func valid(tok int) Completion[int]   { return Completion[int]{Token: tok, Status: EventValid} }
func invalid(tok int) Completion[int] { return Completion[int]{Token: tok, Status: EventInvalid} }

// want fails unless got equals want (nil and empty are equal).
func want(t *testing.T, what string, got []Completion[int], want ...Completion[int]) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: completions %v, want %v", what, got, want)
	}
}

// state returns a copy of the Controller's view of one line.
func (b *bench) state(line int) lineState[int] {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	return b.c.lines[line]
}
