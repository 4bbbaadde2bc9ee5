package gpio

import (
	"errors"
	"fmt"
	"strings"
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
// Each line is modelled as a wire with drivers on both sides and a pull
// resistor:
//
//   - The guest drives it while the line is an output (push-pull, at the
//     level it set) and leaves it alone while it is an input or released.
//     A guest that asks for open drain needs nothing of the device:
//     gpiolib emulates it on a chip without .set_config, as this driver
//     is, by making the line an input for 1 and an output at 0 for 0
//     (gpiolib.c, gpio_set_open_drain_value_commit), so an open-drain
//     line only ever drives low.
//   - On the host's side, the host itself (SetInput, SetDrive: a test,
//     the control socket) and each Model attached to the line (Attach)
//     drive it high, drive it low, or release it (DriveReleased).
//   - Its Pull (SetPull) decides the level when nobody drives it: up
//     gives 1, down and none give 0 (a floating line reads 0).
//
// The line's level, what Get returns and what interrupts see, resolves
// them in this order:
//
//  1. an output reads what the guest drives;
//  2. otherwise, any host-side driver at 0 makes it 0, else any at 1
//     makes it 1: wired-AND, so open-drain drivers with a pull-up work
//     as on a board;
//  3. otherwise the pull decides.
//
// Drivers at both levels at once (the guest driving 1 while a model
// drives 0, say, or two host-side drivers disagreeing) are a conflict.
// It is resolved as above, not hidden: LineState.Conflict says the line is
// in conflict now, LineState.Conflicts and Conflicts count the times a
// line went into conflict, and watchers get a ChangeConflict.
//
// Sim reports an Event whenever the level of a line with an enabled
// interrupt (SetIRQType other than None) changes, whatever the trigger type.
// Watch reports every change of any line to host-side observers, and
// each Model hears of every level change of its lines, synchronously:
// before the guest's request that caused it is answered.
//
// A Sim is safe for concurrent use. Neither Events nor watchers ever block
// it, and neither holds more than a bounded number of changes: Events
// goes through an EdgeQueue, each watcher through a queue of at most
// WatchLimit changes.
type Sim struct {
	names []string
	now   func() time.Time

	mu        sync.Mutex
	lines     []simLine
	events    *EdgeQueue
	watchers  map[*bounded[Change]]struct{}
	closed    bool
	conflicts uint64
	// taps are the model pins attached to each line that has any.
	taps map[int][]tap
	// pending are the level changes models have yet to hear of (see
	// unlock).
	pending []notice
	cutOff  uint64
}

type simLine struct {
	dir       Direction
	out       uint8 // driven by the guest while dir == DirectionOut
	irq       IRQType
	pull      Pull
	host      Drive // the host's own driver
	level     uint8 // resolved from the above and the models' drives
	conflict  bool
	conflicts uint64
}

// Pull is a simulated line's pull resistor: what the line reads when
// nothing drives it.
type Pull uint8

// Pulls.
const (
	PullNone Pull = iota // floating: reads 0
	PullUp               // reads 1 when nothing drives it
	PullDown             // reads 0 when nothing drives it
)

// String returns "none", "up" or "down".
func (p Pull) String() string {
	switch p {
	case PullNone:
		return "none"
	case PullUp:
		return "up"
	case PullDown:
		return "down"
	}
	return fmt.Sprintf("Pull(%d)", uint8(p))
}

// Drive is what one driver on the host's side of a line does.
type Drive uint8

// Drives. DriveLow and DriveHigh equal the levels they drive.
const (
	DriveLow      Drive = 0
	DriveHigh     Drive = 1
	DriveReleased Drive = 2 // not driving: the line is left to others and its pull
)

// String returns "0", "1" or "released".
func (d Drive) String() string {
	switch d {
	case DriveLow:
		return "0"
	case DriveHigh:
		return "1"
	case DriveReleased:
		return "released"
	}
	return fmt.Sprintf("Drive(%d)", uint8(d))
}

// Valid reports whether d is one of the three drives.
func (d Drive) Valid() bool { return d <= DriveReleased }

// NewSim returns a bank of n lines, all released (DirectionNone), without
// pulls, driven by nobody, so low. names, if given, name lines 0, 1, ...
// in order; there may be fewer names than lines, and "" leaves a line
// unnamed.
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
		taps:     map[int][]tap{},
	}
	for i := range s.lines {
		s.lines[i].host = DriveReleased
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
	defer s.unlock()
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
		l.dir, l.out, l.irq = DirectionNone, 0, IRQTypeNone
	case DirectionIn:
		l.dir = DirectionIn
	case DirectionOut:
		l.dir, l.out = DirectionOut, value
	}
	s.changed(line, old, "")
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
	return l.level, nil
}

// Set implements Backend. It fails with ErrNotOutput unless the line is an
// output.
func (s *Sim) Set(line int, value uint8) error {
	s.mu.Lock()
	defer s.unlock()
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
	s.changed(line, old, "")
	return nil
}

// SetIRQType implements Backend. Enabling the interrupt of an output fails
// with ErrIRQOnOutput.
func (s *Sim) SetIRQType(line int, t IRQType) error {
	s.mu.Lock()
	defer s.unlock()
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
	s.changed(line, old, "")
	return nil
}

// SetInput makes the host drive line at value (0 or 1): SetDrive with
// DriveLow or DriveHigh.
func (s *Sim) SetInput(line int, value uint8) error {
	if err := checkValue(value); err != nil {
		return err
	}
	return s.SetDrive(line, Drive(value))
}

// SetDrive sets what the host drives on line: 0, 1, or nothing
// (DriveReleased). If the line's level changes and its interrupt is
// enabled, an Event is reported.
func (s *Sim) SetDrive(line int, d Drive) error {
	s.mu.Lock()
	defer s.unlock()
	l, err := s.line(line)
	if err != nil {
		return err
	}
	if !d.Valid() {
		return fmt.Errorf("gpio: drive %d: want 0, 1 or released", d)
	}
	old := *l
	l.host = d
	s.changed(line, old, HostDriver)
	return nil
}

// SetPull sets line's pull resistor.
func (s *Sim) SetPull(line int, p Pull) error {
	s.mu.Lock()
	defer s.unlock()
	l, err := s.line(line)
	if err != nil {
		return err
	}
	if p > PullDown {
		return fmt.Errorf("gpio: pull %d: want none, up or down", p)
	}
	old := *l
	l.pull = p
	s.changed(line, old, "")
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

// Conflicts is how many times a line of the bank went into conflict (see
// Sim): the sum of the lines' LineState.Conflicts.
func (s *Sim) Conflicts() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conflicts
}

// LineState is a snapshot of one simulated line.
type LineState struct {
	Line      int
	Name      string
	Direction Direction // as the guest set it
	Output    uint8     // level the guest drives (meaningful if Direction is out)
	// Input is the level the host's side gives the line, its drivers or
	// else its pull: what the guest reads while the line is not an
	// output.
	Input   uint8
	Level   uint8   // the line's level: Output for an output, else Input
	IRQType IRQType // interrupt trigger type the guest enabled
	Pull    Pull
	Host    Drive // what the host itself drives (SetInput, SetDrive)
	// Models are the model pins attached to the line and what they
	// drive, in the order they were attached.
	Models []ModelDrive
	// Conflict says drivers disagree on the line now; Conflicts counts
	// the times it went into conflict.
	Conflict  bool
	Conflicts uint64
}

// ModelDrive is what one model pin drives on a line.
type ModelDrive struct {
	Model string // the name it was attached with
	Pin   int    // its pin number, in Attach order
	Drive Drive
}

// Drivers describes who drives the line other than the guest, as
// "host=1 eeprom.sda=released": the host's drive and each model pin's,
// in LineState.Models order.
func (st LineState) Drivers() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%s", HostDriver, st.Host)
	for _, m := range st.Models {
		fmt.Fprintf(&b, " %s.%d=%s", m.Model, m.Pin, m.Drive)
	}
	return b.String()
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
	st := LineState{
		Line: i, Name: s.names[i], Direction: l.dir,
		Output: l.out, Input: s.farSide(i, l), Level: l.level, IRQType: l.irq,
		Pull: l.pull, Host: l.host, Conflict: l.conflict, Conflicts: l.conflicts,
	}
	for _, t := range s.taps[i] {
		st.Models = append(st.Models, ModelDrive{Model: t.a.name, Pin: t.pin, Drive: t.a.drives[t.pin]})
	}
	return st
}

// farSideConflict resolves what the host's side gives line i: any driver
// at 0 wins, then any at 1, then the pull. low and high say whether any
// driver drives 0, and 1.
func (s *Sim) farSideConflict(i int, l *simLine) (level uint8, low, high bool) {
	add := func(d Drive) {
		switch d {
		case DriveLow:
			low = true
		case DriveHigh:
			high = true
		}
	}
	add(l.host)
	for _, t := range s.taps[i] {
		add(t.a.drives[t.pin])
	}
	switch {
	case low:
		return 0, low, high
	case high:
		return 1, low, high
	case l.pull == PullUp:
		return 1, low, high
	}
	return 0, low, high
}

// farSide is the level the host's side gives line i.
func (s *Sim) farSide(i int, l *simLine) uint8 {
	v, _, _ := s.farSideConflict(i, l)
	return v
}

// resolve computes line i's level, what the host's side gives it
// (input), and whether it is in conflict.
func (s *Sim) resolve(i int, l *simLine) (level, input uint8, conflict bool) {
	v, low, high := s.farSideConflict(i, l)
	if l.dir == DirectionOut {
		return l.out, v, (l.out == 1 && low) || (l.out == 0 && high)
	}
	return v, v, low && high
}
