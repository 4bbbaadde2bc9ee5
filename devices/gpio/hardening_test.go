package gpio

// Tests of what a misbehaving driver can make the device hold or skip,
// through real queues in fake guest memory.

import (
	"encoding/binary"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// TestHeldBufferCost: a held eventq buffer costs a fixed amount, however
// long the chain the driver built for it. 64 lines each get a buffer whose
// chain has 255 writable descriptors in an indirect table; the Go heap
// must not grow with the chains.
func TestHeldBufferCost(t *testing.T) {
	const lines = 64
	if sz := reflect.TypeOf(lineState[eventBuf]{}).Size(); sz > maxLineStateSize {
		t.Errorf("a line's state takes %d bytes; doc.go promises at most %d", sz, maxLineStateSize)
	}
	r := newRig(t, true, rigConfig{lines: lines, evqSize: 256})
	long := make([]int, 255)
	for i := range long {
		long[i] = 1
	}
	for line := range uint16(lines) {
		r.evq.AddIndirect([][]byte{IRQRequest(line)}, long)
	}
	before := heapInUse() // with the driver's own record of its chains
	r.dev.Notify(EventQueue)
	// All are held: nothing comes back.
	if r.irq.Wait(200 * time.Millisecond) {
		t.Fatalf("eventq buffers returned: %+v", r.evq.Used())
	}
	if held := r.dev.ctl.heldCount(); held != lines {
		t.Fatalf("%d buffers held, want %d", held, lines)
	}
	// Kept whole, the chains would pin 64 * 255 * 16 bytes (255 KiB).
	if grew := heapInUse() - before; grew > 64<<10 {
		t.Errorf("holding %d buffers grew the heap by %d bytes", lines, grew)
	}
	// Each still completes into its writable buffer.
	r.mustOK(t, MsgTypeSetDirection, 7, uint32(DirectionIn))
	r.mustOK(t, MsgTypeSetIRQType, 7, uint32(IRQTypeEdgeRising))
	if err := r.sim.SetInput(7, 1); err != nil {
		t.Fatal(err)
	}
	used := r.waitUsed(t, r.evq, "edge on line 7")
	if len(used) != 1 || used[0].Len != 1 || used[0].Written[0] != byte(EventValid) {
		t.Errorf("eventq used %+v", used)
	}
}

// maxLineStateSize is what doc.go states a line costs the device.
const maxLineStateSize = 64

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// mustOK sends one request and fails unless it is answered OK.
func (r *virtioRig) mustOK(t *testing.T, typ MsgType, line uint16, value uint32) {
	t.Helper()
	r.req.Add([][]byte{request(typ, line, value)}, []int{2})
	r.dev.Notify(RequestQueue)
	if u := r.waitUsed(t, r.req, typ.String()); len(u) != 1 || u[0].Len != 2 || u[0].Written[0] != byte(StatusOK) {
		t.Fatalf("%v line %d value %d: used %+v", typ, line, value, u)
	}
}

// keepFull is a driver that keeps the requestq full: whenever the device
// reads the avail idx, the driver collects what was used and adds
// GET_VALUE requests until the ring is full, until it has added left.
type keepFull struct {
	virtiotest.Mem
	d    *virtiotest.DriverQueue
	left int
	done int // used buffers collected
}

func (m *keepFull) ReadAt(p []byte, gpa uint64) error {
	if gpa == m.d.AvailAddr+2 {
		m.done += len(m.d.Used())
		for m.left > 0 && 2*(m.d.Outstanding()+1) <= int(m.d.Size) {
			m.d.Add([][]byte{request(MsgTypeGetValue, 0, 0)}, []int{2})
			m.left--
		}
	}
	return m.Mem.ReadAt(p, gpa)
}

// TestRingKeptFull: a driver that keeps the requestq full gets 2^16
// completions in one drain of the ring. It must be interrupted along the
// way, at least once per queue size, not only when the ring runs dry
// (which would also be 0 interrupts: 2^16 pushes bring the used idx back
// where it started).
func TestRingKeptFull(t *testing.T) {
	const completions = 1 << 16
	var km *keepFull
	r := newRig(t, true, rigConfig{wrap: func(r *virtioRig) virtio.GuestMemory {
		km = &keepFull{Mem: r.mem, d: r.req, left: completions}
		return km
	}})
	deadline := time.Now().Add(time.Minute)
	for r.dev.Stats().Requests[MsgTypeGetValue] != completions {
		if time.Now().After(deadline) {
			t.Fatalf("%d interrupts, %d requests answered", r.irq.Count(), r.dev.Stats().Requests[MsgTypeGetValue])
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.dev.Reset() // the device is done with the queue
	if want := completions / 16; r.irq.Count() < want {
		t.Errorf("%d interrupts for %d completions, want at least %d", r.irq.Count(), completions, want)
	}
}

// TestIRQWithoutEventq: a driver that negotiates VIRTIO_GPIO_F_IRQ but
// does not enable the eventq cannot take interrupts; SET_IRQ_TYPE is
// refused, so the backend never queues events for nobody.
func TestIRQWithoutEventq(t *testing.T) {
	r := newRig(t, true, rigConfig{noEventq: true})
	r.mustOK(t, MsgTypeSetDirection, 2, uint32(DirectionIn))
	r.req.Add([][]byte{request(MsgTypeSetIRQType, 2, uint32(IRQTypeEdgeBoth))}, []int{2})
	r.dev.Notify(RequestQueue)
	if u := r.waitUsed(t, r.req, "SET_IRQ_TYPE"); len(u) != 1 || u[0].Written[0] != byte(StatusERR) {
		t.Fatalf("SET_IRQ_TYPE without an eventq: used %+v, want ERR", u)
	}
	if st, _ := r.sim.Line(2); st.IRQType != IRQTypeNone {
		t.Errorf("the backend's line 2 has irq type %v", st.IRQType)
	}
	if logs := r.irq.Logs(); len(logs) != 1 {
		t.Errorf("logged %q, want one line about the missing eventq", logs)
	}
}

// TestZeroLengthBuffers: zero-length descriptors, even at addresses
// outside RAM, are skipped on the whole request path: a SET_DIRECTION(OUT)
// whose chain has them is executed and answered.
func TestZeroLengthBuffers(t *testing.T) {
	r := newVirtioRig(t, true)
	d := r.req
	const r0, w = 0, virtio.DescFWrite
	const next = virtio.DescFNext
	reqAddr, respAddr := d.Alloc(8), d.Alloc(2)
	copy(r.mem[reqAddr:], request(MsgTypeSetDirection, 1, uint32(DirectionOut)))
	outside := uint64(1 << 40)
	d.SetDesc(0, virtio.Desc{Addr: outside, Flags: r0 | next, Next: 1})
	d.SetDesc(1, virtio.Desc{Addr: reqAddr, Len: 8, Flags: next, Next: 2})
	d.SetDesc(2, virtio.Desc{Addr: outside, Flags: w | next, Next: 3})
	d.SetDesc(3, virtio.Desc{Addr: respAddr, Len: 2, Flags: w | next, Next: 4})
	d.SetDesc(4, virtio.Desc{Addr: outside, Flags: w})
	d.Publish(0)
	r.dev.Notify(RequestQueue)
	if !r.irq.Wait(10 * time.Second) {
		t.Fatal("no interrupt")
	}
	if idx := d.UsedIdx(); idx != 1 {
		t.Fatalf("used idx %d", idx)
	}
	elem := r.mem[d.UsedAddr+4 : d.UsedAddr+12]
	if got := binary.LittleEndian.Uint32(elem[4:]); got != 2 || r.mem[respAddr] != byte(StatusOK) {
		t.Errorf("used len %d, status %d; want 2, OK", got, r.mem[respAddr])
	}
	if _, dir, _ := r.sim.Output(1); dir != DirectionOut {
		t.Errorf("line 1 is %v", dir)
	}
}

// TestActivationLooksAtQueues: buffers the driver made available before
// DRIVER_OK are served at activation, without another notification.
func TestActivationLooksAtQueues(t *testing.T) {
	var head uint16
	r := newRig(t, true, rigConfig{before: func(r *virtioRig) {
		head = r.req.Add([][]byte{request(MsgTypeGetDirection, 0, 0)}, []int{2})
	}})
	used := r.waitUsed(t, r.req, "request made before DRIVER_OK")
	if len(used) != 1 || used[0].Head != head || used[0].Len != 2 {
		t.Errorf("used %+v", used)
	}
}

// TestChainLongerThanQueue: a chain of more buffers than the queue size
// (here in an indirect table) is returned unused and logged.
func TestChainLongerThanQueue(t *testing.T) {
	r := newVirtioRig(t, true)
	head := r.req.AddIndirect([][]byte{request(MsgTypeGetValue, 0, 0)}, make([]int, 16))
	r.dev.Notify(RequestQueue)
	used := r.waitUsed(t, r.req, "over-long chain")
	if len(used) != 1 || used[0].Head != head || used[0].Len != 0 {
		t.Errorf("used %+v", used)
	}
	if s := r.dev.Stats(); s.MalformedChains != 1 || s.Requests != [7]uint64{} {
		t.Errorf("stats %+v", s)
	}
	if logs := r.irq.Logs(); len(logs) != 1 {
		t.Errorf("logged %q", logs)
	}
}

// TestResetWhileFlooded: a driver that never lets the requestq run dry
// does not keep the device from being reset: the device drains at most a
// queue size of chains per wake-up and comes back by itself, so Reset
// finds its goroutine between drains.
func TestResetWhileFlooded(t *testing.T) {
	var km *keepFull
	r := newRig(t, true, rigConfig{wrap: func(r *virtioRig) virtio.GuestMemory {
		km = &keepFull{Mem: r.mem, d: r.req, left: 1 << 40}
		return km
	}})
	for r.irq.Count() < 100 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { r.dev.Reset(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Reset did not return while the driver kept the ring full")
	}
}

// heldCount is the number of lines with an eventq buffer held.
func (c *Controller[T]) heldCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for i := range c.lines {
		if c.lines[i].held {
			n++
		}
	}
	return n
}
