package gpio_test

import (
	"fmt"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

// inverter is an inverter gate: pin 1 is always the opposite of pin 0.
type inverter struct{}

// Attached sets pin 1 from pin 0's level when the model is attached.
func (inverter) Attached(w *gpio.Wires) { w.Drive(1, gpio.Drive(1-w.Level(0))) }

// Changed hears of every level change of the model's pins.
func (inverter) Changed(w *gpio.Wires, pin int, level uint8, at time.Time) {
	if pin == 0 {
		w.Drive(1, gpio.Drive(1-level))
	}
}

// A model answers within the call that changed its line: the guest
// (here, the Sim's guest-side methods) reads the answer at once.
func ExampleModel() {
	sim, err := gpio.NewSim(2)
	if err != nil {
		panic(err)
	}
	defer sim.Close()
	if _, err := sim.Attach("not", inverter{}, 0, 1); err != nil {
		panic(err)
	}
	read := func() uint8 { v, _ := sim.Get(1); return v }
	fmt.Println("line 0 floats low, line 1 reads", read())
	_ = sim.SetDirection(0, gpio.DirectionOut, 1) // the guest drives line 0 high
	fmt.Println("line 0 driven high, line 1 reads", read())
	st, _ := sim.Line(1)
	fmt.Println("line 1's drivers:", st.Drivers())
	// Output:
	// line 0 floats low, line 1 reads 1
	// line 0 driven high, line 1 reads 0
	// line 1's drivers: host=released not.1=0
}
