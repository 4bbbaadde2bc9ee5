package gvmmtest

import (
	"context"
	"fmt"
	"sync"

	"github.com/gvmm/gvmm/devices/gpio"
)

// Line is a snapshot of one simulated line: the direction, output level
// and interrupt type the guest set, and the input level the host drives.
type Line = gpio.LineState

// Change is one entry of a bank's change log: when, which line, what
// changed (direction, output, input, irq) from what to what.
type Change = gpio.Change

// MaxChanges bounds a bank's change log; past it the oldest entries are
// dropped and Changes starts with a gpio.ChangeLost entry counting them.
const MaxChanges = 1 << 16

// Bank is a simulated GPIO bank of a VM, seen from the host: it drives the
// lines' inputs and watches what the guest does with them. Its methods
// fail the test (from the test's goroutine) on a line the bank does not
// have or a context that ends first.
type Bank struct {
	vm     *VM
	index  int
	spec   string    // as GPIO took it
	sim    *gpio.Sim // nil for host lines
	dev    *gpio.Device
	closeB func() // releases the backend
	cancel func() // ends the watch

	mu      sync.Mutex
	log     []Change
	dropped uint64
	changed chan struct{} // closed and replaced at each change
}

func newBank(vm *VM, index int, spec string, sim *gpio.Sim, dev *gpio.Device, closeB func()) *Bank {
	b := &Bank{vm: vm, index: index, spec: spec, sim: sim, dev: dev, closeB: closeB, cancel: func() {}, changed: make(chan struct{})}
	if sim == nil {
		return b
	}
	ch, cancel := sim.Watch()
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
	if c.Kind == gpio.ChangeLost {
		b.dropped += c.Lost
	} else {
		if len(b.log) == MaxChanges {
			copy(b.log, b.log[1:])
			b.log = b.log[:MaxChanges-1]
			b.dropped++
		}
		b.log = append(b.log, c)
	}
	close(b.changed)
	b.changed = make(chan struct{})
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

// Set drives line's input to v (0 or 1), as a device wired to it would.
// The guest sees it while the line is not an output.
func (b *Bank) Set(line int, v int) {
	b.helper()
	if v != 0 && v != 1 {
		b.vm.fail("gvmmtest: bank %d: Set(%d, %d): the value is not 0 or 1", b.index, line, v)
	}
	if err := b.sim.SetInput(line, uint8(v)); err != nil {
		b.vm.fail("gvmmtest: bank %d: Set(%d, %d): %v (the bank has lines 0 to %d)", b.index, line, v, err, b.sim.Lines()-1)
	}
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

// WaitFor waits until cond holds for line and returns the state it held
// in. If ctx ends first the test fails, saying what the line was doing.
func (b *Bank) WaitFor(ctx context.Context, line int, cond func(Line) bool) Line {
	b.helper()
	for {
		b.mu.Lock()
		changed := b.changed
		b.mu.Unlock()
		if l := b.Line(line); cond(l) {
			return l
		}
		select {
		case <-changed:
		case <-ctx.Done():
			b.vm.fail("gvmmtest: bank %d: line %d never met the condition (%v); it is %s", b.index, line, context.Cause(ctx), describe(b.Line(line)))
		}
	}
}

// Changes returns the bank's change log since boot, oldest first: every
// direction, output level and interrupt type the guest set and every input
// the host drove, timestamped. It keeps the last MaxChanges entries; if
// older ones were dropped the log starts with a gpio.ChangeLost entry.
func (b *Bank) Changes() []Change {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Change
	if b.dropped > 0 {
		out = append(out, Change{Kind: gpio.ChangeLost, Lost: b.dropped})
	}
	return append(out, b.log...)
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
	return fmt.Sprintf("direction %v, output %d, input %d, irq %v", l.Direction, l.Output, l.Input, l.IRQType)
}
