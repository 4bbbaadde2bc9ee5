package fdt

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Addresses and limits of the machine the tree describes.
const (
	// LAPICBase and IOAPICBase are the architectural addresses of the
	// local APIC and the IO-APIC, which KVM's in-kernel irqchip emulates.
	LAPICBase  = 0xfee00000
	IOAPICBase = 0xfec00000
	apicSize   = 0x1000

	// FirstPin and LastPin bound the IO-APIC pins given to devices. Pins
	// 0-15 also drive the 8259 PIC and stay with the legacy devices.
	FirstPin = 16
	LastPin  = 23

	// MaxCPUs is the most CPUs an xAPIC machine can have: APIC IDs are 8
	// bits and 0xff is the broadcast ID.
	MaxCPUs = 255

	// DefaultVirtioSize is the MMIO window of a virtio-mmio device when
	// VirtioMMIO.Size is 0: 0x100 bytes of registers and the config space.
	DefaultVirtioSize = 0x200
	minVirtioSize     = 0x100

	// DefaultPowerOffSize is the size of the power-off register block
	// when PowerOff.Size is 0: one 32-bit register.
	DefaultPowerOffSize = 4

	// RootCompatible is the root node's compatible string.
	RootCompatible = "gvmm,x86-vm"

	// GPIOActiveLow is the flags cell of a GPIO reference for an
	// active-low line (GPIO_ACTIVE_LOW in dt-bindings/gpio/gpio.h).
	GPIOActiveLow = 1

	// VirtioGPIODeviceID is the virtio device ID of a GPIO controller.
	VirtioGPIODeviceID = 41

	maxLines = 0xffff // virtio_gpio_config.ngpio is 16 bits
	keyMax   = 0x2ff  // KEY_MAX in include/uapi/linux/input-event-codes.h

	ioapicLabel = "ioapic"
	sysconLabel = "poweroff_syscon"
)

// Errors returned by Machine.Validate and Machine.DTB, wrapped with the
// offending field; test them with errors.Is.
var (
	ErrCPUs   = errors.New("CPU count out of range")
	ErrRegion = errors.New("invalid or overlapping MMIO region")
	ErrPin    = errors.New("invalid or shared IO-APIC pin")
	ErrLabel  = errors.New("invalid or duplicate label")
	ErrGPIO   = errors.New("invalid GPIO controller or reference")
	ErrValue  = errors.New("invalid value")
)

// Machine describes the devices of a VM that its device tree tells the
// guest kernel about. The zero value is not valid: CPUs must be at least 1.
type Machine struct {
	// CPUs is the number of vCPUs; their APIC IDs are 0..CPUs-1.
	CPUs int
	// Virtio lists the virtio-mmio transports, in the order the guest
	// will probe them (which fixes the virtioN and gpiochipN numbering).
	Virtio []VirtioMMIO
	// LEDs become one gpio-leds device; Keys one gpio-keys device.
	LEDs []LED
	Keys []Key
	// PowerOff, if set, adds a syscon-poweroff device.
	PowerOff *PowerOff
}

// VirtioMMIO is one virtio-mmio transport.
type VirtioMMIO struct {
	// Base and Size give the MMIO window, below 4 GiB; Size 0 means
	// DefaultVirtioSize.
	Base uint64
	Size uint64
	// Pin is the IO-APIC input, FirstPin..LastPin, one per device.
	Pin int
	// Trigger is how the VMM signals Pin; the default, edge rising, is
	// what a KVM irqfd without a resample fd gives.
	Trigger Trigger
	// GPIO, if set, describes the virtio-gpio device behind the
	// transport, which consumers (LEDs, Keys) can then reference.
	GPIO *GPIOController
}

// GPIOController describes a virtio-gpio device as a GPIO (and interrupt)
// controller.
type GPIOController struct {
	// Label names the controller for LED and Key references and in the
	// tree's __symbols__ node; "" means gpioN, N counting the GPIO
	// controllers from 0 in Machine.Virtio order.
	Label string
	// Lines is the device's ngpio, 1..65535.
	Lines int
	// LineNames, if any, become gpio-line-names (at most Lines). gpiolib
	// prefers them to names the device reports; "" keeps the device's
	// name for that line, if any.
	LineNames []string
	// NoIRQ says the device does not offer VIRTIO_GPIO_F_IRQ: the node is
	// then no interrupt controller, and Keys cannot use its lines.
	NoIRQ bool
}

// GPIORef names one GPIO line, as a consumer's `gpios = <&ctrl line
// flags>` does.
type GPIORef struct {
	Controller string // a GPIOController's label
	Line       int
	ActiveLow  bool
}

// LED is one LED of the gpio-leds device
// (Documentation/devicetree/bindings/leds/leds-gpio.yaml).
type LED struct {
	// Label names the LED in /sys/class/leds; "" leaves the node name
	// (led-N).
	Label string
	GPIO  GPIORef
	// DefaultState is "", "on", "off" or "keep".
	DefaultState string
	// Trigger, if set, is linux,default-trigger (e.g. "heartbeat").
	Trigger string
}

// Key is one key of the gpio-keys device
// (Documentation/devicetree/bindings/input/gpio-keys.yaml). Either way the
// key needs the controller's interrupts (GPIOController.NoIRQ false).
//
// A GPIO key (Interrupt TriggerDefault) has `gpios = <&ctrl line flags>`:
// gpio-keys gets its interrupt with gpiod_to_irq, on both edges, and
// reads the line for the key's state.
//
// An interrupt-only key (Interrupt set) has `interrupt-parent = <&ctrl>`
// and `interrupts = <line type>` instead, and no GPIO: gpio-keys
// (gpio_keys_irq_isr) reports a press at the first interrupt and the
// release debounce-interval ms (5 by default) after the last one; with an
// interval of 0 it reports a press and a release at each interrupt. With a
// level trigger the interrupt repeats while the line stays asserted, so
// the key stays pressed as long as each repeat comes within the interval.
type Key struct {
	Label string // descriptive name, optional
	Code  uint32 // linux,code: an input event code, 1..KEY_MAX
	// GPIO is the key's line. ActiveLow must be false for an
	// interrupt-only key (there is no GPIO to invert).
	GPIO GPIORef
	// Interrupt, if not TriggerDefault, makes the key interrupt-only with
	// this trigger (interrupts' type cell, IRQ_TYPE_* in
	// dt-bindings/interrupt-controller/irq.h).
	Interrupt Trigger
	// DebounceInterval, if set, is debounce-interval in ms; nil leaves it
	// out and gpio-keys uses 5.
	DebounceInterval *uint32
}

// PowerOff describes a syscon-poweroff device: on power-off the guest
// reads the 32-bit register at Base+Offset and, if it does not already
// hold Value, writes Value there (regmap_update_bits with a full mask).
// The VMM watching the register must therefore read it as something other
// than Value, e.g. 0.
type PowerOff struct {
	// Base and Size give the register block, below 4 GiB; Size 0 means
	// DefaultPowerOffSize.
	Base uint64
	Size uint64
	// Offset of the register in the block, a multiple of 4.
	Offset uint32
	// Value written to power off; not 0.
	Value uint32
}

// Trigger is the sense of an IO-APIC input.
type Trigger int

// Triggers. The zero value is the default, edge rising.
const (
	TriggerDefault Trigger = iota
	EdgeRising
	EdgeFalling
	LevelHigh
	LevelLow
)

// cell returns the IO-APIC interrupt specifier's second cell as
// arch/x86/kernel/devicetree.c's of_ioapic_type[] indexes it (the order of
// the intel,ce4100-ioapic.txt binding text is the reverse of the code's).
func (t Trigger) cell() (uint32, bool) {
	switch t {
	case TriggerDefault, EdgeRising:
		return 3, true
	case EdgeFalling:
		return 0, true
	case LevelHigh:
		return 1, true
	case LevelLow:
		return 2, true
	}
	return 0, false
}

// irqType returns the trigger as an IRQ_TYPE_* value
// (dt-bindings/interrupt-controller/irq.h), the type cell of a GPIO
// controller's two-cell interrupt specifier (irq_domain_xlate_twocell).
// TriggerDefault has none: for a Key it means "not interrupt-only".
func (t Trigger) irqType() (uint32, bool) {
	switch t {
	case EdgeRising:
		return 1, true
	case EdgeFalling:
		return 2, true
	case LevelHigh:
		return 4, true
	case LevelLow:
		return 8, true
	}
	return 0, false
}

// String returns the trigger's name.
func (t Trigger) String() string {
	switch t {
	case TriggerDefault:
		return "default (edge rising)"
	case EdgeRising:
		return "edge rising"
	case EdgeFalling:
		return "edge falling"
	case LevelHigh:
		return "level high"
	case LevelLow:
		return "level low"
	}
	return fmt.Sprintf("Trigger(%d)", int(t))
}

// controller is a GPIO controller after validation.
type controller struct {
	label   string
	path    string
	phandle uint32
	lines   int
	irq     bool
}

// plan is what validation works out for encoding.
type plan struct {
	ctrls        []controller // in Machine.Virtio order
	byLabel      map[string]*controller
	virtioSizes  []uint64
	powerOffSize uint64
	sysconPH     uint32
}

const ioapicPhandle = 1

// Validate checks the machine description; DTB calls it too.
func (m *Machine) Validate() error {
	_, err := m.plan()
	return err
}

func (m *Machine) plan() (*plan, error) {
	if m.CPUs < 1 || m.CPUs > MaxCPUs {
		return nil, fmt.Errorf("fdt: %d CPUs, want 1..%d: %w", m.CPUs, MaxCPUs, ErrCPUs)
	}
	p := &plan{byLabel: map[string]*controller{}}
	type region struct {
		what       string
		base, size uint64
	}
	regions := []region{
		{"local APIC", LAPICBase, apicSize},
		{"IO-APIC", IOAPICBase, apicSize},
	}
	pins := map[int]int{}
	next := uint32(ioapicPhandle + 1)
	for i, v := range m.Virtio {
		what := fmt.Sprintf("virtio[%d]", i)
		size := v.Size
		if size == 0 {
			size = DefaultVirtioSize
		}
		if size < minVirtioSize || v.Base%4 != 0 {
			return nil, fmt.Errorf("fdt: %s: base %#x size %#x: want a 4-byte aligned base and size >= %#x: %w",
				what, v.Base, size, minVirtioSize, ErrRegion)
		}
		p.virtioSizes = append(p.virtioSizes, size)
		regions = append(regions, region{what, v.Base, size})
		if v.Pin < FirstPin || v.Pin > LastPin {
			return nil, fmt.Errorf("fdt: %s: pin %d not in %d..%d: %w", what, v.Pin, FirstPin, LastPin, ErrPin)
		}
		if j, ok := pins[v.Pin]; ok {
			return nil, fmt.Errorf("fdt: %s: pin %d already used by virtio[%d]: %w", what, v.Pin, j, ErrPin)
		}
		pins[v.Pin] = i
		if _, ok := v.Trigger.cell(); !ok {
			return nil, fmt.Errorf("fdt: %s: trigger %v: %w", what, v.Trigger, ErrValue)
		}
		if v.GPIO != nil {
			c, err := validController(v.GPIO, len(p.ctrls), what)
			if err != nil {
				return nil, err
			}
			c.path = "/" + virtioNodeName(v.Base) + "/gpio"
			c.phandle = next
			next++
			p.ctrls = append(p.ctrls, c)
		}
	}
	for i := range p.ctrls {
		c := &p.ctrls[i]
		if c.label == ioapicLabel || c.label == sysconLabel || p.byLabel[c.label] != nil {
			return nil, fmt.Errorf("fdt: GPIO controller %s: label %q used twice: %w", c.path, c.label, ErrLabel)
		}
		p.byLabel[c.label] = c
	}
	if po := m.PowerOff; po != nil {
		size := po.Size
		if size == 0 {
			size = DefaultPowerOffSize
		}
		if size < 4 || size%4 != 0 || po.Base%4 != 0 || uint64(po.Offset)+4 > size || po.Offset%4 != 0 {
			return nil, fmt.Errorf("fdt: power-off: base %#x size %#x offset %#x: want 4-byte aligned base, size and offset inside: %w",
				po.Base, size, po.Offset, ErrRegion)
		}
		if po.Value == 0 {
			return nil, fmt.Errorf("fdt: power-off: value 0 (regmap_update_bits would skip the write): %w", ErrValue)
		}
		p.powerOffSize = size
		p.sysconPH = next
		regions = append(regions, region{"power-off", po.Base, size})
	}
	for _, r := range regions {
		if r.base+r.size > 1<<32 || r.base+r.size < r.base {
			return nil, fmt.Errorf("fdt: %s: [%#x, +%#x) does not end below 4 GiB: %w", r.what, r.base, r.size, ErrRegion)
		}
	}
	sort.SliceStable(regions, func(i, j int) bool { return regions[i].base < regions[j].base })
	for i := 1; i < len(regions); i++ {
		a, b := regions[i-1], regions[i]
		if b.base < a.base+a.size {
			return nil, fmt.Errorf("fdt: %s at %#x overlaps %s at [%#x, +%#x): %w", b.what, b.base, a.what, a.base, a.size, ErrRegion)
		}
	}
	used := map[GPIORef]string{}
	ref := func(what string, r GPIORef) (*controller, error) {
		c := p.byLabel[r.Controller]
		if c == nil {
			return nil, fmt.Errorf("fdt: %s: no GPIO controller labelled %q: %w", what, r.Controller, ErrGPIO)
		}
		if r.Line < 0 || r.Line >= c.lines {
			return nil, fmt.Errorf("fdt: %s: line %d of %s not in 0..%d: %w", what, r.Line, r.Controller, c.lines-1, ErrGPIO)
		}
		key := GPIORef{Controller: r.Controller, Line: r.Line}
		if other, ok := used[key]; ok {
			return nil, fmt.Errorf("fdt: %s: line %d of %s already used by %s: %w", what, r.Line, r.Controller, other, ErrGPIO)
		}
		used[key] = what
		return c, nil
	}
	for i, l := range m.LEDs {
		what := fmt.Sprintf("LED[%d]", i)
		if _, err := ref(what, l.GPIO); err != nil {
			return nil, err
		}
		switch l.DefaultState {
		case "", "on", "off", "keep":
		default:
			return nil, fmt.Errorf("fdt: %s: default state %q, want on, off or keep: %w", what, l.DefaultState, ErrValue)
		}
		if err := validString(what+" label", l.Label); err != nil {
			return nil, err
		}
		if err := validString(what+" trigger", l.Trigger); err != nil {
			return nil, err
		}
	}
	for i, k := range m.Keys {
		what := fmt.Sprintf("key[%d]", i)
		c, err := ref(what, k.GPIO)
		if err != nil {
			return nil, err
		}
		if err := validKey(what, k, c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// validKey checks what ref does not: the key's code, label and interrupt.
func validKey(what string, k Key, c *controller) error {
	if !c.irq {
		return fmt.Errorf("fdt: %s: controller %s has NoIRQ, gpio-keys needs its interrupts: %w", what, c.label, ErrGPIO)
	}
	if k.Code == 0 || k.Code > keyMax {
		return fmt.Errorf("fdt: %s: code %d not in 1..%d: %w", what, k.Code, keyMax, ErrValue)
	}
	if k.Interrupt != TriggerDefault {
		if _, ok := k.Interrupt.irqType(); !ok {
			return fmt.Errorf("fdt: %s: interrupt trigger %v: %w", what, k.Interrupt, ErrValue)
		}
		if k.GPIO.ActiveLow {
			return fmt.Errorf("fdt: %s: an interrupt-only key cannot be active low: %w", what, ErrValue)
		}
	}
	return validString(what+" label", k.Label)
}

func validController(g *GPIOController, n int, what string) (controller, error) {
	c := controller{label: g.Label, lines: g.Lines, irq: !g.NoIRQ}
	if c.label == "" {
		c.label = fmt.Sprintf("gpio%d", n)
	}
	if !ValidLabel(c.label) {
		return c, fmt.Errorf("fdt: %s: GPIO label %q: want [a-zA-Z_][a-zA-Z0-9_]*, at most 31 characters: %w", what, c.label, ErrLabel)
	}
	if g.Lines < 1 || g.Lines > maxLines {
		return c, fmt.Errorf("fdt: %s: %d GPIO lines, want 1..%d: %w", what, g.Lines, maxLines, ErrGPIO)
	}
	if len(g.LineNames) > g.Lines {
		return c, fmt.Errorf("fdt: %s: %d line names for %d lines: %w", what, len(g.LineNames), g.Lines, ErrGPIO)
	}
	for i, s := range g.LineNames {
		if err := validString(fmt.Sprintf("%s line name %d", what, i), s); err != nil {
			return c, err
		}
	}
	return c, nil
}

func validString(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("fdt: %s %q contains NUL: %w", what, s, ErrValue)
	}
	return nil
}

func virtioNodeName(base uint64) string { return fmt.Sprintf("virtio@%x", base) }

// DTB validates the machine and returns its device tree blob. The same
// Machine always gives the same bytes.
func (m *Machine) DTB() ([]byte, error) {
	p, err := m.plan()
	if err != nil {
		return nil, err
	}
	w := NewWriter()
	w.BeginNode("")
	w.PropertyU32("#address-cells", 1)
	w.PropertyU32("#size-cells", 1)
	w.PropertyString("compatible", RootCompatible)

	w.BeginNode("cpus")
	w.PropertyU32("#address-cells", 1)
	w.PropertyU32("#size-cells", 0)
	for id := 0; id < m.CPUs; id++ {
		w.BeginNode(fmt.Sprintf("cpu@%x", id))
		w.PropertyString("device_type", "cpu")
		w.PropertyU32("reg", uint32(id))
		w.EndNode()
	}
	w.EndNode()

	w.BeginNode(fmt.Sprintf("interrupt-controller@%x", LAPICBase))
	w.PropertyString("compatible", "intel,ce4100-lapic")
	w.PropertyU32("reg", LAPICBase, apicSize)
	w.EndNode()

	w.BeginNode(fmt.Sprintf("interrupt-controller@%x", IOAPICBase))
	w.PropertyString("compatible", "intel,ce4100-ioapic")
	w.PropertyU32("reg", IOAPICBase, apicSize)
	w.PropertyEmpty("interrupt-controller")
	w.PropertyU32("#interrupt-cells", 2)
	w.PropertyU32("phandle", ioapicPhandle)
	w.EndNode()

	ci := 0
	for i, v := range m.Virtio {
		trigger, _ := v.Trigger.cell()
		w.BeginNode(virtioNodeName(v.Base))
		w.PropertyString("compatible", "virtio,mmio")
		w.PropertyU32("reg", uint32(v.Base), uint32(p.virtioSizes[i]))
		w.PropertyU32("interrupt-parent", ioapicPhandle)
		w.PropertyU32("interrupts", uint32(v.Pin), trigger)
		if g := v.GPIO; g != nil {
			c := p.ctrls[ci]
			ci++
			w.BeginNode("gpio")
			w.PropertyString("compatible", fmt.Sprintf("virtio,device%x", VirtioGPIODeviceID))
			w.PropertyEmpty("gpio-controller")
			w.PropertyU32("#gpio-cells", 2)
			if c.irq {
				w.PropertyEmpty("interrupt-controller")
				w.PropertyU32("#interrupt-cells", 2)
			}
			if len(g.LineNames) > 0 {
				w.PropertyString("gpio-line-names", g.LineNames...)
			}
			w.PropertyU32("phandle", c.phandle)
			w.EndNode()
		}
		w.EndNode()
	}

	p.writeLEDs(w, m.LEDs)
	p.writeKeys(w, m.Keys)
	if po := m.PowerOff; po != nil {
		w.BeginNode(fmt.Sprintf("syscon@%x", po.Base))
		w.PropertyString("compatible", "gvmm,poweroff-syscon", "syscon")
		w.PropertyU32("reg", uint32(po.Base), uint32(p.powerOffSize))
		w.PropertyU32("phandle", p.sysconPH)
		w.EndNode()
		w.BeginNode("poweroff")
		w.PropertyString("compatible", "syscon-poweroff")
		w.PropertyU32("regmap", p.sysconPH)
		w.PropertyU32("offset", po.Offset)
		w.PropertyU32("value", po.Value)
		w.EndNode()
	}

	w.BeginNode("__symbols__")
	w.PropertyString(ioapicLabel, fmt.Sprintf("/interrupt-controller@%x", IOAPICBase))
	for _, c := range p.ctrls {
		w.PropertyString(c.label, c.path)
	}
	if po := m.PowerOff; po != nil {
		w.PropertyString(sysconLabel, fmt.Sprintf("/syscon@%x", po.Base))
	}
	w.EndNode()

	w.EndNode()
	return w.Finish()
}

// writeGPIOs writes a consumer's `gpios = <&ctrl line flags>`.
func (p *plan) writeGPIOs(w *Writer, r GPIORef) {
	var flags uint32
	if r.ActiveLow {
		flags = GPIOActiveLow
	}
	w.PropertyU32("gpios", p.byLabel[r.Controller].phandle, uint32(r.Line), flags)
}

// writeLEDs writes the gpio-leds node, if there are LEDs.
func (p *plan) writeLEDs(w *Writer, leds []LED) {
	if len(leds) == 0 {
		return
	}
	w.BeginNode("leds")
	w.PropertyString("compatible", "gpio-leds")
	for i, l := range leds {
		w.BeginNode(fmt.Sprintf("led-%d", i))
		if l.Label != "" {
			w.PropertyString("label", l.Label)
		}
		p.writeGPIOs(w, l.GPIO)
		if l.DefaultState != "" {
			w.PropertyString("default-state", l.DefaultState)
		}
		if l.Trigger != "" {
			w.PropertyString("linux,default-trigger", l.Trigger)
		}
		// Linux shuts the virtio device down (virtio_dev_shutdown breaks
		// its queues) before gpio-leds, whose shutdown would then switch
		// each LED off through a broken queue: "failed to add request to
		// vq" at every poweroff. The LED keeps its state instead; the
		// device's reset at poweroff releases the line anyway.
		w.PropertyEmpty("retain-state-shutdown")
		w.EndNode()
	}
	w.EndNode()
}

// writeKeys writes the gpio-keys node, if there are keys: each a GPIO key
// (gpios) or an interrupt-only key (interrupt-parent and interrupts).
func (p *plan) writeKeys(w *Writer, keys []Key) {
	if len(keys) == 0 {
		return
	}
	w.BeginNode("keys")
	w.PropertyString("compatible", "gpio-keys")
	for i, k := range keys {
		w.BeginNode(fmt.Sprintf("key-%d", i))
		if k.Label != "" {
			w.PropertyString("label", k.Label)
		}
		w.PropertyU32("linux,code", k.Code)
		if typ, ok := k.Interrupt.irqType(); ok {
			w.PropertyU32("interrupt-parent", p.byLabel[k.GPIO.Controller].phandle)
			w.PropertyU32("interrupts", uint32(k.GPIO.Line), typ)
		} else {
			p.writeGPIOs(w, k.GPIO)
		}
		if k.DebounceInterval != nil {
			w.PropertyU32("debounce-interval", *k.DebounceInterval)
		}
		w.EndNode()
	}
	w.EndNode()
}
