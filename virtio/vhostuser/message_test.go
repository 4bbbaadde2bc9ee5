package vhostuser

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// chunkReader is a MsgReader over bytes, at most chunk bytes a read and
// no descriptors; it counts what was read.
type chunkReader struct {
	data  []byte
	chunk int
	read  int
}

func (r *chunkReader) ReadMsgUnix(b, oob []byte) (n, oobn, flags int, addr *net.UnixAddr, err error) {
	if len(r.data) == 0 {
		return 0, 0, 0, nil, io.EOF
	}
	n = min(len(b), len(r.data), max(r.chunk, 1))
	copy(b, r.data[:n])
	r.data = r.data[n:]
	r.read += n
	return n, 0, 0, nil, nil
}

func msgBytes(r Request, flags, size uint32, payload []byte) []byte {
	h := Header{Request: r, Flags: flags, Size: size}.Bytes()
	return append(h[:], payload...)
}

func TestReadMessage(t *testing.T) {
	good := msgBytes(SetVringNum, Version|FlagNeedReply, 8, state(1, 64))
	cases := []struct {
		name     string
		data     []byte
		chunk    int
		wantErr  error
		wantRead int    // bytes consumed (-1: all)
		wantIn   string // in the error
	}{
		{"a message", good, 1 << 10, nil, -1, ""},
		{"a byte at a time", good, 1, nil, -1, ""},
		{"empty payload", msgBytes(GetFeatures, Version, 0, nil), 5, nil, -1, ""},
		{"the largest payload", msgBytes(SetConfig, Version, MaxPayload, make([]byte, MaxPayload)), 1000, nil, -1, ""},
		{"clean end", nil, 1, io.EOF, 0, ""},
		{"end inside the header", good[:7], 3, io.ErrUnexpectedEOF, 7, ""},
		{"end inside the payload", good[:15], 4, io.ErrUnexpectedEOF, 15, "VHOST_USER_SET_VRING_NUM: 8-byte payload"},
		{"payload past the bound", msgBytes(SetConfig, Version, MaxPayload+1, make([]byte, 100)), 1000, ErrHeader, HeaderSize, "VHOST_USER_SET_CONFIG"},
		{"4 GiB payload", msgBytes(SetConfig, Version, ^uint32(0), nil), 1000, ErrHeader, HeaderSize, "VHOST_USER_SET_CONFIG"},
		{"version 0", msgBytes(GetFeatures, 0, 0, nil), 100, ErrHeader, HeaderSize, "VHOST_USER_GET_FEATURES"},
		{"reply flag", msgBytes(GetFeatures, Version|FlagReply, 0, nil), 100, ErrHeader, HeaderSize, "VHOST_USER_GET_FEATURES"},
		{"unknown flag", msgBytes(GetFeatures, Version|0x10, 0, nil), 100, ErrHeader, HeaderSize, "VHOST_USER_GET_FEATURES"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &chunkReader{data: c.data, chunk: c.chunk}
			m, err := ReadMessage(r)
			if !errors.Is(err, c.wantErr) || err != nil && !strings.Contains(err.Error(), c.wantIn) {
				t.Fatalf("ReadMessage: %v, want %v with %q", err, c.wantErr, c.wantIn)
			}
			want := c.wantRead
			if want < 0 {
				want = len(c.data)
			}
			if r.read != want {
				t.Errorf("read %d bytes, want %d", r.read, want)
			}
			if err == nil && (!bytes.Equal(m.Payload, c.data[HeaderSize:]) || m.Size != uint32(len(m.Payload))) {
				t.Errorf("payload %x (size %d), want %x", m.Payload, m.Size, c.data[HeaderSize:])
			}
		})
	}
}

func TestDecoders(t *testing.T) {
	msg := func(p []byte, fds ...int) *Message { return &Message{Payload: p, FDs: fds} }
	region := MemoryRegion{GuestAddr: 1, Size: 2, UserAddr: 3, MmapOffset: 4}
	t.Run("mem table", func(t *testing.T) {
		for _, c := range []struct {
			name string
			p    []byte
			ok   bool
		}{
			{"one region", MemTableBytes([]MemoryRegion{region}), true},
			{"eight", MemTableBytes(make([]MemoryRegion, 8)), true},
			{"none", MemTableBytes(nil), false},
			{"nine", MemTableBytes(make([]MemoryRegion, 9)), false},
			{"count past the payload", MemTableBytes([]MemoryRegion{region})[:39], false},
			{"extra bytes", append(MemTableBytes([]MemoryRegion{region}), 0), false},
			{"no count", []byte{1, 0, 0}, false},
			{"count 2^32-1", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, false},
		} {
			r, err := msg(c.p).MemTable()
			if (err == nil) != c.ok {
				t.Errorf("%s: %v, %v", c.name, r, err)
			}
			if c.name == "one region" && (len(r) != 1 || r[0] != region) {
				t.Errorf("round trip: %+v", r)
			}
		}
	})
	t.Run("config", func(t *testing.T) {
		for _, c := range []struct {
			name string
			cs   ConfigSpace
			ok   bool
		}{
			{"8 bytes", ConfigSpace{Size: 8, Data: make([]byte, 8)}, true},
			{"all of it", ConfigSpace{Size: MaxConfigSize, Data: make([]byte, MaxConfigSize)}, true},
			{"the last byte", ConfigSpace{Offset: MaxConfigSize - 1, Size: 1, Data: []byte{7}}, true},
			{"past the end", ConfigSpace{Offset: MaxConfigSize - 1, Size: 2, Data: []byte{7, 8}}, false},
			{"offset wraps", ConfigSpace{Offset: ^uint32(0), Size: 2, Data: []byte{7, 8}}, false},
			{"data short", ConfigSpace{Size: 8, Data: make([]byte, 4)}, false},
			{"data long", ConfigSpace{Size: 4, Data: make([]byte, 8)}, false},
		} {
			got, err := msg(c.cs.Bytes()).Config()
			if (err == nil) != c.ok {
				t.Errorf("%s: %+v, %v", c.name, got, err)
			}
		}
	})
	t.Run("vring file", func(t *testing.T) {
		for _, c := range []struct {
			name string
			v    uint64
			fds  []int
			ok   bool
		}{
			{"index 1 with its fd", 1, []int{-1}, true},
			{"no fd", 0x101, nil, true},
			{"index 255", 0xff, []int{-1}, true},
			{"missing fd", 1, nil, false},
			{"extra fd", 0x100, []int{-1}, false},
			{"two fds", 0, []int{-1, -1}, false},
			{"bit 9", 0x200, []int{-1}, false},
			{"high bits", 1 << 40, []int{-1}, false},
		} {
			i, noFD, err := msg(u64Payload(c.v), c.fds...).VringFile()
			if (err == nil) != c.ok {
				t.Errorf("%s: %d %v %v", c.name, i, noFD, err)
			}
		}
	})
	t.Run("vring addr", func(t *testing.T) {
		a := VringAddr{Index: 1, Flags: 1, Desc: 2, Used: 3, Avail: 4, Log: 5}
		got, err := msg(a.Bytes()).VringAddr()
		if err != nil || got != a {
			t.Errorf("round trip: %+v %v", got, err)
		}
		if _, err := msg(a.Bytes()[:39]).VringAddr(); err == nil {
			t.Error("39 bytes accepted")
		}
	})
}

func TestRequestString(t *testing.T) {
	for r, want := range map[Request]string{
		GetFeatures: "VHOST_USER_GET_FEATURES", SetVringEnable: "VHOST_USER_SET_VRING_ENABLE",
		GetStatus: "VHOST_USER_GET_STATUS", 99: "request 99",
	} {
		if got := r.String(); got != want {
			t.Errorf("%d: %q, want %q", uint32(r), got, want)
		}
	}
}
