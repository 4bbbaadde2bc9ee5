package gpio

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors returned by Sim.
var (
	ErrLine        = errors.New("gpio: line out of range")
	ErrValue       = errors.New("gpio: value is not 0 or 1")
	ErrDirection   = errors.New("gpio: invalid direction")
	ErrIRQType     = errors.New("gpio: invalid irq type")
	ErrNotOutput   = errors.New("gpio: line is not an output")
	ErrIRQOnOutput = errors.New("gpio: interrupts and output on one line")
)

// Sim is a simulated bank of GPIO lines, a Backend for tests and for
// running a guest without host GPIO hardware.
//
// Each line has three pieces of state: the direction the guest set, the
// output level the guest drives, and the input level the host drives with
// SetInput. The line's level, what Get returns and what interrupts see, is
// the output level while the line is an output and the input level
// otherwise. A push-pull output overrides whatever the host drives: SetInput
// on an output line is remembered (and reported to watchers) but changes
// nothing the guest can see until the line stops being an output, at which
// point the remembered input becomes the line's level.
//
// Sim reports an Event whenever the level of a line with an enabled
// interrupt (SetIRQType other than None) changes, whatever the trigger type.
// Watch reports every change of any line to host-side observers.
//
// A Sim is safe for concurrent use. Neither Events nor watchers ever block
// it, and neither holds more than a bounded number of changes: Events
// goes through an EdgeQueue, each watcher through a queue of at most
// WatchLimit changes.
type Sim struct {
	names []string
	now   func() time.Time

	mu       sync.Mutex
	lines    []simLine
	events   *EdgeQueue
	watchers map[*bounded[Change]]struct{}
	closed   bool
}

type simLine struct {
	dir Direction
	out uint8 // driven by the guest while dir == DirectionOut
	in  uint8 // driven by the host
	irq IRQType
}

func (l *simLine) level() uint8 {
	if l.dir == DirectionOut {
		return l.out
	}
	return l.in
}

// NewSim returns a bank of n lines, all released (DirectionNone) and low.
// names, if given, name lines 0, 1, ... in order; there may be fewer names
// than lines, and "" leaves a line unnamed.
func NewSim(n int, names ...string) (*Sim, error) {
	if n < 1 || n > 0xffff {
		return nil, fmt.Errorf("gpio: %d lines, want 1 to 65535", n)
	}
	if len(names) > n {
		return nil, fmt.Errorf("gpio: %d names for %d lines", len(names), n)
	}
	s := &Sim{
		names:    make([]string, n),
		now:      time.Now,
		lines:    make([]simLine, n),
		events:   NewEdgeQueue(),
		watchers: map[*bounded[Change]]struct{}{},
	}
	copy(s.names, names)
	if err := checkNames(s.names); err != nil {
		s.events.Close()
		return nil, err
	}
	return s, nil
}

// Close stops event delivery and closes the Events channel and all watch
// channels. The Sim keeps answering calls afterwards.
func (s *Sim) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.events.Close()
	for w := range s.watchers {
		w.stop()
	}
	clear(s.watchers)
}

// Lines implements Backend.
func (s *Sim) Lines() int { return len(s.lines) }

// Name implements Backend.
func (s *Sim) Name(line int) string {
	if line < 0 || line >= len(s.names) {
		return ""
	}
	return s.names[line]
}

// EventsFolded is the number of events folded because the reader of
// Events fell behind (see EdgeQueue).
func (s *Sim) EventsFolded() uint64 { return s.events.Dropped() }

// Events implements Backend.
func (s *Sim) Events() <-chan Event { return s.events.Events() }

func (s *Sim) line(line int) (*simLine, error) {
	if line < 0 || line >= len(s.lines) {
		return nil, fmt.Errorf("%w: %d", ErrLine, line)
	}
	return &s.lines[line], nil
}

func checkValue(v uint8) error {
	if v > 1 {
		return fmt.Errorf("%w: %d", ErrValue, v)
	}
	return nil
}

// Direction implements Backend.
func (s *Sim) Direction(line int) (Direction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.line(line)
	if err != nil {
		return 0, err
	}
	return l.dir, nil
}

// SetDirection implements Backend. DirectionNone also disables the line's
// interrupt and forgets its output level. Making a line with an enabled
// interrupt an output fails with ErrIRQOnOutput.
func (s *Sim) SetDirection(line int, d Direction, value uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.line(line)
	if err != nil {
		return err
	}
	if !d.Valid() {
		return fmt.Errorf("%w: %d", ErrDirection, d)
	}
	if err := checkValue(value); err != nil {
		return err
	}
	if d == DirectionOut && l.irq != IRQTypeNone {
		return ErrIRQOnOutput
	}
	old := *l
	switch d {
	case DirectionNone:
		*l = simLine{in: l.in}
	case DirectionIn:
		l.dir = DirectionIn
	case DirectionOut:
		l.dir, l.out = DirectionOut, value
	}
	s.changed(line, old)
	return nil
}

// Get implements Backend.
func (s *Sim) Get(line int) (uint8, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.line(line)
	if err != nil {
		return 0, err
	}
	return l.level(), nil
}

// Set implements Backend. It fails with ErrNotOutput unless the line is an
// output.
func (s *Sim) Set(line int, value uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.line(line)
	if err != nil {
		return err
	}
	if err := checkValue(value); err != nil {
		return err
	}
	if l.dir != DirectionOut {
		return ErrNotOutput
	}
	old := *l
	l.out = value
	s.changed(line, old)
	return nil
}

// SetIRQType implements Backend. Enabling the interrupt of an output fails
// with ErrIRQOnOutput.
func (s *Sim) SetIRQType(line int, t IRQType) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.line(line)
	if err != nil {
		return err
	}
	if !t.Valid() {
		return fmt.Errorf("%w: %d", ErrIRQType, t)
	}
	if t != IRQTypeNone && l.dir == DirectionOut {
		return ErrIRQOnOutput
	}
	old := *l
	l.irq = t
	s.changed(line, old)
	return nil
}

// SetInput drives the host side of line to value (0 or 1). If the line's
// level changes (the line is not an output) and its interrupt is enabled,
// an Event is reported.
func (s *Sim) SetInput(line int, value uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.line(line)
	if err != nil {
		return err
	}
	if err := checkValue(value); err != nil {
		return err
	}
	old := *l
	l.in = value
	s.changed(line, old)
	return nil
}

// Output returns the level the guest drives on line and the line's
// direction. The level is meaningful only while the direction is
// DirectionOut; it is 0 for a released line.
func (s *Sim) Output(line int) (uint8, Direction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.line(line)
	if err != nil {
		return 0, 0, err
	}
	return l.out, l.dir, nil
}

// LineState is a snapshot of one simulated line.
type LineState struct {
	Line      int
	Name      string
	Direction Direction // as the guest set it
	Output    uint8     // level the guest drives (meaningful if Direction is out)
	Input     uint8     // level the host drives
	Level     uint8     // the line's level: Output for an output, else Input
	IRQType   IRQType   // interrupt trigger type the guest enabled
}

// Line returns a snapshot of one line.
func (s *Sim) Line(line int) (LineState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.line(line)
	if err != nil {
		return LineState{}, err
	}
	return s.state(line, l), nil
}

// Snapshot returns the state of every line, taken at one instant.
func (s *Sim) Snapshot() []LineState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := make([]LineState, len(s.lines))
	for i := range s.lines {
		st[i] = s.state(i, &s.lines[i])
	}
	return st
}

func (s *Sim) state(i int, l *simLine) LineState {
	return LineState{
		Line: i, Name: s.names[i], Direction: l.dir,
		Output: l.out, Input: l.in, Level: l.level(), IRQType: l.irq,
	}
}
