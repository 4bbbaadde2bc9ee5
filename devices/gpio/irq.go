package gpio

import (
	"context"
	"time"
)

// setIRQType implements VIRTIO_GPIO_MSG_SET_IRQ_TYPE with c.mu held; the
// caller has checked that the feature is negotiated and t is valid.
func (c *Controller[T]) setIRQType(line int, t IRQType) (bool, []Completion[T]) {
	l := &c.lines[line]
	if t == IRQTypeNone {
		done, err := c.disable(line)
		return err == nil, done
	}
	if l.dir == DirectionOut {
		// "The driver MUST NOT send IRQ messages for a GPIO line
		// configured for output."
		return false, nil
	}
	if t == l.irqType {
		return true, nil
	}
	var done []Completion[T]
	if l.irqType != IRQTypeNone {
		// "In order to change the trigger type of an already enabled
		// interrupt, the driver MUST first disable the interrupt and then
		// re-enable it": a driver that skips the first step gets exactly
		// what that sequence would have done.
		var err error
		if done, err = c.disable(line); err != nil {
			return false, done
		}
	}
	// Events the backend saw before this moment belong to an earlier
	// enable (or none) and are dropped; an edge after it counts even if it
	// comes before the level is read below.
	since := time.Now()
	if err := c.b.SetIRQType(line, t); err != nil {
		return false, done
	}
	v, err := c.b.Get(line)
	if err != nil || v > 1 {
		_ = c.b.SetIRQType(line, IRQTypeNone)
		return false, done
	}
	l.irqType, l.level, l.latched, l.since = t, v, false, since
	if l.held && l.levelActive() {
		// A buffer queued before the enable is the unmask.
		c.stats.LevelsFired++
		done = append(done, Completion[T]{Token: l.token, Status: EventValid})
		l.held, l.token = false, *new(T)
	}
	return true, done
}

// disable disables the interrupt of line with c.mu held: "the device MUST
// return the buffers, if they were received earlier, after setting the
// status field to VIRTIO_GPIO_IRQ_STATUS_INVALID" and "MUST discard any
// latched interrupt". The device state is disabled even if the backend
// fails; its error is returned.
func (c *Controller[T]) disable(line int) ([]Completion[T], error) {
	l := &c.lines[line]
	var done []Completion[T]
	if l.held {
		done = []Completion[T]{{Token: l.token, Status: EventInvalid}}
		l.held, l.token = false, *new(T)
	}
	if l.latched {
		c.stats.LatchesDiscarded++
		l.latched = false
	}
	if l.irqType == IRQTypeNone {
		return done, nil
	}
	l.irqType = IRQTypeNone
	return done, c.b.SetIRQType(line, IRQTypeNone)
}

// QueueEvent takes an eventq buffer: req is its driver-readable part
// (struct virtio_gpio_irq_request), respCap the size of its writable part
// and token the glue's handle for it. Queuing the buffer unmasks the line's
// interrupt. QueueEvent returns the buffer at once, as a Completion, when:
//
//   - it cannot be used: VIRTIO_GPIO_F_IRQ is not negotiated, req is not 2
//     bytes, respCap is 0, gpio >= ngpio, or a buffer for the line is
//     already held (the driver "MUST NOT add multiple pairs of buffers for
//     the same GPIO line"; the new one is returned): status INVALID;
//   - an edge was latched while the line was masked, or the line has a
//     level interrupt whose level is active: status VALID, which masks the
//     line again.
//
// Otherwise the buffer is held until an interrupt fires (returned VALID
// through the complete callback from Run) or the interrupt is disabled
// (INVALID, through the callback from HandleRequest). That includes a
// buffer for a line whose interrupt is disabled: the driver "MUST enable
// the interrupt before unmasking it", but gpio-virtio.c requeues every
// INVALID buffer of a line it believes enabled (ignore_irq), so returning
// such a buffer at once would bounce it between driver and device forever,
// an interrupt each way, whenever the two disagree (a SET_IRQ_TYPE the
// backend refused, SET_DIRECTION(NONE) on a line with an interrupt). Held,
// it waits for the enable, and the next disable returns it.
// The glue writes Completion.Bytes, truncated to respCap, and pushes the
// chain.
func (c *Controller[T]) QueueEvent(req []byte, respCap int, token T) []Completion[T] {
	gpio, ok := parseIRQRequest(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	done := c.queueEvent(gpio, ok && respCap >= IRQResponseSize, token)
	c.countCompletions(done)
	return done
}

// queueEvent is QueueEvent with c.mu held; usable says whether the buffer
// is well formed.
func (c *Controller[T]) queueEvent(gpio uint16, usable bool, token T) []Completion[T] {
	invalid := []Completion[T]{{Token: token, Status: EventInvalid}}
	if !usable || !c.irq || int(gpio) >= len(c.lines) {
		return invalid
	}
	l := &c.lines[gpio]
	if l.held {
		return invalid
	}
	switch {
	case l.latched:
		c.stats.LatchesDelivered++
	case l.levelActive():
		c.stats.LevelsFired++
	default:
		l.held, l.token = true, token
		return nil
	}
	l.latched = false
	return []Completion[T]{{Token: token, Status: EventValid}}
}

// levelActive reports whether l has a level interrupt whose level is active.
func (l *lineState[T]) levelActive() bool {
	switch l.irqType {
	case IRQTypeLevelHigh:
		return l.level == 1
	case IRQTypeLevelLow:
		return l.level == 0
	}
	return false
}

// edgeMatches reports whether an edge to level v triggers trigger type t.
func edgeMatches(t IRQType, v uint8) bool {
	switch t {
	case IRQTypeEdgeRising:
		return v == 1
	case IRQTypeEdgeFalling:
		return v == 0
	case IRQTypeEdgeBoth:
		return true
	}
	return false
}

// HandleEvent applies one backend event and returns the eventq buffer it
// completes, if any. Run calls it; a glue that reads Backend.Events itself
// may call it instead of Run and must then push what it returns.
//
// An event is an edge: rising if its value is 1, falling if 0. Events for
// lines whose interrupt is disabled, or out of range, and events the
// backend saw before the interrupt was enabled (Event.Time before the
// SET_IRQ_TYPE that enabled it: left over from an earlier enable) are
// ignored. For an edge trigger type, a matching edge completes the held
// buffer VALID, or is latched if no buffer is held ("The device MUST latch
// an edge interrupt if the interrupt is enabled but still masked"); a latch
// holds one edge, further edges before the next buffer collapse into it.
// For a level type, the event sets the level, and the level becoming
// active completes the held buffer VALID; nothing is latched ("MUST NOT
// latch an level interrupt").
func (c *Controller[T]) HandleEvent(ev Event) []Completion[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Line < 0 || ev.Line >= len(c.lines) {
		return nil
	}
	l := &c.lines[ev.Line]
	if l.irqType == IRQTypeNone {
		return nil
	}
	if !ev.Time.IsZero() && ev.Time.Before(l.since) {
		c.stats.StaleEvents++
		return nil
	}
	v := min(ev.Value, 1)
	l.level = v
	switch {
	case l.irqType.Edge():
		switch {
		case !edgeMatches(l.irqType, v):
			return nil
		case l.held:
			c.stats.EdgesFired++
		case l.latched:
			c.stats.EdgesCollapsed++
			return nil
		default:
			c.stats.EdgesLatched++
			l.latched = true
			return nil
		}
	case l.irqType.Level():
		if !l.held || !l.levelActive() {
			return nil
		}
		c.stats.LevelsFired++
	}
	done := []Completion[T]{{Token: l.token, Status: EventValid}}
	l.held, l.token = false, *new(T)
	c.countCompletions(done)
	return done
}

// Run feeds the backend's events to HandleEvent and passes the buffers
// they complete to the complete callback, on the calling goroutine. It
// returns when ctx is done or the Events channel is closed, or at once if
// the backend has no events.
func (c *Controller[T]) Run(ctx context.Context) {
	events := c.b.Events()
	if events == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if done := c.HandleEvent(ev); len(done) > 0 {
				c.complete(done)
			}
		}
	}
}
