package vhostuser

import (
	"encoding/binary"
	"testing"
)

// TestNeedReply: every message with NEED_REPLY gets exactly one reply:
// its own where the request has one (success or not), a REPLY_ACK u64
// otherwise (0 done, non-zero refused), whatever was negotiated when the
// message arrived, and whatever the message itself changes.
func TestNeedReply(t *testing.T) {
	r := newRig(t)
	ack := func(v uint64) []byte { return u64Payload(v) }
	cases := []struct {
		name    string
		setup   func(*frontEnd)
		req     Request
		payload []byte
		want    []byte // the reply's payload; nil: check only its size
		size    int
	}{
		{name: "SET_OWNER before REPLY_ACK was negotiated", req: SetOwner, want: ack(0)},
		{name: "SET_PROTOCOL_FEATURES acking REPLY_ACK", req: SetProtocolFeatures,
			payload: u64Payload(ProtocolFeatures), want: ack(0)},
		{name: "SET_PROTOCOL_FEATURES dropping REPLY_ACK",
			setup: func(f *frontEnd) { f.send(SetProtocolFeatures, 0, u64Payload(ProtocolFeatures)) },
			req:   SetProtocolFeatures, payload: u64Payload(ProtocolFeatures &^ (1 << ProtocolFReplyAck)), want: ack(0)},
		{name: "refused before REPLY_ACK was negotiated", req: SetVringNum, payload: state(7, 64), want: ack(1)},
		{name: "refused with REPLY_ACK",
			setup: func(f *frontEnd) { f.send(SetProtocolFeatures, 0, u64Payload(ProtocolFeatures)) },
			req:   SetVringNum, payload: state(7, 64), want: ack(1)},
		{name: "GET_FEATURES: its own reply", req: GetFeatures, size: 8},
		{name: "GET_QUEUE_NUM: its own reply", req: GetQueueNum, want: u64Payload(2)},
		{name: "GET_VRING_BASE: its own reply", req: GetVringBase, payload: state(1, 0), want: state(1, 0)},
		{name: "GET_CONFIG refused: its own empty reply", req: GetConfig,
			payload: ConfigSpace{Offset: 300}.Bytes(), want: []byte{}},
		{name: "GET_CONFIG: its own reply", req: GetConfig,
			payload: ConfigSpace{Size: 2, Data: make([]byte, 2)}.Bytes(),
			want:    ConfigSpace{Size: 2, Data: binary.LittleEndian.AppendUint16(nil, 8)}.Bytes()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := connect(t, r.b)
			fe := s.fe
			if c.setup != nil {
				c.setup(fe)
			}
			fe.send(c.req, FlagNeedReply, c.payload)
			h, p, err := fe.recv()
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			switch {
			case h.Request != c.req:
				t.Errorf("reply to %v, want %v", h.Request, c.req)
			case c.want != nil && string(p) != string(c.want):
				t.Errorf("reply %x, want %x", p, c.want)
			case c.want == nil && len(p) != c.size:
				t.Errorf("reply of %d bytes, want %d", len(p), c.size)
			}
			// Nothing more was sent: the next reply is the next request's.
			if n := fe.callU64(GetQueueNum); n != 2 {
				t.Errorf("GET_QUEUE_NUM after it: %d", n)
			}
		})
	}
	goodSession(t, r)
}
