// Package virtio is the device side of virtio 1.2 for gvmm: the split
// virtqueue (§2.7) and the virtio-mmio transport, version 2 (§4.2). It
// knows nothing about any particular device; a device model implements
// Device and plugs into an MMIO.
//
// # Bringing a device up
//
// The VMM maps an MMIO at some guest physical address (MMIOSize bytes)
// and describes it to the guest ("virtio,mmio" in the device tree). The
// guest's virtio_mmio driver reads MagicValue, Version and DeviceID,
// sets ACKNOWLEDGE and DRIVER in Status, reads DeviceFeatures (the
// device's own bits plus VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC
// and VIRTIO_RING_F_EVENT_IDX), writes the subset it accepts to
// DriverFeatures and sets FEATURES_OK, which the transport keeps only if
// that subset is valid. For each queue it writes QueueSel, QueueNum and
// the three ring addresses, then QueueReady = 1, at which point the
// transport validates the queue (Queue.Validate: size, alignment, rings
// inside guest memory). Setting DRIVER_OK activates the device:
// Device.Activate receives guest memory, the transport as its Interrupt,
// and its own copies of the enabled queues.
//
// # How a request travels
//
// 1. Available ring. The driver writes descriptors into the descriptor
// table, the head index into the available ring, bumps the avail idx and
// writes the queue index to QueueNotify. KVM may turn that write into an
// ioeventfd wake-up instead of an exit; either way the transport calls
// Device.Notify(q), directly (Write) or through MMIO.Notify.
//
// 2. Chain. The device (its goroutine, or Notify for a queue it serves
// inline) calls Queue.Pop until it returns nil. Pop checks the avail idx (a
// driver that moved it more than the queue size is corrupt: ErrAvailIdx),
// takes the head and walks the chain: every descriptor is copied out of
// guest memory once, indirect tables are followed (one level, only if
// negotiated), a chain of more buffers than the queue size is refused (so
// loops end, and a chain costs the host a bounded amount), zero-length
// buffers are skipped, and every other buffer is checked against guest
// memory. The result is a Chain: device-readable Buffers, then
// device-writable ones. Chain.Read gathers the request bytes, Chain.Write
// scatters the response. A malformed chain comes back with an error but
// with its Head, so the device can still return it.
//
// 3. Used ring. Queue.Push(head, written) writes the used element, then
// the used idx. A malformed chain is pushed with written = 0: the driver
// is never left waiting for a buffer the device dropped.
//
// 4. Interrupt. After a batch of at most a queue size of pushes,
// Queue.NeedsInterrupt says
// whether the driver asked to hear about it (VIRTQ_AVAIL_F_NO_INTERRUPT,
// or used_event with EVENT_IDX). If so the device calls
// Interrupt.Signal(InterruptUsedBuffer): the transport sets the bit in
// InterruptStatus and calls its raise function, which a VMM backs with a
// KVM irqfd. The guest's interrupt handler reads InterruptStatus, writes
// it to InterruptACK and collects the used buffers.
//
// With EVENT_IDX the other direction is suppressed too: when Pop finds
// the ring empty it writes avail_event, asking the driver to notify on
// the next buffer only, and looks once more so nothing slips between.
//
// # Errors and resets
//
// Nothing the guest writes can panic the host: every index, length and
// address from guest memory or a register is checked, and guest memory
// is only reached through GuestMemory, which returns errors. A driver
// that breaks the rules in a way the device cannot recover from (an
// invalid queue at DRIVER_OK, a corrupt available ring) gets
// DEVICE_NEEDS_RESET in Status and a configuration change interrupt.
// Each refusal is one line through MMIO.Log, which the VMM rate-limits;
// a device logs through the same line with Logf(irq, ...).
// Writing 0 to Status resets everything: Device.Reset stops the device,
// queues, negotiation and InterruptStatus return to their initial state.
//
// # Testing
//
// Package virtiotest has fake guest memory and a driver-side queue
// builder for device tests.
package virtio
