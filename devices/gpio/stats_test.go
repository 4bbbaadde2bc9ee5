package gpio

import (
	"math/rand/v2"
	"testing"
)

// checkReconcile checks the identities Stats documents, given the number
// of matching edges the host made while the interrupt was enabled.
func checkReconcile(t *testing.T, what string, s Stats, edges uint64) {
	t.Helper()
	if got := s.EdgesFired + s.EdgesLatched + s.EdgesCollapsed; got != edges {
		t.Errorf("%s: fired %d + latched %d + collapsed %d = %d, want the %d matching edges",
			what, s.EdgesFired, s.EdgesLatched, s.EdgesCollapsed, got, edges)
	}
	if got := s.LatchesDelivered + s.LatchesDiscarded + s.LatchesPending; got != s.EdgesLatched {
		t.Errorf("%s: latches delivered %d + discarded %d + pending %d = %d, want %d latched",
			what, s.LatchesDelivered, s.LatchesDiscarded, s.LatchesPending, got, s.EdgesLatched)
	}
	if got := s.EdgesFired + s.LatchesDelivered + s.LevelsFired; got != s.Valid {
		t.Errorf("%s: fired %d + latches delivered %d + levels %d = %d, want %d VALID",
			what, s.EdgesFired, s.LatchesDelivered, s.LevelsFired, got, s.Valid)
	}
}

// TestStatsReconcile drives random edges, buffer requeues and enable /
// disable cycles through a Controller, with each trigger type, and checks
// that Stats accounts for every matching edge and every VALID completion,
// the spec's latch rule in numbers: an edge fires a held buffer, sets the
// latch of a masked line, or collapses into a latch already set; a latch is
// delivered by the next buffer, discarded by a disable, or still pending.
func TestStatsReconcile(t *testing.T) {
	types := []IRQType{IRQTypeEdgeRising, IRQTypeEdgeFalling, IRQTypeEdgeBoth, IRQTypeLevelHigh, IRQTypeLevelLow}
	for _, typ := range types {
		t.Run(typ.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(typ)))
			b := newBench(t, 1)
			b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
			b.ok(MsgTypeSetIRQType, 0, uint32(typ))
			level, enabled, held := uint8(0), true, false
			tok, edges, valid := 0, uint64(0), uint64(0)
			count := func(done []Completion[int]) {
				for _, c := range done {
					if c.Status == EventValid {
						valid++
					}
					held = false
				}
			}
			for range 20000 {
				switch r := rng.IntN(100); {
				case r < 60: // the host toggles the line
					level ^= 1
					if enabled && typ.Edge() && edgeMatches(typ, level) {
						edges++
					}
					count(b.host(0, level))
				case r < 90: // the driver queues (unmasks) if it has no buffer out
					if !held {
						tok++
						held = true
						count(b.queue(0, tok))
					}
				case r < 95: // disable
					if enabled {
						b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeNone))
						enabled = false
						count(b.rec.take())
					}
				default: // enable again
					if !enabled {
						b.ok(MsgTypeSetIRQType, 0, uint32(typ))
						enabled = true
						count(b.rec.take())
					}
				}
			}
			s := b.c.Stats()
			checkReconcile(t, typ.String(), s, edges)
			if s.Valid != valid {
				t.Errorf("Stats.Valid %d, the driver got %d", s.Valid, valid)
			}
			if typ.Edge() && (s.EdgesFired == 0 || s.EdgesLatched == 0 || s.EdgesCollapsed == 0 || s.LatchesDiscarded == 0) {
				t.Errorf("the walk missed a path: %+v", s)
			}
			if typ.Level() && s.LevelsFired == 0 {
				t.Errorf("no level interrupt fired: %+v", s)
			}
		})
	}
}

// TestStatsRequests counts requests by type and errors.
func TestStatsRequests(t *testing.T) {
	b := newBench(t, 2, "a")
	b.ok(MsgTypeGetDirection, 0, 0)
	b.ok(MsgTypeSetValue, 1, 1)
	b.fail(MsgTypeGetValue, 9, 0)
	b.c.HandleRequest([]byte{0xff}, 2)                           // no type
	b.c.HandleRequest(Request{Type: 99, GPIO: 0}.Bytes(), 2)     // unknown type
	b.c.HandleRequest(Request{Type: MsgTypeGetNames}.Bytes(), 1) // no room for the names
	want := Stats{Requests: [7]uint64{2, 1, 1, 0, 1, 1, 0}, Errors: 4}
	if s := b.c.Stats(); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
}
