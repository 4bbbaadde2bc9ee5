package gpio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Controller is the protocol core of a virtio-gpio device: it turns
// requestq messages into Backend calls and runs the interrupt state machine
// of the eventq. It knows nothing of virtqueues; the glue pops descriptor
// chains, hands their bytes to HandleRequest and QueueEvent, and pushes
// what they return. T is the glue's handle for an eventq buffer (for
// example its descriptor chain); the Controller only stores and returns it.
//
// Goroutines. A Controller is safe for concurrent use. The intended split
// is:
//   - the requestq goroutine calls HandleRequest, in ring order (requests for
//     one line are executed in call order, which is how the device meets
//     "MUST process multiple messages, for the same GPIO line, sequentially");
//   - the eventq goroutine calls QueueEvent and pushes what it returns;
//   - one goroutine calls Run, which feeds Backend events to HandleEvent;
//   - the transport calls Features, Negotiate, ReadConfig and Reset.
//
// Completions. Eventq buffers that complete as a direct result of
// QueueEvent are returned by QueueEvent. All others are passed to the
// complete callback given to NewController: from HandleRequest (a
// SET_IRQ_TYPE or SET_DIRECTION that disables an interrupt returns the held
// buffer INVALID), on the goroutine calling HandleRequest, before
// HandleRequest returns, so the eventq buffer is used before the request's
// response; and from Run (an interrupt fired), on Run's goroutine. The
// callback is called with no Controller lock held and may call any
// Controller method except Reset; it must push the buffers to the eventq
// (under the glue's own eventq lock, since it runs concurrently with the
// eventq goroutine) and notify the driver.
type Controller[T any] struct {
	b        Backend
	offerIRQ bool
	complete func([]Completion[T])
	cfg      Config
	names    []byte // GET_NAMES block; nil if no line is named

	mu    sync.Mutex
	irq   bool // VIRTIO_GPIO_F_IRQ negotiated
	lines []lineState[T]
	stats Stats
}

// lineState is what the device keeps per line besides the backend's state.
type lineState[T any] struct {
	dir   Direction // direction the backend was last set to
	value uint8     // output value from SET_VALUE, applied when dir becomes out

	irqType IRQType   // enabled trigger type; IRQTypeNone if disabled
	since   time.Time // when the interrupt was last enabled
	level   uint8     // input level, tracked from events while enabled
	latched bool      // an edge arrived while enabled and masked
	held    bool      // the driver's eventq buffer is queued (unmasked)
	token   T         // that buffer, if held
}

// Completion is an eventq buffer to give back to the driver, with the
// status to write into its struct virtio_gpio_irq_response.
type Completion[T any] struct {
	Token  T
	Status EventStatus
}

// Bytes returns the struct virtio_gpio_irq_response to write: one byte.
func (c Completion[T]) Bytes() []byte { return []byte{byte(c.Status)} }

// NewController returns the device for backend b, all lines in the state
// b reports. irq says whether the device offers VIRTIO_GPIO_F_IRQ; it
// requires b.Events to be non-nil and complete to be non-nil. See
// Controller for which goroutine calls complete.
func NewController[T any](b Backend, irq bool, complete func([]Completion[T])) (*Controller[T], error) {
	n := b.Lines()
	if n < 1 || n > math.MaxUint16 {
		// gpio-virtio.c: "Number of GPIOs can't be zero".
		return nil, fmt.Errorf("gpio: backend has %d lines, want 1 to 65535", n)
	}
	if irq && b.Events() == nil {
		return nil, errors.New("gpio: interrupts offered but the backend has no events")
	}
	if irq && complete == nil {
		return nil, errors.New("gpio: interrupts offered without a completion callback")
	}
	names := make([]string, n)
	for i := range names {
		names[i] = b.Name(i)
	}
	if err := checkNames(names); err != nil {
		return nil, err
	}
	block := namesBlock(names)
	if uint64(len(block)) >= math.MaxUint32 {
		return nil, errors.New("gpio: line names too long")
	}
	c := &Controller[T]{
		b:        b,
		offerIRQ: irq,
		complete: complete,
		cfg:      Config{NGPIO: uint16(n), GPIONamesSize: uint32(len(block))},
		names:    block,
		lines:    make([]lineState[T], n),
	}
	for i := range c.lines {
		d, err := b.Direction(i)
		if err != nil {
			return nil, fmt.Errorf("gpio: line %d: %w", i, err)
		}
		c.lines[i].dir = d
	}
	return c, nil
}

// checkNames enforces "GPIO Device / requestq Operation / Get Line Names":
// names are 7-bit ASCII, zero-terminated (so contain no NUL) and unique.
func checkNames(names []string) error {
	seen := map[string]int{}
	for i, s := range names {
		for j := 0; j < len(s); j++ {
			if s[j] == 0 || s[j] >= 0x80 {
				return fmt.Errorf("gpio: name of line %d is not 7-bit ASCII without NUL: %q", i, s)
			}
		}
		if s == "" {
			continue
		}
		if k, ok := seen[s]; ok {
			return fmt.Errorf("gpio: lines %d and %d are both named %q", k, i, s)
		}
		seen[s] = i
	}
	return nil
}

// namesBlock is the gpio_names block: each name followed by a NUL, in line
// order, an unnamed line as a lone NUL; nil when no line has a name, so that
// gpio_names_size is 0 ("The device MUST set the gpio_names_size field as
// zero ... if it doesn't implement names").
func namesBlock(names []string) []byte {
	var b []byte
	named := false
	for _, s := range names {
		b = append(b, s...)
		b = append(b, 0)
		named = named || s != ""
	}
	if !named {
		return nil
	}
	return b
}

// Config returns the device configuration.
func (c *Controller[T]) Config() Config { return c.cfg }

// ReadConfig fills p with configuration space from off; bytes past the
// end of struct virtio_gpio_config read as zero.
func (c *Controller[T]) ReadConfig(off uint64, p []byte) {
	b := c.cfg.Bytes()
	for i := range p {
		p[i] = 0
		if o := off + uint64(i); o >= off && o < ConfigSize {
			p[i] = b[o]
		}
	}
}

// WriteConfig ignores the write: the configuration is read-only.
func (c *Controller[T]) WriteConfig(off uint64, p []byte) {}

// Features returns the device feature bits offered: 1<<FeatureIRQ if the
// Controller was built with interrupts.
func (c *Controller[T]) Features() uint64 {
	if c.offerIRQ {
		return 1 << FeatureIRQ
	}
	return 0
}

// Negotiate records the features the driver accepted; the transport calls
// it when the device is activated. Until then, and after Reset,
// VIRTIO_GPIO_F_IRQ counts as not negotiated.
func (c *Controller[T]) Negotiate(features uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.irq = c.offerIRQ && features&(1<<FeatureIRQ) != 0
}

// IRQ reports whether VIRTIO_GPIO_F_IRQ has been negotiated.
func (c *Controller[T]) IRQ() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.irq
}

// Reset returns the device to its initial state, as a virtio device reset
// requires: held eventq buffers are dropped without being completed (the
// transport discards the queues), latched edges are forgotten, every line's
// interrupt is disabled and every line is released (DirectionNone) in the
// backend, kept output values are cleared and VIRTIO_GPIO_F_IRQ counts as
// not negotiated. It returns the backend's errors, joined; the device state
// is reset regardless. The glue must stop its requestq, eventq and Run
// goroutines (or make sure they make no calls) before calling Reset.
func (c *Controller[T]) Reset() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for i := range c.lines {
		l := &c.lines[i]
		if l.latched {
			c.stats.LatchesDiscarded++
		}
		if l.irqType != IRQTypeNone {
			if err := c.b.SetIRQType(i, IRQTypeNone); err != nil {
				errs = append(errs, fmt.Errorf("line %d: %w", i, err))
			}
		}
		if err := c.b.SetDirection(i, DirectionNone, 0); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", i, err))
		}
		*l = lineState[T]{}
	}
	c.irq = false
	return errors.Join(errs...)
}

// ResponseSize is the size of the response a request needs:
// 1+gpio_names_size for GET_NAMES on a device with names, and
// sizeof(struct virtio_gpio_response) = 2 for everything else, including
// malformed requests. Only the type field decides; it is read if the
// request has at least two bytes.
func (c *Controller[T]) ResponseSize(req []byte) int {
	if len(req) >= 2 && MsgType(binary.LittleEndian.Uint16(req)) == MsgTypeGetNames && len(c.names) > 0 {
		return 1 + len(c.names)
	}
	return ResponseSize
}

// HandleRequest executes one requestq message and returns the response to
// write into the chain's writable buffers, whose total size is respCap. It
// always returns a response, because gpio-virtio.c waits for one without a
// timeout:
//
//   - its length is min(respCap, ResponseSize(req)): the driver checks that
//     the used length is exactly the size it allocated;
//   - if respCap is smaller than ResponseSize(req), the request is not
//     executed and the response is status ERR followed by zeros, as much of
//     it as fits (the driver tests the status before the length);
//   - a malformed request (not 8 bytes, unknown type, gpio >= ngpio, a value
//     out of range for its type, SET_IRQ_TYPE without VIRTIO_GPIO_F_IRQ) and
//     a request the backend fails are answered with status ERR and a zero
//     value byte, having changed nothing except as documented in doc.go.
//
// Eventq buffers the request completes are passed to the complete callback
// before HandleRequest returns.
func (c *Controller[T]) HandleRequest(req []byte, respCap int) []byte {
	size := c.ResponseSize(req)
	n := min(max(respCap, 0), size)
	resp := make([]byte, n)
	status := StatusERR
	var done []Completion[T]
	c.mu.Lock()
	if n == size {
		var ok bool
		if ok, done = c.request(req, resp[1:]); ok {
			status = StatusOK
		}
		c.countCompletions(done)
	}
	c.countRequest(req, byte(status))
	c.mu.Unlock()
	if n > 0 {
		resp[0] = byte(status)
		if status != StatusOK {
			clear(resp[1:])
		}
	}
	if len(done) > 0 {
		c.complete(done)
	}
	return resp
}

// request executes one message with c.mu held, writing the response value
// (one byte, or the names block) into out. It reports success and the
// eventq buffers to complete.
func (c *Controller[T]) request(req []byte, out []byte) (ok bool, done []Completion[T]) {
	r, err := ParseRequest(req)
	if err != nil {
		return false, nil
	}
	if r.Type == MsgTypeGetNames {
		// The gpio and value fields (0 and 0 per the spec) are ignored.
		if len(c.names) == 0 {
			return false, nil // message not supported
		}
		copy(out, c.names)
		return true, nil
	}
	if int(r.GPIO) >= len(c.lines) {
		return false, nil
	}
	line := int(r.GPIO)
	switch r.Type {
	case MsgTypeGetDirection:
		d, err := c.b.Direction(line)
		if err != nil || !d.Valid() {
			return false, nil
		}
		out[0] = byte(d)
		return true, nil
	case MsgTypeSetDirection:
		if r.Value > uint32(DirectionIn) {
			return false, nil
		}
		return c.setDirection(line, Direction(r.Value))
	case MsgTypeGetValue:
		v, err := c.b.Get(line)
		if err != nil || v > 1 {
			return false, nil
		}
		out[0] = v
		return true, nil
	case MsgTypeSetValue:
		if r.Value > 1 {
			return false, nil
		}
		return c.setValue(line, uint8(r.Value)), nil
	case MsgTypeSetIRQType:
		if !c.irq || r.Value > math.MaxUint8 || !IRQType(r.Value).Valid() {
			return false, nil
		}
		return c.setIRQType(line, IRQType(r.Value))
	}
	return false, nil
}

// setDirection implements VIRTIO_GPIO_MSG_SET_DIRECTION.
func (c *Controller[T]) setDirection(line int, d Direction) (bool, []Completion[T]) {
	l := &c.lines[line]
	switch d {
	case DirectionNone:
		// "The device MUST discard all state information corresponding
		// to a GPIO line, once the driver has requested to set its
		// direction to VIRTIO_GPIO_DIRECTION_NONE": the interrupt goes
		// (held buffer back INVALID, latch dropped), then the line.
		done, irqErr := c.disable(line)
		if err := c.b.SetDirection(line, DirectionNone, 0); err != nil {
			return false, done
		}
		l.dir, l.value = DirectionNone, 0
		return irqErr == nil, done
	case DirectionOut:
		// An output cannot have an enabled interrupt ("The driver MUST
		// NOT send IRQ messages for a GPIO line configured for output").
		if l.irqType != IRQTypeNone {
			return false, nil
		}
	}
	// For out, "this output value must be used by the device for the line".
	v := uint8(0)
	if d == DirectionOut {
		v = l.value
	}
	if err := c.b.SetDirection(line, d, v); err != nil {
		return false, nil
	}
	l.dir = d
	return true, nil
}

// setValue implements VIRTIO_GPIO_MSG_SET_VALUE: "The line may already be
// configured for output or may get configured to output later, at which
// point this output value must be used by the device for the line."
func (c *Controller[T]) setValue(line int, v uint8) bool {
	l := &c.lines[line]
	if l.dir == DirectionOut {
		if err := c.b.Set(line, v); err != nil {
			return false
		}
	}
	l.value = v
	return true
}
