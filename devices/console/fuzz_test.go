package console

import (
	"bytes"
	"context"
	"testing"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// The memory layout of FuzzDevice: the receiveq's rings at fuzzRxBase,
// the transmitq's at fuzzTxBase, each laid out as virtiotest.DriverQueue
// does (descriptors, avail ring, used ring), buffers anywhere.
const (
	fuzzMemSize = 0x2000
	fuzzRxBase  = 0x0
	fuzzTxBase  = 0x800
)

// FuzzDevice serves rings the fuzzer writes, both queues, through the
// Device's own drain: guest memory is the fuzzer's bytes, with a receiveq
// and a transmitq whose sizes, features and contents (descriptors, avail
// rings, buffers) it chooses, and hostLen bytes of host input pending. It
// checks that nothing panics or hangs, that every chain taken from a
// queue whose ring did not break is returned, that the pending host bytes
// are what remains of the host's input after a prefix was delivered, and
// that no write to the host's writer exceeds the piece size.
//
// Each new interesting input is minimized, up to -fuzzminimizetime (60 s by
// default): with a single worker the exec count stands still meanwhile.
//
//	go test -run '^$' -fuzz FuzzDevice -fuzztime 30s -fuzzminimizetime 5s ./devices/console
func FuzzDevice(f *testing.F) {
	// Seeds in the layout of virtiotest.DriverQueue: a receiveq of 8
	// with a one-buffer, a two-buffer and an indirect chain, a transmitq
	// of 4 with a direct and an indirect chain.
	mem := virtiotest.NewMem(fuzzMemSize)
	rx := virtiotest.NewDriverQueue(mem[:fuzzTxBase], fuzzRxBase, 8)
	tx := virtiotest.NewDriverQueue(mem, fuzzTxBase, 4)
	rx.Add(nil, []int{4})
	rx.Add(nil, []int{2, 3})
	rx.AddIndirect(nil, []int{1, 1, 1})
	tx.Add([][]byte{[]byte("hello"), []byte(", world\n")}, nil)
	tx.AddIndirect([][]byte{[]byte("ab"), []byte("cd")}, []int{2})
	f.Add(byte(0x23), byte(0x03), uint16(12), []byte(mem))
	f.Add(byte(0x23), byte(0x01), uint16(3), []byte(mem)) // without indirect descriptors
	f.Add(byte(0x23), byte(0x02), uint16(0), []byte(mem)) // nothing pending
	rx.SetAvailIdx(rx.AvailIdx() + 9)                     // a corrupt ring
	f.Add(byte(0x23), byte(0x03), uint16(100), []byte(mem))

	f.Fuzz(func(t *testing.T, sizes, flags byte, hostLen uint16, data []byte) {
		mem := virtiotest.NewMem(fuzzMemSize)
		copy(mem, data)
		out := &outBuf{}
		d := New(out)
		host := pattern(int(hostLen % 4096))
		d.Write(host)
		irq := &virtiotest.Interrupt{}
		queue := func(sizeBits byte, base uint64) *virtio.Queue {
			size := uint16(1) << (sizeBits % 5) // 1 to 16
			avail := base + virtio.DescSize*uint64(size)
			used := (avail + virtio.AvailRingSize(size, true) + 3) &^ 3
			return &virtio.Queue{
				MaxSize: QueueSize, Size: size, Ready: true,
				DescAddr: base, DriverAddr: avail, DeviceAddr: used,
				EventIdx: flags&1 != 0, IndirectDesc: flags&2 != 0,
			}
		}
		// The device as Activate leaves it, served here synchronously.
		d.mem, d.irq = mem, irq
		d.queues = [2]*virtio.Queue{queue(sizes&0xf, fuzzRxBase), queue(sizes>>4, fuzzTxBase)}
		for _, q := range d.queues {
			if err := q.Validate(mem); err != nil {
				t.Fatalf("layout: %v", err)
			}
		}
		// Two rounds: a drain stops after a queue size of chains.
		ctx := context.Background()
		for range 2 {
			d.drain(ctx, ReceiveQueue)
			d.drain(ctx, TransmitQueue)
		}
		for qi, q := range d.queues {
			if !d.broken[qi] && q.NextUsed() != q.LastAvail() {
				t.Fatalf("%s: %d chains taken, %d returned", queueNames[qi], q.LastAvail(), q.NextUsed())
			}
		}
		if d.broken != [2]bool{} && !irq.NeedsReset() {
			t.Fatal("a broken ring without DEVICE_NEEDS_RESET")
		}
		if !bytes.Equal(d.pending, host[len(host)-len(d.pending):]) {
			t.Fatalf("%d bytes pending are not the end of the %d written", len(d.pending), len(host))
		}
		if out.maxWrite > maxPiece {
			t.Fatalf("a write of %d bytes to out", out.maxWrite)
		}
	})
}
