package console

import (
	"context"
	"io"
	"math"
	"sync"

	"github.com/gvmm/gvmm/virtio"
)

// DeviceID is the virtio device ID of a console device (virtio 1.2 §5.3.1;
// VIRTIO_ID_CONSOLE in include/uapi/linux/virtio_ids.h).
const DeviceID = 3

// Virtqueue indices of port 0 (virtio 1.2 §5.3.2). Without
// VIRTIO_CONSOLE_F_MULTIPORT there are only these two.
const (
	ReceiveQueue  = 0 // receiveq: device to driver (host input)
	TransmitQueue = 1 // transmitq: driver to device (guest output)
)

// QueueSize is the maximum size of the receiveq and the transmitq.
const QueueSize = 256

// maxPiece bounds each read of a transmitq chain's bytes and each write to
// the host's writer.
const maxPiece = 64 << 10

// queueNames are the spec's names of the queues, for the log.
var queueNames = [2]string{ReceiveQueue: "receiveq", TransmitQueue: "transmitq"}

// Device is a virtio console with one port. It implements virtio.Device
// and virtio.InlineServer: Notify serves the transmitq before it returns.
//
// Goroutines while active: one serves the receiveq, one the transmitq
// (only what a pass of Notify leaves).
type Device struct {
	out io.Writer

	pendMu  sync.Mutex
	pending []byte // host bytes not yet delivered to the guest

	mem      virtio.GuestMemory
	irq      virtio.Interrupt
	queues   [2]*virtio.Queue
	broken   [2]bool // the queue's ring broke; it is not used until Reset
	kicks    [2]chan struct{}
	drainMu  [2]sync.Mutex // one drain of a queue at a time
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the goroutines and Notify's inline passes
	activeMu sync.Mutex

	// Used only by whoever serves the transmitq.
	piece      []byte // the transmit buffer, maxPiece bytes once allocated
	outFailing bool   // the last write to out failed (its error was logged)
}

// New returns a console whose guest output (transmitq bytes, in order) is
// written to out, mostly on the vCPU thread that notified. A slow out
// holds that vCPU in the VMM (that is the flow control); an error from
// out is logged once, on the first of a run of failed writes, and the
// bytes are dropped. A nil out discards the output.
func New(out io.Writer) *Device {
	if out == nil {
		out = io.Discard
	}
	// The kick channels live as long as the device: Notify runs on the
	// transport's goroutines and Write on the host's, unsynchronised with
	// Activate.
	return &Device{out: out, kicks: [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}}
}

// Write queues p for the guest (receiveq). It never blocks: the bytes wait
// in the device until the driver posts receive buffers, and they survive a
// device reset (they are the host's, for whichever driver comes next).
// It returns len(p), nil. It is safe to call from any goroutine, at any
// time.
func (d *Device) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	d.pendMu.Lock()
	d.pending = append(d.pending, p...)
	d.pendMu.Unlock()
	d.kick(ReceiveQueue)
	return len(p), nil
}

// ID is the virtio device ID of a console (3).
func (d *Device) ID() uint32 { return DeviceID }

// Features offers no console feature bits: no VIRTIO_CONSOLE_F_SIZE,
// MULTIPORT or EMERG_WRITE.
func (d *Device) Features() uint64 { return 0 }

// QueueMaxSizes: the receiveq and the transmitq of port 0.
func (d *Device) QueueMaxSizes() []uint16 { return []uint16{QueueSize, QueueSize} }

// ReadConfig reads struct virtio_console_config {le16 cols; le16 rows;
// le32 max_nr_ports; le32 emerg_wr}: without the features that give them a
// meaning, every field is zero, as is every byte past its 12.
func (d *Device) ReadConfig(off uint64, p []byte) { clear(p) }

// WriteConfig ignores writes: emerg_wr is only writable with
// VIRTIO_CONSOLE_F_EMERG_WRITE, which is not offered.
func (d *Device) WriteConfig(off uint64, p []byte) {}

// Activate serves what the driver made available before DRIVER_OK (a
// transmitq chain; a receiveq chain if host bytes are pending), then
// starts the goroutines that serve the enabled queues. features is
// ignored: none are offered.
func (d *Device) Activate(mem virtio.GuestMemory, irq virtio.Interrupt, queues []*virtio.Queue, features uint64) error {
	d.activeMu.Lock()
	defer d.activeMu.Unlock()
	d.stop() // activated again without a reset: stop the old goroutines
	d.mem, d.irq = mem, irq
	d.queues, d.broken = [2]*virtio.Queue{}, [2]bool{}
	copy(d.queues[:], queues)
	ctx, cancel := context.WithCancel(context.Background())
	d.ctx, d.cancel = ctx, cancel
	// The first look at the queues happens here, before the goroutines
	// start, so that it is over when Activate returns.
	for qi, q := range d.queues {
		if q != nil {
			d.drain(ctx, qi)
		}
	}
	for qi, q := range d.queues {
		if q != nil {
			d.wg.Add(1)
			go func() { defer d.wg.Done(); d.serve(ctx, qi) }()
		}
	}
	return nil
}

// Notify serves the transmitq before it returns, one pass of at most a
// queue size of chains (the goroutine takes any more), on the caller's
// thread: the vCPU's, which wrote to QueueNotify (see ServesInline). For
// the receiveq it wakes the goroutine and never blocks.
func (d *Device) Notify(q int) {
	if q != TransmitQueue {
		d.kick(q)
		return
	}
	d.activeMu.Lock()
	if d.cancel == nil || d.queues[q] == nil {
		d.activeMu.Unlock()
		return
	}
	ctx := d.ctx
	d.wg.Add(1) // under activeMu: stop cancels ctx and waits for this pass too
	d.activeMu.Unlock()
	defer d.wg.Done()
	d.drain(ctx, q)
}

// ServesInline reports whether Notify serves queue q before it returns:
// it does the transmitq. Linux's virtio_console waits for each transmit
// buffer with interrupts off (__send_to_port busy-waits for it to come
// back), so a vCPU that wrote to the console spins until the device has
// served it; served inline, the buffer is back when the vCPU resumes.
// Woken by an ioeventfd instead, the device's goroutine needs a host CPU
// the spinning vCPU does not hold: with one host CPU per busy vCPU, that
// is the next scheduler tick for every console write.
func (d *Device) ServesInline(q int) bool { return q == TransmitQueue }

// kick wakes the goroutine of queue q. It never blocks.
func (d *Device) kick(q int) {
	if q < 0 || q >= len(d.kicks) {
		return
	}
	select {
	case d.kicks[q] <- struct{}{}:
	default:
	}
}

// Reset stops the goroutines and any inline pass of Notify; the device
// touches guest memory no more. Pending host bytes stay, for the next
// driver. Reset waits for a write to out in progress.
func (d *Device) Reset() {
	d.activeMu.Lock()
	defer d.activeMu.Unlock()
	d.stop()
	d.mem, d.queues = nil, [2]*virtio.Queue{}
}

// stop cancels the goroutines and waits for them; activeMu is held.
func (d *Device) stop() {
	if d.cancel != nil {
		d.cancel()
		d.wg.Wait()
		d.cancel = nil
	}
}

// serve runs drain on every notification of queue qi. The driver
// notifies after making buffers available (we never set
// VIRTQ_USED_F_NO_NOTIFY); Write notifies the receiveq.
func (d *Device) serve(ctx context.Context, qi int) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kicks[qi]:
		}
		if ctx.Err() != nil {
			return
		}
		d.drain(ctx, qi)
	}
}

// drain takes up to a queue size of chains from queue qi and serves each.
// The receiveq is served only while host bytes are pending. A driver can
// keep a ring full for ever, so after a queue size of chains drain kicks
// its own goroutine to come back, which gives Reset a chance to stop it.
// It ends with an interrupt if the driver wants one.
func (d *Device) drain(ctx context.Context, qi int) {
	d.drainMu[qi].Lock()
	defer d.drainMu[qi].Unlock()
	q := d.queues[qi]
	if d.broken[qi] {
		return
	}
	defer d.interrupt(q)
	for range q.Size {
		if ctx.Err() != nil {
			return
		}
		if qi == ReceiveQueue && !d.hasPending() {
			return
		}
		c, more := d.pop(qi)
		if !more {
			return
		}
		if c == nil {
			continue
		}
		var ok bool
		if qi == ReceiveQueue {
			ok = d.receive(c)
		} else {
			ok = d.transmit(ctx, c)
		}
		if !ok {
			return
		}
	}
	d.kick(qi)
}

// pop takes the next chain from queue qi. A malformed chain is logged and
// returned to the driver at once with nothing written (c nil, more true);
// a broken ring sets DEVICE_NEEDS_RESET (more false). more is false when
// the queue has nothing more to give.
func (d *Device) pop(qi int) (c *virtio.Chain, more bool) {
	c, err := d.queues[qi].Pop(d.mem)
	switch {
	case c == nil && err == nil:
		return nil, false
	case c == nil:
		d.needsReset(qi, err)
		return nil, false
	case err != nil:
		virtio.Logf(d.irq, "virtio-console: %s: %v; returned unused", queueNames[qi], err)
		if !d.push(qi, c.Head, 0) {
			return nil, false
		}
		return nil, true
	}
	return c, true
}

// push returns a chain to the driver; it reports false if the ring is
// broken. Every path that pushes asks interrupt afterwards, after at most
// a queue size of pushes (drain's bound), as Queue.NeedsInterrupt needs.
func (d *Device) push(qi int, head uint16, written uint32) bool {
	if err := d.queues[qi].Push(d.mem, head, written); err != nil {
		d.needsReset(qi, err)
		return false
	}
	return true
}

// interrupt sends a used buffer notification if the driver wants one for
// what was pushed on q since the last call.
func (d *Device) interrupt(q *virtio.Queue) {
	if q.NeedsInterrupt(d.mem) {
		d.irq.Signal(virtio.InterruptUsedBuffer)
	}
}

// needsReset gives up on queue qi until Reset and asks the driver to
// reset the device.
func (d *Device) needsReset(qi int, err error) {
	d.broken[qi] = true
	virtio.Logf(d.irq, "virtio-console: %s: %v; DEVICE_NEEDS_RESET", queueNames[qi], err)
	virtio.SetNeedsReset(d.irq)
}

func (d *Device) hasPending() bool {
	d.pendMu.Lock()
	defer d.pendMu.Unlock()
	return len(d.pending) > 0
}

// receive fills receiveq chain c with as many pending bytes as its
// writable buffers hold and returns it; it reports false if the ring
// broke. Only this goroutine consumes pending bytes, so the prefix it
// copies stays theirs while pendMu is released: Write only appends,
// beyond it or into a new array.
func (d *Device) receive(c *virtio.Chain) bool {
	room := c.WritableLen()
	if room == 0 {
		virtio.Logf(d.irq, "virtio-console: receiveq: chain %d has no device-writable buffer; returned unused", c.Head)
		return d.push(ReceiveQueue, c.Head, 0)
	}
	d.pendMu.Lock()
	// The used length is a le32: a chain of exactly 2^32 writable bytes
	// (Pop's bound) gets one byte less.
	chunk := d.pending[:min(uint64(len(d.pending)), room, math.MaxUint32)]
	d.pendMu.Unlock()
	n, err := c.Write(d.mem, chunk)
	if err != nil {
		virtio.Logf(d.irq, "virtio-console: receiveq: chain %d: %v; %d of %d bytes delivered", c.Head, err, n, len(chunk))
	}
	d.pendMu.Lock()
	d.pending = d.pending[n:]
	if len(d.pending) == 0 {
		d.pending = nil // let a large burst's array go
	}
	d.pendMu.Unlock()
	return d.push(ReceiveQueue, c.Head, uint32(n))
}

// transmit writes transmitq chain c's readable bytes to out, in pieces
// of at most maxPiece, and returns it with used length 0. It reports
// false if the ring broke or Reset began (then the chain is given up).
func (d *Device) transmit(ctx context.Context, c *virtio.Chain) bool {
	if d.piece == nil {
		d.piece = make([]byte, maxPiece)
	}
	buf := d.piece[:0]
	for _, b := range c.Readable {
		for off := uint64(0); off < uint64(b.Len); {
			if len(buf) == cap(buf) {
				d.output(buf)
				buf = buf[:0]
				if ctx.Err() != nil {
					return false
				}
			}
			m := min(uint64(b.Len)-off, uint64(cap(buf)-len(buf)))
			p := buf[len(buf) : len(buf)+int(m)]
			if err := d.mem.ReadAt(p, b.Addr+off); err != nil {
				d.output(buf)
				virtio.Logf(d.irq, "virtio-console: transmitq: chain %d: %v; rest of the chain dropped", c.Head, err)
				return d.push(TransmitQueue, c.Head, 0)
			}
			buf = buf[:len(buf)+int(m)]
			off += m
		}
	}
	d.output(buf)
	return d.push(TransmitQueue, c.Head, 0)
}

// output writes p to out. On an error the bytes are dropped; the first
// error of a run of failures is logged.
func (d *Device) output(p []byte) {
	if len(p) == 0 {
		return
	}
	n, err := d.out.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err == nil {
		d.outFailing = false
		return
	}
	if !d.outFailing {
		virtio.Logf(d.irq, "virtio-console: output: %v; %d bytes dropped, and more until a write succeeds", err, len(p)-min(max(n, 0), len(p)))
	}
	d.outFailing = true
}
