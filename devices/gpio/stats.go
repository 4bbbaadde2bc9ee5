package gpio

import "encoding/binary"

// Stats counts what a device has done since it was created, for
// diagnostics (gvmm gpio stats) and for tests that reconcile what the host
// sent, what the device decided and what the guest saw.
//
// For edge trigger types every backend event on a line whose interrupt is
// enabled, whose edge matches the trigger type and that is not stale is
// exactly one of EdgesFired, EdgesLatched and EdgesCollapsed; every latch
// set (EdgesLatched) ends exactly one of LatchesDelivered,
// LatchesDiscarded or LatchesPending; and the eventq buffers returned
// VALID for edges are EdgesFired + LatchesDelivered. So, for a burst of E
// matching edges that the device saw:
//
//	E = EdgesFired + EdgesLatched + EdgesCollapsed
//	EdgesLatched = LatchesDelivered + LatchesDiscarded + LatchesPending
//	Valid = EdgesFired + LatchesDelivered + LevelsFired
type Stats struct {
	// Requests counts requestq messages by type, indexed by MsgType
	// (1 to 6); index 0 counts those with no valid type field.
	Requests [7]uint64 `json:"requests"`
	// Errors counts requests answered VIRTIO_GPIO_STATUS_ERR.
	Errors uint64 `json:"errors"`
	// EdgesFired counts matching edges that completed a held buffer.
	EdgesFired uint64 `json:"edges_fired"`
	// EdgesLatched counts matching edges that found the line masked (no
	// buffer held) and set its latch.
	EdgesLatched uint64 `json:"edges_latched"`
	// EdgesCollapsed counts matching edges that found the latch already
	// set: the spec lets edges collapse while a line is masked.
	EdgesCollapsed uint64 `json:"edges_collapsed"`
	// LatchesDelivered counts latches that a newly queued buffer
	// returned VALID at once.
	LatchesDelivered uint64 `json:"latches_delivered"`
	// LatchesDiscarded counts latches a disable or reset dropped ("MUST
	// discard any latched interrupt").
	LatchesDiscarded uint64 `json:"latches_discarded"`
	// LatchesPending is the number of lines with a latch set now.
	LatchesPending uint64 `json:"latches_pending"`
	// LevelsFired counts VALID completions for level trigger types.
	LevelsFired uint64 `json:"levels_fired"`
	// StaleEvents counts backend events from before the line's interrupt
	// was last enabled, dropped.
	StaleEvents uint64 `json:"stale_events"`
	// Valid and Invalid count eventq buffers returned, by status.
	Valid   uint64 `json:"valid"`
	Invalid uint64 `json:"invalid"`
	// MalformedChains counts descriptor chains the device could not use
	// (either queue), returned with nothing written.
	MalformedChains uint64 `json:"malformed_chains"`
	// EventsFolded counts backend events its EdgeQueue folded into others
	// because the device fell EdgeQueueLimit events behind (backends
	// with an EventsFolded method: Sim and the host-passthrough backend).
	EventsFolded uint64 `json:"events_folded"`
}

// Stats returns the counts so far.
func (c *Controller[T]) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	for i := range c.lines {
		if c.lines[i].latched {
			s.LatchesPending++
		}
	}
	return s
}

// countRequest counts a message by its type field and its status; c.mu is
// held.
func (c *Controller[T]) countRequest(req []byte, status byte) {
	i := 0
	if len(req) >= 2 {
		if t := binary.LittleEndian.Uint16(req); t >= 1 && int(t) < len(c.stats.Requests) {
			i = int(t)
		}
	}
	c.stats.Requests[i]++
	if status != byte(StatusOK) {
		c.stats.Errors++
	}
}

// countCompletions counts eventq buffers returned; c.mu is held.
func (c *Controller[T]) countCompletions(done []Completion[T]) {
	for _, d := range done {
		if d.Status == EventValid {
			c.stats.Valid++
		} else {
			c.stats.Invalid++
		}
	}
}
