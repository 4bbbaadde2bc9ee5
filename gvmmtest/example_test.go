package gvmmtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gvmm/gvmm/gvmmtest"
)

// A VM outside a test, as in TestMain or a program: the guest drives line
// 0, the host sees it; the host drives line 1, the guest reads it. In a
// test, gvmmtest.Start(t, ...) does the same and stops the VM at the
// test's end.
func Example() {
	vm, err := gvmmtest.New(gvmmtest.Sim(4, "led", "button"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer vm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	vm.MustRun("gpioset gpiochip0 0=1")
	led := vm.Bank(0).WaitFor(ctx, 0, gvmmtest.Output(1))
	fmt.Println("led:", led.Name, led.Output)

	vm.Bank(0).Set(1, 1)
	fmt.Print("button: ", vm.MustRun("gpioget gpiochip0 1"))
	// Output:
	// led: led 1
	// button: 1
}
