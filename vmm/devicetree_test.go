package vmm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gvmm/gvmm/fdt"
)

// TestDeviceTreeLayout pins where DeviceTree puts things: the same
// addresses and pins attachVirtio uses, spelled out.
func TestDeviceTreeLayout(t *testing.T) {
	g0 := &fdt.GPIOController{Lines: 8}
	g1 := &fdt.GPIOController{Lines: 4, LineNames: []string{"a"}}
	led := fdt.LED{Label: "status", GPIO: fdt.GPIORef{Controller: "gpio1", Line: 3}, DefaultState: "on"}
	key := fdt.Key{Code: 28, GPIO: fdt.GPIORef{Controller: "gpio0", Line: 7}, Interrupt: fdt.LevelHigh}
	got, err := DeviceTree(Config{
		CPUs: 1, MemSize: 256 << 20, Cmdline: "ignored",
		Virtio: []VirtioDevice{{GPIO: g0}, {GPIO: g1}},
		LEDs:   []fdt.LED{led}, Keys: []fdt.Key{key},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := fdt.Machine{
		CPUs: 1,
		Virtio: []fdt.VirtioMMIO{
			{Base: 0xd0000000, Size: 0x200, Pin: 16, Trigger: fdt.EdgeRising, GPIO: g0},
			{Base: 0xd0001000, Size: 0x200, Pin: 17, Trigger: fdt.EdgeRising, GPIO: g1},
		},
		LEDs:     []fdt.LED{led},
		Keys:     []fdt.Key{key},
		PowerOff: &fdt.PowerOff{Base: 0xd00ff000, Value: 1},
	}
	want, err := m.DTB()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("DeviceTree differs from the machine it should describe")
	}
}

func TestDeviceTreeErrors(t *testing.T) {
	many := make([]VirtioDevice, MaxVirtio+1)
	for _, tc := range []struct {
		name string
		c    Config
		want error
	}{
		{"no CPUs", Config{}, fdt.ErrCPUs},
		{"too many devices", Config{CPUs: 1, Virtio: many}, nil},
		{"LED without controller", Config{CPUs: 1, LEDs: []fdt.LED{{GPIO: fdt.GPIORef{Controller: "gpio0"}}}}, fdt.ErrGPIO},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DeviceTree(tc.c)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("DeviceTree() = %v, want an error (%v)", err, tc.want)
			}
		})
	}
}
