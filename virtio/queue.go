package virtio

import (
	"encoding/binary"
	"fmt"
)

// Queue is the device side of one split virtqueue (virtio 1.2 §2.7): the
// configuration the driver wrote through the transport and the device's
// two positions in the rings. It holds no reference to guest memory; every
// method that touches the rings takes it as an argument, so the same queue
// runs over a VM's RAM or a test's byte slice.
//
// A Queue is not safe for concurrent use: one goroutine at a time (in
// practice the device's) calls its methods.
type Queue struct {
	// MaxSize is QueueNumMax, the largest Size the device accepts.
	MaxSize uint16
	// Size is QueueNum, the number of descriptors and ring entries.
	Size uint16
	// DescAddr is the guest physical address of the descriptor table
	// (the Descriptor Area).
	DescAddr uint64
	// DriverAddr is the address of the available ring (the Driver
	// Area).
	DriverAddr uint64
	// DeviceAddr is the address of the used ring (the Device Area).
	DeviceAddr uint64
	// Ready is QueueReady: the driver enabled the queue.
	Ready bool
	// EventIdx is true if VIRTIO_RING_F_EVENT_IDX was negotiated.
	EventIdx bool
	// IndirectDesc is true if VIRTIO_RING_F_INDIRECT_DESC was
	// negotiated; without it an indirect descriptor is an error.
	IndirectDesc bool

	lastAvail     uint16 // next available ring entry to take
	nextUsed      uint16 // used idx: the next used ring entry to fill
	signalledUsed uint16 // nextUsed when NeedsInterrupt last ran
}

// NewQueue returns a queue in its reset state for a device whose maximum
// size is maxSize.
func NewQueue(maxSize uint16) *Queue {
	q := &Queue{MaxSize: maxSize}
	q.Reset()
	return q
}

// Reset returns the queue to its state after a device reset: not ready,
// no addresses, Size = MaxSize, both ring positions 0.
func (q *Queue) Reset() {
	*q = Queue{MaxSize: q.MaxSize, Size: q.MaxSize}
}

// LastAvail is the index of the next available ring entry Pop will take
// (the device's copy of the driver's avail idx, modulo 2^16).
func (q *Queue) LastAvail() uint16 { return q.lastAvail }

// NextUsed is the used idx the device last published.
func (q *Queue) NextUsed() uint16 { return q.nextUsed }

// StartAt sets the device's two positions in the rings, for a queue
// that does not start from a reset: lastAvail is the next available ring
// entry Pop takes, nextUsed the used idx already published (both counted
// as signalled). A vhost-user back end takes over rings the front end
// set up, with lastAvail from VHOST_USER_SET_VRING_BASE and nextUsed read
// from the used ring.
func (q *Queue) StartAt(lastAvail, nextUsed uint16) {
	q.lastAvail, q.nextUsed, q.signalledUsed = lastAvail, nextUsed, nextUsed
}

// Validate checks the queue configuration against virtio 1.2 §2.7: Size
// a power of two no larger than MaxSize, each ring aligned and lying in
// guest memory. The transport calls it when the driver enables the queue
// and again at DRIVER_OK.
func (q *Queue) Validate(mem GuestMemory) error {
	if q.Size == 0 || q.Size&(q.Size-1) != 0 || q.Size > q.MaxSize {
		return fmt.Errorf("%w: %d (maximum %d)", ErrQueueSize, q.Size, q.MaxSize)
	}
	rings := []struct {
		name       string
		addr, size uint64
		alignment  uint64
	}{
		{"descriptor table", q.DescAddr, DescSize * uint64(q.Size), descAlign},
		{"available ring", q.DriverAddr, AvailRingSize(q.Size, q.EventIdx), availAlign},
		{"used ring", q.DeviceAddr, UsedRingSize(q.Size, q.EventIdx), usedAlign},
	}
	for _, r := range rings {
		if r.addr%r.alignment != 0 {
			return fmt.Errorf("%w: %s at %#x", ErrQueueAlign, r.name, r.addr)
		}
		if err := checkRange(mem, r.addr, r.size); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrQueueRange, r.name, err)
		}
	}
	return nil
}

// Addresses of the ring fields. Validate has checked that they lie in
// memory, so none of these overflows.
func (q *Queue) availIdxAddr() uint64 { return q.DriverAddr + 2 }
func (q *Queue) availRingAddr(slot uint16) uint64 {
	return q.DriverAddr + ringHeader + 2*uint64(slot)
}
func (q *Queue) usedEventAddr() uint64 { return q.availRingAddr(q.Size) }
func (q *Queue) usedIdxAddr() uint64   { return q.DeviceAddr + 2 }
func (q *Queue) usedElemAddr(slot uint16) uint64 {
	return q.DeviceAddr + ringHeader + UsedElemSize*uint64(slot)
}
func (q *Queue) availEventAddr() uint64 { return q.usedElemAddr(q.Size) }

// pending reads the driver's avail idx and returns how many entries wait
// past lastAvail. More than Size is a corrupt ring.
func (q *Queue) pending(mem GuestMemory) (uint16, error) {
	idx, err := readU16(mem, q.availIdxAddr())
	if err != nil {
		return 0, fmt.Errorf("%w: avail idx: %v", ErrRing, err)
	}
	n := idx - q.lastAvail
	if n > q.Size {
		return 0, fmt.Errorf("%w: avail idx %d, device at %d, queue size %d", ErrAvailIdx, idx, q.lastAvail, q.Size)
	}
	return n, nil
}

// Pop takes the next descriptor chain the driver made available.
//
// It returns (nil, nil) when there is none. With EVENT_IDX it first sets
// avail_event to ask the driver for a notification on the next buffer,
// then looks again, so a buffer added meanwhile is not missed: a device
// that pops until nil and sleeps until Notify never sleeps on work. A
// device that stops before nil (to bound its work per wake-up) must come
// back by itself: with EVENT_IDX the driver does not notify again for
// buffers it adds meanwhile.
//
// If the chain is malformed, Pop returns a chain with only Head set and an
// error: the device completes it with Push(mem, c.Head, 0) so the driver
// is not left waiting. A nil chain with an error means the queue itself is
// corrupt (ErrAvailIdx, ErrRing) or not ready (ErrNotReady); the device
// should then stop using it and call SetNeedsReset.
func (q *Queue) Pop(mem GuestMemory) (*Chain, error) {
	if !q.Ready || q.Size == 0 {
		return nil, ErrNotReady
	}
	n, err := q.pending(mem)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		if !q.EventIdx {
			return nil, nil
		}
		if err := writeU16(mem, q.availEventAddr(), q.lastAvail); err != nil {
			return nil, fmt.Errorf("%w: avail_event: %v", ErrRing, err)
		}
		fence() // avail_event store before the avail idx load
		if n, err = q.pending(mem); err != nil || n == 0 {
			return nil, err
		}
	}
	rmb() // the avail idx before the entry it publishes
	head, err := readU16(mem, q.availRingAddr(q.lastAvail%q.Size))
	if err != nil {
		return nil, fmt.Errorf("%w: avail ring: %v", ErrRing, err)
	}
	q.lastAvail++
	c := &Chain{Head: head}
	if err := q.walk(mem, c); err != nil {
		return &Chain{Head: head}, fmt.Errorf("chain %d: %w", head, err)
	}
	return c, nil
}

// Push returns the chain with the given head to the driver: it writes the
// used element {head, written} and then the used idx (virtio 1.2 §2.7.8:
// len before idx). written is the number of bytes the device wrote to the
// chain's writable buffers. Push does not notify the driver; call
// NeedsInterrupt after a batch of pushes.
//
// head is written back as the driver gave it: pushing a head the driver
// did not make available, or pushing one twice, breaks the driver's ring.
func (q *Queue) Push(mem GuestMemory, head uint16, written uint32) error {
	if !q.Ready || q.Size == 0 {
		return ErrNotReady
	}
	var elem [UsedElemSize]byte
	binary.LittleEndian.PutUint32(elem[0:], uint32(head))
	binary.LittleEndian.PutUint32(elem[4:], written)
	if err := mem.WriteAt(elem[:], q.usedElemAddr(q.nextUsed%q.Size)); err != nil {
		return fmt.Errorf("%w: used ring: %v", ErrRing, err)
	}
	wmb() // the element before the idx
	if err := writeU16(mem, q.usedIdxAddr(), q.nextUsed+1); err != nil {
		return fmt.Errorf("%w: used idx: %v", ErrRing, err)
	}
	q.nextUsed++
	return nil
}

// NeedsInterrupt reports whether the driver wants a used buffer
// notification for the chains pushed since the last call (virtio 1.2
// §2.7.10). Call it after a batch of at most Size Pushes (a device that
// drains a ring the driver keeps full must stop and ask every Size chains:
// a batch of 2^16 pushes would look like none) and Signal
// InterruptUsedBuffer if it returns true.
//
// Without EVENT_IDX the driver wants one unless it set
// VIRTQ_AVAIL_F_NO_INTERRUPT. With EVENT_IDX it wants one if the batch
// moved the used idx past used_event (vring_need_event). Nothing pushed
// means no interrupt. If the ring cannot be read, it answers true: a
// spurious interrupt is harmless, a lost one hangs the driver.
func (q *Queue) NeedsInterrupt(mem GuestMemory) bool {
	oldIdx, newIdx := q.signalledUsed, q.nextUsed
	q.signalledUsed = newIdx
	if oldIdx == newIdx || !q.Ready || q.Size == 0 {
		return false
	}
	fence() // used idx store before the flags/used_event load
	if q.EventIdx {
		event, err := readU16(mem, q.usedEventAddr())
		return err != nil || needEvent(event, newIdx, oldIdx)
	}
	flags, err := readU16(mem, q.DriverAddr)
	return err != nil || flags&AvailFNoInterrupt == 0
}

// needEvent is vring_need_event: whether moving an index from old to new
// crossed event, that is, whether event is in [oldIdx, newIdx) modulo
// 2^16.
func needEvent(event, newIdx, oldIdx uint16) bool {
	return newIdx-event-1 < newIdx-oldIdx
}
