package gpio

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// Malformed requests get status ERR, a zero value byte, a response of the
// size the driver allocated, and change nothing.
func TestMalformedRequests(t *testing.T) {
	raw := func(b ...byte) []byte { return b }
	r := func(typ MsgType, gpio uint16, v uint32) []byte {
		return Request{Type: typ, GPIO: gpio, Value: v}.Bytes()
	}
	long := append(r(MsgTypeSetValue, 0, 1), 0)
	tests := []struct {
		name string
		req  []byte
	}{
		{"empty", nil},
		{"1 byte", raw(byte(MsgTypeGetValue))},
		{"7 bytes", r(MsgTypeSetValue, 0, 1)[:7]},
		{"9 bytes", long},
		{"16 bytes", append(r(MsgTypeSetValue, 0, 1), r(MsgTypeSetValue, 0, 1)...)},
		{"type 0", r(0, 0, 0)},
		{"type 7", r(7, 0, 0)},
		{"type 0x0106", r(0x0106, 0, 0)},
		{"type 0xffff", r(0xffff, 0, 0)},
		{"GET_DIRECTION gpio=ngpio", r(MsgTypeGetDirection, 4, 0)},
		{"GET_VALUE gpio=0xffff", r(MsgTypeGetValue, 0xffff, 0)},
		{"SET_VALUE gpio=ngpio", r(MsgTypeSetValue, 4, 0)},
		{"SET_DIRECTION gpio=ngpio", r(MsgTypeSetDirection, 4, 2)},
		{"SET_IRQ_TYPE gpio=ngpio", r(MsgTypeSetIRQType, 4, 1)},
		{"SET_VALUE 2", r(MsgTypeSetValue, 0, 2)},
		{"SET_VALUE 0x100", r(MsgTypeSetValue, 0, 0x100)},
		{"SET_VALUE 0xffffffff", r(MsgTypeSetValue, 0, 0xffffffff)},
		{"SET_DIRECTION 3", r(MsgTypeSetDirection, 0, 3)},
		{"SET_DIRECTION 0x101", r(MsgTypeSetDirection, 0, 0x101)},
		{"SET_DIRECTION 0xffffffff", r(MsgTypeSetDirection, 0, 0xffffffff)},
		{"SET_IRQ_TYPE 5", r(MsgTypeSetIRQType, 1, 5)},
		{"SET_IRQ_TYPE 7", r(MsgTypeSetIRQType, 1, 7)},
		{"SET_IRQ_TYPE 9", r(MsgTypeSetIRQType, 1, 9)},
		{"SET_IRQ_TYPE RISING|LEVEL_HIGH", r(MsgTypeSetIRQType, 1, 5)},
		{"SET_IRQ_TYPE 0x101", r(MsgTypeSetIRQType, 1, 0x101)},
		{"SET_IRQ_TYPE 0x10000", r(MsgTypeSetIRQType, 1, 0x10000)},
		// "The driver MUST NOT send IRQ messages for a GPIO line
		// configured for output." (line 2 is an output)
		{"SET_IRQ_TYPE on an output", r(MsgTypeSetIRQType, 2, uint32(IRQTypeEdgeRising))},
		// An output with an interrupt: refused the other way round too
		// (line 1 has its interrupt enabled).
		{"SET_DIRECTION OUT with irq enabled", r(MsgTypeSetDirection, 1, uint32(DirectionOut))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBench(t, 4)
			b.ok(MsgTypeSetDirection, 1, uint32(DirectionIn))
			b.ok(MsgTypeSetIRQType, 1, uint32(IRQTypeEdgeBoth))
			b.ok(MsgTypeSetValue, 2, 1)
			b.ok(MsgTypeSetDirection, 2, uint32(DirectionOut))
			before, ctl := b.sim.Snapshot(), b.c.lines[:4:4]
			ctl = append([]lineState[int](nil), ctl...)

			resp := b.c.HandleRequest(tc.req, 64)
			if !bytes.Equal(resp, []byte{byte(StatusERR), 0}) {
				t.Fatalf("response %x, want ERR 0", resp)
			}
			if after := b.sim.Snapshot(); !reflect.DeepEqual(before, after) {
				t.Fatalf("backend changed:\n%+v\n%+v", before, after)
			}
			if !reflect.DeepEqual(ctl, b.c.lines) {
				t.Fatalf("device state changed:\n%+v\n%+v", ctl, b.c.lines)
			}
		})
	}
}

// The response is exactly as long as the driver expects: 2 bytes, or
// 1+gpio_names_size for GET_NAMES. When the writable buffer is smaller, the
// request is not executed and as much of an ERR response as fits is written:
// _virtio_gpio_req() checks res->status before line->rxlen, so the driver
// reports -EINVAL instead of waiting forever or reading stale bytes.
func TestResponseSize(t *testing.T) {
	b := newBench(t, 3, "a", "", "c") // names block "a\0\0c\0": 5 bytes
	names := Request{Type: MsgTypeGetNames}.Bytes()
	set := Request{Type: MsgTypeSetValue, GPIO: 0, Value: 1}.Bytes()
	badNames := []byte{byte(MsgTypeGetNames), 0, 1} // 3 bytes, type GET_NAMES
	tests := []struct {
		name string
		req  []byte
		cap  int
		want []byte
	}{
		{"names exact", names, 6, []byte("\x00a\x00\x00c\x00")},
		{"names larger buffer", names, 100, []byte("\x00a\x00\x00c\x00")},
		{"names short by one", names, 5, []byte{1, 0, 0, 0, 0}},
		{"names 2-byte buffer", names, 2, []byte{1, 0}},
		{"names 1-byte buffer", names, 1, []byte{1}},
		{"names no buffer", names, 0, []byte{}},
		{"names negative cap", names, -1, []byte{}},
		{"malformed names-typed", badNames, 100, []byte{1, 0, 0, 0, 0, 0}},
		{"set exact", set, 2, []byte{0, 0}},
		{"set larger buffer", set, 4096, []byte{0, 0}},
		{"set 1-byte buffer", set, 1, []byte{1}},
		{"set no buffer", set, 0, []byte{}},
		{"1-byte request", []byte{5}, 10, []byte{1, 0}},
	}
	for _, tc := range tests {
		resp := b.c.HandleRequest(tc.req, tc.cap)
		if !bytes.Equal(resp, tc.want) {
			t.Errorf("%s: %x, want %x", tc.name, resp, tc.want)
		}
		if n := min(max(tc.cap, 0), b.c.ResponseSize(tc.req)); len(resp) != n {
			t.Errorf("%s: %d bytes, ResponseSize says %d", tc.name, len(resp), n)
		}
	}
	// A short buffer means the request was not executed.
	if _, dir, _ := b.sim.Output(0); dir != DirectionNone {
		t.Fatal("request with a short response buffer executed")
	}
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionOut))
	if out, _, _ := b.sim.Output(0); out != 1 {
		t.Fatal("SET_VALUE with an exact buffer not kept")
	}
}

// Fields the spec fixes to 0 in a request (gpio and value of GET_NAMES,
// value of GET_DIRECTION and GET_VALUE) are ignored.
func TestReservedRequestFieldsIgnored(t *testing.T) {
	b := newBench(t, 2, "x")
	resp := b.c.HandleRequest(Request{Type: MsgTypeGetNames, GPIO: 0xffff, Value: 7}.Bytes(), 4)
	if !bytes.Equal(resp, []byte("\x00x\x00\x00")) {
		t.Fatalf("GET_NAMES with junk fields: %q", resp)
	}
	b.host(1, 1)
	if v := b.ok(MsgTypeGetValue, 1, 0xdead); v != 1 {
		t.Fatalf("GET_VALUE = %d", v)
	}
	if v := b.ok(MsgTypeGetDirection, 1, 0xdead); v != uint8(DirectionNone) {
		t.Fatalf("GET_DIRECTION = %d", v)
	}
}

func TestRequestEncoding(t *testing.T) {
	r := Request{Type: MsgTypeSetIRQType, GPIO: 0x1234, Value: 0x89abcdef}
	b := r.Bytes()
	if !bytes.Equal(b, []byte{6, 0, 0x34, 0x12, 0xef, 0xcd, 0xab, 0x89}) {
		t.Fatalf("Bytes() = %x", b)
	}
	got, err := ParseRequest(b)
	if err != nil || got != r {
		t.Fatalf("ParseRequest = %+v, %v", got, err)
	}
	if _, err := ParseRequest(b[:7]); err == nil {
		t.Fatal("7-byte request parsed")
	}
	cfg := Config{NGPIO: 0x0102, GPIONamesSize: 0x03040506}.Bytes()
	if want := [8]byte{2, 1, 0, 0, 6, 5, 4, 3}; cfg != want {
		t.Fatalf("Config.Bytes() = %x", cfg)
	}
	if got := binary.LittleEndian.Uint16(IRQRequest(0x0203)); got != 0x0203 {
		t.Fatal("IRQRequest")
	}
	for _, s := range []interface{ String() string }{
		MsgTypeGetNames, MsgType(99), StatusOK, StatusERR, Status(7), DirectionIn,
		Direction(9), IRQTypeEdgeBoth, IRQType(0x10), EventValid, EventStatus(3),
	} {
		if s.String() == "" {
			t.Fatalf("%#v has no name", s)
		}
	}
}
