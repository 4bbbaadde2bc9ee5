package gpio

import (
	"fmt"
	"time"
)

// ChangeKind says which part of a simulated line changed.
type ChangeKind uint8

// Kinds of Change.
const (
	ChangeDirection ChangeKind = iota + 1 // the guest set a new direction
	ChangeOutput                          // the guest drove a new output level
	ChangeInput                           // the host drove a new input level
	ChangeIRQType                         // the guest set a new trigger type
	// ChangeLost stands for changes a watcher did not get: it fell
	// WatchLimit changes behind. Change.Lost says how many.
	ChangeLost
)

// String returns "direction", "output", "input", "irq" or "lost".
func (k ChangeKind) String() string {
	switch k {
	case ChangeDirection:
		return "direction"
	case ChangeOutput:
		return "output"
	case ChangeInput:
		return "input"
	case ChangeIRQType:
		return "irq"
	case ChangeLost:
		return "lost"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is one change of a simulated line, as Watch reports it.
type Change struct {
	Time time.Time
	Line int
	Kind ChangeKind
	// From and To are the old and new values: a Direction for
	// ChangeDirection, an IRQType for ChangeIRQType, a level otherwise.
	From, To uint8
	// Level is the line's level after the change.
	Level uint8
	// Lost is, for ChangeLost, how many changes were not delivered.
	Lost uint64
}

// Values returns From and To as text: direction and irq type names, or
// levels as digits.
func (c Change) Values() (from, to string) {
	switch c.Kind {
	case ChangeDirection:
		return Direction(c.From).String(), Direction(c.To).String()
	case ChangeIRQType:
		return IRQType(c.From).String(), IRQType(c.To).String()
	}
	return fmt.Sprint(c.From), fmt.Sprint(c.To)
}

// String formats c as, for example, "line 3 output 0→1 level 1 at 15:04:05.000000".
func (c Change) String() string {
	if c.Kind == ChangeLost {
		return fmt.Sprintf("%d changes lost at %s", c.Lost, c.Time.Format("15:04:05.000000"))
	}
	from, to := c.Values()
	return fmt.Sprintf("line %d %s %s→%s level %d at %s",
		c.Line, c.Kind, from, to, c.Level, c.Time.Format("15:04:05.000000"))
}

// WatchLimit is how many changes a watcher may fall behind before the
// next ones are counted instead of queued.
const WatchLimit = 1 << 14

// Watch subscribes to every change of every line: directions and output
// levels the guest sets, input levels the host sets, trigger types.
// Changes arrive in the order they happened. A slow reader never slows the
// Sim: once it is WatchLimit changes behind, further changes are counted,
// not queued, until it has read the backlog; it then gets one ChangeLost
// whose Lost says how many it missed, and the stream goes on. cancel ends
// the subscription and closes the channel; call it when done. On a closed
// Sim the channel is closed at once.
func (s *Sim) Watch() (changes <-chan Change, cancel func()) {
	var lost uint64
	p := newBounded(WatchLimit, func(Change) { lost++ }, func() []Change {
		c := Change{Time: s.now(), Kind: ChangeLost, Lost: lost}
		lost = 0
		return []Change{c}
	})
	s.mu.Lock()
	if s.closed {
		p.stop()
	} else {
		s.watchers[p] = struct{}{}
	}
	s.mu.Unlock()
	return p.out, func() {
		s.mu.Lock()
		delete(s.watchers, p)
		s.mu.Unlock()
		p.stop()
	}
}

// changed reports the differences between old and the current state of
// line to watchers, and the level change as an Event if the interrupt is
// enabled. s.mu is held.
func (s *Sim) changed(line int, old simLine) {
	l := &s.lines[line]
	now := s.now()
	level := l.level()
	emit := func(k ChangeKind, from, to uint8) {
		if from == to {
			return
		}
		c := Change{Time: now, Line: line, Kind: k, From: from, To: to, Level: level}
		for w := range s.watchers {
			w.push(c)
		}
	}
	emit(ChangeDirection, uint8(old.dir), uint8(l.dir))
	emit(ChangeIRQType, uint8(old.irq), uint8(l.irq))
	emit(ChangeOutput, old.out, l.out)
	emit(ChangeInput, old.in, l.in)
	if l.irq != IRQTypeNone && level != old.level() {
		s.events.Push(Event{Line: line, Value: level, Time: now})
	}
}
