package virtio

import "errors"

// Errors returned by Queue and Chain; test for them with errors.Is.
var (
	// ErrQueueSize: the queue size is zero, not a power of two, or
	// larger than the device's maximum.
	ErrQueueSize = errors.New("virtio: bad queue size")
	// ErrQueueAlign: a ring address is not aligned as virtio 1.2 §2.7
	// requires (descriptor table 16, available ring 2, used ring 4).
	ErrQueueAlign = errors.New("virtio: misaligned ring")
	// ErrQueueRange: a ring does not lie in guest memory.
	ErrQueueRange = errors.New("virtio: ring outside guest memory")
	// ErrNotReady: the queue is not enabled.
	ErrNotReady = errors.New("virtio: queue not ready")
	// ErrAvailIdx: the driver moved the available index more than the
	// queue size past the device's position. The queue is corrupt; the
	// device should SetNeedsReset.
	ErrAvailIdx = errors.New("virtio: available index out of range")
	// ErrRing: reading or writing a ring failed.
	ErrRing = errors.New("virtio: ring access failed")

	// ErrDescIndex: a head or next index is past the end of its
	// descriptor table.
	ErrDescIndex = errors.New("virtio: descriptor index out of range")
	// ErrChainTooLong: a chain has more buffers than the queue size
	// (direct and indirect ones together; a loop ends here too), or more
	// than 2^32 bytes. The bound is the letter of §2.7.5.3.1; Linux's
	// virtio_ring builds longer indirect chains for some devices
	// (virtqueue_add_split checks total_sg against the ring size only
	// without indirect), never for GPIO, whose chains have 2 buffers.
	ErrChainTooLong = errors.New("virtio: descriptor chain too long")
	// ErrIndirect: a bad indirect descriptor: the feature was not
	// negotiated, it also has NEXT, it is nested in an indirect table,
	// or its length is zero, not a multiple of 16 or too large.
	ErrIndirect = errors.New("virtio: bad indirect descriptor")
	// ErrBufferRange: a buffer or indirect table overflows the address
	// space or lies outside guest memory.
	ErrBufferRange = errors.New("virtio: buffer outside guest memory")
	// ErrWriteOrder: a device-readable descriptor follows a
	// device-writable one.
	ErrWriteOrder = errors.New("virtio: readable descriptor after writable one")
	// ErrNoSpace: Chain.Write was given more bytes than the chain's
	// writable buffers hold.
	ErrNoSpace = errors.New("virtio: not enough writable space in chain")
)
