package vmm

import (
	"errors"
	"fmt"
)

// ErrBadAddress is returned for an access outside guest RAM.
var ErrBadAddress = errors.New("guest address outside RAM")

// Region is one contiguous range of guest RAM backed by host memory.
type Region struct {
	GPA  uint64
	Host []byte
}

// Memory is guest RAM: a few regions at fixed guest physical addresses.
// Its accessors check every range and never panic on a guest-supplied
// address or length.
type Memory struct {
	Regions []Region
}

// Slice returns the host bytes for [gpa, gpa+n) if the range lies in one
// region.
func (m *Memory) Slice(gpa, n uint64) ([]byte, error) {
	for _, r := range m.Regions {
		size := uint64(len(r.Host))
		if gpa >= r.GPA && gpa-r.GPA <= size && n <= size-(gpa-r.GPA) {
			off := gpa - r.GPA
			return r.Host[off : off+n : off+n], nil
		}
	}
	return nil, fmt.Errorf("%w: %#x+%#x", ErrBadAddress, gpa, n)
}

// ReadAt copies guest memory at gpa into p.
func (m *Memory) ReadAt(p []byte, gpa uint64) error {
	b, err := m.Slice(gpa, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

// WriteAt copies p into guest memory at gpa.
func (m *Memory) WriteAt(p []byte, gpa uint64) error {
	b, err := m.Slice(gpa, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}
