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
	// ChangeInput: a driver on the host's side (Change.Driver: the host
	// itself, or a model's pin) drove or released the line; From and To
	// are Drives.
	ChangeInput
	ChangeIRQType // the guest set a new trigger type
	// ChangePull: the line's pull changed; From and To are Pulls.
	ChangePull
	// ChangeConflict: the line went into conflict (From 0, To 1) or out
	// of it (From 1, To 0); see Sim.
	ChangeConflict
	// ChangeLost stands for changes a watcher did not get: it fell
	// WatchLimit changes behind. Change.Lost says how many.
	ChangeLost
)

// String returns "direction", "output", "input", "irq", "pull", "conflict"
// or "lost".
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
	case ChangePull:
		return "pull"
	case ChangeConflict:
		return "conflict"
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
	// ChangeDirection, an IRQType for ChangeIRQType, a Drive for
	// ChangeInput, a Pull for ChangePull, a level otherwise.
	From, To uint8
	// Driver names, for ChangeInput, who drove: HostDriver, or a model
	// pin as "NAME.PIN" (the model's name given to Attach, the pin's
	// number).
	Driver string
	// Level is the line's level after the change, and Input what the
	// host's side gives it then (LineState.Input).
	Level, Input uint8
	// Lost is, for ChangeLost, how many changes were not delivered.
	Lost uint64
}

// Values returns From and To as text: direction, irq type, drive and
// pull names, or levels as digits.
func (c Change) Values() (from, to string) {
	switch c.Kind {
	case ChangeDirection:
		return Direction(c.From).String(), Direction(c.To).String()
	case ChangeIRQType:
		return IRQType(c.From).String(), IRQType(c.To).String()
	case ChangeInput:
		return Drive(c.From).String(), Drive(c.To).String()
	case ChangePull:
		return Pull(c.From).String(), Pull(c.To).String()
	}
	return fmt.Sprint(c.From), fmt.Sprint(c.To)
}

// String formats c as, for example, "line 3 output 0→1 level 1 at
// 15:04:05.000000", or "line 2 input (eeprom.1) released→0 level 0 at
// ..." for a model's drive.
func (c Change) String() string {
	if c.Kind == ChangeLost {
		return fmt.Sprintf("%d changes lost at %s", c.Lost, c.Time.Format("15:04:05.000000"))
	}
	from, to := c.Values()
	by := ""
	if c.Kind == ChangeInput && c.Driver != HostDriver {
		by = " (" + c.Driver + ")"
	}
	return fmt.Sprintf("line %d %s%s %s→%s level %d at %s",
		c.Line, c.Kind, by, from, to, c.Level, c.Time.Format("15:04:05.000000"))
}

// WatchLimit is how many changes a watcher may fall behind before the
// next ones are counted instead of queued.
const WatchLimit = 1 << 14

// Watch subscribes to every change of every line: directions, output
// levels and trigger types the guest sets, what the host and each model
// pin drive, pulls, and conflicts starting and ending.
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

// changed brings line's level up to date after a change from old, and
// reports the differences to watchers (driver names a host-side driver
// that changed, for ChangeInput), the level change as an Event if the
// interrupt is enabled, and to the models on the line. s.mu is held.
func (s *Sim) changed(line int, old simLine, driver string) {
	s.changedBy(line, old, driver, 0, 0)
}

// changedBy is changed, with a model pin's drive from → to (when driver
// names a model pin) reported first.
func (s *Sim) changedBy(line int, old simLine, driver string, from, to Drive) {
	l := &s.lines[line]
	now := s.now()
	level, input, conflict := s.resolve(line, l)
	l.level = level
	if conflict && !l.conflict {
		l.conflicts++
		s.conflicts++
	}
	l.conflict = conflict
	emit := func(k ChangeKind, from, to uint8, driver string) {
		if from == to {
			return
		}
		c := Change{Time: now, Line: line, Kind: k, From: from, To: to, Level: level, Input: input, Driver: driver}
		for w := range s.watchers {
			w.push(c)
		}
	}
	if driver != "" && driver != HostDriver {
		emit(ChangeInput, uint8(from), uint8(to), driver)
	}
	emit(ChangeDirection, uint8(old.dir), uint8(l.dir), "")
	emit(ChangeIRQType, uint8(old.irq), uint8(l.irq), "")
	emit(ChangePull, uint8(old.pull), uint8(l.pull), "")
	emit(ChangeOutput, old.out, l.out, "")
	emit(ChangeInput, uint8(old.host), uint8(l.host), HostDriver)
	emit(ChangeConflict, b2u(old.conflict), b2u(conflict), "")
	if level == old.level {
		return
	}
	if l.irq != IRQTypeNone {
		s.events.Push(Event{Line: line, Value: level, Time: now})
	}
	for _, t := range s.taps[line] {
		s.pending = append(s.pending, notice{tap: t, level: level, time: now})
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
