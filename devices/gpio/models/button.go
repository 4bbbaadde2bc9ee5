package models

import (
	"sync"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

// Button is a push button between a line and ground, read active low with
// the line's pull-up: pressed, it drives the line low; released, it lets
// go. Its contact bounces: Press and Release each move the line to the
// new level, then Bounces times back to the old one and to the new one
// again, BounceInterval apart, so 2*Bounces+1 edges in all. Set Bounces
// and BounceInterval before Attach.
//
// The button does not listen to its line: it drives it from a goroutine,
// through its Attachment, as any model acting on its own time does.
type Button struct {
	Bounces        int           // times the contact bounces back before it settles
	BounceInterval time.Duration // time between two edges of a bounce

	a    *gpio.Attachment
	mu   sync.Mutex
	last chan struct{} // closed once the latest Press or Release has settled
}

// Attach attaches the button, released, to line of sim under name. Press
// and Release do nothing before it.
func (b *Button) Attach(sim *gpio.Sim, name string, line int) (*gpio.Attachment, error) {
	a, err := sim.Attach(name, b, line)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.a, b.last = a, make(chan struct{})
	close(b.last)
	return a, nil
}

// Changed implements gpio.Model. A button does not react to its line.
func (b *Button) Changed(*gpio.Wires, int, uint8, time.Time) {}

// Press starts pressing the button and returns; Wait waits for the line
// to settle low.
func (b *Button) Press() { b.move(gpio.DriveLow, gpio.DriveReleased) }

// Release starts releasing the button and returns; Wait waits for the
// line to settle.
func (b *Button) Release() { b.move(gpio.DriveReleased, gpio.DriveLow) }

// Wait returns once every Press and Release so far has settled.
func (b *Button) Wait() {
	b.mu.Lock()
	last := b.last
	b.mu.Unlock()
	if last != nil {
		<-last
	}
}

// move drives the line to to, bouncing back to from, once the moves
// before it have settled.
func (b *Button) move(to, from gpio.Drive) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.a == nil {
		return
	}
	prev, done := b.last, make(chan struct{})
	b.last = done
	go func() {
		defer close(done)
		<-prev
		for range b.Bounces {
			_ = b.a.Drive(0, to) // after Detach: ErrDetached, nothing to do
			time.Sleep(b.BounceInterval)
			_ = b.a.Drive(0, from)
			time.Sleep(b.BounceInterval)
		}
		_ = b.a.Drive(0, to)
	}()
}
