package fdt

import (
	"bytes"
	"errors"
	"flag"
	"path/filepath"
	"testing"

	"github.com/gvmm/gvmm/internal/dtctest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.dts from dtc's decompilation of the generated trees")

// bank returns a GPIO-controller transport at base on pin.
func bank(base uint64, pin int, g GPIOController) VirtioMMIO {
	return VirtioMMIO{Base: base, Pin: pin, GPIO: &g}
}

// ms returns a debounce interval.
func ms(v uint32) *uint32 { return &v }

// goldens are the machines whose trees are checked in as testdata/NAME.dts.
var goldens = []struct {
	name string
	m    Machine
}{
	{"minimal", Machine{CPUs: 1}},
	{"gpio-bank", Machine{
		CPUs:   1,
		Virtio: []VirtioMMIO{bank(0xd0000000, 16, GPIOController{Lines: 8})},
	}},
	{"two-banks", Machine{
		CPUs: 2,
		Virtio: []VirtioMMIO{
			bank(0xd0000000, 16, GPIOController{Lines: 4, LineNames: []string{"reset", "", "ready", "led"}}),
			{Base: 0xd0001000, Size: 0x1000, Pin: 23, Trigger: LevelHigh, GPIO: &GPIOController{
				Label: "expander", Lines: 32, LineNames: []string{"a", "b"}, NoIRQ: true,
			}},
		},
	}},
	{"leds-keys", Machine{
		CPUs:   1,
		Virtio: []VirtioMMIO{bank(0xd0000000, 17, GPIOController{Label: "board", Lines: 8})},
		LEDs: []LED{
			{Label: "status", GPIO: GPIORef{Controller: "board", Line: 0}, DefaultState: "on", Trigger: "heartbeat"},
			{GPIO: GPIORef{Controller: "board", Line: 1, ActiveLow: true}},
		},
		Keys: []Key{
			{Label: "power", Code: 116, GPIO: GPIORef{Controller: "board", Line: 6, ActiveLow: true}},
			{Code: 28, GPIO: GPIORef{Controller: "board", Line: 7}},
		},
	}},
	{"irq-keys", Machine{
		CPUs:   1,
		Virtio: []VirtioMMIO{bank(0xd0000000, 16, GPIOController{Lines: 8})},
		Keys: []Key{
			{Code: 116, GPIO: GPIORef{Controller: "gpio0", Line: 0, ActiveLow: true}, DebounceInterval: ms(20)},
			{Label: "level", Code: 28, GPIO: GPIORef{Controller: "gpio0", Line: 1}, Interrupt: LevelHigh, DebounceInterval: ms(100)},
			{Code: 1, GPIO: GPIORef{Controller: "gpio0", Line: 2}, Interrupt: LevelLow},
			{Code: 2, GPIO: GPIORef{Controller: "gpio0", Line: 3}, Interrupt: EdgeRising, DebounceInterval: ms(0)},
			{Code: 3, GPIO: GPIORef{Controller: "gpio0", Line: 4}, Interrupt: EdgeFalling},
		},
	}},
	{"poweroff", Machine{
		CPUs:     4,
		Virtio:   []VirtioMMIO{bank(0xd0000000, 16, GPIOController{Lines: 2})},
		PowerOff: &PowerOff{Base: 0xd0100000, Size: 0x10, Offset: 8, Value: 0x5a},
	}},
}

// TestGolden compares dtc's decompilation of each golden machine's DTB with
// testdata/NAME.dts, and checks that dtc compiles that file back to the
// same bytes. go test ./fdt -update rewrites the files.
func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			dtb, err := g.m.DTB()
			if err != nil {
				t.Fatal(err)
			}
			again, err := g.m.DTB()
			if err != nil || !bytes.Equal(dtb, again) {
				t.Fatalf("second DTB() differs (err %v)", err)
			}
			dtctest.Golden(t, dtb, filepath.Join("testdata", g.name+".dts"), *update,
				"go test ./fdt -update; see testdata/README.md")
		})
	}
}

// TestTriggerCells checks the IO-APIC sense cell against of_ioapic_type[]
// in arch/x86/kernel/devicetree.c.
func TestTriggerCells(t *testing.T) {
	for tr, want := range map[Trigger]uint32{
		TriggerDefault: 3, EdgeRising: 3, EdgeFalling: 0, LevelHigh: 1, LevelLow: 2,
	} {
		if got, ok := tr.cell(); !ok || got != want {
			t.Errorf("%v: cell %d, %v; want %d", tr, got, ok, want)
		}
	}
	if _, ok := Trigger(99).cell(); ok {
		t.Error("Trigger(99) accepted")
	}
}

// TestIRQTypes checks a key's interrupt type cell against IRQ_TYPE_* in
// include/dt-bindings/interrupt-controller/irq.h.
func TestIRQTypes(t *testing.T) {
	for tr, want := range map[Trigger]uint32{EdgeRising: 1, EdgeFalling: 2, LevelHigh: 4, LevelLow: 8} {
		if got, ok := tr.irqType(); !ok || got != want {
			t.Errorf("%v: type %d, %v; want %d", tr, got, ok, want)
		}
	}
	for _, tr := range []Trigger{TriggerDefault, 99} {
		if _, ok := tr.irqType(); ok {
			t.Errorf("%v has an IRQ type", tr)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := func() Machine {
		return Machine{
			CPUs:   1,
			Virtio: []VirtioMMIO{bank(0xd0000000, 16, GPIOController{Lines: 8})},
		}
	}
	ref := func(line int) GPIORef { return GPIORef{Controller: "gpio0", Line: line} }
	for _, tc := range []struct {
		name   string
		change func(m *Machine)
		want   error
	}{
		{"valid", func(m *Machine) {}, nil},
		{"no CPUs", func(m *Machine) { m.CPUs = 0 }, ErrCPUs},
		{"256 CPUs", func(m *Machine) { m.CPUs = 256 }, ErrCPUs},
		{"255 CPUs", func(m *Machine) { m.CPUs = 255 }, nil},
		{"pin 15", func(m *Machine) { m.Virtio[0].Pin = 15 }, ErrPin},
		{"pin 24", func(m *Machine) { m.Virtio[0].Pin = 24 }, ErrPin},
		{"no pin", func(m *Machine) { m.Virtio[0].Pin = 0 }, ErrPin},
		{"shared pin", func(m *Machine) { m.Virtio = append(m.Virtio, VirtioMMIO{Base: 0xd0001000, Pin: 16}) }, ErrPin},
		{"bad trigger", func(m *Machine) { m.Virtio[0].Trigger = 7 }, ErrValue},
		{"duplicate base", func(m *Machine) { m.Virtio = append(m.Virtio, VirtioMMIO{Base: 0xd0000000, Pin: 17}) }, ErrRegion},
		{"overlapping windows", func(m *Machine) { m.Virtio = append(m.Virtio, VirtioMMIO{Base: 0xd0000100, Pin: 17}) }, ErrRegion},
		{"adjacent windows", func(m *Machine) { m.Virtio = append(m.Virtio, VirtioMMIO{Base: 0xd0000200, Pin: 17}) }, nil},
		{"on the IO-APIC", func(m *Machine) { m.Virtio[0].Base = IOAPICBase + 0x800 }, ErrRegion},
		{"on the local APIC", func(m *Machine) { m.Virtio[0].Base = LAPICBase - 0x100 }, ErrRegion},
		{"above 4 GiB", func(m *Machine) { m.Virtio[0].Base = 1 << 32 }, ErrRegion},
		{"across 4 GiB", func(m *Machine) { m.Virtio[0].Base = 1<<32 - 0x100 }, ErrRegion},
		{"wraps around", func(m *Machine) { m.Virtio[0].Base, m.Virtio[0].Size = 0x1000, 1<<64-0x800 }, ErrRegion},
		{"tiny window", func(m *Machine) { m.Virtio[0].Size = 0x10 }, ErrRegion},
		{"unaligned base", func(m *Machine) { m.Virtio[0].Base = 0xd0000002 }, ErrRegion},
		{"bad label", func(m *Machine) { m.Virtio[0].GPIO.Label = "gpio-0" }, ErrLabel},
		{"label starts with digit", func(m *Machine) { m.Virtio[0].GPIO.Label = "0gpio" }, ErrLabel},
		{"label taken by the IO-APIC", func(m *Machine) { m.Virtio[0].GPIO.Label = "ioapic" }, ErrLabel},
		{"duplicate label", func(m *Machine) {
			m.Virtio = append(m.Virtio, bank(0xd0001000, 17, GPIOController{Label: "gpio0", Lines: 1}))
		}, ErrLabel},
		{"default label collides", func(m *Machine) {
			m.Virtio[0].GPIO.Label = "gpio1"
			m.Virtio = append(m.Virtio, bank(0xd0001000, 17, GPIOController{Lines: 1}))
		}, ErrLabel},
		{"no lines", func(m *Machine) { m.Virtio[0].GPIO.Lines = 0 }, ErrGPIO},
		{"too many lines", func(m *Machine) { m.Virtio[0].GPIO.Lines = 65536 }, ErrGPIO},
		{"too many names", func(m *Machine) { m.Virtio[0].GPIO.Lines = 1; m.Virtio[0].GPIO.LineNames = []string{"a", "b"} }, ErrGPIO},
		{"NUL in line name", func(m *Machine) { m.Virtio[0].GPIO.LineNames = []string{"a\x00b"} }, ErrValue},
		{"LED on unknown controller", func(m *Machine) { m.LEDs = []LED{{GPIO: GPIORef{Controller: "nope"}}} }, ErrGPIO},
		{"LED line out of range", func(m *Machine) { m.LEDs = []LED{{GPIO: ref(8)}} }, ErrGPIO},
		{"LED negative line", func(m *Machine) { m.LEDs = []LED{{GPIO: ref(-1)}} }, ErrGPIO},
		{"last line", func(m *Machine) { m.LEDs = []LED{{GPIO: ref(7)}} }, nil},
		{"LED default state", func(m *Machine) { m.LEDs = []LED{{GPIO: ref(0), DefaultState: "blink"}} }, ErrValue},
		{"NUL in LED label", func(m *Machine) { m.LEDs = []LED{{GPIO: ref(0), Label: "x\x00"}} }, ErrValue},
		{"NUL in LED trigger", func(m *Machine) { m.LEDs = []LED{{GPIO: ref(0), Trigger: "x\x00"}} }, ErrValue},
		{"two LEDs on a line", func(m *Machine) { m.LEDs = []LED{{GPIO: ref(1)}, {GPIO: ref(1)}} }, ErrGPIO},
		{"LED and key on a line", func(m *Machine) {
			m.LEDs = []LED{{GPIO: ref(1)}}
			m.Keys = []Key{{Code: 1, GPIO: GPIORef{Controller: "gpio0", Line: 1, ActiveLow: true}}}
		}, ErrGPIO},
		{"key without code", func(m *Machine) { m.Keys = []Key{{GPIO: ref(0)}} }, ErrValue},
		{"key code past KEY_MAX", func(m *Machine) { m.Keys = []Key{{Code: 0x300, GPIO: ref(0)}} }, ErrValue},
		{"key line out of range", func(m *Machine) { m.Keys = []Key{{Code: 1, GPIO: ref(9)}} }, ErrGPIO},
		{"key on a controller without IRQs", func(m *Machine) {
			m.Virtio[0].GPIO.NoIRQ = true
			m.Keys = []Key{{Code: 1, GPIO: ref(0)}}
		}, ErrGPIO},
		{"NUL in key label", func(m *Machine) { m.Keys = []Key{{Code: 1, GPIO: ref(0), Label: "\x00"}} }, ErrValue},
		{"level key", func(m *Machine) {
			m.Keys = []Key{{Code: 1, GPIO: ref(7), Interrupt: LevelLow, DebounceInterval: ms(0)}}
		}, nil},
		{"level key line out of range", func(m *Machine) { m.Keys = []Key{{Code: 1, GPIO: ref(8), Interrupt: LevelHigh}} }, ErrGPIO},
		{"level key bad trigger", func(m *Machine) { m.Keys = []Key{{Code: 1, GPIO: ref(0), Interrupt: 9}} }, ErrValue},
		{"level key active low", func(m *Machine) {
			m.Keys = []Key{{Code: 1, GPIO: GPIORef{Controller: "gpio0", ActiveLow: true}, Interrupt: LevelHigh}}
		}, ErrValue},
		{"level key on a controller without IRQs", func(m *Machine) {
			m.Virtio[0].GPIO.NoIRQ = true
			m.Keys = []Key{{Code: 1, GPIO: ref(0), Interrupt: LevelHigh}}
		}, ErrGPIO},
		{"level key and LED on a line", func(m *Machine) {
			m.LEDs = []LED{{GPIO: ref(2)}}
			m.Keys = []Key{{Code: 1, GPIO: ref(2), Interrupt: LevelHigh}}
		}, ErrGPIO},
		{"power-off value 0", func(m *Machine) { m.PowerOff = &PowerOff{Base: 0xd0100000} }, ErrValue},
		{"power-off offset outside", func(m *Machine) { m.PowerOff = &PowerOff{Base: 0xd0100000, Offset: 4, Value: 1} }, ErrRegion},
		{"power-off unaligned offset", func(m *Machine) { m.PowerOff = &PowerOff{Base: 0xd0100000, Size: 16, Offset: 2, Value: 1} }, ErrRegion},
		{"power-off odd size", func(m *Machine) { m.PowerOff = &PowerOff{Base: 0xd0100000, Size: 6, Value: 1} }, ErrRegion},
		{"power-off on a virtio window", func(m *Machine) { m.PowerOff = &PowerOff{Base: 0xd00001fc, Value: 1} }, ErrRegion},
		{"power-off above 4 GiB", func(m *Machine) { m.PowerOff = &PowerOff{Base: 1 << 32, Value: 1} }, ErrRegion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ok()
			tc.change(&m)
			err := m.Validate()
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
			dtb, derr := m.DTB()
			if !errors.Is(derr, tc.want) || (tc.want == nil) != (derr == nil) {
				t.Fatalf("DTB() = %v, want %v", derr, tc.want)
			}
			if err == nil {
				dtctest.CheckDTB(t, dtb)
			}
		})
	}
}
