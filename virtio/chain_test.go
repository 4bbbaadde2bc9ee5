package virtio_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

func TestChainReadGather(t *testing.T) {
	mem := virtiotest.NewMem(256)
	copy(mem[0x10:], "abc")
	copy(mem[0x40:], "defg")
	copy(mem[0x80:], "h")
	c := &virtio.Chain{Readable: []virtio.Buffer{{0x10, 3}, {0x30, 0}, {0x40, 4}, {0x80, 1}}}
	for _, tt := range []struct {
		n    int
		want string
	}{
		{0, ""}, {2, "ab"}, {3, "abc"}, {5, "abcde"}, {8, "abcdefgh"}, {20, "abcdefgh"},
	} {
		p := make([]byte, tt.n)
		n, err := c.Read(mem, p)
		if err != nil || string(p[:n]) != tt.want {
			t.Errorf("Read into %d bytes = %d, %v, %q; want %q", tt.n, n, err, p[:n], tt.want)
		}
	}
	bad := &virtio.Chain{Readable: []virtio.Buffer{{0x10, 3}, {250, 10}}}
	if n, err := bad.Read(mem, make([]byte, 13)); err == nil || n != 3 {
		t.Errorf("Read past memory = %d, %v; want 3 and an error", n, err)
	}
}

func TestChainWriteScatter(t *testing.T) {
	mem := virtiotest.NewMem(256)
	c := &virtio.Chain{Writable: []virtio.Buffer{{0x10, 2}, {0x20, 0}, {0x30, 3}}}
	if c.WritableLen() != 5 {
		t.Fatalf("WritableLen = %d", c.WritableLen())
	}
	if n, err := c.Write(mem, []byte("12345")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !bytes.Equal(mem[0x10:0x12], []byte("12")) || !bytes.Equal(mem[0x30:0x33], []byte("345")) {
		t.Errorf("memory %q %q", mem[0x10:0x12], mem[0x30:0x33])
	}
	if n, err := c.Write(mem, []byte("xyz")); n != 3 || err != nil || string(mem[0x30:0x31]) != "z" {
		t.Errorf("short Write = %d, %v", n, err)
	}
	if n, err := c.Write(mem, []byte("toolong")); n != 0 || !errors.Is(err, virtio.ErrNoSpace) {
		t.Errorf("Write of 7 into 5 = %d, %v; want ErrNoSpace", n, err)
	}
	if string(mem[0x10:0x12]) != "xy" {
		t.Error("a refused Write changed memory")
	}
	empty := &virtio.Chain{}
	if n, err := empty.Write(mem, nil); n != 0 || err != nil {
		t.Errorf("empty Write = %d, %v", n, err)
	}
}
