package virtio_test

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// dummyDevice is a Device for transport tests. On Notify it echoes each
// chain's readable bytes into its writable buffers, synchronously. It
// records every call.
type dummyDevice struct {
	id       uint32
	features uint64
	sizes    []uint16
	actErr   error // returned by Activate

	mu         sync.Mutex
	config     [8]byte
	active     bool
	activated  int
	resets     int
	notified   []int
	mem        virtio.GuestMemory
	irq        virtio.Interrupt
	queues     []*virtio.Queue
	negotiated uint64
	popErrs    []error
}

func newDummy() *dummyDevice {
	d := &dummyDevice{id: 42, features: 1<<0 | 1<<3 | 1<<52, sizes: []uint16{8, 4}}
	d.resetConfig()
	return d
}

func (d *dummyDevice) resetConfig() {
	binary.LittleEndian.PutUint64(d.config[:], 0x0807060504030201)
}

func (d *dummyDevice) ID() uint32              { return d.id }
func (d *dummyDevice) Features() uint64        { return d.features }
func (d *dummyDevice) QueueMaxSizes() []uint16 { return d.sizes }

func (d *dummyDevice) ReadConfig(off uint64, p []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range p {
		if off+uint64(i) < uint64(len(d.config)) {
			p[i] = d.config[off+uint64(i)]
		}
	}
}

func (d *dummyDevice) WriteConfig(off uint64, p []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range p {
		if off+uint64(i) < uint64(len(d.config)) {
			d.config[off+uint64(i)] = p[i]
		}
	}
}

func (d *dummyDevice) Activate(mem virtio.GuestMemory, irq virtio.Interrupt, queues []*virtio.Queue, features uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.actErr != nil {
		return d.actErr
	}
	d.active = true
	d.activated++
	d.mem, d.irq, d.queues, d.negotiated = mem, irq, queues, features
	return nil
}

func (d *dummyDevice) Notify(q int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.notified = append(d.notified, q)
	if !d.active || q >= len(d.queues) || d.queues[q] == nil {
		return
	}
	vq := d.queues[q]
	// Bounded: the device's own writes may land in the avail ring and
	// keep it non-empty forever.
	for range 2 * int(vq.Size) {
		c, err := vq.Pop(d.mem)
		if err != nil {
			d.popErrs = append(d.popErrs, err)
		}
		if c == nil {
			break
		}
		buf := make([]byte, min(c.ReadableLen(), c.WritableLen(), 4096))
		n, _ := c.Read(d.mem, buf)
		n, _ = c.Write(d.mem, buf[:n])
		vq.Push(d.mem, c.Head, uint32(n))
	}
	if vq.NeedsInterrupt(d.mem) {
		d.irq.Signal(virtio.InterruptUsedBuffer)
	}
}

func (d *dummyDevice) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = false
	d.resets++
	d.queues = nil
	d.resetConfig()
}

func (d *dummyDevice) snapshot() dummyDevice {
	d.mu.Lock()
	defer d.mu.Unlock()
	return dummyDevice{
		active: d.active, activated: d.activated, resets: d.resets,
		notified: append([]int(nil), d.notified...), queues: d.queues,
		negotiated: d.negotiated, popErrs: d.popErrs,
	}
}

// driver drives an MMIO from the test, as Linux's virtio_mmio does.
type driver struct {
	t      *testing.T
	m      *virtio.MMIO
	mem    virtiotest.Mem
	raised int
	mu     sync.Mutex
}

func newDriver(t *testing.T, dev virtio.Device) *driver {
	t.Helper()
	dr := &driver{t: t, mem: virtiotest.NewMem(memSize)}
	dr.m = virtio.NewMMIO(dev, dr.mem, func() {
		dr.mu.Lock()
		dr.raised++
		dr.mu.Unlock()
	})
	dr.m.Log = func(s string) { t.Log(s) }
	return dr
}

func (dr *driver) raisedCount() int {
	dr.mu.Lock()
	defer dr.mu.Unlock()
	return dr.raised
}

func (dr *driver) r(off uint64) uint32 {
	var b [4]byte
	dr.m.Read(off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (dr *driver) w(off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	dr.m.Write(off, b[:])
}

func (dr *driver) status() uint32 { return dr.r(virtio.RegStatus) }

// addStatus is virtio_add_status: read, OR, write.
func (dr *driver) addStatus(bits uint32) { dr.w(virtio.RegStatus, dr.status()|bits) }

func (dr *driver) deviceFeatures() uint64 {
	dr.w(virtio.RegDeviceFeaturesSel, 1)
	hi := dr.r(virtio.RegDeviceFeatures)
	dr.w(virtio.RegDeviceFeaturesSel, 0)
	return uint64(hi)<<32 | uint64(dr.r(virtio.RegDeviceFeatures))
}

func (dr *driver) writeFeatures(f uint64) {
	dr.w(virtio.RegDriverFeaturesSel, 1)
	dr.w(virtio.RegDriverFeatures, uint32(f>>32))
	dr.w(virtio.RegDriverFeaturesSel, 0)
	dr.w(virtio.RegDriverFeatures, uint32(f))
}

// negotiate runs the sequence up to FEATURES_OK and reports whether the
// device kept FEATURES_OK.
func (dr *driver) negotiate(f uint64) bool {
	dr.w(virtio.RegStatus, 0)
	dr.addStatus(virtio.StatusAcknowledge)
	dr.addStatus(virtio.StatusDriver)
	dr.writeFeatures(f)
	dr.addStatus(virtio.StatusFeaturesOK)
	return dr.status()&virtio.StatusFeaturesOK != 0
}

// setupQueue programs queue i from a driver-side queue, as vm_setup_vq.
func (dr *driver) setupQueue(i uint32, d *virtiotest.DriverQueue) {
	dr.w(virtio.RegQueueSel, i)
	if dr.r(virtio.RegQueueReady) != 0 {
		dr.t.Fatalf("queue %d already ready", i)
	}
	dr.w(virtio.RegQueueNum, uint32(d.Size))
	dr.w(virtio.RegQueueDescLow, uint32(d.DescAddr))
	dr.w(virtio.RegQueueDescHigh, uint32(d.DescAddr>>32))
	dr.w(virtio.RegQueueDriverLow, uint32(d.AvailAddr))
	dr.w(virtio.RegQueueDriverHigh, uint32(d.AvailAddr>>32))
	dr.w(virtio.RegQueueDeviceLow, uint32(d.UsedAddr))
	dr.w(virtio.RegQueueDeviceHigh, uint32(d.UsedAddr>>32))
	dr.w(virtio.RegQueueReady, 1)
}

// bringUp negotiates features f, sets up queue 0 and sets DRIVER_OK.
func (dr *driver) bringUp(f uint64) *virtiotest.DriverQueue {
	dr.t.Helper()
	if !dr.negotiate(f) {
		dr.t.Fatalf("FEATURES_OK refused for %#x", f)
	}
	d := virtiotest.NewDriverQueue(dr.mem, 0x100, 8)
	d.EventIdx = f&(1<<virtio.RingFEventIdx) != 0
	dr.setupQueue(0, d)
	dr.addStatus(virtio.StatusDriverOK)
	if s := dr.status(); s != 0xf {
		dr.t.Fatalf("status %#x after DRIVER_OK", s)
	}
	return d
}

var errActivate = errors.New("activate failed")
