package gpio

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// HostDriver is the name of the host's own driver of a simulated line
// (Sim.SetInput, Sim.SetDrive, the control socket's set and release) in
// Change.Driver and LineState.Drivers.
const HostDriver = "host"

// MaxCascade bounds how many level changes models hear of in answer to
// one call: models that keep answering each other's changes (or their
// own) are cut off after that many, and the rest are counted in
// Sim.CutOff instead of delivered.
const MaxCascade = 4096

// Model is a device on the host's side of simulated lines: an EEPROM on a
// bit-banged bus, a button, a sensor that answers a pulse. It is attached
// to lines of a Sim (Sim.Attach), which become its pins 0, 1, ... in the
// order given, and it drives them like any host-side driver: high, low, or
// released (see Sim for how drivers resolve).
type Model interface {
	// Changed tells the model that the level of its pin changed to level
	// at time at, whoever changed it (the guest, the host, another model
	// or the model itself). Models hear of every level change of their
	// pins, in the order they happened, and before the guest's request
	// that caused the change is answered: a model that drives its lines
	// from Changed answers within the same request, as hardware would
	// between two of the guest's accesses.
	//
	// Changed runs with the bank locked. It must not block, and it drives
	// and reads its pins through w only: calling the bank or the
	// Attachment from Changed deadlocks.
	Changed(w *Wires, pin int, level uint8, at time.Time)
}

// Attacher is a Model that sets up its pins as it is attached: Attach
// calls Attached once, with the bank locked, before it returns and before
// any Changed, so that the model can read its lines' levels and drive its
// pins to match (an inverter driving its output from its input, say).
type Attacher interface {
	Model
	Attached(w *Wires)
}

// Wires is a model's hold on its pins while Changed or Attached runs.
type Wires struct {
	s *Sim
	a *Attachment
}

// Level returns the level of the model's pin (0 if there is no such
// pin).
func (w *Wires) Level(pin int) uint8 {
	if pin < 0 || pin >= len(w.a.lines) {
		return 0
	}
	return w.s.lines[w.a.lines[pin]].level
}

// Drive makes the model drive pin at d (ignored for a pin it does not
// have, or a d that is not a Drive). Models on the pin's line hear of the
// level change, if any, once the current Changed returns.
func (w *Wires) Drive(pin int, d Drive) {
	if pin < 0 || pin >= len(w.a.lines) || !d.Valid() {
		return
	}
	w.s.drive(w.a, pin, d)
}

// Attachment is a Model attached to lines of a Sim. Its methods drive and
// read the model's pins from outside Changed: from a timer, a test, the
// model's own goroutine.
type Attachment struct {
	s      *Sim
	name   string
	m      Model
	lines  []int
	drives []Drive
	gone   bool
}

type tap struct {
	a   *Attachment
	pin int
}

type notice struct {
	tap   tap
	level uint8
	time  time.Time
}

// ErrDetached is returned by an Attachment's methods after Detach.
var ErrDetached = errors.New("gpio: model detached")

// Attach attaches m to lines (pins 0, 1, ... in that order) under name,
// which names its pins in Change.Driver and LineState.Models ("NAME.PIN").
// Its pins start released; m hears of level changes from now on. An
// Attacher's Attached runs before Attach returns.
func (s *Sim) Attach(name string, m Model, lines ...int) (*Attachment, error) {
	if name == "" || name == HostDriver || strings.ContainsAny(name, " .=\t\n") {
		return nil, fmt.Errorf("gpio: model name %q: want a word other than %q, without spaces, dots or '='", name, HostDriver)
	}
	if m == nil || len(lines) == 0 {
		return nil, errors.New("gpio: a model needs a Model and at least one line")
	}
	seen := map[int]bool{}
	for _, l := range lines {
		if l < 0 || l >= len(s.lines) {
			return nil, fmt.Errorf("%w: %d (the bank has %d lines)", ErrLine, l, len(s.lines))
		}
		if seen[l] {
			return nil, fmt.Errorf("gpio: model %s: line %d given twice", name, l)
		}
		seen[l] = true
	}
	a := &Attachment{s: s, name: name, m: m, lines: append([]int(nil), lines...), drives: make([]Drive, len(lines))}
	for i := range a.drives {
		a.drives[i] = DriveReleased
	}
	s.mu.Lock()
	defer s.unlock()
	for pin, l := range a.lines {
		s.taps[l] = append(s.taps[l], tap{a: a, pin: pin})
	}
	if at, ok := m.(Attacher); ok {
		at.Attached(&Wires{s: s, a: a})
	}
	return a, nil
}

// Name returns the name m was attached with.
func (a *Attachment) Name() string { return a.name }

// Lines returns the bank's lines the pins are on, pin 0 first.
func (a *Attachment) Lines() []int { return append([]int(nil), a.lines...) }

// Drive makes the model drive pin at d. Models hear of the level change,
// if any, before Drive returns.
func (a *Attachment) Drive(pin int, d Drive) error {
	if pin < 0 || pin >= len(a.lines) {
		return fmt.Errorf("gpio: model %s has no pin %d (it has %d)", a.name, pin, len(a.lines))
	}
	if !d.Valid() {
		return fmt.Errorf("gpio: drive %d: want 0, 1 or released", d)
	}
	a.s.mu.Lock()
	defer a.s.unlock()
	if a.gone {
		return ErrDetached
	}
	a.s.drive(a, pin, d)
	return nil
}

// Level returns the level of the model's pin.
func (a *Attachment) Level(pin int) (uint8, error) {
	if pin < 0 || pin >= len(a.lines) {
		return 0, fmt.Errorf("gpio: model %s has no pin %d (it has %d)", a.name, pin, len(a.lines))
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	return a.s.lines[a.lines[pin]].level, nil
}

// Detach releases the model's pins and stops telling it of changes. Later
// calls of Drive return ErrDetached.
func (a *Attachment) Detach() {
	s := a.s
	s.mu.Lock()
	defer s.unlock()
	if a.gone {
		return
	}
	for pin := range a.lines {
		s.drive(a, pin, DriveReleased)
	}
	a.gone = true
	for _, l := range a.lines {
		ts := s.taps[l][:0]
		for _, t := range s.taps[l] {
			if t.a != a {
				ts = append(ts, t)
			}
		}
		if len(ts) == 0 {
			delete(s.taps, l)
		} else {
			s.taps[l] = ts
		}
	}
}

// CutOff is how many level changes models did not hear of because one
// call's cascade of answers went past MaxCascade.
func (s *Sim) CutOff() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cutOff
}

// drive sets a's pin to d and brings its line up to date. s.mu is held.
func (s *Sim) drive(a *Attachment, pin int, d Drive) {
	if a.gone || a.drives[pin] == d {
		return
	}
	line := a.lines[pin]
	old := s.lines[line]
	from := a.drives[pin]
	a.drives[pin] = d
	s.changedBy(line, old, fmt.Sprintf("%s.%d", a.name, pin), from, d)
}

// unlock tells models of the level changes pending and unlocks s.mu.
// Every method that can change a level unlocks through it, so a model
// hears of a change before the call that made it returns. Models run
// with s.mu held, so whatever they drive is appended to pending and
// delivered by the same loop. A model that panics leaves the bank
// unlocked and its pending changes dropped.
func (s *Sim) unlock() {
	defer s.mu.Unlock()
	defer func() { s.pending = nil }()
	for n := 0; len(s.pending) > 0; n++ {
		if n == MaxCascade {
			s.cutOff += uint64(len(s.pending))
			return
		}
		nt := s.pending[0]
		s.pending = s.pending[1:]
		if !nt.tap.a.gone {
			nt.tap.a.m.Changed(&Wires{s: s, a: nt.tap.a}, nt.tap.pin, nt.level, nt.time)
		}
	}
}
