package vmm

import (
	"errors"
	"math"
	"testing"
)

func TestMemoryBounds(t *testing.T) {
	m := &Memory{Regions: []Region{{0, make([]byte, 0x1000)}, {1 << 32, make([]byte, 0x1000)}}}
	tests := []struct {
		gpa, n uint64
		ok     bool
	}{
		{0, 0x1000, true},
		{0xfff, 1, true},
		{0x1000, 0, true}, // empty range at the end
		{0xfff, 2, false}, // crosses the end
		{0x1000, 1, false},
		{1<<32 + 0x800, 0x800, true},
		{1<<32 - 1, 2, false}, // straddles the hole
		{math.MaxUint64, 2, false},
		{0x10, math.MaxUint64, false}, // length overflow
		{1 << 40, 1, false},
	}
	for _, tt := range tests {
		_, err := m.Slice(tt.gpa, tt.n)
		if (err == nil) != tt.ok {
			t.Errorf("Slice(%#x, %#x): err %v, want ok=%v", tt.gpa, tt.n, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadAddress) {
			t.Errorf("Slice(%#x, %#x): err %v is not ErrBadAddress", tt.gpa, tt.n, err)
		}
	}
	if err := m.WriteAt([]byte{1, 2, 3}, 1<<32+5); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 3)
	if err := m.ReadAt(p, 1<<32+5); err != nil || p[0] != 1 || p[2] != 3 {
		t.Errorf("ReadAt = %v, %v", p, err)
	}
}

func TestLoadStoreU16(t *testing.T) {
	m := &Memory{Regions: []Region{{GPA: 0x1000, Host: make([]byte, 16)}}}
	for _, gpa := range []uint64{0x1000, 0x1003, 0x100e} {
		if err := m.StoreU16(gpa, 0xbeef); err != nil {
			t.Fatal(err)
		}
		var b [2]byte
		if err := m.ReadAt(b[:], gpa); err != nil || b != [2]byte{0xef, 0xbe} {
			t.Errorf("%#x: bytes %x, %v: want little endian", gpa, b, err)
		}
		if v, err := m.LoadU16(gpa); v != 0xbeef || err != nil {
			t.Errorf("%#x: LoadU16 = %#x, %v", gpa, v, err)
		}
	}
	for _, gpa := range []uint64{0x0fff, 0x100f, 1 << 40} {
		if _, err := m.LoadU16(gpa); err == nil {
			t.Errorf("LoadU16(%#x) outside RAM: no error", gpa)
		}
		if err := m.StoreU16(gpa, 1); err == nil {
			t.Errorf("StoreU16(%#x) outside RAM: no error", gpa)
		}
	}
}
