package gpio

import (
	"context"
	"sync"

	"github.com/gvmm/gvmm/virtio"
)

// QueueSize is the maximum size of the requestq and the eventq.
const QueueSize = 256

// maxRequest bounds how much of a requestq chain's readable part is read:
// a well-formed request is 8 bytes, anything longer is answered ERR.
const maxRequest = 16

// Device is the virtio-gpio device: a Controller served over two
// virtqueues. It implements virtio.Device.
//
// Goroutines while active: one serves the requestq, one the eventq, one
// feeds backend events to the Controller (Controller.Run). The eventq is
// shared by the last two and by requestq messages that return held eventq
// buffers, so eventq pushes happen under evMu.
type Device struct {
	ctl *Controller[*virtio.Chain]

	mem      virtio.GuestMemory
	irq      virtio.Interrupt
	reqQ     *virtio.Queue
	evQ      *virtio.Queue
	evMu     sync.Mutex
	kicks    [2]chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	activeMu sync.Mutex
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

// Activate starts serving the queues.
func (d *Device) Activate(mem virtio.GuestMemory, irq virtio.Interrupt, queues []*virtio.Queue, features uint64) error {
	d.activeMu.Lock()
	defer d.activeMu.Unlock()
	d.ctl.Negotiate(features)
	d.mem, d.irq = mem, irq
	d.reqQ, d.evQ = queues[RequestQueue], nil
	if len(queues) > EventQueue {
		d.evQ = queues[EventQueue]
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	if d.reqQ != nil {
		d.start(func() { d.serve(ctx, RequestQueue, d.serveRequests) })
	}
	if d.evQ != nil {
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
	_ = d.ctl.Reset()
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

// serveRequests answers every available requestq message. A malformed
// chain is still completed (with nothing written) so that the driver is
// never left waiting; a broken ring asks the driver to reset the device.
func (d *Device) serveRequests() {
	for {
		c, err := d.reqQ.Pop(d.mem)
		if c == nil {
			if err != nil {
				virtio.SetNeedsReset(d.irq)
			}
			break
		}
		written := uint32(0)
		if err == nil {
			req := make([]byte, min(c.ReadableLen(), maxRequest))
			if _, err = c.Read(d.mem, req); err == nil {
				resp := d.ctl.HandleRequest(req, int(min(c.WritableLen(), 1<<20)))
				if n, werr := c.Write(d.mem, resp); werr == nil {
					written = uint32(n)
				}
			}
		}
		if d.reqQ.Push(d.mem, c.Head, written) != nil {
			virtio.SetNeedsReset(d.irq)
			return
		}
	}
	if d.reqQ.NeedsInterrupt(d.mem) {
		d.irq.Signal(virtio.InterruptUsedBuffer)
	}
}

// serveEvents hands every available eventq buffer to the Controller, which
// holds it until the line's interrupt fires or returns it at once.
func (d *Device) serveEvents() {
	d.evMu.Lock()
	defer d.evMu.Unlock()
	var done []Completion[*virtio.Chain]
	returned := false // a malformed chain went back, unused
	for {
		c, err := d.evQ.Pop(d.mem)
		if c == nil {
			if err != nil {
				virtio.SetNeedsReset(d.irq)
			}
			break
		}
		req := make([]byte, min(c.ReadableLen(), maxRequest))
		if err == nil {
			_, err = c.Read(d.mem, req)
		}
		if err != nil {
			if d.evQ.Push(d.mem, c.Head, 0) != nil {
				virtio.SetNeedsReset(d.irq)
				return
			}
			returned = true
			continue
		}
		done = append(done, d.ctl.QueueEvent(req, int(min(c.WritableLen(), 1<<20)), c)...)
	}
	d.pushEvents(done, returned)
}

// completeEvents is the Controller's callback for buffers it completes
// outside QueueEvent: from the requestq goroutine or from Run.
func (d *Device) completeEvents(done []Completion[*virtio.Chain]) {
	d.evMu.Lock()
	defer d.evMu.Unlock()
	d.pushEvents(done, false)
}

// pushEvents writes each completion's status and returns its buffer to the
// driver, then notifies it as its event suppression asks, also when only
// returned (chains already pushed unused) is set; evMu must be held.
func (d *Device) pushEvents(done []Completion[*virtio.Chain], returned bool) {
	if len(done) == 0 && !returned || d.evQ == nil {
		return
	}
	for _, c := range done {
		written := uint32(0)
		if n, err := c.Token.Write(d.mem, c.Bytes()); err == nil {
			written = uint32(n)
		}
		if d.evQ.Push(d.mem, c.Token.Head, written) != nil {
			virtio.SetNeedsReset(d.irq)
			return
		}
	}
	if d.evQ.NeedsInterrupt(d.mem) {
		d.irq.Signal(virtio.InterruptUsedBuffer)
	}
}
