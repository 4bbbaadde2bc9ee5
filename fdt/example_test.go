package fdt_test

import (
	"fmt"
	"log"

	"github.com/gvmm/gvmm/fdt"
)

// A VM with one virtio-gpio bank, an LED on its line 0 and a power key on
// its line 1.
func ExampleMachine_DTB() {
	m := fdt.Machine{
		CPUs: 1,
		Virtio: []fdt.VirtioMMIO{{
			Base: 0xd0000000,
			Pin:  16,
			GPIO: &fdt.GPIOController{Label: "gpio0", Lines: 8, LineNames: []string{"led", "button"}},
		}},
		LEDs: []fdt.LED{{Label: "status", GPIO: fdt.GPIORef{Controller: "gpio0", Line: 0}}},
		Keys: []fdt.Key{{Label: "power", Code: 116, GPIO: fdt.GPIORef{Controller: "gpio0", Line: 1, ActiveLow: true}}},
	}
	dtb, err := m.DTB()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("magic %#x, %d bytes\n", dtb[:4], len(dtb))
	// Output: magic 0xd00dfeed, 1254 bytes
}
