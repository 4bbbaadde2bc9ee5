package virtiotest

import "fmt"

// Mem is fake guest RAM starting at guest physical address 0: address a
// is m[a]. It implements virtio.GuestMemory and virtio.RangeChecker with
// bounds checks, returning errors for any range outside it.
type Mem []byte

// NewMem returns size bytes of zeroed guest memory.
func NewMem(size int) Mem { return make(Mem, size) }

// CheckRange returns an error unless [gpa, gpa+n) lies in m.
func (m Mem) CheckRange(gpa, n uint64) error {
	if gpa > uint64(len(m)) || n > uint64(len(m))-gpa {
		return fmt.Errorf("virtiotest: %#x+%#x outside %#x bytes of memory", gpa, n, len(m))
	}
	return nil
}

// ReadAt copies len(p) bytes at gpa into p.
func (m Mem) ReadAt(p []byte, gpa uint64) error {
	if err := m.CheckRange(gpa, uint64(len(p))); err != nil {
		return err
	}
	copy(p, m[gpa:])
	return nil
}

// WriteAt copies p to gpa.
func (m Mem) WriteAt(p []byte, gpa uint64) error {
	if err := m.CheckRange(gpa, uint64(len(p))); err != nil {
		return err
	}
	copy(m[gpa:], p)
	return nil
}
