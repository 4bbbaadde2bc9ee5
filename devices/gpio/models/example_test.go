package models_test

import (
	"fmt"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/models"
)

// A button on line 0, read by the guest as an input with the line's
// pull-up: a press bounces twice before it settles low.
func ExampleButton() {
	sim, err := gpio.NewSim(1, "button")
	if err != nil {
		panic(err)
	}
	defer sim.Close()
	_ = sim.SetPull(0, gpio.PullUp)
	_ = sim.SetDirection(0, gpio.DirectionIn, 0) // the guest's view

	b := &models.Button{Bounces: 2, BounceInterval: time.Millisecond}
	if _, err := b.Attach(sim, "button", 0); err != nil {
		panic(err)
	}
	changes, cancel := sim.Watch()
	defer cancel()

	b.Press()
	b.Wait()
	levels := ""
	for len(levels) < 5 { // 2*Bounces+1 edges
		if c := <-changes; c.Kind == gpio.ChangeInput {
			levels += fmt.Sprint(c.Level)
		}
	}
	v, _ := sim.Get(0)
	fmt.Println("levels:", levels)
	fmt.Println("settled:", v)
	// Output:
	// levels: 01010
	// settled: 0
}
