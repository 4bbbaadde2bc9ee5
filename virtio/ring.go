package virtio

import (
	"encoding/binary"
	"fmt"
)

// Descriptor flags (virtio 1.2 §2.7.5, VIRTQ_DESC_F_*).
const (
	DescFNext     = 1 // VIRTQ_DESC_F_NEXT: the chain continues at Next
	DescFWrite    = 2 // VIRTQ_DESC_F_WRITE: the buffer is device-writable
	DescFIndirect = 4 // VIRTQ_DESC_F_INDIRECT: the buffer is a table of descriptors
)

// Ring flags (virtio 1.2 §2.7.6, §2.7.8).
const (
	AvailFNoInterrupt = 1 // VIRTQ_AVAIL_F_NO_INTERRUPT: the driver wants no used buffer notifications
	UsedFNoNotify     = 1 // VIRTQ_USED_F_NO_NOTIFY: the device wants no available buffer notifications
)

// Split virtqueue layout (virtio 1.2 §2.7).
const (
	// DescSize is the size of one descriptor, struct virtq_desc.
	DescSize = 16
	// UsedElemSize is the size of one used ring element,
	// struct virtq_used_elem.
	UsedElemSize = 8
	// MaxQueueSize is the largest size of a split virtqueue.
	MaxQueueSize = 32768
	// MaxIndirectDescs bounds an indirect table: its next fields are 16
	// bits, so no chain can use more entries than this.
	MaxIndirectDescs = 65536

	descAlign  = 16
	availAlign = 2
	usedAlign  = 4
	ringHeader = 4 // flags and idx of the avail and used rings
)

// Desc is one descriptor-table entry, equivalent to struct virtq_desc
// (all fields little endian in guest memory).
type Desc struct {
	Addr  uint64
	Len   uint32
	Flags uint16
	Next  uint16
}

// decodeDesc decodes a descriptor from its 16 bytes in guest memory.
func decodeDesc(b *[DescSize]byte) Desc {
	return Desc{
		Addr:  binary.LittleEndian.Uint64(b[0:]),
		Len:   binary.LittleEndian.Uint32(b[8:]),
		Flags: binary.LittleEndian.Uint16(b[12:]),
		Next:  binary.LittleEndian.Uint16(b[14:]),
	}
}

// AvailRingSize is the size in bytes of the available ring (the driver
// area) of a queue of the given size; with eventIdx it includes
// used_event.
func AvailRingSize(size uint16, eventIdx bool) uint64 {
	n := ringHeader + 2*uint64(size)
	if eventIdx {
		n += 2
	}
	return n
}

// UsedRingSize is the size in bytes of the used ring (the device area)
// of a queue of the given size; with eventIdx it includes avail_event.
func UsedRingSize(size uint16, eventIdx bool) uint64 {
	n := ringHeader + UsedElemSize*uint64(size)
	if eventIdx {
		n += 2
	}
	return n
}

// checkRange returns an error wrapping ErrBufferRange unless
// [addr, addr+n) lies in guest memory. An empty range is never accessed
// and always passes.
func checkRange(mem GuestMemory, addr, n uint64) error {
	if n == 0 {
		return nil
	}
	if addr+n < addr {
		return fmt.Errorf("%w: %#x+%#x overflows", ErrBufferRange, addr, n)
	}
	var err error
	if rc, ok := mem.(RangeChecker); ok {
		err = rc.CheckRange(addr, n)
	} else {
		var b [1]byte
		if err = mem.ReadAt(b[:], addr); err == nil {
			err = mem.ReadAt(b[:], addr+n-1)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %#x+%#x: %v", ErrBufferRange, addr, n, err)
	}
	return nil
}

// readU16 reads a ring field, in one access if mem is Atomic16.
func readU16(mem GuestMemory, addr uint64) (uint16, error) {
	if a, ok := mem.(Atomic16); ok {
		return a.LoadU16(addr)
	}
	var b [2]byte
	err := mem.ReadAt(b[:], addr)
	return binary.LittleEndian.Uint16(b[:]), err
}

// writeU16 writes a ring field, in one access if mem is Atomic16.
func writeU16(mem GuestMemory, addr uint64, v uint16) error {
	if a, ok := mem.(Atomic16); ok {
		return a.StoreU16(addr, v)
	}
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], v)
	return mem.WriteAt(b[:], addr)
}
