package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gvmm/gvmm/devices/gpio/control"
)

// TestGPIOEdgeReconciliation injects N edges on a line whose interrupt
// the guest enabled for both edges and reconciles three counts: the edges
// the host made, what the device decided for each (gvmm gpio stats: fired
// a held buffer, latched on a masked line, collapsed into a latch, or
// folded by the bounded event queue) and the events the guest's kernel
// delivered (gpio-events). The spec's latch rule makes them add up exactly:
//
//	N = fired + latched + collapsed + folded
//	latched = latches delivered + discarded + pending
//	VALID completions = fired + latches delivered = guest events (+ kernel drops)
//
// and the guest's last event is the line's final level.
func TestGPIOEdgeReconciliation(t *testing.T) {
	needKVM(t)
	const edges = 2000
	r, cl, ctx := startControlled(t, "--append", quietCmdline, "--gpio", "sim:4",
		"--initrd", guestInitrd(t, "gpio-events"), "--cmd", "gpio-events -line 3 -done 2")
	waitState(t, ctx, cl, "gpio-events enables line 3's interrupt", 0, 3, func(l control.Line) bool { return l.IRQType == "EDGE_BOTH" })
	for i := 1; i <= edges; i++ {
		setInput(t, cl, 0, 3, uint8(i&1)) // ends low
	}
	setInput(t, cl, 0, 2, 1)
	r.waitLine("gpio-events counts the edges", "EVENTS ")
	r.waitLine("the guest command ends", "[gvmm] command exited with status 0")
	var n, gaps int
	var last string
	for _, l := range strings.Split(r.seen.String(), "\n") {
		fmt.Sscanf(strings.TrimSpace(l), "EVENTS n=%d gaps=%d last=%s", &n, &gaps, &last)
	}
	resp, err := cl.Do(control.Request{Op: "stats", Bank: 0})
	if err != nil {
		t.Fatalf("step 'read the device's stats': %v", err)
	}
	s := *resp.Stats
	t.Logf("%d edges: fired %d, latched %d, collapsed %d, folded %d; latches delivered %d, discarded %d, pending %d; VALID %d, INVALID %d; guest events %d, kernel drops %d, last %s",
		edges, s.EdgesFired, s.EdgesLatched, s.EdgesCollapsed, s.EventsFolded, s.LatchesDelivered, s.LatchesDiscarded, s.LatchesPending,
		s.Valid, s.Invalid, n, gaps, last)
	check := func(what string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %d, want %d (stats %+v)", what, got, want, s)
		}
	}
	check("fired + latched + collapsed + folded = edges", s.EdgesFired+s.EdgesLatched+s.EdgesCollapsed+s.EventsFolded, edges)
	check("latches delivered + discarded + pending = latched", s.LatchesDelivered+s.LatchesDiscarded+s.LatchesPending, s.EdgesLatched)
	check("fired + latches delivered = VALID", s.EdgesFired+s.LatchesDelivered+s.LevelsFired, s.Valid)
	check("guest events + kernel drops = VALID", uint64(n+gaps), s.Valid)
	check("stale events", s.StaleEvents, 0)
	if n < 1 || last != "falling" {
		t.Errorf("the guest saw %d events, the last %q; the line ended low", n, last)
	}
	if s.Valid > edges || s.Errors != 0 || s.MalformedChains != 0 {
		t.Errorf("stats %+v", s)
	}
}
