package virtio

// GuestMemory is guest RAM as a device sees it. Implementations check every
// range and return an error, never panic, for an address or length outside
// RAM (vmm.Memory is one; tests use a plain byte slice).
type GuestMemory interface {
	ReadAt(p []byte, gpa uint64) error
	WriteAt(p []byte, gpa uint64) error
}

// Atomic16 is an optional interface of GuestMemory: little-endian 16-bit
// loads and stores of naturally aligned addresses made as one access each.
// The ring indices (avail idx, used idx, used_event, avail_event) are
// written by one side while the other reads them; a copy of two bytes is
// two one-byte accesses (Go's memmove), and the reader could see half of
// an update: a used idx going from 0x00ff to 0x0100 read as 0x0000, so the
// driver takes 65281 buffers as used. Queue reads and writes the indices
// through it when the memory has it; vmm.Memory does. Memory shared with
// nothing (a test's byte slice) can do without.
type Atomic16 interface {
	LoadU16(gpa uint64) (uint16, error)
	StoreU16(gpa uint64, v uint16) error
}

// RangeChecker is an optional interface of GuestMemory. CheckRange
// returns nil if a ReadAt or WriteAt of n bytes at gpa would succeed,
// without copying anything. Queue uses it to validate rings and
// descriptors; for memory without it, Queue probes the first and the last
// byte of the range (and a later access to the middle of the range still
// goes through ReadAt/WriteAt, which fail cleanly).
type RangeChecker interface {
	CheckRange(gpa, n uint64) error
}

// Interrupt bits of the virtio-mmio InterruptStatus register.
const (
	InterruptUsedBuffer   = 1 << 0
	InterruptConfigChange = 1 << 1
)

// Interrupt signals the driver. The transport implements it: it sets the
// bits in InterruptStatus and raises the device's interrupt line.
// Signal is safe to call from any goroutine and never blocks for long.
type Interrupt interface {
	Signal(bits uint32)
}

// NeedsResetter is an optional interface of the Interrupt a transport
// hands to Device.Activate. SetNeedsReset sets DEVICE_NEEDS_RESET in the
// device status and sends a configuration change notification (virtio
// 1.2 §2.1.2): the device hit an error it cannot recover from, such as a
// corrupted available ring. The MMIO transport implements it.
type NeedsResetter interface {
	SetNeedsReset()
}

// SetNeedsReset calls irq.SetNeedsReset if irq implements NeedsResetter
// and reports whether it did.
func SetNeedsReset(irq Interrupt) bool {
	r, ok := irq.(NeedsResetter)
	if ok {
		r.SetNeedsReset()
	}
	return ok
}

// Logger is an optional interface of the Interrupt a transport hands to
// Device.Activate. Logf reports one line about the device to the VMM's log:
// a driver error the device refused, a chain it could not use, a broken
// ring. The MMIO transport implements it, naming the device in each line
// and limiting how many lines a guest can make it write.
type Logger interface {
	Logf(format string, args ...any)
}

// Logf calls irq.Logf if irq implements Logger.
func Logf(irq Interrupt, format string, args ...any) {
	if l, ok := irq.(Logger); ok {
		l.Logf(format, args...)
	}
}

// InlineServer is implemented by a Device whose Notify serves some of its
// queues before it returns, on the notifying vCPU's thread, instead of
// waking a goroutine. A VMM does not catch those queues' notifications
// with an ioeventfd (which lets the vCPU run on at once): the driver's
// write to QueueNotify exits to the vCPU loop, which calls Notify.
//
// It is for drivers that wait for their buffer with the vCPU busy:
// Linux's virtio_console spins, interrupts off, until each transmit
// buffer comes back (__send_to_port). Served by a goroutine, the buffer
// comes back only once the host has run that goroutine on a CPU the
// spinning vCPU does not hold. A VMM without vCPU threads (a vhost-user
// back end) calls Notify as it calls it for any other queue.
type InlineServer interface {
	// ServesInline reports whether Notify serves queue q before it
	// returns.
	ServesInline(q int) bool
}

// Device is a virtio device model, independent of the transport.
//
// The transport calls ReadConfig, WriteConfig, Activate, Notify and Reset
// from vCPU threads; a device that runs its own goroutine synchronises
// them with it.
type Device interface {
	// ID is the virtio device ID (41 for GPIO).
	ID() uint32
	// Features are the device-specific feature bits offered (bits 0-23
	// and 50-63); the transport adds the transport and ring features it
	// implements itself and masks out any other reserved bit.
	Features() uint64
	// QueueMaxSizes has one entry per virtqueue: its maximum size, a
	// power of two no larger than MaxQueueSize (Linux refuses others).
	QueueMaxSizes() []uint16
	// ReadConfig fills p from device configuration space at off; bytes
	// past the end of the configuration read as zero.
	ReadConfig(off uint64, p []byte)
	// WriteConfig writes p to configuration space at off.
	WriteConfig(off uint64, p []byte)
	// Activate starts the device when the driver sets DRIVER_OK, with
	// the negotiated features and the queues the driver enabled:
	// queues[i] is virtqueue i, or nil if the driver did not enable it,
	// and len(queues) == len(QueueMaxSizes()). The queues are the
	// device's own (validated) copies until Reset. Buffers the driver
	// made available before DRIVER_OK may already be waiting: a device
	// should look at its queues once after activation. An error sets
	// DEVICE_NEEDS_RESET.
	Activate(mem GuestMemory, irq Interrupt, queues []*Queue, features uint64) error
	// Notify tells the device the driver made buffers available on
	// queue index q. It is called only between a successful Activate
	// and Reset, for a queue that was enabled, possibly from several
	// vCPU threads at once, and must not block: a device that serves
	// its queues from a goroutine wakes it here. A device may instead
	// serve a queue it declares inline (InlineServer) before returning,
	// for a bounded time; Reset must stop such a pass and wait for it.
	// A Notify racing with Reset may arrive just after Reset returned
	// and must then be ignored.
	Notify(q int)
	// Reset stops the device: it must not touch memory or queues after
	// Reset returns, and it must answer nothing more. It is called on
	// every device reset, whether or not the device was activated, and
	// returns the device to its initial state (configuration space
	// included).
	Reset()
}
