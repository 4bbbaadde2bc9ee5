// Package models holds device models for gpio.Sim: devices on the host's
// side of simulated GPIO lines, for a guest to talk to through the
// virtio-gpio device as it would to hardware on a board.
//
// # What a model is
//
// A model is a gpio.Model attached to lines of a Sim with Sim.Attach,
// which makes them its pins 0, 1, ... in the order given. It drives its
// pins like any host-side driver of a line: high, low, or released
// (gpio.DriveHigh, gpio.DriveLow, gpio.DriveReleased), and the Sim
// resolves each line from the guest's output, every host-side driver and
// the line's pull (see gpio.Sim): an open-drain bus is a model that only
// drives low or releases, on a line with a pull-up.
//
// # How to write one
//
//   - Changed(w, pin, level, at) hears of every level change of the
//     model's pins, the ones it caused included, in the order they
//     happened, synchronously: before the guest's request that caused it
//     is answered. So a model that answers from Changed answers in time,
//     as hardware would between two of the guest's accesses, and the
//     guest reads the answer with its next access.
//   - Changed runs with the bank locked. It must not block, and it drives
//     and reads its pins through w only: w.Drive(pin, d), w.Level(pin).
//     Calling the Sim or the model's Attachment from Changed deadlocks.
//     A drive from Changed is heard of (by this model and others) once
//     Changed returns, not within it.
//   - Outside Changed (a timer, a goroutine of the model, a test) the
//     model drives and reads its pins through the *gpio.Attachment that
//     Sim.Attach returned: a.Drive, a.Level; a.Detach releases the pins.
//   - State shared between Changed and other goroutines needs the model's
//     own lock. Changed may take it (the bank's lock is always taken
//     first); code holding it must not call the Sim or the Attachment,
//     which may be waiting on the bank's lock held by a Changed that
//     waits on the model's.
//   - A model is told nothing when it is attached: it learns where its
//     lines stand from w.Level in its first Changed (or a.Level).
//   - A model that answers every change with another never settles: the
//     bank cuts the cascade off after gpio.MaxCascade changes and counts
//     the rest in Sim.CutOff.
//
// # The models
//
//   - Button: a push button on one line, active low with the line's
//     pull-up, whose contact bounces; it drives its line from a goroutine
//     through its Attachment. It is the short example of a model.
//   - EEPROM: a 24c02 I2C EEPROM on SCL and SDA, answering from Changed,
//     for the Linux guest's i2c-gpio bus and at24 driver.
package models
