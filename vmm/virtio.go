package vmm

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/gvmm/gvmm/fdt"
	"github.com/gvmm/gvmm/virtio"
)

// Where devices described in the device tree live.
const (
	virtioBase   = 0xd0000000 // first virtio-mmio window
	virtioStride = 0x1000
	powerOffBase = 0xd00ff000 // syscon register written to power off
	// NullMMIOBase is a page of MMIO that does nothing: it reads as 0 and
	// ignores writes. It is not in the device tree. Each access is one
	// exit to gvmm's vCPU loop and back, the floor under any register
	// access of a device gvmm serves; make bench times writes to it
	// (images/gpio-rtt -op mmio).
	NullMMIOBase = 0xd00fe000
	// MaxVirtio is how many virtio devices fit on IO-APIC pins 16..23.
	MaxVirtio = fdt.LastPin - fdt.FirstPin + 1
)

// VirtioDevice is a virtio device to give the guest on virtio-mmio, with
// what the device tree says about its function.
type VirtioDevice struct {
	Device virtio.Device
	// GPIO describes the GPIO controller child node, for a GPIO device.
	GPIO *fdt.GPIOController
}

// Overlay is a device-tree overlay (a DTB with fragments, as `dtc -@`
// compiles a .dtso) for DeviceTree to apply; Name names it in errors.
type Overlay struct {
	Name string
	DTB  []byte
}

// overlayError is an overlay's error from fdt, named after the overlay.
type overlayError struct {
	name string
	err  error
}

func (e overlayError) Error() string {
	return "device tree overlay " + e.name + ": " + strings.TrimPrefix(e.err.Error(), "fdt: overlay: ")
}

func (e overlayError) Unwrap() error { return e.err }

// virtioSlot is where virtio device i lives: its MMIO window and its
// IO-APIC pin (edge rising, signalled through an irqfd). DeviceTree and
// attachVirtio both take them from here.
func virtioSlot(i int) (base uint64, pin int) {
	return virtioBase + uint64(i)*virtioStride, fdt.FirstPin + i
}

// CheckRange reports whether [gpa, gpa+n) is guest RAM (virtio.RangeChecker).
func (m *Memory) CheckRange(gpa, n uint64) error {
	_, err := m.Slice(gpa, n)
	return err
}

// DeviceTree returns the device tree blob (DTB) that New gives a guest
// with configuration c, through setup_data (SETUP_DTB): c.CPUs CPUs, the
// local APIC and IO-APIC, the power-off register, a virtio-mmio node for
// each of c.Virtio (at the address and IO-APIC pin attachVirtio gives it,
// with its GPIO controller child, if any) and c.LEDs and c.Keys, with
// c.Overlays applied in order. Nothing else in c matters, and the virtio
// devices themselves are not looked at: a VirtioDevice with only GPIO set
// describes the same tree, so a tree can be built without KVM or a guest.
func DeviceTree(c Config) ([]byte, error) {
	if len(c.Virtio) > MaxVirtio {
		return nil, fmt.Errorf("device tree: %d virtio devices: at most %d", len(c.Virtio), MaxVirtio)
	}
	m := fdt.Machine{CPUs: c.CPUs, PowerOff: &fdt.PowerOff{Base: powerOffBase, Value: 1}}
	for i, d := range c.Virtio {
		base, pin := virtioSlot(i)
		m.Virtio = append(m.Virtio, fdt.VirtioMMIO{
			Base: base, Size: virtio.MMIOSize, Pin: pin, Trigger: fdt.EdgeRising, GPIO: d.GPIO,
		})
	}
	m.LEDs, m.Keys = c.LEDs, c.Keys
	dtb, err := m.DTB()
	if err != nil {
		return nil, fmt.Errorf("device tree: %w", err)
	}
	for _, o := range c.Overlays {
		if dtb, err = fdt.ApplyOverlays(dtb, o.DTB); err != nil {
			return nil, overlayError{o.Name, err}
		}
	}
	return dtb, nil
}

// attachVirtio puts each virtio device on the MMIO bus with an irqfd for
// its interrupt and an ioeventfd per queue for its notifications (but for
// the queues a virtio.InlineServer serves inline, whose notifications
// exit to the vCPU loop), falling back to plain MMIO exits and
// KVM_IRQ_LINE where KVM lacks them. Each transport logs through
// Config.Log, naming its device; a fallback is always logged, the normal
// wiring only with Config.Verbose.
func (vm *VM) attachVirtio(devs []VirtioDevice) error {
	if len(devs) > MaxVirtio {
		return fmt.Errorf("%d virtio devices: at most %d", len(devs), MaxVirtio)
	}
	for i, d := range devs {
		base, pin := virtioSlot(i)
		gsi := uint32(pin)
		name := fmt.Sprintf("virtio-mmio@%#x", base)
		if d.GPIO != nil {
			name += " (" + cmp.Or(d.GPIO.Label, fmt.Sprintf("gpio%d", i)) + ")"
		}
		irqPath, irqfd := "irqfd", true
		raise := func() { vm.setIRQ(gsi, true); vm.setIRQ(gsi, false) }
		if f, err := vm.IRQFD(gsi); err == nil {
			vm.files = append(vm.files, f)
			one := binary.LittleEndian.AppendUint64(nil, 1)
			raise = func() { _, _ = f.Write(one) }
		} else {
			irqPath, irqfd = "KVM_IRQ_LINE ("+err.Error()+")", false
		}
		t := virtio.NewMMIO(d.Device, &vm.mem, raise)
		if vm.log != nil {
			t.Log = func(line string) { vm.log(name + ": " + line) }
		}
		vm.mmio.Add(base, virtio.MMIOSize, t)
		vm.transports = append(vm.transports, t)
		var fallback, inline []string
		is, _ := d.Device.(virtio.InlineServer)
		for q := range d.Device.QueueMaxSizes() {
			if is != nil && is.ServesInline(q) {
				// Served on the vCPU's thread at its MMIO exit.
				inline = append(inline, fmt.Sprint(q))
				continue
			}
			f, err := vm.IOEventFD(base+virtio.RegQueueNotify, uint32(q))
			if err != nil {
				// The notify then exits to the vCPU loop.
				fallback = append(fallback, fmt.Sprintf("queue %d: %v", q, err))
				continue
			}
			vm.files = append(vm.files, f)
			go waitEventFD(f, func() { t.Notify(q) })
		}
		notifyPath := fmt.Sprintf("ioeventfd for its %d queues", len(d.Device.QueueMaxSizes()))
		if inline != nil {
			notifyPath = fmt.Sprintf("ioeventfd but for queue %s, served inline at its MMIO exit", strings.Join(inline, ", "))
		}
		if fallback != nil {
			notifyPath = "MMIO exits through the vCPU loop for " + strings.Join(fallback, "; ")
			if inline != nil {
				notifyPath += "; queue " + strings.Join(inline, ", ") + " served inline at its MMIO exit"
			}
		}
		if vm.verbose || fallback != nil || !irqfd {
			vm.logf("%s: IO-APIC pin %d; notifications: %s; interrupts: %s", name, gsi, notifyPath, irqPath)
		}
	}
	// syscon-poweroff writes its value here; it must read back as 0 or the
	// kernel's regmap_update_bits skips the write.
	vm.mmio.Add(powerOffBase, 4, portFunc{write: func(off uint64, d []byte) {
		if off == 0 && d[0] != 0 {
			vm.stop(nil)
		}
	}})
	vm.mmio.Add(NullMMIOBase, 0x1000, portFunc{})
	return nil
}

// waitEventFD calls f each time the eventfd is signalled, until it is
// closed.
func waitEventFD(e *os.File, f func()) {
	buf := make([]byte, 8)
	for {
		if _, err := e.Read(buf); err != nil {
			return
		}
		f()
	}
}
