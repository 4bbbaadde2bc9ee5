package vhostuser

import (
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gvmm/gvmm/devices/gpio"
)

// raw writes a header as given (no Version added) and a payload.
func (f *frontEnd) raw(h Header, payload []byte, fds ...int) {
	f.t.Helper()
	hb := h.Bytes()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := f.c.WriteMsgUnix(append(hb[:], payload...), oob, nil); err != nil {
		f.t.Fatalf("sending %v: %v", h.Request, err)
	}
}

// outcome is what a malformed message gets.
type outcome int

const (
	closes      outcome = iota // the back end hangs up
	refused                    // a REPLY_ACK of 1; the connection goes on
	emptyConfig                // GET_CONFIG answered with no payload; it goes on
)

// regionsPayload is a memory table of the given regions.
func regionsPayload(r ...MemoryRegion) []byte { return MemTableBytes(r) }

// TestMalformed sends each malformed message on a connection of its own
// and checks that the back end answers with an error where the protocol
// has one, or hangs up, logs one line naming the request and the
// problem, closes every descriptor it was given, and goes on serving: the
// same Backend then serves a whole GPIO session.
func TestMalformed(t *testing.T) {
	r := newRig(t)
	g := newGuestRAM(t)
	efd := eventFD(t)
	half := uint64(testMemSize / 2)
	region := func(gpa, size, ua, off uint64) MemoryRegion {
		return MemoryRegion{GuestAddr: gpa, Size: size, UserAddr: ua, MmapOffset: off}
	}
	vaddr := func(desc uint64) []byte {
		return VringAddr{Index: 0, Desc: desc, Used: testUserBase + 0x2000, Avail: testUserBase + 0x1000}.Bytes()
	}
	started := func(fe *frontEnd) {
		fe.start(g, layOut(g), [2]uint16{})
	}
	memTable := func(fe *frontEnd) {
		fe.mustAck(SetMemTable, MemTableBytes(g.regions()), g.fd, g.fd)
	}
	nine := make([]MemoryRegion, 9)
	for i := range nine {
		nine[i] = region(uint64(i)<<16, 1<<16, testUserBase+uint64(i)<<16, uint64(i)<<16)
	}

	cases := []struct {
		name     string
		replyAck bool            // negotiate REPLY_ACK first
		setup    func(*frontEnd) // then this
		send     func(*frontEnd) // the message
		want     outcome
		log      string  // in the line logged
		closeW   bool    // half-close the front end's side after sending
		req      Request // named in the log line (0: not checked)
	}{
		{name: "payload past MaxPayload", want: closes, log: "payload of 1048576 bytes",
			send: func(f *frontEnd) { f.raw(Header{GetFeatures, Version, 1 << 20}, nil) }},
		{name: "version 2", want: closes, log: "version 2",
			send: func(f *frontEnd) { f.raw(Header{GetFeatures, 2, 0}, nil) }},
		{name: "REPLY flag on a request", want: closes, log: "flags 0x5",
			send: func(f *frontEnd) { f.raw(Header{SetOwner, Version | FlagReply, 0}, nil) }},
		{name: "unknown request", want: closes, log: "request 99: unknown",
			send: func(f *frontEnd) { f.send(99, 0, nil) }},
		{name: "unknown request, NEED_REPLY", replyAck: true, want: refused, log: "request 99: unknown",
			send: func(f *frontEnd) { f.send(99, FlagNeedReply, nil) }},
		{name: "unsupported request SET_LOG_FD with its fd", replyAck: true, want: refused, req: SetLogFD,
			send: func(f *frontEnd) { f.send(SetLogFD, FlagNeedReply, nil, efd) }},
		{name: "truncated payload", want: closes, log: "unexpected EOF", closeW: true,
			send: func(f *frontEnd) { f.raw(Header{SetFeatures, Version, 8}, []byte{1, 2, 3, 4}) }},
		{name: "too many descriptors", want: closes, log: "9 descriptors",
			send: func(f *frontEnd) {
				fds := make([]int, 9)
				for i := range fds {
					fds[i] = efd
				}
				f.send(SetMemTable, 0, regionsPayload(nine[:8]...), fds...)
			}},
		{name: "GET_FEATURES with a payload", want: closes, req: GetFeatures, log: "8 bytes, want none",
			send: func(f *frontEnd) { f.send(GetFeatures, 0, u64Payload(0)) }},
		{name: "GET_FEATURES with a descriptor", want: closes, req: GetFeatures, log: "1 descriptors, want none",
			send: func(f *frontEnd) { f.send(GetFeatures, 0, nil, efd) }},
		{name: "SET_FEATURES short", replyAck: true, want: refused, req: SetFeatures, log: "4 bytes, want 8",
			send: func(f *frontEnd) { f.send(SetFeatures, FlagNeedReply, []byte{1, 0, 0, 0}) }},
		{name: "SET_FEATURES not offered", replyAck: true, want: refused, req: SetFeatures, log: "not offered",
			send: func(f *frontEnd) { f.send(SetFeatures, FlagNeedReply, u64Payload(1<<40|1<<32)) }},
		{name: "SET_FEATURES not offered, no NEED_REPLY", replyAck: true, want: closes, req: SetFeatures, log: "not offered",
			send: func(f *frontEnd) { f.send(SetFeatures, 0, u64Payload(1<<40)) }},
		{name: "SET_PROTOCOL_FEATURES not offered", want: closes, req: SetProtocolFeatures, log: "not offered",
			send: func(f *frontEnd) { f.send(SetProtocolFeatures, 0, u64Payload(1<<5)) }},
		{name: "SET_VRING_NUM bad index", replyAck: true, want: refused, req: SetVringNum, log: "ring 2: no such ring",
			send: func(f *frontEnd) { f.send(SetVringNum, FlagNeedReply, state(2, 64)) }},
		{name: "SET_VRING_NUM not a power of two", replyAck: true, want: refused, req: SetVringNum, log: "size 48",
			send: func(f *frontEnd) { f.send(SetVringNum, FlagNeedReply, state(0, 48)) }},
		{name: "SET_VRING_NUM too large", replyAck: true, want: refused, req: SetVringNum, log: "size 65536",
			send: func(f *frontEnd) { f.send(SetVringNum, FlagNeedReply, state(1, 65536)) }},
		{name: "SET_VRING_NUM zero", replyAck: true, want: refused, req: SetVringNum, log: "size 0",
			send: func(f *frontEnd) { f.send(SetVringNum, FlagNeedReply, state(1, 0)) }},
		{name: "SET_VRING_NUM while started", replyAck: true, setup: started, want: refused, req: SetVringNum, log: "is started",
			send: func(f *frontEnd) { f.send(SetVringNum, FlagNeedReply, state(0, 32)) }},
		{name: "SET_VRING_BASE past 16 bits", replyAck: true, want: refused, req: SetVringBase, log: "base 65536",
			send: func(f *frontEnd) { f.send(SetVringBase, FlagNeedReply, state(0, 1<<16)) }},
		{name: "GET_VRING_BASE bad index", want: closes, req: GetVringBase, log: "ring 9: no such ring",
			send: func(f *frontEnd) { f.send(GetVringBase, 0, state(9, 0)) }},
		{name: "SET_VRING_KICK without its descriptor", replyAck: true, want: refused, req: SetVringKick, log: "0 descriptors, want 1",
			send: func(f *frontEnd) { f.send(SetVringKick, FlagNeedReply, u64Payload(0)) }},
		{name: "SET_VRING_KICK no-fd flag with a descriptor", replyAck: true, want: refused, req: SetVringKick, log: "1 descriptors, want 0",
			send: func(f *frontEnd) { f.send(SetVringKick, FlagNeedReply, u64Payload(0x100), efd) }},
		{name: "SET_VRING_KICK bad index", replyAck: true, want: refused, req: SetVringKick, log: "ring 2: no such ring",
			send: func(f *frontEnd) { f.send(SetVringKick, FlagNeedReply, u64Payload(2), efd) }},
		{name: "SET_VRING_KICK a regular file", replyAck: true, want: refused, req: SetVringKick, log: "not an eventfd or pipe",
			send: func(f *frontEnd) { f.send(SetVringKick, FlagNeedReply, u64Payload(0), g.fd) }},
		{name: "SET_VRING_CALL reserved bits", replyAck: true, want: refused, req: SetVringCall, log: "bits other than",
			send: func(f *frontEnd) { f.send(SetVringCall, FlagNeedReply, u64Payload(0x200), efd) }},
		{name: "SET_VRING_ERR bad index", replyAck: true, want: refused, req: SetVringErr, log: "ring 255: no such ring",
			send: func(f *frontEnd) { f.send(SetVringErr, FlagNeedReply, u64Payload(0xff), efd) }},
		{name: "SET_MEM_TABLE fewer descriptors than regions", replyAck: true, want: refused, req: SetMemTable, log: "2 regions, 1 descriptors",
			send: func(f *frontEnd) { f.send(SetMemTable, FlagNeedReply, MemTableBytes(g.regions()), g.fd) }},
		{name: "SET_MEM_TABLE no regions", replyAck: true, want: refused, req: SetMemTable, log: "0 regions",
			send: func(f *frontEnd) { f.send(SetMemTable, FlagNeedReply, MemTableBytes(nil)) }},
		{name: "SET_MEM_TABLE nine regions", replyAck: true, want: refused, req: SetMemTable, log: "9 regions",
			send: func(f *frontEnd) {
				f.send(SetMemTable, FlagNeedReply, regionsPayload(nine...), g.fd, g.fd, g.fd, g.fd, g.fd, g.fd, g.fd, g.fd)
			}},
		{name: "SET_MEM_TABLE payload longer than its regions", replyAck: true, want: refused, req: SetMemTable, log: "want 40",
			send: func(f *frontEnd) {
				f.send(SetMemTable, FlagNeedReply, append(regionsPayload(region(0, half, testUserBase, 0)), 0), g.fd)
			}},
		{name: "SET_MEM_TABLE zero size", replyAck: true, want: refused, req: SetMemTable, log: "size 0",
			send: func(f *frontEnd) {
				f.send(SetMemTable, FlagNeedReply, regionsPayload(region(0, 0, testUserBase, 0)), g.fd)
			}},
		{name: "SET_MEM_TABLE wraps", replyAck: true, want: refused, req: SetMemTable, log: "wraps around",
			send: func(f *frontEnd) {
				f.send(SetMemTable, FlagNeedReply, regionsPayload(region(^uint64(0)-0xfff, 0x2000, testUserBase, 0)), g.fd)
			}},
		{name: "SET_MEM_TABLE guest addresses overlap", replyAck: true, want: refused, req: SetMemTable, log: "overlap in guest",
			send: func(f *frontEnd) {
				f.send(SetMemTable, FlagNeedReply, regionsPayload(region(0, half, testUserBase, 0),
					region(half-0x1000, half, testUserBase+testUserGap, half)), g.fd, g.fd)
			}},
		{name: "SET_MEM_TABLE user addresses overlap", replyAck: true, want: refused, req: SetMemTable, log: "overlap in user",
			send: func(f *frontEnd) {
				f.send(SetMemTable, FlagNeedReply, regionsPayload(region(half, half, testUserBase+0x1000, half),
					region(0, half, testUserBase, 0)), g.fd, g.fd)
			}},
		{name: "SET_MEM_TABLE past the end of the file", replyAck: true, want: refused, req: SetMemTable, log: "past the end of its file",
			send: func(f *frontEnd) {
				f.send(SetMemTable, FlagNeedReply, regionsPayload(region(0, testMemSize, testUserBase, 0x1000)), g.fd)
			}},
		{name: "SET_MEM_TABLE not a regular file", replyAck: true, want: refused, req: SetMemTable, log: "not a regular file",
			send: func(f *frontEnd) {
				f.send(SetMemTable, FlagNeedReply, regionsPayload(region(0, 0x1000, testUserBase, 0)), efd)
			}},
		{name: "SET_MEM_TABLE leaving the running rings out", replyAck: true, setup: started, want: refused, req: SetMemTable, log: "would leave guest memory",
			send: func(f *frontEnd) {
				f.send(SetMemTable, FlagNeedReply, regionsPayload(region(0, half, testUserBase, 0)), g.fd)
			}},
		{name: "SET_VRING_ADDR outside the table", replyAck: true, setup: memTable, want: refused, req: SetVringAddr, log: "in no region",
			send: func(f *frontEnd) { f.send(SetVringAddr, FlagNeedReply, vaddr(testUserBase+half)) }},
		{name: "SET_VRING_ADDR short", replyAck: true, want: refused, req: SetVringAddr, log: "32 bytes, want 40",
			send: func(f *frontEnd) { f.send(SetVringAddr, FlagNeedReply, vaddr(testUserBase)[:32]) }},
		{name: "SET_VRING_ADDR unknown flags", replyAck: true, want: refused, req: SetVringAddr, log: "flags 0x2",
			send: func(f *frontEnd) {
				p := vaddr(testUserBase)
				binary.LittleEndian.PutUint32(p[4:], 2)
				f.send(SetVringAddr, FlagNeedReply, p)
			}},
		{name: "ring outside guest memory at start", replyAck: true, want: refused, req: SetVringEnable, log: "device not started",
			setup: func(f *frontEnd) {
				memTable(f)
				f.mustAck(SetFeatures, u64Payload(wantFeatures))
				// The used ring at the very end of the first region's user
				// range translates, but the ring does not fit there.
				f.mustAck(SetVringAddr, VringAddr{Index: 0, Desc: testUserBase, Avail: testUserBase + 0x1000,
					Used: testUserBase + half - 4}.Bytes())
				f.mustAck(SetVringKick, u64Payload(0), efd)
			},
			send: func(f *frontEnd) { f.send(SetVringEnable, FlagNeedReply, state(0, 1)) }},
		{name: "SET_VRING_ENABLE 2", replyAck: true, want: refused, req: SetVringEnable, log: "enable 2",
			setup: func(f *frontEnd) { f.mustAck(SetFeatures, u64Payload(wantFeatures)) },
			send:  func(f *frontEnd) { f.send(SetVringEnable, FlagNeedReply, state(0, 2)) }},
		{name: "SET_VRING_ENABLE without protocol features", replyAck: true, want: refused, req: SetVringEnable, log: "not negotiated",
			send: func(f *frontEnd) { f.send(SetVringEnable, FlagNeedReply, state(0, 1)) }},
		{name: "GET_CONFIG too large", want: emptyConfig, req: GetConfig, log: "size 300",
			send: func(f *frontEnd) {
				f.send(GetConfig, 0, ConfigSpace{Size: 300, Data: make([]byte, 300)}.Bytes())
			}},
		{name: "GET_CONFIG past the config space", want: emptyConfig, req: GetConfig, log: "offset 250 size 8",
			send: func(f *frontEnd) {
				f.send(GetConfig, 0, ConfigSpace{Offset: 250, Size: 8, Data: make([]byte, 8)}.Bytes())
			}},
		{name: "GET_CONFIG short", want: emptyConfig, req: GetConfig, log: "config size 8",
			send: func(f *frontEnd) { f.send(GetConfig, 0, ConfigSpace{Size: 8}.Bytes()) }},
		{name: "SET_CONFIG bad flags", replyAck: true, want: refused, req: SetConfig, log: "flags 0x7",
			send: func(f *frontEnd) {
				f.send(SetConfig, FlagNeedReply, ConfigSpace{Size: 1, Flags: 7, Data: []byte{0}}.Bytes())
			}},
	}

	// One good session first, so that everything the runtime opens once
	// is open before the descriptors are counted.
	goodSession(t, r)
	before := openFDs(t)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := connect(t, r.b)
			fe := s.fe
			if c.replyAck {
				fe.send(SetProtocolFeatures, 0, u64Payload(ProtocolFeatures))
			}
			if c.setup != nil {
				c.setup(fe)
			}
			n := r.log.count()
			c.send(fe)
			if c.closeW {
				_ = fe.c.CloseWrite()
			}
			switch c.want {
			case closes:
				// A hang-up with unread data is a reset.
				if _, _, err := fe.recv(); !errors.Is(err, io.EOF) && !errors.Is(err, unix.ECONNRESET) {
					t.Fatalf("read after the message: %v, want EOF or ECONNRESET (the back end hangs up)", err)
				}
				if err := s.hangUp(); err == nil {
					t.Error("ServeConn returned nil")
				}
			case refused:
				h, p, err := fe.recv()
				if err != nil || len(p) != 8 || binary.LittleEndian.Uint64(p) == 0 {
					t.Fatalf("reply %+v %x %v, want a REPLY_ACK of non-zero", h, p, err)
				}
				if got := fe.callU64(GetQueueNum); got != 2 {
					t.Fatalf("the connection does not go on: GET_QUEUE_NUM = %d", got)
				}
			case emptyConfig:
				h, p, err := fe.recv()
				if err != nil || h.Request != GetConfig || len(p) != 0 {
					t.Fatalf("reply %+v %x %v, want an empty GET_CONFIG", h, p, err)
				}
				if got := fe.callU64(GetQueueNum); got != 2 {
					t.Fatalf("the connection does not go on: GET_QUEUE_NUM = %d", got)
				}
			}
			if err := s.hangUp(); c.want != closes && err != nil {
				t.Errorf("ServeConn: %v", err)
			}
			lines, _ := r.log.since(n)
			found := false
			for _, l := range lines {
				if strings.Contains(l, c.log) && (c.req == 0 || strings.Contains(l, c.req.String())) && !strings.Contains(l, "\n") {
					found = true
				}
			}
			if !found {
				t.Errorf("no log line with %q (%v); logged:\n%s", c.log, c.req, strings.Join(lines, "\n"))
			}
		})
	}

	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open after the malformed messages, %d before", after, before)
	}
	goodSession(t, r)
}

// goodSession runs a short GPIO session on a new connection of r: the
// back end still serves.
func goodSession(t *testing.T, r *rig) {
	t.Helper()
	s := connect(t, r.b)
	s.fe.handshake()
	g := newGuestRAM(t)
	v := s.fe.start(g, layOut(g), [2]uint16{})
	gpioOK(t, v[0], gpio.MsgTypeSetDirection, 7, uint32(gpio.DirectionOut))
	gpioOK(t, v[0], gpio.MsgTypeSetValue, 7, 1)
	if st, _ := r.sim.Line(7); st.Level != 1 {
		t.Fatalf("line 7 after SET_VALUE: %+v", st)
	}
	if err := s.hangUp(); err != nil {
		t.Fatal(err)
	}
}
