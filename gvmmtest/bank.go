package gvmmtest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gvmm/gvmm/devices/gpio"
)

// Line is a snapshot of one simulated line: the direction, output level
// and interrupt type the guest set, what the host and any models drive,
// its pull, the level the host's side gives it (Input) and the level
// everything resolves to (Level), and its conflicts (see gpio.Sim).
type Line = gpio.LineState

// Change is one entry of a bank's change log: when, which line, what
// changed (direction, output, input: a drive of the host or a model, irq,
// pull, conflict) from what to what, and the line's level after it.
type Change = gpio.Change

// MaxChanges bounds a bank's change log; past it the oldest entries are
// dropped and Changes starts with a gpio.ChangeLost entry counting them.
// Changes the bank's watcher missed while it fell behind (gpio.WatchLimit)
// are a gpio.ChangeLost entry where they happened.
const MaxChanges = 1 << 16

// Bank is a simulated GPIO bank of a VM, seen from the host: it drives the
// lines from the host's side and watches what the guest (and any model)
// does with them. Its methods
// fail the test (from the test's goroutine) on a line the bank does not
// have or a wait that times out.
type Bank struct {
	vm     *VM
	index  int
	spec   string    // as GPIO took it
	sim    *gpio.Sim // nil for host lines
	dev    *gpio.Device
	closeB func() // releases the backend
	cancel func() // ends the watch
	// attachments are the models attached by Model options, by name.
	attachments map[string]*gpio.Attachment

	mu      sync.Mutex
	log     []entry // a ring of at most MaxChanges entries, from start
	start   int
	seq     uint64         // entries recorded so far
	dropped uint64         // changes that fell off the ring
	boot    []Line         // each line when the bank was made
	state   []Line         // each line after the newest entry
	cursor  map[int]uint64 // per line: WaitFor looks at entries after this seq (none: the boot state first)
	changed chan struct{}  // closed and replaced at each change
}

// entry is one change and the state of its line after it.
type entry struct {
	seq   uint64 // from 1
	c     Change
	after Line
}

func newBank(vm *VM, index int, spec string, sim *gpio.Sim, dev *gpio.Device, closeB func()) *Bank {
	b := &Bank{vm: vm, index: index, spec: spec, sim: sim, dev: dev, closeB: closeB, cancel: func() {},
		cursor: map[int]uint64{}, changed: make(chan struct{}), attachments: map[string]*gpio.Attachment{}}
	if sim == nil {
		return b
	}
	ch, cancel := sim.Watch()
	b.boot = sim.Snapshot() // after Watch: a change in between is in both, and applies twice alike
	b.state = append([]Line(nil), b.boot...)
	b.cancel = cancel
	go func() {
		for c := range ch {
			b.record(c)
		}
	}()
	return b
}

func (b *Bank) record(c Change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := entry{c: c}
	if c.Kind == gpio.ChangeLost {
		// The changes in between are unknown: take the state from now on.
		if b.sim != nil {
			b.state = b.sim.Snapshot()
		}
	} else if c.Line >= 0 && c.Line < len(b.state) {
		l := &b.state[c.Line]
		switch c.Kind {
		case gpio.ChangeDirection:
			l.Direction = gpio.Direction(c.To)
		case gpio.ChangeOutput:
			l.Output = c.To
		case gpio.ChangeInput:
			setDrive(l, c.Driver, gpio.Drive(c.To))
		case gpio.ChangeIRQType:
			l.IRQType = gpio.IRQType(c.To)
		case gpio.ChangePull:
			l.Pull = gpio.Pull(c.To)
		case gpio.ChangeConflict:
			l.Conflict = c.To == 1
			if l.Conflict {
				l.Conflicts++
			}
		}
		l.Level, l.Input = c.Level, c.Input
		e.after = *l
		e.after.Models = slices.Clone(l.Models) // l's own changes later
	}
	b.seq++
	e.seq = b.seq
	if len(b.log) < MaxChanges {
		b.log = append(b.log, e)
	} else {
		b.dropped += max(1, b.log[b.start].c.Lost)
		b.log[b.start] = e
		b.start = (b.start + 1) % MaxChanges
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// setDrive records driver's new drive d on l: the host's, or a model
// pin's ("NAME.PIN"), which the first change of it adds to l.Models.
func setDrive(l *Line, driver string, d gpio.Drive) {
	if driver == gpio.HostDriver {
		l.Host = d
		return
	}
	i := strings.LastIndexByte(driver, '.')
	name, pin := driver, 0
	if i >= 0 {
		name = driver[:i]
		pin, _ = strconv.Atoi(driver[i+1:])
	}
	for j := range l.Models {
		if m := &l.Models[j]; m.Model == name && m.Pin == pin {
			m.Drive = d
			return
		}
	}
	l.Models = append(l.Models, gpio.ModelDrive{Model: name, Pin: pin, Drive: d})
}

func (b *Bank) close() {
	b.cancel()
	b.closeB()
}

// Stats returns what the bank's virtio-gpio device has done so far:
// requests by type, errors, interrupts fired, latched and collapsed.
func (b *Bank) Stats() gpio.Stats { return b.dev.Stats() }

// helper marks the caller as a test helper, for a Start VM.
func (b *Bank) helper() {
	if b.vm.t != nil {
		b.vm.t.Helper()
	}
}

// Sim returns the simulated bank itself, for what Bank does not wrap.
func (b *Bank) Sim() *gpio.Sim { return b.sim }

// Lines returns the number of lines.
func (b *Bank) Lines() int { return b.sim.Lines() }

// Set makes the host drive line at v (0 or 1), as a device wired to it
// would, until Release. The guest reads the line's resolved level while
// it is not an output: v, unless a model drives 0 against a 1 (see
// gpio.Sim).
func (b *Bank) Set(line int, v int) {
	b.helper()
	if v != 0 && v != 1 {
		b.vm.fail("gvmmtest: bank %d: Set(%d, %d): the value is not 0 or 1", b.index, line, v)
	}
	if err := b.sim.SetInput(line, uint8(v)); err != nil {
		b.vm.fail("gvmmtest: bank %d: Set(%d, %d): %v (the bank has lines 0 to %d)", b.index, line, v, err, b.sim.Lines()-1)
	}
}

// Release stops the host driving line (after Set): it then reads what
// the guest, a model or its pull gives it.
func (b *Bank) Release(line int) {
	b.helper()
	if err := b.sim.SetDrive(line, gpio.DriveReleased); err != nil {
		b.vm.fail("gvmmtest: bank %d: Release(%d): %v (the bank has lines 0 to %d)", b.index, line, err, b.sim.Lines()-1)
	}
}

// Attachment returns the attachment of the model a Model option attached
// to the bank under name, to drive its pins from the test.
func (b *Bank) Attachment(name string) *gpio.Attachment {
	b.helper()
	a := b.attachments[name]
	if a == nil {
		b.vm.fail("gvmmtest: bank %d has no model %q (attach one with gvmmtest.Model)", b.index, name)
	}
	return a
}

// Line returns the state of line now.
func (b *Bank) Line(line int) Line {
	b.helper()
	l, err := b.sim.Line(line)
	if err != nil {
		b.vm.fail("gvmmtest: bank %d: line %d: %v (the bank has lines 0 to %d)", b.index, line, err, b.sim.Lines()-1)
	}
	return l
}

// WaitFor waits until line is in a state for which cond holds and returns
// that state. It goes through the line's states in the order they came, as
// an expect script reads output: each call starts after the state the
// previous call on that line returned, the first call at boot. So a state
// the guest left again before the call, such as an output that gpioset
// drove and released when it exited, or a pulse, still counts; to wait
// for a state that holds now, look at Line. If ctx ends first (or, when
// ctx has no deadline, after DefaultCmdTimeout) the test fails, saying
// what the line was doing.
func (b *Bank) WaitFor(ctx context.Context, line int, cond func(Line) bool) Line {
	b.helper()
	b.Line(line) // fails on a line the bank does not have
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		l, ok, changed := b.next(line, cond)
		if ok {
			return l
		}
		select {
		case <-changed:
		case <-ctx.Done():
			b.vm.fail("gvmmtest: bank %d: line %d never met the condition (%v); it is %s; its changes:\n%s",
				b.index, line, context.Cause(ctx), describe(b.Line(line)), b.history(line, 20))
			return b.Line(line)
		}
	}
}

// next looks through line's entries after its cursor for a state meeting
// cond and moves the cursor past what it looked at.
func (b *Bank) next(line int, cond func(Line) bool) (Line, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, called := b.cursor[line]
	if !called && cond(b.boot[line]) {
		b.cursor[line] = 0
		return b.boot[line], true, nil
	}
	i := 0
	if len(b.log) > 0 && cur >= b.at(0).seq {
		i = int(cur - b.at(0).seq + 1) // entries are in seq order
	}
	for ; i < len(b.log); i++ {
		e := b.at(i)
		if e.c.Line != line || e.c.Kind == gpio.ChangeLost {
			continue
		}
		b.cursor[line] = e.seq
		if cond(e.after) {
			return e.after, true, nil
		}
	}
	b.cursor[line] = b.seq
	return Line{}, false, b.changed
}

// at returns the i-th oldest entry of the ring; b.mu is held.
func (b *Bank) at(i int) entry { return b.log[(b.start+i)%len(b.log)] }

// history describes line's last n changes, for a failure message.
func (b *Bank) history(line, n int) string {
	var lines []string
	for _, c := range b.Changes() {
		if c.Line == line || c.Kind == gpio.ChangeLost {
			from, to := c.Values()
			lines = append(lines, fmt.Sprintf("  %s %s %s -> %s", c.Time.Format("15:04:05.000000"), c.Kind, from, to))
		}
	}
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("  [... %d earlier]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	if len(lines) == 0 {
		return "  none"
	}
	return strings.Join(lines, "\n")
}

// Changes returns the bank's change log since boot, oldest first: every
// direction, output level and interrupt type the guest set, every drive
// of the host and the models, pulls and conflicts, timestamped. It keeps the last MaxChanges entries; if
// older ones were dropped the log starts with a gpio.ChangeLost entry
// counting them, and changes the watcher missed are a gpio.ChangeLost
// entry in their place.
func (b *Bank) Changes() []Change {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Change, 0, len(b.log)+1)
	if b.dropped > 0 {
		out = append(out, Change{Kind: gpio.ChangeLost, Lost: b.dropped})
	}
	for i := range b.log {
		out = append(out, b.at(i).c)
	}
	return out
}

// Output returns a condition for WaitFor: the guest drives the line as an
// output at level v.
func Output(v int) func(Line) bool {
	return func(l Line) bool { return l.Direction == gpio.DirectionOut && int(l.Output) == v }
}

// Input returns a condition for WaitFor: the guest made the line an input.
func Input() func(Line) bool {
	return func(l Line) bool { return l.Direction == gpio.DirectionIn }
}

// IRQ returns a condition for WaitFor: the guest enabled the line's
// interrupt with trigger type t (gpio.IRQTypeNone: disabled it).
func IRQ(t gpio.IRQType) func(Line) bool {
	return func(l Line) bool { return l.IRQType == t }
}

func describe(l Line) string {
	s := fmt.Sprintf("direction %v, output %d, input %d, level %d, irq %v, pull %v, drivers %s", l.Direction, l.Output, l.Input, l.Level, l.IRQType, l.Pull, l.Drivers())
	if l.Conflicts > 0 {
		s += fmt.Sprintf(", conflict %v (%d so far)", l.Conflict, l.Conflicts)
	}
	return s
}
