package gpio

// The call sequences of the Linux driver, drivers/gpio/gpio-virtio.c
// (v6.1), replayed against the device. vgpio models struct virtio_gpio and
// its irq_chip callbacks closely enough that the interrupt tests exercise
// the same message order, masking and requeueing as the real driver.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// vgpio is the driver side of one device. Eventq tokens are line numbers,
// as the driver finds the line from the buffer's position in irq_lines.
type vgpio struct {
	t     *testing.T
	b     *bench
	irq   []irqLine
	used  []Completion[int] // eventq used ring not yet processed
	warns int               // WARN_ON()s hit in virtio_gpio_irq_prepare()

	handled []int          // generic_handle_domain_irq() calls per line
	handler func(gpio int) // the consumer's interrupt handler
	msgs    []string       // requestq messages sent, for sequence checks
	names   []string       // gc.names
	dirs    []int          // FLAG_IS_OUT as gpiochip_add_data() set it
	watch   <-chan Change  // the Sim's change stream
	stop    func()
}

// irqLine is struct vgpio_irq_line.
type irqLine struct {
	typ                                                   IRQType
	disabled, masked, queued, updatePending, queuePending bool
	ires                                                  EventStatus
}

// probe is virtio_gpio_probe() followed by gpiochip_add_data().
func probe(t *testing.T, b *bench) *vgpio {
	t.Helper()
	cfg := make([]byte, ConfigSize)
	b.c.ReadConfig(0, cfg)
	ngpio := int(cfg[0]) | int(cfg[1])<<8
	namesSize := int(cfg[4]) | int(cfg[5])<<8 | int(cfg[6])<<16 | int(cfg[7])<<24
	if ngpio == 0 {
		t.Fatal("Number of GPIOs can't be zero")
	}
	d := &vgpio{t: t, b: b, irq: make([]irqLine, ngpio), handled: make([]int, ngpio)}
	b.c.complete = d.eventqPush // the glue pushes to the eventq used ring
	for i := range d.irq {
		d.irq[i] = irqLine{typ: IRQTypeNone, disabled: true, masked: true}
	}
	d.watch, d.stop = b.sim.Watch()
	t.Cleanup(d.stop)
	if namesSize > 0 { // virtio_gpio_get_names()
		v, err := d.xfer(MsgTypeGetNames, 0, 0, 1+namesSize)
		if err != nil {
			t.Fatalf("Failed to get GPIO names: %v", err)
		}
		names, ok := driverParseNames(v, ngpio)
		if !ok {
			t.Fatal("gpio_names block is too short")
		}
		d.names = names
	}
	for i := range ngpio { // gpiochip_add_data(): FLAG_IS_OUT = !get_direction()
		d.dirs = append(d.dirs, d.getDirection(i))
	}
	return d
}

// xfer is _virtio_gpio_req(): one request, an rxlen-byte response buffer,
// status checked before length.
func (d *vgpio) xfer(typ MsgType, gpio int, txvalue uint8, rxlen int) ([]byte, error) {
	d.msgs = append(d.msgs, fmt.Sprintf("%v(%d,%d)", typ, gpio, txvalue))
	res := d.b.c.HandleRequest(Request{Type: typ, GPIO: uint16(gpio), Value: uint32(txvalue)}.Bytes(), rxlen)
	if len(res) == 0 || Status(res[0]) != StatusOK {
		return nil, fmt.Errorf("GPIO request failed: %d", gpio)
	}
	if len(res) != rxlen {
		return nil, fmt.Errorf("GPIO operation returned incorrect len (%d : %d)", rxlen, len(res))
	}
	return res[1:], nil
}

// req is virtio_gpio_req().
func (d *vgpio) req(typ MsgType, gpio int, txvalue uint8) (uint8, error) {
	v, err := d.xfer(typ, gpio, txvalue, ResponseSize)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func (d *vgpio) must(typ MsgType, gpio int, txvalue uint8) uint8 {
	d.t.Helper()
	v, err := d.req(typ, gpio, txvalue)
	if err != nil {
		d.t.Fatalf("%v(%d, %d): %v", typ, gpio, txvalue, err)
	}
	return v
}

// getDirection is virtio_gpio_get_direction(): 0 out, 1 in, -EINVAL else.
func (d *vgpio) getDirection(gpio int) int {
	v, err := d.req(MsgTypeGetDirection, gpio, 0)
	if err != nil {
		return -22
	}
	switch Direction(v) {
	case DirectionIn:
		return 1
	case DirectionOut:
		return 0
	}
	return -22
}

// directionOutput is virtio_gpio_direction_output().
func (d *vgpio) directionOutput(gpio int, value uint8) {
	d.must(MsgTypeSetValue, gpio, value)
	d.must(MsgTypeSetDirection, gpio, uint8(DirectionOut))
}

func (d *vgpio) directionInput(gpio int) { d.must(MsgTypeSetDirection, gpio, uint8(DirectionIn)) }
func (d *vgpio) set(gpio int, v uint8)   { d.must(MsgTypeSetValue, gpio, v) }
func (d *vgpio) get(gpio int) uint8      { return d.must(MsgTypeGetValue, gpio, 0) }

// free is virtio_gpio_free(); its result is ignored by the driver.
func (d *vgpio) free(gpio int) { _, _ = d.req(MsgTypeSetDirection, gpio, uint8(DirectionNone)) }

// irqPrepare is virtio_gpio_irq_prepare(); what the device completes at
// once lands in the used ring.
func (d *vgpio) irqPrepare(gpio int) {
	l := &d.irq[gpio]
	if l.queued || l.masked || l.disabled {
		d.warns++
		return
	}
	d.used = append(d.used, d.b.c.QueueEvent(IRQRequest(uint16(gpio)), IRQResponseSize, gpio)...)
	l.queued = true
}

func (d *vgpio) irqEnable(gpio int) {
	l := &d.irq[gpio]
	l.disabled, l.masked, l.queuePending, l.updatePending = false, false, true, true
}

func (d *vgpio) irqDisable(gpio int) {
	l := &d.irq[gpio]
	l.disabled, l.masked, l.queuePending, l.updatePending = true, true, false, true
}

func (d *vgpio) irqMask(gpio int) { d.irq[gpio].masked = true }

func (d *vgpio) irqUnmask(gpio int) {
	d.irq[gpio].masked = false
	d.irqPrepare(gpio) // "Queue the buffer unconditionally on unmask"
}

func (d *vgpio) irqSetType(gpio int, t IRQType) {
	d.irq[gpio].typ = t
	d.irq[gpio].updatePending = true
}

// busSyncUnlock is virtio_gpio_irq_bus_sync_unlock().
func (d *vgpio) busSyncUnlock(gpio int) {
	l := &d.irq[gpio]
	typ := l.typ
	if l.disabled {
		typ = IRQTypeNone
	}
	if l.updatePending {
		l.updatePending = false
		_, _ = d.req(MsgTypeSetIRQType, gpio, uint8(typ))
		if l.queuePending {
			l.queuePending = false
			d.irqPrepare(gpio)
		}
	}
}

// requestIRQ is request_irq() with a trigger type: __setup_irq() sets the
// type and starts the interrupt within one bus lock.
func (d *vgpio) requestIRQ(gpio int, t IRQType) {
	d.irqSetType(gpio, t)
	d.irqEnable(gpio)
	d.busSyncUnlock(gpio)
	d.eventVQ()
}

// freeIRQ is free_irq() (and disable_irq()): irq_disable in one bus lock.
func (d *vgpio) freeIRQ(gpio int) {
	d.irqDisable(gpio)
	d.busSyncUnlock(gpio)
	d.eventVQ()
}

// enableIRQ is enable_irq().
func (d *vgpio) enableIRQ(gpio int) {
	d.irqEnable(gpio)
	d.busSyncUnlock(gpio)
	d.eventVQ()
}

// setIRQType is irq_set_irq_type() on an enabled interrupt.
func (d *vgpio) setIRQType(gpio int, t IRQType) {
	d.irqSetType(gpio, t)
	d.busSyncUnlock(gpio)
	d.eventVQ()
}

// eventqPush is the glue: completions go to the used ring.
func (d *vgpio) eventqPush(c []Completion[int]) { d.used = append(d.used, c...) }

// eventVQ is virtio_gpio_event_vq(): drain the used ring and return how
// many buffers it processed, at most 10000, so that a ping-pong cannot hang
// a test.
func (d *vgpio) eventVQ() int {
	n := 0
	for len(d.used) > 0 && n < 10000 {
		c := d.used[0]
		d.used = d.used[1:]
		n++
		gpio := c.Token
		l := &d.irq[gpio]
		l.ires = c.Status
		if d.ignoreIRQ(gpio) {
			continue
		}
		d.handleLevelIRQ(gpio)
	}
	return n
}

// ignoreIRQ is ignore_irq().
func (d *vgpio) ignoreIRQ(gpio int) bool {
	l := &d.irq[gpio]
	l.queued = false
	if l.masked || l.disabled {
		return true
	}
	if l.ires == EventInvalid {
		d.irqPrepare(gpio)
		return true
	}
	return false
}

// handleLevelIRQ is handle_level_irq(), the flow handler the driver
// installs: mask, run the handler, unmask (which requeues the buffer).
func (d *vgpio) handleLevelIRQ(gpio int) {
	d.irqMask(gpio)
	if d.irq[gpio].disabled {
		return
	}
	d.handled[gpio]++
	if d.handler != nil {
		d.handler(gpio)
	}
	if !d.irq[gpio].disabled && d.irq[gpio].masked {
		d.irqUnmask(gpio)
	}
}

// host drives an input line and runs the driver's eventq callback.
func (d *vgpio) host(gpio int, v uint8) {
	d.used = append(d.used, d.b.host(gpio, v)...)
	d.eventVQ()
}

// changes returns the next n Sim changes, formatted without their times.
func (d *vgpio) changes(n int) []string {
	var s []string
	for range n {
		c := <-d.watch
		s = append(s, strings.Split(c.String(), " at ")[0])
	}
	return s
}

func TestDriverProbe(t *testing.T) {
	b := newBench(t, 4, "led", "", "button")
	d := probe(t, b)
	if want := []string{"led", "", "button", ""}; !slices.Equal(d.names, want) {
		t.Fatalf("names %q, want %q", d.names, want)
	}
	// All lines released: get_direction() is -EINVAL, i.e. not out.
	if !slices.Equal(d.dirs, []int{-22, -22, -22, -22}) {
		t.Fatalf("directions %v", d.dirs)
	}
	want := []string{"GET_NAMES(0,0)", "GET_DIRECTION(0,0)", "GET_DIRECTION(1,0)",
		"GET_DIRECTION(2,0)", "GET_DIRECTION(3,0)"}
	if !slices.Equal(d.msgs, want) {
		t.Fatalf("messages %v, want %v", d.msgs, want)
	}
	// Without names the driver sends no GET_NAMES.
	d = probe(t, newBench(t, 2))
	if d.names != nil || d.msgs[0] != "GET_DIRECTION(0,0)" {
		t.Fatalf("unnamed probe: names %q, messages %v", d.names, d.msgs)
	}
}

// gpioset: gpiod_request (get_direction), direction_output (SET_VALUE
// before SET_DIRECTION), set, get, then gpiod_free (SET_DIRECTION NONE).
func TestDriverOutput(t *testing.T) {
	b := newBench(t, 4)
	d := probe(t, b)
	if d.getDirection(3) != -22 {
		t.Fatal("released line has a direction")
	}
	d.directionOutput(3, 1)
	if d.getDirection(3) != 0 || d.get(3) != 1 {
		t.Fatal("line 3 not an output driving 1")
	}
	d.set(3, 0)
	d.set(3, 1)
	d.free(3)
	got := d.changes(5)
	want := []string{
		"line 3 direction none→out level 1",
		"line 3 output 0→1 level 1",
		"line 3 output 1→0 level 0",
		"line 3 output 0→1 level 1",
		"line 3 direction out→none level 0",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("changes\n%q\nwant\n%q", got, want)
	}
}

// gpioget: direction_input then get, with the host driving the line.
func TestDriverInput(t *testing.T) {
	b := newBench(t, 2)
	d := probe(t, b)
	d.directionInput(1)
	if d.get(1) != 0 {
		t.Fatal("input not low")
	}
	if err := b.sim.SetInput(1, 1); err != nil {
		t.Fatal(err)
	}
	if d.get(1) != 1 || d.getDirection(1) != 1 {
		t.Fatal("input not high")
	}
	d.free(1)
}

// An edge interrupt through request_irq(), handle_level_irq() masking and
// unmasking (requeueing the eventq buffer), disable_irq()/enable_irq() and
// free_irq().
func TestDriverEdgeIRQ(t *testing.T) {
	b := newBench(t, 4)
	d := probe(t, b)
	d.directionInput(2)
	d.requestIRQ(2, IRQTypeEdgeRising)
	if !d.irq[2].queued {
		t.Fatal("no eventq buffer after request_irq")
	}
	for range 5 {
		d.host(2, 1)
		d.host(2, 0)
	}
	if d.handled[2] != 5 {
		t.Fatalf("%d interrupts for 5 rising edges", d.handled[2])
	}
	d.freeIRQ(2) // disable_irq: SET_IRQ_TYPE(NONE), buffer back INVALID
	if d.irq[2].queued {
		t.Fatal("buffer not returned on disable")
	}
	d.host(2, 1) // not latched: disabled
	d.host(2, 0)
	d.enableIRQ(2)
	if d.handled[2] != 5 {
		t.Fatal("edge while disabled delivered")
	}
	d.host(2, 1)
	if d.handled[2] != 6 {
		t.Fatal("edge after enable_irq not delivered")
	}
	d.freeIRQ(2)
	d.free(2)
	if d.warns != 0 {
		t.Fatalf("%d WARN_ON in virtio_gpio_irq_prepare", d.warns)
	}
	wantMsgs := []string{"SET_DIRECTION(2,2)", "SET_IRQ_TYPE(2,1)", "SET_IRQ_TYPE(2,0)",
		"SET_IRQ_TYPE(2,1)", "SET_IRQ_TYPE(2,0)", "SET_DIRECTION(2,0)"}
	if got := d.msgs[len(d.msgs)-len(wantMsgs):]; !slices.Equal(got, wantMsgs) {
		t.Fatalf("messages %v, want %v", got, wantMsgs)
	}
}

// A level interrupt: each requeue fires again while the level is active,
// until the consumer's handler acknowledges it at the source.
func TestDriverLevelIRQ(t *testing.T) {
	b := newBench(t, 1)
	d := probe(t, b)
	d.directionInput(0)
	acks := 3 // the handler clears the source on its third run
	d.handler = func(gpio int) {
		if acks--; acks == 0 {
			if err := b.sim.SetInput(gpio, 0); err != nil {
				t.Error(err)
			}
			<-b.sim.Events() // the falling edge, applied below
			b.c.HandleEvent(Event{Line: gpio, Value: 0})
		}
	}
	d.requestIRQ(0, IRQTypeLevelHigh)
	d.host(0, 1)
	if d.handled[0] != 3 {
		t.Fatalf("%d interrupts, want 3 (two refires while active)", d.handled[0])
	}
	if !d.irq[0].queued {
		t.Fatal("buffer not requeued after the level went inactive")
	}
}

// irq_set_irq_type() on an enabled interrupt sends SET_IRQ_TYPE(new)
// without disabling first. The device's INVALID return makes ignore_irq()
// requeue, and the line works with the new type.
func TestDriverTypeChangeWithoutDisable(t *testing.T) {
	b := newBench(t, 1)
	d := probe(t, b)
	d.directionInput(0)
	d.requestIRQ(0, IRQTypeEdgeRising)
	d.setIRQType(0, IRQTypeEdgeFalling)
	if !d.irq[0].queued {
		t.Fatal("buffer not requeued after the type change")
	}
	d.host(0, 1)
	if d.handled[0] != 0 {
		t.Fatal("rising edge fired EDGE_FALLING")
	}
	d.host(0, 0)
	if d.handled[0] != 1 {
		t.Fatal("falling edge did not fire")
	}
}

// disable_irq() then enable_irq() before the driver has seen the INVALID
// buffer: virtio_gpio_irq_prepare() skips (queued is still set, the
// driver's WARN_ON), and ignore_irq() requeues when the INVALID buffer
// arrives. Interrupts keep working.
func TestDriverDisableEnableRace(t *testing.T) {
	b := newBench(t, 1)
	d := probe(t, b)
	d.directionInput(0)
	d.requestIRQ(0, IRQTypeEdgeBoth)
	d.irqDisable(0)
	d.busSyncUnlock(0) // INVALID buffer in the used ring, unprocessed
	d.irqEnable(0)
	d.busSyncUnlock(0)
	d.eventVQ()
	if !d.irq[0].queued {
		t.Fatal("buffer not requeued")
	}
	d.host(0, 1)
	if d.handled[0] != 1 {
		t.Fatal("no interrupt after disable/enable")
	}
	t.Logf("driver WARN_ONs: %d", d.warns)
}

// SET_DIRECTION(NONE) on a line whose interrupt the driver still has
// enabled (a line used only as an interrupt, then requested and freed as a
// GPIO) discards the interrupt configuration ("MUST discard all state
// information"), returning the buffer INVALID. ignore_irq() requeues it, as
// the interrupt is neither masked nor disabled for the driver. The device
// holds it rather than bouncing it back INVALID at once, which would have
// the two ping-pong it forever, an interrupt each way. The line's interrupt
// stays off until the driver sets its type again; free_irq() then gets the
// buffer back INVALID.
func TestDriverFreeWhileIRQEnabled(t *testing.T) {
	b := newBench(t, 1)
	d := probe(t, b)
	d.requestIRQ(0, IRQTypeEdgeRising)
	d.free(0)
	if n := d.eventVQ(); n != 1 {
		t.Fatalf("eventq round trips %d, want 1 (the INVALID buffer, requeued and held)", n)
	}
	if !d.irq[0].queued || !b.state(0).held {
		t.Fatal("requeued buffer not held by the device")
	}
	d.host(0, 1)
	if d.handled[0] != 0 {
		t.Fatal("interrupt fired after SET_DIRECTION(NONE) discarded it")
	}
	d.freeIRQ(0)
	if d.irq[0].queued || b.state(0).held || d.warns != 0 {
		t.Fatalf("after free_irq: driver queued %v, device held %v, %d WARN_ONs", d.irq[0].queued, b.state(0).held, d.warns)
	}
}
