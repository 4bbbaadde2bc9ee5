package vhostuser

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGuestMemoryFault: a front end that shrinks a region's file after
// SET_MEM_TABLE makes the pages past the new end fault (SIGBUS). Each
// access there is an error, not the end of the process; the pages still
// in the file are served.
func TestGuestMemoryFault(t *testing.T) {
	g := newGuestRAM(t)
	fd, err := unix.Dup(g.fd)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := mapTable([]MemoryRegion{{GuestAddr: 0, Size: testMemSize, UserAddr: testUserBase}}, []int{fd})
	if err != nil {
		t.Fatal(err)
	}
	mem := &guestMemory{}
	mem.swap(tb)
	defer mem.swap(nil)
	const kept = 0x1000 // the file keeps its first page
	if err := unix.Ftruncate(g.fd, kept); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	cases := []struct {
		name   string
		access func(gpa uint64) error
	}{
		{"ReadAt", func(gpa uint64) error { return mem.ReadAt(buf, gpa) }},
		{"WriteAt", func(gpa uint64) error { return mem.WriteAt(buf, gpa) }},
		{"LoadU16", func(gpa uint64) error { _, err := mem.LoadU16(gpa); return err }},
		{"StoreU16", func(gpa uint64) error { return mem.StoreU16(gpa, 7) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.access(kept - 16); err != nil {
				t.Errorf("in the file's first page: %v", err)
			}
			for _, gpa := range []uint64{kept, testMemSize - 16} {
				if err := c.access(gpa); !errors.Is(err, errFault) {
					t.Errorf("at %#x, past the file's end: %v, want a fault", gpa, err)
				}
			}
		})
	}
}
