package virtio_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

const memSize = 4096

func newQueue(t *testing.T, size uint16, eventIdx bool) (*virtiotest.DriverQueue, *virtio.Queue, virtiotest.Mem) {
	t.Helper()
	mem := virtiotest.NewMem(memSize)
	d := virtiotest.NewDriverQueue(mem, 0x100, size)
	d.EventIdx = eventIdx
	q := d.Queue()
	if err := q.Validate(mem); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return d, q, mem
}

func TestValidate(t *testing.T) {
	mem := virtiotest.NewMem(memSize)
	good := virtio.Queue{MaxSize: 16, Size: 16, DescAddr: 0x100, DriverAddr: 0x200, DeviceAddr: 0x300}
	// A used ring ending exactly at the end of memory, without avail_event.
	usedAtEnd := memSize - virtio.UsedRingSize(16, false)
	tests := []struct {
		name   string
		modify func(q *virtio.Queue)
		want   error
	}{
		{"valid", func(q *virtio.Queue) {}, nil},
		{"size 1", func(q *virtio.Queue) { q.Size = 1 }, nil},
		{"size 0", func(q *virtio.Queue) { q.Size = 0 }, virtio.ErrQueueSize},
		{"size 12 not a power of two", func(q *virtio.Queue) { q.Size = 12 }, virtio.ErrQueueSize},
		{"size above max", func(q *virtio.Queue) { q.Size = 32 }, virtio.ErrQueueSize},
		{"max 32768", func(q *virtio.Queue) {
			q.MaxSize, q.Size, q.DescAddr, q.DriverAddr, q.DeviceAddr = 32768, 32768, 0, 0, 0
		}, virtio.ErrQueueRange},
		{"desc misaligned", func(q *virtio.Queue) { q.DescAddr += 8 }, virtio.ErrQueueAlign},
		{"avail misaligned", func(q *virtio.Queue) { q.DriverAddr++ }, virtio.ErrQueueAlign},
		{"avail aligned 2", func(q *virtio.Queue) { q.DriverAddr += 2 }, nil},
		{"used misaligned", func(q *virtio.Queue) { q.DeviceAddr += 2 }, virtio.ErrQueueAlign},
		{"desc past end", func(q *virtio.Queue) { q.DescAddr = memSize - 16*8 }, virtio.ErrQueueRange},
		{"avail past end", func(q *virtio.Queue) { q.DriverAddr = memSize - 2 }, virtio.ErrQueueRange},
		{"used far away", func(q *virtio.Queue) { q.DeviceAddr = 1 << 40 }, virtio.ErrQueueRange},
		{"desc overflows", func(q *virtio.Queue) { q.DescAddr = ^uint64(0) &^ 15 }, virtio.ErrQueueRange},
		{"used at end", func(q *virtio.Queue) { q.DeviceAddr = usedAtEnd }, nil},
		{"used at end with event idx", func(q *virtio.Queue) { q.DeviceAddr = usedAtEnd; q.EventIdx = true }, virtio.ErrQueueRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := good
			tt.modify(&q)
			err := q.Validate(mem)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Validate = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPopEmptyAndNotReady(t *testing.T) {
	_, q, mem := newQueue(t, 8, false)
	if c, err := q.Pop(mem); c != nil || err != nil {
		t.Errorf("Pop on empty queue = %v, %v; want nil, nil", c, err)
	}
	q.Ready = false
	if c, err := q.Pop(mem); c != nil || !errors.Is(err, virtio.ErrNotReady) {
		t.Errorf("Pop on disabled queue = %v, %v; want ErrNotReady", c, err)
	}
	if err := q.Push(mem, 0, 0); !errors.Is(err, virtio.ErrNotReady) {
		t.Errorf("Push on disabled queue = %v; want ErrNotReady", err)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, indirect := range []bool{false, true} {
		d, q, mem := newQueue(t, 8, false)
		add := d.Add
		if indirect {
			add = d.AddIndirect
		}
		head := add([][]byte{[]byte("hello, "), []byte("world")}, []int{4, 8})

		c, err := q.Pop(mem)
		if err != nil || c == nil {
			t.Fatalf("indirect=%v: Pop = %v, %v", indirect, c, err)
		}
		if c.Head != head || len(c.Readable) != 2 || len(c.Writable) != 2 {
			t.Fatalf("indirect=%v: chain %+v, want head %d, 2+2 buffers", indirect, c, head)
		}
		if c.ReadableLen() != 12 || c.WritableLen() != 12 {
			t.Errorf("lengths %d, %d; want 12, 12", c.ReadableLen(), c.WritableLen())
		}
		req := make([]byte, c.ReadableLen())
		if n, err := c.Read(mem, req); n != 12 || err != nil || string(req) != "hello, world" {
			t.Errorf("Read = %d, %v, %q", n, err, req)
		}
		resp := []byte("0123456789")
		if n, err := c.Write(mem, resp); n != len(resp) || err != nil {
			t.Errorf("Write = %d, %v", n, err)
		}
		if err := q.Push(mem, c.Head, uint32(len(resp))); err != nil {
			t.Fatal(err)
		}
		if !q.NeedsInterrupt(mem) {
			t.Error("NeedsInterrupt = false after a push with interrupts enabled")
		}
		used := d.Used()
		if len(used) != 1 || used[0].Head != head || used[0].Len != 10 || !bytes.Equal(used[0].Written, resp) {
			t.Errorf("Used = %+v", used)
		}
		if c, err := q.Pop(mem); c != nil || err != nil {
			t.Errorf("second Pop = %v, %v", c, err)
		}
	}
}

// bigMem claims to be 1 TiB so that huge buffers pass the range check;
// only its first bytes are backed.
type bigMem struct{ virtiotest.Mem }

func (bigMem) CheckRange(gpa, n uint64) error {
	if gpa+n < gpa || gpa+n > 1<<40 {
		return errors.New("outside")
	}
	return nil
}

// chainSetup writes a chain into a driver queue of size 8 and makes it
// available; it returns the head.
type chainSetup func(d *virtiotest.DriverQueue) (head uint16)

// chainCase is a descriptor chain Pop must accept or refuse.
type chainCase struct {
	name       string
	setup      chainSetup
	noIndirect bool // VIRTIO_RING_F_INDIRECT_DESC not negotiated
	big        bool // memory claims 1 TiB (bigMem)
	want       error
	readable   int
	writable   int
}

// chainCases are shared by TestChainErrors and the seeds of FuzzQueue.
func chainCases() []chainCase {
	// raw publishes descriptors written straight into the table.
	raw := func(head uint16, descs map[uint16]virtio.Desc) chainSetup {
		return func(d *virtiotest.DriverQueue) uint16 {
			for i, ds := range descs {
				d.SetDesc(i, ds)
			}
			d.Publish(head)
			return head
		}
	}
	// indirect publishes descriptor 0 pointing at a table of descs.
	indirect := func(flags uint16, lenBytes int, descs ...virtio.Desc) chainSetup {
		return func(d *virtiotest.DriverQueue) uint16 {
			table := d.Alloc(16 * len(descs))
			d.WriteDescs(table, descs)
			if lenBytes < 0 {
				lenBytes = 16 * len(descs)
			}
			d.SetDesc(0, virtio.Desc{Addr: table, Len: uint32(lenBytes), Flags: virtio.DescFIndirect | flags})
			d.Publish(0)
			return 0
		}
	}
	const r, w = 0, virtio.DescFWrite
	const next = virtio.DescFNext
	buf := func(flags, nextIdx uint16) virtio.Desc {
		return virtio.Desc{Addr: 0xc00, Len: 16, Flags: flags, Next: nextIdx}
	}
	ring := map[uint16]virtio.Desc{}
	for i := range uint16(8) {
		ring[i] = buf(next, (i+1)%8)
	}
	straight := map[uint16]virtio.Desc{}
	for i := range uint16(8) {
		straight[i] = buf(next, i+1)
	}
	straight[7] = buf(w, 0)

	return []chainCase{
		{name: "single readable", setup: raw(3, map[uint16]virtio.Desc{3: buf(r, 0)}), readable: 1},
		{name: "single writable", setup: raw(3, map[uint16]virtio.Desc{3: buf(w, 0)}), writable: 1},
		{name: "mixed", setup: raw(0, map[uint16]virtio.Desc{0: buf(next, 5), 5: buf(next|w, 2), 2: buf(w, 0)}), readable: 1, writable: 2},
		{name: "whole table", setup: raw(0, straight), readable: 7, writable: 1},
		{name: "indirect", setup: indirect(0, -1, buf(next, 1), buf(w, 0)), readable: 1, writable: 1},
		{name: "indirect ignores WRITE on its descriptor", setup: indirect(w, -1, buf(r, 0)), readable: 1},
		{name: "direct then indirect", setup: func(d *virtiotest.DriverQueue) uint16 {
			table := d.Alloc(32)
			d.WriteDescs(table, []virtio.Desc{buf(next, 1), buf(w, 0)})
			d.SetDesc(6, buf(next, 1))
			d.SetDesc(1, virtio.Desc{Addr: table, Len: 32, Flags: virtio.DescFIndirect})
			d.Publish(6)
			return 6
		}, readable: 2, writable: 1},
		{name: "zero-length buffer anywhere", setup: raw(0, map[uint16]virtio.Desc{0: {Addr: 1 << 50, Len: 0}})},
		{name: "zero-length buffers are skipped", setup: raw(0, map[uint16]virtio.Desc{
			0: {Addr: 1 << 50, Len: 0, Flags: next, Next: 1}, 1: buf(next, 2),
			2: {Addr: 1 << 50, Len: 0, Flags: w | next, Next: 3}, 3: buf(w|next, 4), 4: {Addr: 1 << 50, Len: 0, Flags: r},
		}), readable: 1, writable: 1},
		{name: "indirect with a zero-length buffer", setup: indirect(0, -1, virtio.Desc{Addr: 1 << 50, Flags: w | next, Next: 1}, buf(w, 0)), writable: 1},

		{name: "head past size", setup: raw(9, nil), want: virtio.ErrDescIndex},
		{name: "head 65535", setup: raw(65535, nil), want: virtio.ErrDescIndex},
		{name: "next past size", setup: raw(0, map[uint16]virtio.Desc{0: buf(next, 8)}), want: virtio.ErrDescIndex},
		{name: "self loop", setup: raw(4, map[uint16]virtio.Desc{4: buf(next, 4)}), want: virtio.ErrChainTooLong},
		{name: "two-step loop", setup: raw(0, map[uint16]virtio.Desc{0: buf(next, 1), 1: buf(next, 0)}), want: virtio.ErrChainTooLong},
		{name: "chain longer than queue", setup: raw(0, ring), want: virtio.ErrChainTooLong},
		{name: "buffer past end of memory", setup: raw(0, map[uint16]virtio.Desc{0: {Addr: memSize - 8, Len: 16}}), want: virtio.ErrBufferRange},
		{name: "buffer far outside memory", setup: raw(0, map[uint16]virtio.Desc{0: {Addr: 1 << 40, Len: 1}}), want: virtio.ErrBufferRange},
		{name: "addr+len overflows", setup: raw(0, map[uint16]virtio.Desc{0: {Addr: ^uint64(0) - 3, Len: 8}}), want: virtio.ErrBufferRange},
		{name: "readable after writable", setup: raw(0, map[uint16]virtio.Desc{0: buf(w|next, 1), 1: buf(r, 0)}), want: virtio.ErrWriteOrder},
		{name: "more than 2^32 bytes", setup: raw(0, map[uint16]virtio.Desc{
			0: {Addr: 0x10000, Len: 0xffffffff, Flags: next, Next: 1},
			1: {Addr: 0x10000, Len: 2},
		}), big: true, want: virtio.ErrChainTooLong},

		{name: "indirect not negotiated", setup: indirect(0, -1, buf(r, 0)), noIndirect: true, want: virtio.ErrIndirect},
		{name: "indirect with next", setup: indirect(next, -1, buf(r, 0)), want: virtio.ErrIndirect},
		{name: "nested indirect", setup: indirect(0, -1, virtio.Desc{Addr: 0xc00, Len: 16, Flags: virtio.DescFIndirect}), want: virtio.ErrIndirect},
		{name: "indirect length 0", setup: indirect(0, 0, buf(r, 0)), want: virtio.ErrIndirect},
		{name: "indirect length 24", setup: indirect(0, 24, buf(r, 0), buf(r, 0)), want: virtio.ErrIndirect},
		{name: "indirect table too large", setup: indirect(0, 16*(virtio.MaxIndirectDescs+1), buf(r, 0)), want: virtio.ErrIndirect},
		{name: "indirect table outside memory", setup: func(d *virtiotest.DriverQueue) uint16 {
			d.SetDesc(0, virtio.Desc{Addr: memSize - 16, Len: 32, Flags: virtio.DescFIndirect})
			d.Publish(0)
			return 0
		}, want: virtio.ErrBufferRange},
		{name: "indirect loop", setup: indirect(0, -1, buf(next, 1), buf(next, 0)), want: virtio.ErrChainTooLong},
		{name: "indirect table as long as the queue", setup: indirect(0, -1, straightTable(8)...), readable: 7, writable: 1},
		{name: "indirect table longer than the queue", setup: indirect(0, -1, straightTable(9)...), want: virtio.ErrChainTooLong},
		{name: "direct and indirect longer than the queue", setup: func(d *virtiotest.DriverQueue) uint16 {
			table := d.Alloc(16 * 7)
			d.WriteDescs(table, straightTable(7))
			d.SetDesc(5, buf(next, 6))
			d.SetDesc(6, buf(next, 7))
			d.SetDesc(7, virtio.Desc{Addr: table, Len: 16 * 7, Flags: virtio.DescFIndirect})
			d.Publish(5)
			return 5
		}, want: virtio.ErrChainTooLong},
		{name: "huge indirect table, short chain", setup: func(d *virtiotest.DriverQueue) uint16 {
			table := d.Alloc(16 * 2)
			d.WriteDescs(table, []virtio.Desc{buf(next, 1), buf(w, 0)})
			d.SetDesc(0, virtio.Desc{Addr: table, Len: 16 * virtio.MaxIndirectDescs, Flags: virtio.DescFIndirect})
			d.Publish(0)
			return 0
		}, big: true, readable: 1, writable: 1},
		{name: "indirect table of 65536 looping entries", setup: func(d *virtiotest.DriverQueue) uint16 {
			table := d.Alloc(16 * 2)
			d.WriteDescs(table, []virtio.Desc{buf(next, 1), buf(next, 0)})
			d.SetDesc(0, virtio.Desc{Addr: table, Len: 16 * virtio.MaxIndirectDescs, Flags: virtio.DescFIndirect})
			d.Publish(0)
			return 0
		}, big: true, want: virtio.ErrChainTooLong},
		{name: "indirect next past table", setup: indirect(0, -1, buf(next, 2), buf(r, 0)), want: virtio.ErrDescIndex},
		{name: "indirect readable after writable", setup: indirect(0, -1, buf(w|next, 1), buf(r, 0)), want: virtio.ErrWriteOrder},
		{name: "indirect buffer outside memory", setup: indirect(0, -1, virtio.Desc{Addr: memSize, Len: 1}), want: virtio.ErrBufferRange},
	}
}

// straightTable is n readable descriptors chained in order, the last one
// writable, for an indirect table.
func straightTable(n int) []virtio.Desc {
	t := make([]virtio.Desc, n)
	for i := range t {
		t[i] = virtio.Desc{Addr: 0xc00, Len: 16, Flags: virtio.DescFNext, Next: uint16(i + 1)}
	}
	t[n-1] = virtio.Desc{Addr: 0xc00, Len: 16, Flags: virtio.DescFWrite}
	return t
}

// plainMem hides Mem's CheckRange: Queue then probes ranges with ReadAt.
type plainMem struct{ m virtiotest.Mem }

func (p plainMem) ReadAt(b []byte, gpa uint64) error  { return p.m.ReadAt(b, gpa) }
func (p plainMem) WriteAt(b []byte, gpa uint64) error { return p.m.WriteAt(b, gpa) }

func TestChainErrors(t *testing.T) {
	for _, probe := range []bool{false, true} {
		for _, tt := range chainCases() {
			if probe && tt.big {
				continue
			}
			name := tt.name
			if probe {
				name += " (probed)"
			}
			t.Run(name, func(t *testing.T) {
				d, q, mem := newQueue(t, 8, false)
				q.IndirectDesc = !tt.noIndirect
				var gm virtio.GuestMemory = mem
				if tt.big {
					gm = bigMem{mem}
				} else if probe {
					gm = plainMem{mem}
				}
				head := tt.setup(d)
				c, err := q.Pop(gm)
				if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Fatalf("Pop error = %v, want %v", err, tt.want)
				}
				if c == nil {
					t.Fatal("Pop returned no chain")
				}
				if c.Head != head {
					t.Errorf("Head = %d, want %d", c.Head, head)
				}
				if len(c.Readable) != tt.readable || len(c.Writable) != tt.writable {
					t.Errorf("%d readable, %d writable buffers; want %d, %d", len(c.Readable), len(c.Writable), tt.readable, tt.writable)
				}
				// The chain goes back to the driver either way.
				if err := q.Push(gm, c.Head, 0); err != nil {
					t.Fatal(err)
				}
				if used := d.Used(); len(used) != 1 || used[0].Head != head || used[0].Len != 0 {
					t.Errorf("Used = %+v, want head %d, len 0", used, head)
				}
			})
		}
	}
}

func TestAvailIdxCorrupt(t *testing.T) {
	d, q, mem := newQueue(t, 8, false)
	d.Add([][]byte{{1}}, nil)
	d.SetAvailIdx(9) // 9 > 8 entries past the device's 0
	c, err := q.Pop(mem)
	if c != nil || !errors.Is(err, virtio.ErrAvailIdx) {
		t.Fatalf("Pop = %v, %v; want nil, ErrAvailIdx", c, err)
	}
	d.SetAvailIdx(8) // a full ring is fine
	if c, err := q.Pop(mem); c == nil || err != nil {
		t.Fatalf("Pop = %v, %v", c, err)
	}
}

// TestWrapAround runs the indices through 65535 -> 0 more than once.
func TestWrapAround(t *testing.T) {
	for _, eventIdx := range []bool{false, true} {
		d, q, mem := newQueue(t, 4, eventIdx)
		for i := range 70000 {
			msg := []byte{byte(i), byte(i >> 8)}
			head := d.Add([][]byte{msg}, []int{2})
			if i%3 == 0 {
				d.Add([][]byte{msg}, []int{2})
			}
			for {
				c, err := q.Pop(mem)
				if err != nil {
					t.Fatalf("iteration %d: %v", i, err)
				}
				if c == nil {
					break
				}
				var b [2]byte
				c.Read(mem, b[:])
				c.Write(mem, b[:])
				if err := q.Push(mem, c.Head, 2); err != nil {
					t.Fatal(err)
				}
			}
			q.NeedsInterrupt(mem)
			used := d.Used()
			if len(used) == 0 || used[0].Head != head || !bytes.Equal(used[0].Written, msg) {
				t.Fatalf("iteration %d: used %+v", i, used)
			}
			if d.UsedIdx() != q.NextUsed() || q.LastAvail() != d.AvailIdx() {
				t.Fatalf("iteration %d: used idx %d/%d, avail %d/%d", i, d.UsedIdx(), q.NextUsed(), q.LastAvail(), d.AvailIdx())
			}
		}
		if want := uint16((70000 + 70000/3 + 1) % 65536); d.AvailIdx() != want {
			t.Errorf("avail idx %d", d.AvailIdx())
		}
	}
}

func TestPushOrderAndWrap(t *testing.T) {
	d, q, mem := newQueue(t, 4, false)
	q.SetPositions(65534, 65534)
	d.SetAvailIdx(65534)
	for i := range 3 {
		head := d.Add([][]byte{{byte(i)}}, nil)
		c, err := q.Pop(mem)
		if err != nil || c == nil || c.Head != head {
			t.Fatalf("Pop %d = %v, %v", i, c, err)
		}
		if err := q.Push(mem, c.Head, uint32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if q.NextUsed() != 1 || d.UsedIdx() != 1 {
		t.Errorf("used idx %d (memory %d), want 1 after 65534+3", q.NextUsed(), d.UsedIdx())
	}
}

// spyMem is memory with single 16-bit accesses (virtio.Atomic16) that
// records which addresses the queue reads or writes byte-wise.
type spyMem struct {
	virtiotest.Mem
	copied map[uint64]bool // first byte of every ReadAt/WriteAt range, and the rest
}

func (s *spyMem) note(p []byte, gpa uint64) {
	for i := range uint64(len(p)) {
		s.copied[gpa+i] = true
	}
}
func (s *spyMem) ReadAt(p []byte, gpa uint64) error  { s.note(p, gpa); return s.Mem.ReadAt(p, gpa) }
func (s *spyMem) WriteAt(p []byte, gpa uint64) error { s.note(p, gpa); return s.Mem.WriteAt(p, gpa) }
func (s *spyMem) LoadU16(gpa uint64) (uint16, error) {
	var b [2]byte
	err := s.Mem.ReadAt(b[:], gpa)
	return uint16(b[0]) | uint16(b[1])<<8, err
}
func (s *spyMem) StoreU16(gpa uint64, v uint16) error {
	return s.Mem.WriteAt([]byte{byte(v), byte(v >> 8)}, gpa)
}

// TestIndicesInOneAccess: the queue reads and writes the ring indices
// (avail idx, used idx, used_event, avail_event) only through Atomic16,
// never as two bytes, which a driver reading at the same time could see
// half-updated.
func TestIndicesInOneAccess(t *testing.T) {
	for _, eventIdx := range []bool{false, true} {
		d, q, mem := newQueue(t, 8, eventIdx)
		spy := &spyMem{Mem: mem, copied: map[uint64]bool{}}
		for i := range 20 {
			d.Add([][]byte{{byte(i)}}, []int{1})
			c, err := q.Pop(spy)
			if err != nil || c == nil {
				t.Fatalf("Pop: %v, %v", c, err)
			}
			if _, err := q.Pop(spy); err != nil { // empty: writes avail_event
				t.Fatal(err)
			}
			if err := q.Push(spy, c.Head, 0); err != nil {
				t.Fatal(err)
			}
			q.NeedsInterrupt(spy)
			d.Used()
		}
		indices := map[string]uint64{
			"avail idx":   d.AvailAddr + 2,
			"used idx":    d.UsedAddr + 2,
			"used_event":  d.AvailAddr + 4 + 2*uint64(d.Size),
			"avail_event": d.UsedAddr + 4 + 8*uint64(d.Size),
		}
		for name, addr := range indices {
			if spy.copied[addr] || spy.copied[addr+1] {
				t.Errorf("EVENT_IDX %v: %s at %#x accessed byte-wise", eventIdx, name, addr)
			}
		}
	}
}
