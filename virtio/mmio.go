package virtio

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
)

// Register offsets of a virtio-mmio device, version 2 (virtio 1.2
// §4.2.2, Linux's VIRTIO_MMIO_*). All are 32 bits wide, little endian.
const (
	RegMagicValue        = 0x000 // R: "virt"
	RegVersion           = 0x004 // R: 2
	RegDeviceID          = 0x008 // R: virtio device ID
	RegVendorID          = 0x00c // R: VendorID
	RegDeviceFeatures    = 0x010 // R: 32 offered feature bits, selected by DeviceFeaturesSel
	RegDeviceFeaturesSel = 0x014 // W
	RegDriverFeatures    = 0x020 // W: 32 accepted feature bits, selected by DriverFeaturesSel
	RegDriverFeaturesSel = 0x024 // W
	RegQueueSel          = 0x030 // W: the queue the Queue* registers apply to
	RegQueueNumMax       = 0x034 // R: maximum size of the selected queue, 0 if none
	RegQueueNum          = 0x038 // W: size of the selected queue
	RegQueueReady        = 0x044 // RW: 1 when the selected queue is enabled
	RegQueueNotify       = 0x050 // W: queue index of an available buffer notification
	RegInterruptStatus   = 0x060 // R: InterruptUsedBuffer | InterruptConfigChange
	RegInterruptACK      = 0x064 // W: clears InterruptStatus bits
	RegStatus            = 0x070 // RW: device status; writing 0 resets the device
	RegQueueDescLow      = 0x080 // W: descriptor table address, low 32 bits
	RegQueueDescHigh     = 0x084 // W: high 32 bits
	RegQueueDriverLow    = 0x090 // W: available ring address, low 32 bits
	RegQueueDriverHigh   = 0x094 // W: high 32 bits
	RegQueueDeviceLow    = 0x0a0 // W: used ring address, low 32 bits
	RegQueueDeviceHigh   = 0x0a4 // W: high 32 bits
	RegSHMSel            = 0x0ac // W: shared memory region id (none exist)
	RegSHMLenLow         = 0x0b0 // R: all ones: no such region
	RegSHMLenHigh        = 0x0b4 // R: all ones
	RegSHMBaseLow        = 0x0b8 // R: all ones
	RegSHMBaseHigh       = 0x0bc // R: all ones
	RegQueueReset        = 0x0c0 // RW: VIRTIO_F_RING_RESET only; not offered, reads 0
	RegConfigGeneration  = 0x0fc // R: changes when the configuration may have changed
	RegConfig            = 0x100 // device-specific configuration space starts here
)

// Identification of the transport.
const (
	// MagicValue is the value of MagicValue, "virt" in little endian.
	MagicValue = 0x74726976
	// MMIOVersion is the value of Version: the virtio 1.x register
	// layout (1 was the legacy one).
	MMIOVersion = 2
	// VendorID is the value of VendorID: "gvmm" in little endian.
	VendorID = 0x6d6d7667
	// MMIOSize is the size of a device's register window, registers
	// and 256 bytes of configuration space: the "reg" size of its
	// device tree node.
	MMIOSize = 0x200
)

// MMIO is the virtio-mmio transport (version 2) of one device: the
// register file the driver programs, feature negotiation, the device
// status state machine and the interrupt status. It implements Interrupt,
// NeedsResetter and Logger for the device it wraps.
//
// Read and Write are safe for concurrent use by several vCPU threads;
// Signal and SetNeedsReset are safe to call from device goroutines at any
// time, also while a register access is in progress.
type MMIO struct {
	dev     Device
	mem     GuestMemory
	raise   func()
	offered uint64 // feature bits offered to the driver

	// Log, if set, receives one line, without a newline, for each driver
	// error the transport refuses or that sets DEVICE_NEEDS_RESET, and for
	// each line the device logs through Logf. It is called from vCPU
	// threads and device goroutines, maybe at once; the VMM rate-limits
	// it.
	Log func(line string)

	// Shared with device goroutines.
	isr        atomic.Uint32 // InterruptStatus
	configGen  atomic.Uint32 // ConfigGeneration
	needsReset atomic.Bool   // DEVICE_NEEDS_RESET

	mu                sync.Mutex
	status            uint32 // device status without DEVICE_NEEDS_RESET
	deviceFeaturesSel uint32
	driverFeaturesSel uint32
	driverFeatures    uint64 // as written by the driver
	driverFeaturesBad bool   // the driver set a bit past 63
	features          uint64 // negotiated, set with FEATURES_OK
	queueSel          uint32
	queues            []Queue
	active            bool // Activate succeeded; Reset not yet called
}

// NewMMIO returns the transport for dev over guest memory mem. raise
// asserts the device's interrupt line; it is called from any goroutine,
// must not block and must not call back into the MMIO. A VMM backs it
// with a write to a KVM irqfd; nil means no interrupt line.
func NewMMIO(dev Device, mem GuestMemory, raise func()) *MMIO {
	m := &MMIO{
		dev:     dev,
		mem:     mem,
		raise:   raise,
		offered: dev.Features()&deviceFeatureMask | TransportFeatures,
	}
	for _, maxSize := range dev.QueueMaxSizes() {
		m.queues = append(m.queues, *NewQueue(maxSize))
	}
	return m
}

// Read handles a guest read of len(data) bytes at offset off of the
// register window. Control registers answer only aligned 32-bit reads;
// any other access reads zero. Configuration space (off >= RegConfig) is
// read with any width through Device.ReadConfig.
func (m *MMIO) Read(off uint64, data []byte) {
	clear(data)
	if off >= RegConfig {
		m.mu.Lock()
		m.dev.ReadConfig(off-RegConfig, data)
		m.mu.Unlock()
		return
	}
	if len(data) != 4 || off%4 != 0 {
		return
	}
	binary.LittleEndian.PutUint32(data, m.readReg(off))
}

// Write handles a guest write of data at offset off of the register
// window. Control registers take only aligned 32-bit writes; others are
// ignored. Configuration space is written through Device.WriteConfig.
func (m *MMIO) Write(off uint64, data []byte) {
	if off >= RegConfig {
		m.mu.Lock()
		m.dev.WriteConfig(off-RegConfig, data)
		m.mu.Unlock()
		return
	}
	if len(data) != 4 || off%4 != 0 {
		return
	}
	v := binary.LittleEndian.Uint32(data)
	if off == RegQueueNotify {
		m.Notify(int(v))
		return
	}
	m.writeReg(off, v)
}

// Notify delivers an available buffer notification for queue q to the
// device, as a write of q to QueueNotify does. A VMM that catches
// QueueNotify writes with a KVM ioeventfd (at RegQueueNotify, 4 bytes,
// data match q) calls it when the eventfd fires. Notifications before
// DRIVER_OK or for a queue that is not enabled are dropped.
func (m *MMIO) Notify(q int) {
	m.mu.Lock()
	ok := m.active && q >= 0 && q < len(m.queues) && m.queues[q].Ready
	m.mu.Unlock()
	if ok {
		m.dev.Notify(q)
	}
}

// Reset resets the device as a driver's write of 0 to Status does; a VMM
// calls it on the way out, so that the device releases what it holds (a
// GPIO backend its host lines).
func (m *MMIO) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reset()
}

// Signal sets bits (InterruptUsedBuffer, InterruptConfigChange) in
// InterruptStatus and raises the interrupt line. A configuration change
// also advances ConfigGeneration. It implements Interrupt.
func (m *MMIO) Signal(bits uint32) {
	bits &= InterruptUsedBuffer | InterruptConfigChange
	if bits == 0 {
		return
	}
	if bits&InterruptConfigChange != 0 {
		m.configGen.Add(1)
	}
	m.isr.Or(bits)
	if m.raise != nil {
		m.raise()
	}
}

// SetNeedsReset sets DEVICE_NEEDS_RESET and sends a configuration change
// notification. It implements NeedsResetter.
func (m *MMIO) SetNeedsReset() {
	m.needsReset.Store(true)
	m.Signal(InterruptConfigChange)
}

// InterruptPending reports whether InterruptStatus is non-zero: the level
// of the interrupt line, for a VMM that re-asserts a level-triggered line
// after the guest's end of interrupt.
func (m *MMIO) InterruptPending() bool {
	return m.isr.Load() != 0
}

func (m *MMIO) readReg(off uint64) uint32 {
	switch off {
	case RegMagicValue:
		return MagicValue
	case RegVersion:
		return MMIOVersion
	case RegDeviceID:
		return m.dev.ID()
	case RegVendorID:
		return VendorID
	case RegInterruptStatus:
		return m.isr.Load()
	case RegConfigGeneration:
		return m.configGen.Load()
	case RegSHMLenLow, RegSHMLenHigh, RegSHMBaseLow, RegSHMBaseHigh:
		return ^uint32(0)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	switch off {
	case RegDeviceFeatures:
		switch m.deviceFeaturesSel {
		case 0:
			return uint32(m.offered)
		case 1:
			return uint32(m.offered >> 32)
		}
	case RegStatus:
		s := m.status
		if m.needsReset.Load() {
			s |= StatusDeviceNeedsReset
		}
		return s
	case RegQueueNumMax:
		if q := m.selected(); q != nil {
			return uint32(q.MaxSize)
		}
	case RegQueueReady:
		if q := m.selected(); q != nil && q.Ready {
			return 1
		}
	}
	// Write-only, unknown and legacy (version 1) registers read 0.
	return 0
}

func (m *MMIO) writeReg(off uint64, v uint32) {
	if off == RegInterruptACK {
		m.isr.And(^v)
		return
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	switch off {
	case RegDeviceFeaturesSel:
		m.deviceFeaturesSel = v
	case RegDriverFeaturesSel:
		m.driverFeaturesSel = v
	case RegDriverFeatures:
		m.writeDriverFeatures(v)
	case RegQueueSel:
		m.queueSel = v
	case RegQueueReady:
		m.writeQueueReady(v)
	case RegStatus:
		m.writeStatus(v)
	case RegQueueNum, RegQueueDescLow, RegQueueDescHigh, RegQueueDriverLow,
		RegQueueDriverHigh, RegQueueDeviceLow, RegQueueDeviceHigh:
		m.writeQueueConfig(off, v)
	}
	// Read-only, unknown and legacy registers ignore writes; so does
	// SHMSel, as there are no shared memory regions.
}

// selected is the queue QueueSel selects, or nil.
func (m *MMIO) selected() *Queue {
	if uint64(m.queueSel) >= uint64(len(m.queues)) {
		return nil
	}
	return &m.queues[m.queueSel]
}

// Logf formats a line for Log, if set. It implements Logger for the
// device.
func (m *MMIO) Logf(format string, args ...any) {
	if m.Log != nil {
		m.Log(fmt.Sprintf(format, args...))
	}
}
