package gpio

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/gvmm/gvmm/virtio"
)

// QueueSize is the maximum size of the requestq and the eventq.
const QueueSize = 256

// maxRequest bounds how much of a requestq chain's readable part is read:
// a well-formed request is 8 bytes, anything longer is answered ERR.
const maxRequest = 16

// maxResponse bounds the response the device builds for a request: the
// largest is GET_NAMES's 1+gpio_names_size bytes, well under this.
const maxResponse = 1 << 20

// Device is the virtio-gpio device: a Controller served over two
// virtqueues. It implements virtio.Device.
//
// Goroutines while active: one serves the requestq, one the eventq, one
// feeds backend events to the Controller (Controller.Run). The eventq is
// shared by the last two and by requestq messages that return held eventq
// buffers, so eventq pushes happen under evMu.
type Device struct {
	ctl *Controller[eventBuf]

	mem       virtio.GuestMemory
	irq       virtio.Interrupt
	reqQ      *virtio.Queue
	evQ       *virtio.Queue
	evMu      sync.Mutex
	kicks     [2]chan struct{}
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	activeMu  sync.Mutex
	malformed atomic.Uint64
}

// eventBuf is what the device keeps of an eventq buffer it holds until
// the line's interrupt fires: the chain's head, to return it, and its
// first writable buffer, where the one-byte struct virtio_gpio_irq_response
// goes (Len 0 if it has none). A held buffer so costs the same small,
// fixed amount whatever chain the driver built.
type eventBuf struct {
	head uint16
	resp virtio.Buffer
}

// NewDevice returns the device for backend b; it offers VIRTIO_GPIO_F_IRQ
// when b has events.
func NewDevice(b Backend) (*Device, error) {
	// The kick channels live as long as the device: Notify runs on the
	// transport's ioeventfd goroutines, unsynchronised with Activate.
	d := &Device{kicks: [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}}
	ctl, err := NewController(b, b.Events() != nil, d.completeEvents)
	if err != nil {
		return nil, err
	}
	d.ctl = ctl
	return d, nil
}

// ID is the virtio device ID of a GPIO device (41).
func (d *Device) ID() uint32 { return DeviceID }

// Features are the GPIO feature bits offered.
func (d *Device) Features() uint64 { return d.ctl.Features() }

// QueueMaxSizes: the requestq and the eventq.
func (d *Device) QueueMaxSizes() []uint16 { return []uint16{QueueSize, QueueSize} }

// ReadConfig reads struct virtio_gpio_config.
func (d *Device) ReadConfig(off uint64, p []byte) { d.ctl.ReadConfig(off, p) }

// WriteConfig ignores writes: the configuration is read-only.
func (d *Device) WriteConfig(off uint64, p []byte) { d.ctl.WriteConfig(off, p) }

// Stats returns what the device has done so far.
func (d *Device) Stats() Stats {
	s := d.ctl.Stats()
	s.MalformedChains = d.malformed.Load()
	if f, ok := d.ctl.b.(interface{ EventsFolded() uint64 }); ok {
		s.EventsFolded = f.EventsFolded()
	}
	return s
}

// Activate serves what the driver made available before DRIVER_OK, then
// starts the goroutines that serve the queues. A driver that
// negotiated VIRTIO_GPIO_F_IRQ but did not enable the eventq has no way to
// receive interrupts, so for it the feature counts as not negotiated and
// SET_IRQ_TYPE is answered ERR: nothing is enabled that nobody would read.
func (d *Device) Activate(mem virtio.GuestMemory, irq virtio.Interrupt, queues []*virtio.Queue, features uint64) error {
	d.activeMu.Lock()
	defer d.activeMu.Unlock()
	d.mem, d.irq = mem, irq
	d.reqQ, d.evQ = queues[RequestQueue], nil
	if len(queues) > EventQueue {
		d.evQ = queues[EventQueue]
	}
	if d.evQ == nil && features&(1<<FeatureIRQ) != 0 {
		virtio.Logf(irq, "virtio-gpio: VIRTIO_GPIO_F_IRQ negotiated without an eventq; interrupts refused")
		features &^= 1 << FeatureIRQ
	}
	d.ctl.Negotiate(features)
	// The first look at the queues happens here, before the goroutines
	// start, so that it is over when Activate returns.
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	if d.reqQ != nil {
		d.serveRequests()
		d.start(func() { d.serve(ctx, RequestQueue, d.serveRequests) })
	}
	if d.evQ != nil {
		d.serveEvents()
		d.start(func() { d.serve(ctx, EventQueue, d.serveEvents) })
		d.start(func() { d.ctl.Run(ctx) })
	}
	return nil
}

func (d *Device) start(f func()) {
	d.wg.Add(1)
	go func() { defer d.wg.Done(); f() }()
}

// Notify wakes the goroutine of queue q. It never blocks.
func (d *Device) Notify(q int) {
	if q < 0 || q >= len(d.kicks) {
		return
	}
	select {
	case d.kicks[q] <- struct{}{}:
	default:
	}
}

// Reset stops the goroutines, then returns every line to its initial
// state and releases it in the backend.
func (d *Device) Reset() {
	d.activeMu.Lock()
	defer d.activeMu.Unlock()
	if d.cancel != nil {
		d.cancel()
		d.wg.Wait()
		d.cancel = nil
	}
	if err := d.ctl.Reset(); err != nil && d.irq != nil {
		virtio.Logf(d.irq, "virtio-gpio: reset: %v", err)
	}
	d.reqQ, d.evQ = nil, nil
}

// serve runs drain on every notification of queue q. The driver notifies
// after making buffers available (we never set VIRTQ_USED_F_NO_NOTIFY).
func (d *Device) serve(ctx context.Context, q int, drain func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kicks[q]:
		}
		drain()
	}
}

// pop takes the next chain from q. A malformed chain is counted, logged
// and returned to the driver at once with nothing written (c nil, more
// true); a broken ring sets DEVICE_NEEDS_RESET (more false). more is false
// when q has nothing more to give.
func (d *Device) pop(q *virtio.Queue, name string) (c *virtio.Chain, more bool) {
	c, err := q.Pop(d.mem)
	switch {
	case c == nil && err == nil:
		return nil, false
	case c == nil:
		d.needsReset(name, err)
		return nil, false
	case err != nil:
		d.malformed.Add(1)
		virtio.Logf(d.irq, "virtio-gpio: %s: %v; returned unused", name, err)
		if !d.push(q, name, c.Head, 0) {
			return nil, false
		}
		return nil, true
	}
	return c, true
}

// push returns a chain; it reports false if the ring is broken. Every
// path that pushes asks interrupt afterwards, after at most a queue size
// of pushes (drain's bound), as Queue.NeedsInterrupt needs.
func (d *Device) push(q *virtio.Queue, name string, head uint16, written uint32) bool {
	if err := q.Push(d.mem, head, written); err != nil {
		d.needsReset(name, err)
		return false
	}
	return true
}

// interrupt sends a used buffer notification if the driver wants one for
// what was pushed since the last call.
func (d *Device) interrupt(q *virtio.Queue) {
	if q.NeedsInterrupt(d.mem) {
		d.irq.Signal(virtio.InterruptUsedBuffer)
	}
}

func (d *Device) needsReset(name string, err error) {
	virtio.Logf(d.irq, "virtio-gpio: %s: %v; DEVICE_NEEDS_RESET", name, err)
	virtio.SetNeedsReset(d.irq)
}

// drain takes up to a queue size of chains from q (queue index qi) and
// hands each, with its request bytes, to handle, which reports false if
// the ring broke. A chain whose request cannot be read is returned unused,
// like a malformed one, so that the driver is never left waiting; a broken
// ring asks the driver to reset the device. A driver can keep the ring full
// for ever (its responses may even land on the avail ring), so after a
// queue size of chains drain kicks its own goroutine to come back, which
// gives Reset a chance to stop it. It ends with an interrupt if the driver
// wants one.
func (d *Device) drain(qi int, q *virtio.Queue, name string, handle func(c *virtio.Chain, req []byte) bool) {
	defer d.interrupt(q)
	for range q.Size {
		c, more := d.pop(q, name)
		if !more {
			return
		}
		if c == nil {
			continue
		}
		req := make([]byte, min(c.ReadableLen(), maxRequest))
		if _, err := c.Read(d.mem, req); err != nil {
			d.malformed.Add(1)
			virtio.Logf(d.irq, "virtio-gpio: %s: chain %d: %v; returned unused", name, c.Head, err)
			if !d.push(q, name, c.Head, 0) {
				return
			}
			continue
		}
		if !handle(c, req) {
			return
		}
	}
	d.Notify(qi)
}

// serveRequests answers the available requestq messages.
func (d *Device) serveRequests() {
	d.drain(RequestQueue, d.reqQ, "requestq", func(c *virtio.Chain, req []byte) bool {
		resp := d.ctl.HandleRequest(req, int(min(c.WritableLen(), maxResponse)))
		n, err := c.Write(d.mem, resp)
		if err != nil {
			virtio.Logf(d.irq, "virtio-gpio: requestq: chain %d: response: %v", c.Head, err)
		}
		return d.push(d.reqQ, "requestq", c.Head, uint32(n))
	})
}

// serveEvents hands the available eventq buffers to the Controller, which
// holds each until the line's interrupt fires or returns it at once.
func (d *Device) serveEvents() {
	d.evMu.Lock()
	defer d.evMu.Unlock()
	d.drain(EventQueue, d.evQ, "eventq", func(c *virtio.Chain, req []byte) bool {
		b := eventBuf{head: c.Head}
		if len(c.Writable) > 0 {
			b.resp = c.Writable[0]
		}
		return d.pushEvents(d.ctl.QueueEvent(req, int(min(c.WritableLen(), maxResponse)), b))
	})
}

// completeEvents is the Controller's callback for buffers it completes
// outside QueueEvent: from the requestq goroutine or from Run.
func (d *Device) completeEvents(done []Completion[eventBuf]) {
	d.evMu.Lock()
	defer d.evMu.Unlock()
	if d.pushEvents(done) {
		d.interrupt(d.evQ)
	}
}

// pushEvents writes each completion's status into its buffer and returns
// it to the driver; evMu must be held. It reports false if the ring is
// broken (or the eventq gone).
func (d *Device) pushEvents(done []Completion[eventBuf]) bool {
	if d.evQ == nil {
		return false
	}
	for _, c := range done {
		written := uint32(0)
		if c.Token.resp.Len > 0 {
			if err := d.mem.WriteAt(c.Bytes(), c.Token.resp.Addr); err == nil {
				written = IRQResponseSize
			}
		}
		if !d.push(d.evQ, "eventq", c.Token.head, written) {
			return false
		}
	}
	return true
}
