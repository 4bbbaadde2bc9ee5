package vmm

import (
	"encoding/binary"
	"unsafe"
)

// LoadU16 reads the little-endian 16-bit value at gpa in one access if gpa
// is 2-byte aligned (virtio.Atomic16): the virtqueue's indices are written
// by the guest while gvmm reads them, and a copy of two bytes is two
// one-byte loads that can see half of an update. An aligned 16-bit load is
// one MOVW on amd64, which is atomic.
func (m *Memory) LoadU16(gpa uint64) (uint16, error) {
	b, err := m.Slice(gpa, 2)
	if err != nil {
		return 0, err
	}
	if gpa%2 != 0 {
		return binary.LittleEndian.Uint16(b), nil
	}
	return *(*uint16)(unsafe.Pointer(&b[0])), nil // amd64 is little-endian
}

// StoreU16 writes v at gpa in one access if gpa is 2-byte aligned
// (virtio.Atomic16): the guest must never see half of a new used idx.
func (m *Memory) StoreU16(gpa uint64, v uint16) error {
	b, err := m.Slice(gpa, 2)
	if err != nil {
		return err
	}
	if gpa%2 != 0 {
		binary.LittleEndian.PutUint16(b, v)
		return nil
	}
	*(*uint16)(unsafe.Pointer(&b[0])) = v
	return nil
}
