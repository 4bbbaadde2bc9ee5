package vmm

import "sort"

// Device is what the bus dispatches guest accesses to. Offsets are
// relative to the device's base; data has the access width (1, 2, 4 or 8
// bytes) and is filled in by Read.
type Device interface {
	Read(off uint64, data []byte)
	Write(off uint64, data []byte)
}

// Bus maps address ranges (I/O ports or guest physical addresses) to
// devices. Accesses that hit no device read as all ones and are otherwise
// ignored, as on an ISA bus with nothing there.
//
// Add is for building the machine, before any vCPU runs. After that, Read
// and Write are safe for concurrent use by the vCPU goroutines: they only
// look the range up, and each device synchronises its own state.
type Bus struct {
	ranges []busRange // sorted by base
}

type busRange struct {
	base, size uint64
	dev        Device
}

// Add maps [base, base+size) to dev.
func (b *Bus) Add(base, size uint64, dev Device) {
	b.ranges = append(b.ranges, busRange{base, size, dev})
	sort.Slice(b.ranges, func(i, j int) bool { return b.ranges[i].base < b.ranges[j].base })
}

// Read dispatches a read of len(data) bytes at addr.
func (b *Bus) Read(addr uint64, data []byte) {
	if r := b.find(addr); r != nil {
		r.dev.Read(addr-r.base, data)
		return
	}
	for i := range data {
		data[i] = 0xff
	}
}

// Write dispatches a write of data at addr.
func (b *Bus) Write(addr uint64, data []byte) {
	if r := b.find(addr); r != nil {
		r.dev.Write(addr-r.base, data)
	}
}

func (b *Bus) find(addr uint64) *busRange {
	i := sort.Search(len(b.ranges), func(i int) bool { return b.ranges[i].base+b.ranges[i].size > addr })
	if i < len(b.ranges) && addr >= b.ranges[i].base {
		return &b.ranges[i]
	}
	return nil
}

// portFunc adapts a pair of functions to Device.
type portFunc struct {
	read  func(off uint64, data []byte)
	write func(off uint64, data []byte)
}

func (p portFunc) Read(off uint64, data []byte) {
	if p.read != nil {
		p.read(off, data)
		return
	}
	clear(data)
}

func (p portFunc) Write(off uint64, data []byte) {
	if p.write != nil {
		p.write(off, data)
	}
}
