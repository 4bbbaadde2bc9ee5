// Package console is the virtio console device (virtio 1.2 §5.3, device
// ID 3) with a single port and no feature bits: no VIRTIO_CONSOLE_F_SIZE,
// no VIRTIO_CONSOLE_F_MULTIPORT, no VIRTIO_CONSOLE_F_EMERG_WRITE. It is a
// byte pipe between the host and the guest, the channel a guest agent
// uses: Linux's virtio_console binds port 0 of a device without
// MULTIPORT to a hvc console, /dev/hvc0.
//
// # Virtqueues
//
// Without MULTIPORT the device has two queues, receiveq (0) and
// transmitq (1) of port 0; there is no control queue.
//
//   - transmitq carries the guest's output. Each chain's device-readable
//     bytes are read in pieces of at most 64 KiB, whatever length the
//     driver declared (Pop bounds a chain to 2^32 bytes and the queue size
//     of buffers, so the declared total can be far larger than the
//     device's buffer), and written to the host's io.Writer in ring
//     order, on the notifying vCPU's thread (Notify serves the transmitq
//     inline), or from the transmitq's goroutine for what a pass
//     leaves. The chain is returned with used length 0 once all its
//     bytes went to the writer: a slow writer slows the guest's writes,
//     which is the console's flow control (Linux's hvc path spins until
//     its buffer comes back). A writer error is
//     logged on the first failure of a run of failures and the bytes are
//     dropped. Device-writable buffers in a transmitq chain are ignored.
//   - receiveq carries the host's input. Device.Write appends to a queue of
//     pending bytes and wakes the device; a receiveq chain is taken only
//     while pending bytes exist and is filled with as many of them as its
//     writable buffers hold, then returned with that length. The bytes are
//     delivered in order, each exactly once, across chains. A chain is
//     never held by the device: while nothing is pending, buffers wait in
//     the ring. A receiveq chain without a writable byte (when one is
//     taken) is returned with 0 and logged.
//
// # Goroutines and reset
//
// While active, a goroutine serves the receiveq, woken through a one-slot
// channel by Notify and Device.Write. Notify serves the transmitq itself,
// before it returns, on the caller's thread (virtio.InlineServer): Linux's
// driver spins, interrupts off, until its buffer comes back, so the VMM
// gives this queue no ioeventfd and the buffer is back when the vCPU
// resumes. A pass, a goroutine's or Notify's, takes at most a queue size
// of chains and then wakes the queue's goroutine to come back, so a
// driver that keeps a ring full cannot keep Reset from stopping it; it
// asks Queue.NeedsInterrupt after each such pass. Reset waits for the
// goroutines and inline passes (including an io.Writer call in progress:
// whoever serves the transmitq gives up a chain between pieces once
// Reset began) and touches no guest memory afterwards. Pending host bytes are the
// host's, not the driver's: they survive a reset and go to whichever
// driver comes next.
//
// # Errors
//
// A malformed chain (bad address, loop, too long, bad indirect table,
// readable after writable) is logged, one line, and returned with used
// length 0. A broken ring (avail idx out of range, a ring access failing)
// sets DEVICE_NEEDS_RESET and the device stops using that queue until
// Reset.
//
// # What the guest can make the device hold
//
// A popped chain lives only while it is served and holds at most the
// queue size (256) buffers; the transmit buffer is 64 KiB, allocated once.
// Pending host bytes are bounded only by what the host writes: Write
// never blocks, so a host writing faster than the guest reads grows
// them.
//
// # Configuration space
//
// struct virtio_console_config is {le16 cols; le16 rows; le32
// max_nr_ports; le32 emerg_wr}, 12 bytes. Without the features that give
// its fields meaning, all read as zero, and writes (emerg_wr) are
// ignored.
package console
