package virtio_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// FuzzQueue input: a header, then an image of guest memory (memSize
// bytes, zero-padded).
//
//	[0]     queue size: 1 << (b % 5)
//	[1]     bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 probe ranges
//	        (no RangeChecker), bit 3 memory that claims 1 TiB
//	[2:4]   descriptor table address
//	[4:6]   available ring address
//	[6:8]   used ring address
//	[8:10]  avail idx the "driver" writes before the second round
const fuzzQueueHeader = 10

// queueSeed encodes a fuzz input from a driver-side queue of size 8 at
// 0x100, built by build.
func queueSeed(flags byte, build func(d *virtiotest.DriverQueue)) []byte {
	mem := virtiotest.NewMem(memSize)
	d := virtiotest.NewDriverQueue(mem, 0x100, 8)
	d.EventIdx = flags&1 != 0
	build(d)
	h := make([]byte, fuzzQueueHeader)
	h[0] = 3
	h[1] = flags
	binary.LittleEndian.PutUint16(h[2:], uint16(d.DescAddr))
	binary.LittleEndian.PutUint16(h[4:], uint16(d.AvailAddr))
	binary.LittleEndian.PutUint16(h[6:], uint16(d.UsedAddr))
	binary.LittleEndian.PutUint16(h[8:], d.AvailIdx()+2)
	// Trailing zeros add nothing: the image is zero-padded.
	end := len(mem)
	for end > 0 && mem[end-1] == 0 {
		end--
	}
	return append(h, mem[:end]...)
}

func FuzzQueue(f *testing.F) {
	for _, tt := range chainCases() {
		flags := byte(2)
		if tt.noIndirect {
			flags = 0
		}
		if tt.big {
			flags |= 8
		}
		f.Add(queueSeed(flags, func(d *virtiotest.DriverQueue) { tt.setup(d) }))
		f.Add(queueSeed(flags|5, func(d *virtiotest.DriverQueue) { tt.setup(d) }))
	}
	f.Add(queueSeed(3, func(d *virtiotest.DriverQueue) {
		d.Add([][]byte{[]byte("req")}, []int{4})
		d.AddIndirect([][]byte{[]byte("a"), []byte("b")}, []int{1, 2})
		d.Add(nil, []int{8, 8})
	}))
	f.Add(queueSeed(2, func(d *virtiotest.DriverQueue) {
		d.Add([][]byte{{1}}, nil)
		d.SetAvailIdx(40) // corrupt
	}))
	f.Fuzz(fuzzQueue)
}

func fuzzQueue(t *testing.T, data []byte) {
	if len(data) < fuzzQueueHeader {
		return
	}
	h := data[:fuzzQueueHeader]
	mem := virtiotest.NewMem(memSize)
	copy(mem, data[fuzzQueueHeader:])
	var gm virtio.GuestMemory = mem
	switch {
	case h[1]&8 != 0:
		gm = bigMem{mem}
	case h[1]&4 != 0:
		gm = plainMem{mem}
	}
	size := uint16(1) << (h[0] % 5)
	q := &virtio.Queue{
		MaxSize:      16,
		Size:         size,
		DescAddr:     uint64(binary.LittleEndian.Uint16(h[2:])),
		DriverAddr:   uint64(binary.LittleEndian.Uint16(h[4:])),
		DeviceAddr:   uint64(binary.LittleEndian.Uint16(h[6:])),
		Ready:        true,
		EventIdx:     h[1]&1 != 0,
		IndirectDesc: h[1]&2 != 0,
	}
	if q.Validate(gm) != nil || q.Validate(mem) != nil {
		return // bigMem lies about memory; the rings at least are real
	}
	pushes := 0
	for round := range 2 {
		for range 3*int(size) + 2 {
			availIdx, _ := readU16(mem, q.DriverAddr+2)
			corrupt := availIdx-q.LastAvail() > q.Size
			c, err := q.Pop(gm)
			if corrupt && (c != nil || !errors.Is(err, virtio.ErrAvailIdx)) {
				t.Fatalf("avail idx %d, device at %d, size %d: Pop = %v, %v", availIdx, q.LastAvail(), q.Size, c, err)
			}
			if c == nil {
				if err != nil && !errors.Is(err, virtio.ErrAvailIdx) {
					t.Fatalf("queue error %v is not ErrAvailIdx", err)
				}
				break
			}
			if err != nil {
				if c.Readable != nil || c.Writable != nil {
					t.Fatalf("malformed chain %d (%v) has buffers", c.Head, err)
				}
			} else {
				checkChain(t, q, gm, c)
			}
			written := uint32(0)
			if err == nil {
				written = exercise(t, gm, c)
			}
			if err := q.Push(gm, c.Head, written); err != nil {
				t.Fatalf("Push(%d): %v", c.Head, err)
			}
			pushes++
			if got, _ := usedIdx(mem, q); got != q.NextUsed() || q.NextUsed() != uint16(pushes) {
				t.Fatalf("after %d pushes: used idx %d in memory, %d in queue", pushes, got, q.NextUsed())
			}
		}
		q.NeedsInterrupt(gm)
		if round == 0 {
			// The driver adds more (or corrupts the index).
			mem.WriteAt(h[8:10], q.DriverAddr+2)
		}
	}
}

func usedIdx(mem virtiotest.Mem, q *virtio.Queue) (uint16, error) {
	return readU16(mem, q.DeviceAddr+2)
}

func readU16(mem virtiotest.Mem, addr uint64) (uint16, error) {
	var b [2]byte
	err := mem.ReadAt(b[:], addr)
	return binary.LittleEndian.Uint16(b[:]), err
}

// checkChain checks what Pop promises about a well-formed chain.
func checkChain(t *testing.T, q *virtio.Queue, gm virtio.GuestMemory, c *virtio.Chain) {
	if c.Head >= q.Size {
		t.Fatalf("head %d of a queue of %d accepted", c.Head, q.Size)
	}
	if n := len(c.Readable) + len(c.Writable); n > int(q.Size) {
		t.Fatalf("chain of %d buffers in a queue of %d", n, q.Size)
	}
	if c.ReadableLen()+c.WritableLen() > 1<<32 {
		t.Fatalf("chain of %d bytes", c.ReadableLen()+c.WritableLen())
	}
	rc, ok := gm.(virtio.RangeChecker)
	if !ok {
		rc = gm.(plainMem).m
	}
	for _, b := range append(c.Readable, c.Writable...) {
		if b.Len == 0 {
			t.Fatalf("zero-length buffer %#x kept", b.Addr)
		}
		if err := rc.CheckRange(b.Addr, uint64(b.Len)); err != nil {
			t.Fatalf("buffer %#x+%d accepted: %v", b.Addr, b.Len, err)
		}
	}
}

// exercise reads the request and writes a response, as a device would,
// and returns the number of bytes written.
func exercise(t *testing.T, gm virtio.GuestMemory, c *virtio.Chain) uint32 {
	req := make([]byte, min(c.ReadableLen(), 1<<16))
	n, err := c.Read(gm, req)
	if err == nil && uint64(n) != uint64(len(req)) {
		t.Fatalf("Read %d of %d bytes without error", n, len(req))
	}
	resp := make([]byte, min(c.WritableLen(), 64))
	for i := range resp {
		resp[i] = byte(i)
	}
	n, err = c.Write(gm, resp)
	if err == nil && n != len(resp) {
		t.Fatalf("Write %d of %d bytes without error", n, len(resp))
	}
	if c.WritableLen() < 1<<16 {
		if _, err := c.Write(gm, make([]byte, c.WritableLen()+1)); !errors.Is(err, virtio.ErrNoSpace) {
			t.Fatalf("Write past the writable space: %v", err)
		}
	}
	return uint32(n)
}

// fuzzDevice is a dummyDevice that records broken promises of the
// transport.
type fuzzDevice struct {
	*dummyDevice
	offered    uint64
	violations []string
}

func (d *fuzzDevice) violate(format string, args ...any) {
	d.violations = append(d.violations, fmt.Sprintf(format, args...))
}

func (d *fuzzDevice) Activate(mem virtio.GuestMemory, irq virtio.Interrupt, queues []*virtio.Queue, features uint64) error {
	if features&version1 == 0 || features&^d.offered != 0 {
		d.violate("activated with features %#x, offered %#x", features, d.offered)
	}
	if len(queues) != len(d.sizes) {
		d.violate("activated with %d queues", len(queues))
	}
	for i, q := range queues {
		if q == nil {
			continue
		}
		if err := q.Validate(mem); err != nil || !q.Ready || q.MaxSize != d.sizes[i] {
			d.violate("queue %d activated: %+v, %v", i, q, err)
		}
	}
	return d.dummyDevice.Activate(mem, irq, queues, features)
}

func (d *fuzzDevice) Notify(q int) {
	s := d.snapshot()
	if !s.active || q < 0 || q >= len(s.queues) || s.queues[q] == nil {
		d.violate("notify %d: active %v, queues %v", q, s.active, s.queues)
	}
	d.dummyDevice.Notify(q)
}

// FuzzMMIO input: [0] n, then 16*n bytes of guest memory, then register
// operations of 7 bytes each:
//
//	[0]    kind: bits 0-2 operation (see below), bit 3 align offset to 4
//	[1:3]  offset, modulo MMIOSize
//	[3:7]  value
//
// Operations: 0-3 write of 4, 4, 1, 2 bytes; 4-5 read of 4, 8 bytes;
// 6 Signal(value) from the device; 7 Notify(value % 4) from an ioeventfd.
func FuzzMMIO(f *testing.F) {
	op := func(kind byte, off uint16, v uint32) []byte {
		b := []byte{kind, byte(off), byte(off >> 8), 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(b[3:], v)
		return b
	}
	w := func(off uint16, v uint32) []byte { return op(0, off, v) }
	r := func(off uint16) []byte { return op(4, off, 0) }
	ring := func(size uint16, base uint64) []byte {
		return append(append(append(append(
			w(virtio.RegQueueNum, uint32(size)),
			w(virtio.RegQueueDescLow, uint32(base))...),
			w(virtio.RegQueueDriverLow, uint32(base)+16*uint32(size))...),
			w(virtio.RegQueueDeviceLow, uint32(base)+16*uint32(size)+256)...),
			w(virtio.RegQueueReady, 1)...)
	}
	bringUp := func(features uint64) []byte {
		var s []byte
		for _, b := range [][]byte{
			w(virtio.RegStatus, 0), w(virtio.RegStatus, 1), w(virtio.RegStatus, 3),
			w(virtio.RegDeviceFeaturesSel, 1), r(virtio.RegDeviceFeatures),
			w(virtio.RegDriverFeaturesSel, 1), w(virtio.RegDriverFeatures, uint32(features>>32)),
			w(virtio.RegDriverFeaturesSel, 0), w(virtio.RegDriverFeatures, uint32(features)),
			w(virtio.RegStatus, 0xb), r(virtio.RegStatus),
			w(virtio.RegQueueSel, 0), ring(8, 0x100),
			w(virtio.RegQueueSel, 1), ring(4, 0x800),
			w(virtio.RegStatus, 0xf),
			w(virtio.RegQueueNotify, 0), w(virtio.RegQueueNotify, 1),
			op(6, 0, 3), r(virtio.RegInterruptStatus), w(virtio.RegInterruptACK, 3),
			r(virtio.RegConfig), op(5, virtio.RegConfig+2, 0), op(2, virtio.RegConfig+1, 9),
			op(7, 0, 0),
		} {
			s = append(s, b...)
		}
		return s
	}
	all := uint64(version1 | 1<<virtio.RingFEventIdx | 1<<virtio.RingFIndirectDesc | 1<<3)
	for _, ops := range [][]byte{
		bringUp(version1),
		bringUp(all),
		bringUp(1 << 3), // refused: no VERSION_1
		append(bringUp(all), w(virtio.RegStatus, 0)...),
		append(bringUp(version1), w(virtio.RegStatus, 0x8f)...),
	} {
		f.Add(append([]byte{0}, ops...))
	}
	// Every register read, and a queue the device must refuse.
	var reads []byte
	for off := uint16(0); off < 0x110; off += 4 {
		reads = append(reads, r(off)...)
	}
	f.Add(append([]byte{0}, reads...))
	bad := append(bringUp(all), w(virtio.RegStatus, 0)...)
	bad = append(bad, w(virtio.RegStatus, 1)...)
	bad = append(bad, w(virtio.RegStatus, 3)...)
	bad = append(bad, w(virtio.RegDriverFeaturesSel, 1)...)
	bad = append(bad, w(virtio.RegDriverFeatures, 1)...)
	bad = append(bad, w(virtio.RegStatus, 0xb)...)
	bad = append(bad, ring(3, 0x100)...)
	bad = append(bad, w(virtio.RegStatus, 0xf)...)
	f.Add(append([]byte{0}, append(bad, reads...)...))
	// With a request waiting in queue 0.
	mem := virtiotest.NewMem(memSize)
	d := virtiotest.NewDriverQueue(mem, 0x100, 8)
	d.Add([][]byte{[]byte("ping")}, []int{4})
	d.AddIndirect([][]byte{[]byte("pong")}, []int{4})
	img := mem[:0x300]
	f.Add(append(append([]byte{byte(len(img) / 16)}, img...), bringUp(all)...))
	f.Fuzz(fuzzMMIO)
}

func fuzzMMIO(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	mem := virtiotest.NewMem(memSize)
	n := min(int(data[0])*16, len(data)-1)
	copy(mem, data[1:1+n])
	ops := data[1+n:]

	dev := &fuzzDevice{dummyDevice: newDummy()}
	dev.offered = dev.features&(1<<24-1|^uint64(1<<50-1)) | virtio.TransportFeatures
	raised, signals := 0, 0
	m := virtio.NewMMIO(dev, mem, func() { raised++ })
	read32 := func(off uint64) uint32 {
		var b [4]byte
		m.Read(off, b[:])
		return binary.LittleEndian.Uint32(b[:])
	}
	for ; len(ops) >= 7; ops = ops[7:] {
		kind := ops[0]
		off := uint64(binary.LittleEndian.Uint16(ops[1:])) % virtio.MMIOSize
		if kind&8 != 0 {
			off &^= 3
		}
		v := binary.LittleEndian.Uint32(ops[3:])
		var b [8]byte
		binary.LittleEndian.PutUint32(b[:], v)
		switch kind & 7 {
		case 0:
			m.Write(off, b[:4])
		case 1:
			m.Write(off&^3, b[:4])
		case 2:
			m.Write(off, b[:1])
		case 3:
			m.Write(off, b[:2])
		case 4:
			m.Read(off, b[:4])
		case 5:
			m.Read(off, b[:8])
		case 6:
			if dev.snapshot().active {
				m.Signal(v)
				if v&3 != 0 {
					signals++
				}
			}
		case 7:
			m.Notify(int(v % 4))
		}

		// Invariants after every operation.
		if len(dev.violations) > 0 {
			t.Fatalf("after op %x at %#x: %v", kind, off, dev.violations)
		}
		if read32(virtio.RegMagicValue) != virtio.MagicValue || read32(virtio.RegVersion) != 2 {
			t.Fatal("identity registers changed")
		}
		status := read32(virtio.RegStatus)
		if status&^0xff != 0 || status&0x30 != 0 {
			t.Fatalf("status %#x has undefined bits", status)
		}
		if status&virtio.StatusFeaturesOK != 0 && status&(virtio.StatusAcknowledge|virtio.StatusDriver) != 3 {
			t.Fatalf("status %#x: FEATURES_OK without ACKNOWLEDGE|DRIVER", status)
		}
		if status&virtio.StatusDriverOK != 0 && status&virtio.StatusFeaturesOK == 0 {
			t.Fatalf("status %#x: DRIVER_OK without FEATURES_OK", status)
		}
		s := dev.snapshot()
		if s.active && status&virtio.StatusDriverOK == 0 {
			t.Fatalf("device active in status %#x", status)
		}
		if isr := read32(virtio.RegInterruptStatus); isr&^3 != 0 {
			t.Fatalf("InterruptStatus %#x", isr)
		}
		if kind&7 <= 1 && off&^3 == virtio.RegStatus && v == 0 {
			if status != 0 || read32(virtio.RegInterruptStatus) != 0 || s.active {
				t.Fatalf("after reset: status %#x, active %v", status, s.active)
			}
			for q := range uint32(3) {
				m.Write(virtio.RegQueueSel, binary.LittleEndian.AppendUint32(nil, q))
				if read32(virtio.RegQueueReady) != 0 {
					t.Fatalf("queue %d ready after reset", q)
				}
			}
			m.Write(virtio.RegQueueSel, []byte{0, 0, 0, 0})
		}
	}
	if raised < signals {
		t.Fatalf("%d signals raised the line %d times", signals, raised)
	}
}
