package vhostuser

import (
	"bytes"
	"io"
	"testing"

	"github.com/gvmm/gvmm/devices/gpio"
)

// FuzzMessage feeds a stream of fuzzer-written bytes, delivered in
// chunks of a fuzzer-chosen size, to ReadMessage, decodes each message
// with every payload decoder, and has a session of a real gpio.Device
// handle it. Nothing may panic, and no message may hold more than
// MaxPayload bytes or MaxFDs descriptors. (The stream carries no
// descriptors, so no memory table is ever mapped; TestMalformed covers
// those.)
//
//	go test -run '^$' -fuzz FuzzMessage -fuzztime 2m -parallel 1 ./virtio/vhostuser
func FuzzMessage(f *testing.F) {
	seed := func(msgs ...[]byte) { f.Add(uint8(7), bytes.Join(msgs, nil)) }
	m := func(r Request, flags uint32, p []byte) []byte { return msgBytes(r, Version|flags, uint32(len(p)), p) }
	seed(m(GetFeatures, 0, nil), m(GetProtocolFeatures, 0, nil),
		m(SetProtocolFeatures, 0, u64Payload(ProtocolFeatures)), m(SetOwner, 0, nil),
		m(GetQueueNum, 0, nil), m(GetConfig, 0, ConfigSpace{Size: 8, Data: make([]byte, 8)}.Bytes()),
		m(SetFeatures, FlagNeedReply, u64Payload(wantFeatures)))
	seed(m(SetProtocolFeatures, 0, u64Payload(ProtocolFeatures)),
		m(SetVringNum, FlagNeedReply, state(0, 64)), m(SetVringBase, FlagNeedReply, state(1, 3)),
		m(SetVringAddr, FlagNeedReply, VringAddr{Index: 1, Desc: 0x1000, Used: 0x3000, Avail: 0x2000}.Bytes()),
		m(SetVringKick, FlagNeedReply, u64Payload(0x100)), m(SetVringCall, FlagNeedReply, u64Payload(0x101)),
		m(SetVringEnable, FlagNeedReply, state(0, 1)), m(GetVringBase, 0, state(0, 0)))
	seed(m(SetMemTable, FlagNeedReply, MemTableBytes([]MemoryRegion{{Size: 0x1000, UserAddr: 0x1000}})),
		m(SetConfig, 0, ConfigSpace{Offset: 2, Size: 2, Data: []byte{1, 2}}.Bytes()), m(ResetOwner, 0, nil))
	seed(msgBytes(SetConfig, Version, MaxPayload+1, nil))

	sim, err := gpio.NewSim(4, "a", "b")
	if err != nil {
		f.Fatal(err)
	}
	defer sim.Close()
	dev, err := gpio.NewDevice(sim)
	if err != nil {
		f.Fatal(err)
	}
	b := &Backend{Device: dev, Log: func(string) {}}

	f.Fuzz(func(t *testing.T, chunk uint8, data []byte) {
		r := &chunkReader{data: data, chunk: int(chunk)}
		s := newSession(b, io.Discard)
		defer s.teardown()
		for {
			msg, err := ReadMessage(r)
			if err != nil {
				return
			}
			if len(msg.Payload) > MaxPayload || len(msg.FDs) > MaxFDs || int(msg.Size) != len(msg.Payload) {
				t.Fatalf("message of %d bytes (size %d) and %d descriptors", len(msg.Payload), msg.Size, len(msg.FDs))
			}
			_, _ = msg.U64()
			_, _ = msg.VringState()
			_, _ = msg.VringAddr()
			_, _ = msg.MemTable()
			_, _ = msg.Config()
			_, _, _ = msg.VringFile()
			err = s.dispatch(msg)
			msg.CloseFDs()
			if err != nil {
				return
			}
		}
	})
}
