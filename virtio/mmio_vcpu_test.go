package virtio_test

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// lockedMem is guest memory that the device under test shares with the
// test's driver: every device access holds mu, and the driver holds it
// around its DriverQueue calls. A real guest's memory needs no such lock
// (the ring protocol and Atomic16 order the two sides), but the test's
// driver is Go code, and without it the race detector would rightly see
// the driver poll the used ring while the device writes it.
type lockedMem struct {
	mu *sync.Mutex
	m  virtiotest.Mem
}

func (l lockedMem) ReadAt(p []byte, gpa uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.ReadAt(p, gpa)
}

func (l lockedMem) WriteAt(p []byte, gpa uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.WriteAt(p, gpa)
}

// CheckRange only looks at the length of m, which never changes.
func (l lockedMem) CheckRange(gpa, n uint64) error { return l.m.CheckRange(gpa, n) }

// workerDevice serves queue 0 from a goroutine of its own, as the real
// devices do: Notify only counts and wakes it through a one-slot channel,
// and the goroutine answers every request with its bytes inverted, then
// signals a used buffer if the driver wants one. Configuration space and
// the bookkeeping are the dummyDevice's.
type workerDevice struct {
	*dummyDevice
	memMu *sync.Mutex
	kick  chan struct{}

	notified atomic.Int64 // Notify calls
	answered atomic.Int64 // chains pushed with a response
	signals  atomic.Int64 // Signal calls
	popErrs  atomic.Int64

	stop, done chan struct{} // while active; set and cleared under the transport's lock
}

func newWorkerDevice(memMu *sync.Mutex) *workerDevice {
	d := &workerDevice{dummyDevice: newDummy(), memMu: memMu, kick: make(chan struct{}, 1)}
	d.sizes = []uint16{16}
	return d
}

func (d *workerDevice) Activate(mem virtio.GuestMemory, irq virtio.Interrupt, queues []*virtio.Queue, features uint64) error {
	if err := d.dummyDevice.Activate(mem, irq, queues, features); err != nil {
		return err
	}
	m := lockedMem{d.memMu, mem.(virtiotest.Mem)}
	q := queues[0]
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go func(stop, done chan struct{}) {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-d.kick:
			}
			for {
				c, err := q.Pop(m)
				if err != nil {
					d.popErrs.Add(1)
				}
				if c == nil {
					break
				}
				req := make([]byte, c.ReadableLen())
				n, _ := c.Read(m, req)
				for i := range req {
					req[i] ^= 0xff
				}
				n, _ = c.Write(m, req[:n])
				if err := q.Push(m, c.Head, uint32(n)); err != nil {
					d.popErrs.Add(1)
				}
				d.answered.Add(1)
			}
			if q.NeedsInterrupt(m) {
				d.signals.Add(1)
				irq.Signal(virtio.InterruptUsedBuffer)
			}
		}
	}(d.stop, d.done)
	return nil
}

func (d *workerDevice) Notify(q int) {
	d.notified.Add(1)
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *workerDevice) Reset() {
	if d.stop != nil {
		close(d.stop)
		<-d.done
		d.stop = nil
	}
	d.dummyDevice.Reset()
}

// TestMMIOConcurrentVCPUs does to one transport what the vCPUs of a
// guest do at once. After the driver's handshake, eight goroutines each
// send hundreds of requests on queue 0 the way Linux's virtio_mmio does:
// they add a chain under the driver's ring lock, notify (by a QueueNotify
// write, or through Notify as the ioeventfd goroutine does), and whichever
// of them reads InterruptStatus non-zero acknowledges it and hands every
// used chain to the vCPU that sent it, as the interrupt handler does on
// whichever CPU takes the interrupt. In between they read configuration
// space and the control registers. Meanwhile the device answers from its
// own goroutine. The test holds the transport to concrete outcomes: every
// notification reaches the device exactly once, every request is answered
// once with the right bytes, every Signal raises the line once, no
// interrupt is lost (a vCPU looks at the used ring only after an
// interrupt), and every read gives the value the register must have:
// nothing a concurrent access did shows through. It runs without and with
// VIRTIO_RING_F_EVENT_IDX, whose notification and interrupt suppression
// is where a lost wake-up would hide. Run it with -race.
func TestMMIOConcurrentVCPUs(t *testing.T) {
	const (
		vcpus    = 8
		requests = 300 // per vCPU
	)
	for _, tt := range []struct {
		name     string
		features uint64
	}{
		{"plain", version1},
		{"EVENT_IDX", version1 | 1<<virtio.RingFEventIdx},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var memMu sync.Mutex // guest memory, and the driver's ring lock
			dev := newWorkerDevice(&memMu)
			dr := newDriver(t, dev)
			if !dr.negotiate(tt.features) {
				t.Fatalf("FEATURES_OK refused for %#x", tt.features)
			}
			// One outstanding two-descriptor chain per vCPU fits a queue
			// of 16.
			d := virtiotest.NewDriverQueue(dr.mem, 0x100, 16)
			d.EventIdx = tt.features&(1<<virtio.RingFEventIdx) != 0
			dr.setupQueue(0, d)
			dr.addStatus(virtio.StatusDriverOK)
			if s := dr.status(); s != 0xf {
				t.Fatalf("status %#x after DRIVER_OK", s)
			}

			// responses[v] takes the answer to vCPU v's one outstanding
			// request, from whichever vCPU collected it.
			responses := make([]chan virtiotest.UsedElem, vcpus)
			for v := range responses {
				responses[v] = make(chan virtiotest.UsedElem, 1)
			}
			// collect is the interrupt handler: acknowledge, then take
			// every used chain (again until none, which is the recheck
			// after used_event that Linux's virtqueue_enable_cb does).
			collect := func(isr uint32) bool {
				dr.w(virtio.RegInterruptACK, isr)
				for {
					memMu.Lock()
					used := d.Used()
					memMu.Unlock()
					if len(used) == 0 {
						return true
					}
					for _, u := range used {
						if len(u.Written) != 8 {
							t.Errorf("used %+v: want an 8-byte response", u)
							return false
						}
						owner := ^binary.LittleEndian.Uint32(u.Written)
						if owner >= vcpus {
							t.Errorf("used %+v: response of no vCPU", u)
							return false
						}
						select {
						case responses[owner] <- u:
						default:
							t.Errorf("used %+v: a second response for vCPU %d", u, owner)
							return false
						}
					}
				}
			}
			config := []byte{1, 2, 3, 4, 5, 6, 7, 8}
			regs := []struct {
				off  uint64
				want uint32
			}{
				{virtio.RegMagicValue, virtio.MagicValue},
				{virtio.RegDeviceID, 42},
				{virtio.RegStatus, 0xf},
				{virtio.RegQueueReady, 1}, // QueueSel stays 0
				{virtio.RegConfigGeneration, 0},
			}
			var kicks atomic.Int64
			deadline := time.Now().Add(30 * time.Second)
			var wg sync.WaitGroup
			for v := range uint32(vcpus) {
				wg.Go(func() {
					cfg := make([]byte, 8)
					for seq := range uint32(requests) {
						dr.m.Read(virtio.RegConfig, cfg)
						if !bytes.Equal(cfg, config) {
							t.Errorf("vCPU %d: configuration space %x, want %x", v, cfg, config)
							return
						}
						r := regs[seq%uint32(len(regs))]
						if got := dr.r(r.off); got != r.want {
							t.Errorf("vCPU %d: register %#x = %#x, want %#x", v, r.off, got, r.want)
							return
						}

						req := binary.LittleEndian.AppendUint32(nil, v)
						req = binary.LittleEndian.AppendUint32(req, seq)
						memMu.Lock()
						head := d.Add([][]byte{req}, []int{8})
						kick := d.Kick()
						memMu.Unlock()
						if kick {
							kicks.Add(1)
							if seq%2 == 0 {
								dr.w(virtio.RegQueueNotify, 0)
							} else {
								dr.m.Notify(0)
							}
						}

						for {
							if isr := dr.r(virtio.RegInterruptStatus); isr != 0 {
								if isr != virtio.InterruptUsedBuffer {
									t.Errorf("vCPU %d: InterruptStatus %#x", v, isr)
									return
								}
								if !collect(isr) {
									return
								}
							}
							select {
							case u := <-responses[v]:
								want := make([]byte, 8)
								for i := range want {
									want[i] = ^req[i]
								}
								if u.Head != head || u.Len != 8 || !bytes.Equal(u.Written, want) {
									t.Errorf("vCPU %d request %d (head %d): used %+v, want response %x", v, seq, head, u, want)
									return
								}
							default:
								if time.Now().After(deadline) {
									t.Errorf("vCPU %d: request %d not answered", v, seq)
									return
								}
								runtime.Gosched()
								continue
							}
							break
						}
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				dr.w(virtio.RegStatus, 0)
				return
			}

			total := int64(vcpus * requests)
			t.Logf("%d requests, %d notifications, %d interrupts", total, kicks.Load(), dev.signals.Load())
			if got := dev.answered.Load(); got != total {
				t.Errorf("device answered %d requests, want %d", got, total)
			}
			if got, want := dev.notified.Load(), kicks.Load(); got != want {
				t.Errorf("device saw %d notifications, the vCPUs sent %d", got, want)
			}
			if tt.features&(1<<virtio.RingFEventIdx) == 0 && kicks.Load() != total {
				t.Errorf("%d notifications for %d requests without EVENT_IDX", kicks.Load(), total)
			}
			if got, want := dr.raisedCount(), dev.signals.Load(); int64(got) != want {
				t.Errorf("interrupt raised %d times for %d signals", got, want)
			}
			if n := dev.popErrs.Load(); n != 0 {
				t.Errorf("%d ring errors", n)
			}
			// A last signal may still be pending; nothing may be behind it.
			if isr := dr.r(virtio.RegInterruptStatus); isr&^virtio.InterruptUsedBuffer != 0 {
				t.Errorf("InterruptStatus %#x at the end", isr)
			}
			dr.w(virtio.RegInterruptACK, virtio.InterruptUsedBuffer)
			memMu.Lock()
			left, outstanding := d.Used(), d.Outstanding()
			memMu.Unlock()
			if len(left) != 0 || outstanding != 0 {
				t.Errorf("after all answers: %d more used, %d outstanding", len(left), outstanding)
			}
			if s := dr.status(); s != 0xf {
				t.Errorf("status %#x at the end", s)
			}
			dr.w(virtio.RegStatus, 0) // stops the device's goroutine
			if s := dev.snapshot(); s.activated != 1 || s.active {
				t.Errorf("device activated %d times, active %v after reset", s.activated, s.active)
			}
		})
	}
}
