package vmm

import (
	"bytes"
	"testing"
)

type recorder struct{ log []uint64 }

func (r *recorder) Read(off uint64, data []byte)  { r.log = append(r.log, off); data[0] = byte(off) }
func (r *recorder) Write(off uint64, data []byte) { r.log = append(r.log, 100+off) }

func TestBus(t *testing.T) {
	var b Bus
	a, c := &recorder{}, &recorder{}
	b.Add(0x3f8, 8, a)
	b.Add(0x60, 5, c)
	tests := []struct {
		addr uint64
		want byte
	}{
		{0x3f8, 0}, {0x3ff, 7}, {0x400, 0xff}, {0x3f7, 0xff}, {0x64, 4}, {0x65, 0xff}, {0, 0xff},
	}
	for _, tt := range tests {
		d := []byte{0}
		b.Read(tt.addr, d)
		if d[0] != tt.want {
			t.Errorf("read %#x = %#x, want %#x", tt.addr, d[0], tt.want)
		}
	}
	b.Write(0x3f9, []byte{1})
	b.Write(0x500, []byte{1}) // nobody: ignored
	if len(a.log) != 3 || a.log[2] != 101 {
		t.Errorf("device log %v", a.log)
	}
	wide := []byte{1, 2, 3, 4}
	b.Read(0x1000, wide)
	if !bytes.Equal(wide, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("unmapped wide read %v", wide)
	}
}
