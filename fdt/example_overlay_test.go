package fdt_test

import (
	"fmt"
	"log"

	"github.com/gvmm/gvmm/fdt"
)

// An overlay, built by hand here where a user would compile one with
// dtc -@, naming the lines of a VM's GPIO bank; ApplyOverlays does the
// same on blobs.
func ExampleApply() {
	m := fdt.Machine{
		CPUs:   1,
		Virtio: []fdt.VirtioMMIO{{Base: 0xd0000000, Pin: 16, GPIO: &fdt.GPIOController{Lines: 2}}},
	}
	dtb, err := m.DTB()
	if err != nil {
		log.Fatal(err)
	}
	base, err := fdt.Parse(dtb)
	if err != nil {
		log.Fatal(err)
	}
	overlay := &fdt.Tree{Root: &fdt.Node{Children: []*fdt.Node{{
		Name:  "fragment@0",
		Props: []fdt.Property{{Name: "target-path", Value: []byte("/virtio@d0000000/gpio\x00")}},
		Children: []*fdt.Node{{
			Name:  "__overlay__",
			Props: []fdt.Property{{Name: "gpio-line-names", Value: []byte("led\x00button\x00")}},
		}},
	}}}}
	if err := fdt.Apply(base, overlay); err != nil {
		log.Fatal(err)
	}
	names, _ := base.Lookup("gpio0").Prop("gpio-line-names").Strings()
	fmt.Println(names)
	// Output: [led button]
}
