package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/fdt"
	"github.com/gvmm/gvmm/vmm"
)

// gpioSpec is one --gpio flag: a bank of lines for one controller.
type gpioSpec struct {
	lines int
	names []string
}

// parseGPIO reads "sim:N" or "sim:N,names=a,b,c" (names for the first
// lines in order; the list takes the rest of the value).
func parseGPIO(s string) (gpioSpec, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || kind != "sim" {
		return gpioSpec{}, fmt.Errorf("--gpio %q: want sim:N or sim:N,names=a,b,... (host lines are not supported yet)", s)
	}
	count, opts, _ := strings.Cut(rest, ",")
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > 65535 {
		return gpioSpec{}, fmt.Errorf("--gpio %q: line count %q is not a number from 1 to 65535", s, count)
	}
	spec := gpioSpec{lines: n}
	if opts != "" {
		list, ok := strings.CutPrefix(opts, "names=")
		if !ok {
			return gpioSpec{}, fmt.Errorf("--gpio %q: unknown option %q (want names=...)", s, opts)
		}
		spec.names = strings.Split(list, ",")
		if len(spec.names) > n {
			return gpioSpec{}, fmt.Errorf("--gpio %q: %d names for %d lines", s, len(spec.names), n)
		}
	}
	return spec, nil
}

// newGPIO builds the simulated bank and its virtio device.
func newGPIO(spec gpioSpec) (*gpio.Sim, vmm.VirtioDevice, error) {
	sim, err := gpio.NewSim(spec.lines, spec.names...)
	if err != nil {
		return nil, vmm.VirtioDevice{}, err
	}
	dev, err := gpio.NewDevice(sim)
	if err != nil {
		sim.Close()
		return nil, vmm.VirtioDevice{}, err
	}
	return sim, vmm.VirtioDevice{Device: dev, GPIO: &fdt.GPIOController{Lines: spec.lines, LineNames: spec.names}}, nil
}
