package virtio_test

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

const version1 = 1 << virtio.FVersion1

func TestMMIORegisters(t *testing.T) {
	dr := newDriver(t, newDummy())
	tests := []struct {
		name string
		off  uint64
		want uint32
	}{
		{"MagicValue", virtio.RegMagicValue, 0x74726976},
		{"Version", virtio.RegVersion, 2},
		{"DeviceID", virtio.RegDeviceID, 42},
		{"VendorID", virtio.RegVendorID, virtio.VendorID},
		{"DeviceFeatures", virtio.RegDeviceFeatures, 1<<0 | 1<<3 | 1<<28 | 1<<29},
		{"DeviceFeaturesSel", virtio.RegDeviceFeaturesSel, 0},
		{"DriverFeatures", virtio.RegDriverFeatures, 0},
		{"DriverFeaturesSel", virtio.RegDriverFeaturesSel, 0},
		{"GuestPageSize (legacy)", 0x028, 0},
		{"QueueSel", virtio.RegQueueSel, 0},
		{"QueueNumMax", virtio.RegQueueNumMax, 8},
		{"QueueNum", virtio.RegQueueNum, 0},
		{"QueueAlign (legacy)", 0x03c, 0},
		{"QueuePFN (legacy)", 0x040, 0},
		{"QueueReady", virtio.RegQueueReady, 0},
		{"QueueNotify", virtio.RegQueueNotify, 0},
		{"InterruptStatus", virtio.RegInterruptStatus, 0},
		{"InterruptACK", virtio.RegInterruptACK, 0},
		{"Status", virtio.RegStatus, 0},
		{"QueueDescLow", virtio.RegQueueDescLow, 0},
		{"QueueDescHigh", virtio.RegQueueDescHigh, 0},
		{"QueueDriverLow", virtio.RegQueueDriverLow, 0},
		{"QueueDriverHigh", virtio.RegQueueDriverHigh, 0},
		{"QueueDeviceLow", virtio.RegQueueDeviceLow, 0},
		{"QueueDeviceHigh", virtio.RegQueueDeviceHigh, 0},
		{"SHMSel", virtio.RegSHMSel, 0},
		{"SHMLenLow", virtio.RegSHMLenLow, 0xffffffff},
		{"SHMLenHigh", virtio.RegSHMLenHigh, 0xffffffff},
		{"SHMBaseLow", virtio.RegSHMBaseLow, 0xffffffff},
		{"SHMBaseHigh", virtio.RegSHMBaseHigh, 0xffffffff},
		{"QueueReset", virtio.RegQueueReset, 0},
		{"unknown 0x0f8", 0x0f8, 0},
		{"ConfigGeneration", virtio.RegConfigGeneration, 0},
		{"Config", virtio.RegConfig, 0x04030201},
	}
	for _, tt := range tests {
		if got := dr.r(tt.off); got != tt.want {
			t.Errorf("%s (%#x) = %#x, want %#x", tt.name, tt.off, got, tt.want)
		}
	}
	// Read-only registers ignore writes.
	for _, off := range []uint64{virtio.RegMagicValue, virtio.RegVersion, virtio.RegDeviceID, virtio.RegQueueNumMax, virtio.RegInterruptStatus, virtio.RegSHMLenLow} {
		before := dr.r(off)
		dr.w(off, 0x12345678)
		if got := dr.r(off); got != before {
			t.Errorf("register %#x changed by a write: %#x -> %#x", off, before, got)
		}
	}
	if virtio.RegQueueNotify != 0x50 || virtio.MMIOSize != 0x200 {
		t.Error("QueueNotify must be at 0x50 and the window 0x200 bytes")
	}
}

func TestMMIOAccessWidth(t *testing.T) {
	dr := newDriver(t, newDummy())
	for _, n := range []int{1, 2, 3, 8} {
		b := bytes.Repeat([]byte{0xaa}, n)
		dr.m.Read(virtio.RegMagicValue, b)
		if !bytes.Equal(b, make([]byte, n)) {
			t.Errorf("%d-byte read of MagicValue = %x, want zeros", n, b)
		}
	}
	b := []byte{0xaa, 0xaa, 0xaa, 0xaa}
	dr.m.Read(virtio.RegMagicValue+2, b)
	if !bytes.Equal(b, make([]byte, 4)) {
		t.Errorf("unaligned read = %x", b)
	}
	dr.m.Write(virtio.RegStatus, []byte{virtio.StatusAcknowledge})
	dr.m.Write(virtio.RegStatus, []byte{virtio.StatusAcknowledge, 0, 0, 0, 0, 0, 0, 0})
	if s := dr.status(); s != 0 {
		t.Errorf("status %#x after 1- and 8-byte writes, want 0", s)
	}
	dr.m.Read(virtio.RegMagicValue, nil) // must not panic
	dr.m.Write(virtio.RegStatus, nil)
}

func TestMMIOConfigSpace(t *testing.T) {
	dev := newDummy()
	dr := newDriver(t, dev)
	tests := []struct {
		off  uint64
		n    int
		want []byte
	}{
		{0, 1, []byte{1}},
		{7, 1, []byte{8}},
		{2, 2, []byte{3, 4}},
		{4, 4, []byte{5, 6, 7, 8}},
		{0, 8, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{6, 4, []byte{7, 8, 0, 0}}, // past the end reads zero
		{0xf0, 4, []byte{0, 0, 0, 0}},
	}
	for _, tt := range tests {
		b := bytes.Repeat([]byte{0xee}, tt.n)
		dr.m.Read(virtio.RegConfig+tt.off, b)
		if !bytes.Equal(b, tt.want) {
			t.Errorf("config read %d bytes at %d = %v, want %v", tt.n, tt.off, b, tt.want)
		}
	}
	dr.m.Write(virtio.RegConfig+1, []byte{0xa1})
	dr.m.Write(virtio.RegConfig+2, []byte{0xb2, 0xb3})
	dr.m.Write(virtio.RegConfig+4, []byte{0xc4, 0xc5, 0xc6, 0xc7})
	b := make([]byte, 8)
	dr.m.Read(virtio.RegConfig, b)
	if want := []byte{1, 0xa1, 0xb2, 0xb3, 0xc4, 0xc5, 0xc6, 0xc7}; !bytes.Equal(b, want) {
		t.Errorf("config after writes = %x, want %x", b, want)
	}
	dr.w(virtio.RegStatus, 0)
	dr.m.Read(virtio.RegConfig, b)
	if b[1] != 2 {
		t.Error("reset did not reset configuration space")
	}
}

func TestMMIOFeatures(t *testing.T) {
	dev := newDummy()
	// Reserved bits 30 and 33 are not the device's to offer.
	dev.features |= 1<<30 | 1<<33
	dr := newDriver(t, dev)
	offered := dr.deviceFeatures()
	want := uint64(1<<0 | 1<<3 | 1<<52 | 1<<28 | 1<<29 | version1)
	if offered != want {
		t.Fatalf("device features %#x, want %#x", offered, want)
	}
	dr.w(virtio.RegDeviceFeaturesSel, 2)
	if got := dr.r(virtio.RegDeviceFeatures); got != 0 {
		t.Errorf("features word 2 = %#x", got)
	}

	tests := []struct {
		name   string
		accept func(dr *driver)
		ok     bool
		want   uint64
	}{
		{"VERSION_1 only", func(dr *driver) { dr.writeFeatures(version1) }, true, version1},
		{"everything offered", func(dr *driver) { dr.writeFeatures(want) }, true, want},
		{"device bit", func(dr *driver) { dr.writeFeatures(version1 | 1<<3) }, true, version1 | 1<<3},
		{"no VERSION_1", func(dr *driver) { dr.writeFeatures(1 << 3) }, false, 0},
		{"nothing", func(dr *driver) {}, false, 0},
		{"unoffered device bit", func(dr *driver) { dr.writeFeatures(version1 | 1<<5) }, false, 0},
		{"reserved bit 33", func(dr *driver) { dr.writeFeatures(version1 | 1<<33) }, false, 0},
		{"bit 64", func(dr *driver) {
			dr.writeFeatures(version1)
			dr.w(virtio.RegDriverFeaturesSel, 2)
			dr.w(virtio.RegDriverFeatures, 1)
		}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := newDummy()
			dr := newDriver(t, dev)
			dr.addStatus(virtio.StatusAcknowledge)
			dr.addStatus(virtio.StatusDriver)
			tt.accept(dr)
			dr.addStatus(virtio.StatusFeaturesOK)
			s := dr.status()
			if ok := s&virtio.StatusFeaturesOK != 0; ok != tt.ok {
				t.Fatalf("status %#x: FEATURES_OK kept = %v, want %v", s, ok, tt.ok)
			}
			if !tt.ok {
				// The driver gives up, as virtio_dev_probe does.
				dr.addStatus(virtio.StatusFailed)
				if s := dr.status(); s != virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFailed {
					t.Errorf("status %#x after FAILED", s)
				}
				return
			}
			// Features are frozen after FEATURES_OK.
			dr.writeFeatures(0)
			d := virtiotest.NewDriverQueue(dr.mem, 0x100, 8)
			dr.setupQueue(0, d)
			dr.addStatus(virtio.StatusDriverOK)
			if s := dev.snapshot(); s.activated != 1 || s.negotiated != tt.want {
				t.Errorf("activated %d times with features %#x, want once with %#x", s.activated, s.negotiated, tt.want)
			}
		})
	}
}

func TestMMIONegotiatedFeaturesReachDevice(t *testing.T) {
	for _, f := range []uint64{version1, version1 | 1<<virtio.RingFEventIdx | 1<<virtio.RingFIndirectDesc | 1<<3} {
		dev := newDummy()
		dr := newDriver(t, dev)
		dr.bringUp(f)
		dr.writeFeatures(0) // ignored after FEATURES_OK
		s := dev.snapshot()
		if s.activated != 1 || s.negotiated != f {
			t.Fatalf("activated %d times with %#x, want once with %#x", s.activated, s.negotiated, f)
		}
		q := s.queues[0]
		if q == nil || s.queues[1] != nil || len(s.queues) != 2 {
			t.Fatalf("queues %v: want queue 0 only", s.queues)
		}
		if q.EventIdx != (f&(1<<virtio.RingFEventIdx) != 0) || q.IndirectDesc != (f&(1<<virtio.RingFIndirectDesc) != 0) {
			t.Errorf("queue EventIdx %v IndirectDesc %v for features %#x", q.EventIdx, q.IndirectDesc, f)
		}
	}
}

func TestMMIOStatus(t *testing.T) {
	const (
		ack = virtio.StatusAcknowledge
		drv = virtio.StatusDriver
		fok = virtio.StatusFeaturesOK
		dok = virtio.StatusDriverOK
		nr  = virtio.StatusDeviceNeedsReset
		bad = virtio.StatusFailed
	)
	tests := []struct {
		name   string
		writes []uint32
		want   uint32
		active bool
	}{
		{"initial", nil, 0, false},
		{"acknowledge", []uint32{ack}, ack, false},
		{"driver", []uint32{ack, ack | drv}, ack | drv, false},
		{"full sequence", []uint32{ack, ack | drv, ack | drv | fok, ack | drv | fok | dok}, 0xf, true},
		{"two steps at once", []uint32{ack | drv}, ack | drv, false},
		{"DRIVER without ACKNOWLEDGE", []uint32{drv}, 0, false},
		{"DRIVER_OK without FEATURES_OK", []uint32{ack, ack | drv, ack | drv | dok}, ack | drv, false},
		{"clearing a bit", []uint32{ack, ack | drv, ack}, ack | drv, false},
		{"undefined bit 0x10", []uint32{ack, ack | 0x10}, ack, false},
		{"upper bits", []uint32{ack, 0x100 | ack | drv}, ack, false},
		{"NEEDS_RESET cannot be set by the driver", []uint32{ack, ack | drv | nr}, ack | drv, false},
		{"FAILED any time", []uint32{ack, ack | bad}, ack | bad, false},
		{"FAILED alone", []uint32{bad}, bad, false},
		{"nothing after FAILED", []uint32{ack, ack | bad, ack | drv | bad}, ack | bad, false},
		{"DRIVER_OK with FAILED does not start", []uint32{ack, ack | drv, ack | drv | fok, ack | drv | fok | dok | bad}, 0xf | bad, false},
		{"FAILED after DRIVER_OK", []uint32{ack, ack | drv, ack | drv | fok, 0xf, 0xf | bad}, 0xf | bad, true},
		{"reset", []uint32{ack, ack | drv, ack | drv | fok, 0xf, 0}, 0, false},
		{"reset after FAILED", []uint32{ack, ack | bad, 0, ack}, ack, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := newDummy()
			dr := newDriver(t, dev)
			d := virtiotest.NewDriverQueue(dr.mem, 0x100, 8)
			for _, v := range tt.writes {
				if v&fok != 0 && dr.status() == ack|drv {
					dr.writeFeatures(version1)
				}
				dr.w(virtio.RegStatus, v)
				if dr.status()&(fok|dok) == fok && dr.r(virtio.RegQueueReady) == 0 {
					dr.setupQueue(0, d)
				}
			}
			if got := dr.status(); got != tt.want {
				t.Errorf("status = %#x, want %#x", got, tt.want)
			}
			if s := dev.snapshot(); s.active != tt.active {
				t.Errorf("device active = %v, want %v", s.active, tt.active)
			}
		})
	}
}

func TestMMIOReset(t *testing.T) {
	dev := newDummy()
	dr := newDriver(t, dev)
	dr.bringUp(version1)
	dr.m.Signal(virtio.InterruptUsedBuffer | virtio.InterruptConfigChange)
	dr.w(virtio.RegQueueSel, 1)
	dr.w(virtio.RegDeviceFeaturesSel, 1)
	resets := dev.snapshot().resets

	dr.w(virtio.RegStatus, 0)
	if s := dr.status(); s != 0 {
		t.Errorf("status %#x after reset", s)
	}
	if isr := dr.r(virtio.RegInterruptStatus); isr != 0 {
		t.Errorf("InterruptStatus %#x after reset", isr)
	}
	if dr.r(virtio.RegDeviceFeatures) != 1<<0|1<<3|1<<28|1<<29 {
		t.Error("DeviceFeaturesSel not reset to 0")
	}
	for i := range uint32(2) {
		dr.w(virtio.RegQueueSel, i)
		if dr.r(virtio.RegQueueReady) != 0 {
			t.Errorf("queue %d still ready after reset", i)
		}
		if dr.r(virtio.RegQueueNumMax) == 0 {
			t.Errorf("queue %d lost its maximum size", i)
		}
	}
	s := dev.snapshot()
	if s.active || s.resets != resets+1 {
		t.Errorf("device active %v, %d resets", s.active, s.resets)
	}
	dr.w(virtio.RegQueueNotify, 0)
	dr.m.Notify(0)
	if n := len(dev.snapshot().notified); n != 0 {
		t.Errorf("%d notifications reached a reset device", n)
	}
	// Linux deletes its queues after the reset: QueueReady = 0, read back.
	dr.w(virtio.RegQueueSel, 0)
	dr.w(virtio.RegQueueReady, 0)
	if dr.r(virtio.RegQueueReady) != 0 {
		t.Error("QueueReady not 0")
	}

	// The device comes up again, with fresh queue positions.
	d := dr.bringUp(version1)
	d.Add([][]byte{[]byte("again")}, []int{5})
	dr.w(virtio.RegQueueNotify, 0)
	if used := d.Used(); len(used) != 1 || string(used[0].Written) != "again" {
		t.Errorf("used after re-initialisation: %+v", used)
	}
	if s := dev.snapshot(); s.activated != 2 {
		t.Errorf("activated %d times, want 2", s.activated)
	}
}

func TestMMIOQueueConfig(t *testing.T) {
	t.Run("before FEATURES_OK", func(t *testing.T) {
		dr := newDriver(t, newDummy())
		dr.addStatus(virtio.StatusAcknowledge)
		dr.addStatus(virtio.StatusDriver)
		dr.setupQueue(0, virtiotest.NewDriverQueue(dr.mem, 0x100, 8))
		if dr.r(virtio.RegQueueReady) != 0 {
			t.Error("queue enabled before FEATURES_OK")
		}
	})
	t.Run("selector out of range", func(t *testing.T) {
		dr := newDriver(t, newDummy())
		dr.negotiate(version1)
		for _, sel := range []uint32{2, 0xffffffff} {
			dr.w(virtio.RegQueueSel, sel)
			dr.w(virtio.RegQueueNum, 4)
			dr.w(virtio.RegQueueReady, 1)
			if dr.r(virtio.RegQueueNumMax) != 0 || dr.r(virtio.RegQueueReady) != 0 {
				t.Errorf("queue %#x exists", sel)
			}
		}
		if dr.status()&virtio.StatusDeviceNeedsReset != 0 {
			t.Error("DEVICE_NEEDS_RESET for a queue that does not exist")
		}
	})
	t.Run("writes after ready are ignored", func(t *testing.T) {
		dev := newDummy()
		dr := newDriver(t, dev)
		dr.negotiate(version1)
		d := virtiotest.NewDriverQueue(dr.mem, 0x100, 8)
		dr.setupQueue(0, d)
		for _, off := range []uint64{virtio.RegQueueNum, virtio.RegQueueDescLow, virtio.RegQueueDescHigh,
			virtio.RegQueueDriverLow, virtio.RegQueueDriverHigh, virtio.RegQueueDeviceLow, virtio.RegQueueDeviceHigh} {
			dr.w(off, 0x40)
		}
		dr.addStatus(virtio.StatusDriverOK)
		q := dev.snapshot().queues[0]
		if q.Size != 8 || q.DescAddr != d.DescAddr || q.DriverAddr != d.AvailAddr || q.DeviceAddr != d.UsedAddr {
			t.Errorf("device got %+v, want the configuration before QueueReady", q)
		}
		// After DRIVER_OK QueueReady can no longer be cleared.
		dr.w(virtio.RegQueueReady, 0)
		if dr.r(virtio.RegQueueReady) != 1 {
			t.Error("QueueReady cleared after DRIVER_OK")
		}
		// Nor can an unused queue be set up.
		dr.setupQueue(1, virtiotest.NewDriverQueue(dr.mem, 0x800, 4))
		if dr.r(virtio.RegQueueReady) != 0 {
			t.Error("queue 1 enabled after DRIVER_OK")
		}
	})
	t.Run("disable before DRIVER_OK", func(t *testing.T) {
		dev := newDummy()
		dr := newDriver(t, dev)
		dr.negotiate(version1)
		d := virtiotest.NewDriverQueue(dr.mem, 0x100, 8)
		dr.setupQueue(0, d)
		dr.w(virtio.RegQueueReady, 0)
		if dr.r(virtio.RegQueueReady) != 0 {
			t.Fatal("QueueReady = 0 ignored")
		}
		dr.w(virtio.RegQueueNum, 4) // writable again
		dr.w(virtio.RegQueueReady, 1)
		dr.addStatus(virtio.StatusDriverOK)
		if q := dev.snapshot().queues[0]; q == nil || q.Size != 4 {
			t.Errorf("queue %+v, want size 4", q)
		}
	})
	t.Run("64-bit addresses", func(t *testing.T) {
		dr := newDriver(t, newDummy())
		dr.negotiate(version1)
		dr.w(virtio.RegQueueSel, 0)
		dr.w(virtio.RegQueueDescHigh, 1) // 4 GiB up: outside memory
		dr.w(virtio.RegQueueReady, 1)
		if dr.r(virtio.RegQueueReady) != 0 || dr.status()&virtio.StatusDeviceNeedsReset == 0 {
			t.Error("a queue outside memory was enabled")
		}
	})
}

func TestMMIONeedsReset(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dr *driver, dev *dummyDevice)
	}{
		{"queue size not a power of two", func(dr *driver, dev *dummyDevice) {
			d := virtiotest.NewDriverQueue(dr.mem, 0x100, 8)
			dr.w(virtio.RegQueueSel, 0)
			dr.w(virtio.RegQueueNum, 6)
			dr.setupQueueAddrs(d)
		}},
		{"queue size above max", func(dr *driver, dev *dummyDevice) {
			dr.setupQueue(1, virtiotest.NewDriverQueue(dr.mem, 0x100, 8)) // max 4
		}},
		{"queue size above 16 bits", func(dr *driver, dev *dummyDevice) {
			d := virtiotest.NewDriverQueue(dr.mem, 0x100, 8)
			dr.w(virtio.RegQueueSel, 0)
			dr.w(virtio.RegQueueNum, 0x10008)
			dr.setupQueueAddrs(d)
		}},
		{"misaligned descriptor table", func(dr *driver, dev *dummyDevice) {
			d := virtiotest.NewDriverQueue(dr.mem, 0x100, 8)
			d.DescAddr += 4
			dr.setupQueue(0, d)
		}},
		{"used ring outside memory", func(dr *driver, dev *dummyDevice) {
			d := virtiotest.NewDriverQueue(dr.mem, 0x100, 8)
			d.UsedAddr = memSize
			dr.setupQueue(0, d)
		}},
		{"activation fails", func(dr *driver, dev *dummyDevice) {
			dev.actErr = errActivate
			dr.setupQueue(0, virtiotest.NewDriverQueue(dr.mem, 0x100, 8))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := newDummy()
			dr := newDriver(t, dev)
			dr.negotiate(version1)
			tt.setup(dr, dev)
			gen := dr.r(virtio.RegConfigGeneration)
			dr.addStatus(virtio.StatusDriverOK)
			s := dr.status()
			if s != 0xf|virtio.StatusDeviceNeedsReset {
				t.Errorf("status %#x, want DRIVER_OK and DEVICE_NEEDS_RESET", s)
			}
			if isr := dr.r(virtio.RegInterruptStatus); isr != virtio.InterruptConfigChange {
				t.Errorf("InterruptStatus %#x, want a configuration change", isr)
			}
			if dr.raisedCount() != 1 {
				t.Errorf("interrupt raised %d times, want 1", dr.raisedCount())
			}
			if dr.r(virtio.RegConfigGeneration) == gen {
				t.Error("ConfigGeneration unchanged")
			}
			if dev.snapshot().active {
				t.Error("device started")
			}
			dr.w(virtio.RegStatus, 0)
			if s := dr.status(); s != 0 {
				t.Errorf("status %#x after reset", s)
			}
		})
	}

	t.Run("set by the device", func(t *testing.T) {
		dev := newDummy()
		dr := newDriver(t, dev)
		dr.bringUp(version1)
		dev.mu.Lock()
		irq := dev.irq
		dev.mu.Unlock()
		if !virtio.SetNeedsReset(irq) {
			t.Fatal("the transport's Interrupt is not a NeedsResetter")
		}
		if s := dr.status(); s != 0xf|virtio.StatusDeviceNeedsReset {
			t.Errorf("status %#x", s)
		}
		if dr.r(virtio.RegInterruptStatus)&virtio.InterruptConfigChange == 0 {
			t.Error("no configuration change interrupt")
		}
		// Linux's virtio_add_status writes the bit back; that is harmless.
		dr.addStatus(virtio.StatusFailed)
		if s := dr.status(); s != 0xf|virtio.StatusDeviceNeedsReset|virtio.StatusFailed {
			t.Errorf("status %#x after FAILED", s)
		}
		dr.w(virtio.RegStatus, 0)
		if s := dr.status(); s != 0 {
			t.Errorf("status %#x after reset", s)
		}
	})
}

// setupQueueAddrs writes the ring addresses of d and QueueReady for the
// selected queue, leaving QueueNum as it is.
func (dr *driver) setupQueueAddrs(d *virtiotest.DriverQueue) {
	dr.w(virtio.RegQueueDescLow, uint32(d.DescAddr))
	dr.w(virtio.RegQueueDriverLow, uint32(d.AvailAddr))
	dr.w(virtio.RegQueueDeviceLow, uint32(d.UsedAddr))
	dr.w(virtio.RegQueueReady, 1)
}

func TestMMIOInterrupt(t *testing.T) {
	dr := newDriver(t, newDummy())
	steps := []struct {
		signal, ack uint32
		want        uint32
		raised      int
	}{
		{signal: virtio.InterruptUsedBuffer, want: 1, raised: 1},
		{signal: virtio.InterruptUsedBuffer, want: 1, raised: 2}, // raised again: an edge per event
		{signal: virtio.InterruptConfigChange, want: 3, raised: 3},
		{ack: virtio.InterruptUsedBuffer, want: 2, raised: 3},
		{ack: 0xfffffffc, want: 2, raised: 3},
		{ack: virtio.InterruptConfigChange, want: 0, raised: 3},
		{signal: 0, want: 0, raised: 3},
		{signal: 4, want: 0, raised: 3}, // undefined bits are never set
		{signal: 7, want: 3, raised: 4},
	}
	for i, s := range steps {
		if s.signal != 0 || s.ack == 0 {
			dr.m.Signal(s.signal)
		}
		if s.ack != 0 {
			dr.w(virtio.RegInterruptACK, s.ack)
		}
		if got := dr.r(virtio.RegInterruptStatus); got != s.want {
			t.Errorf("step %d: InterruptStatus %#x, want %#x", i, got, s.want)
		}
		if dr.m.InterruptPending() != (s.want != 0) {
			t.Errorf("step %d: InterruptPending wrong", i)
		}
		if got := dr.raisedCount(); got != s.raised {
			t.Errorf("step %d: raised %d times, want %d", i, got, s.raised)
		}
	}
	var _ virtio.Interrupt = dr.m
	var _ virtio.NeedsResetter = dr.m
	virtio.NewMMIO(newDummy(), dr.mem, nil).Signal(1) // a nil raise is allowed
}

func TestMMIONotify(t *testing.T) {
	dev := newDummy()
	dr := newDriver(t, dev)
	dr.w(virtio.RegQueueNotify, 0)
	dr.negotiate(version1)
	dr.setupQueue(0, virtiotest.NewDriverQueue(dr.mem, 0x100, 8))
	dr.w(virtio.RegQueueNotify, 0) // before DRIVER_OK: dropped
	dr.addStatus(virtio.StatusDriverOK)
	dr.w(virtio.RegQueueNotify, 0)
	dr.w(virtio.RegQueueNotify, 1) // not enabled
	dr.w(virtio.RegQueueNotify, 7) // no such queue
	dr.w(virtio.RegQueueNotify, 0xffffffff)
	dr.m.Notify(0) // the ioeventfd path
	dr.m.Notify(-1)
	dr.m.Write(virtio.RegQueueNotify, []byte{0, 0}) // 2-byte write: ignored
	if got := dev.snapshot().notified; len(got) != 2 || got[0] != 0 || got[1] != 0 {
		t.Errorf("notifications %v, want [0 0]", got)
	}
}

// TestMMIOEndToEnd carries a request from the driver through the
// transport and a device and back, with and without EVENT_IDX.
func TestMMIOEndToEnd(t *testing.T) {
	for _, f := range []uint64{version1, version1 | 1<<virtio.RingFEventIdx | 1<<virtio.RingFIndirectDesc} {
		dev := newDummy()
		dr := newDriver(t, dev)
		d := dr.bringUp(f)
		for i := range 20 {
			req := []byte{byte(i), 'x', 'y'}
			add := d.Add
			if i%2 == 1 && f&(1<<virtio.RingFIndirectDesc) != 0 {
				add = d.AddIndirect
			}
			head := add([][]byte{req}, []int{3})
			if d.Kick() {
				dr.w(virtio.RegQueueNotify, 0)
			}
			isr := dr.r(virtio.RegInterruptStatus)
			dr.w(virtio.RegInterruptACK, isr)
			if isr != virtio.InterruptUsedBuffer {
				t.Fatalf("features %#x, request %d: InterruptStatus %#x", f, i, isr)
			}
			used := d.Used()
			if len(used) != 1 || used[0].Head != head || !bytes.Equal(used[0].Written, req) {
				t.Fatalf("features %#x, request %d: used %+v", f, i, used)
			}
		}
		if errs := dev.snapshot().popErrs; len(errs) != 0 {
			t.Errorf("Pop errors: %v", errs)
		}
	}
}

// TestMMIORace runs register accesses on several "vCPUs" while a device
// goroutine signals and the driver resets and re-initialises the device.
// Run with -race.
func TestMMIORace(t *testing.T) {
	dev := &signallingDevice{dummyDevice: newDummy()}
	dr := newDriver(t, dev)
	dr.m.Log = nil
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, 4)
			for {
				select {
				case <-stop:
					return
				default:
				}
				dr.m.Read(virtio.RegInterruptStatus, b)
				dr.m.Write(virtio.RegInterruptACK, b)
				dr.m.Read(virtio.RegStatus, b)
				dr.m.Read(virtio.RegConfig, b)
				dr.m.Read(virtio.RegConfigGeneration, b)
				binary.LittleEndian.PutUint32(b, 0)
				dr.m.Write(virtio.RegQueueNotify, b)
				dr.m.Read(virtio.RegQueueReady, b)
			}
		}()
	}
	for range 50 {
		// bringUp without its checks: the device sets DEVICE_NEEDS_RESET.
		dr.negotiate(version1)
		dr.setupQueue(0, virtiotest.NewDriverQueue(dr.mem, 0x100, 8))
		dr.addStatus(virtio.StatusDriverOK)
		dr.w(virtio.RegStatus, 0)
	}
	if dev.snapshot().activated == 0 {
		t.Error("device never activated")
	}
	close(stop)
	wg.Wait()
}

// signallingDevice signals from its own goroutine while active, as a real
// device does.
type signallingDevice struct {
	*dummyDevice
	stop chan struct{}
	done chan struct{}
}

func (d *signallingDevice) Activate(mem virtio.GuestMemory, irq virtio.Interrupt, queues []*virtio.Queue, features uint64) error {
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.done)
		for i := 0; ; i++ {
			select {
			case <-d.stop:
				return
			default:
			}
			irq.Signal(virtio.InterruptUsedBuffer)
			if i%100 == 0 {
				virtio.SetNeedsReset(irq)
			}
		}
	}()
	return d.dummyDevice.Activate(mem, irq, queues, features)
}

func (d *signallingDevice) Reset() {
	if d.stop != nil {
		close(d.stop)
		<-d.done
		d.stop = nil
	}
	d.dummyDevice.Reset()
}
