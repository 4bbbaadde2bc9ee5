package gpio

// One test per device-normative statement of virtio 1.2 "GPIO Device"
// (device-types/gpio/description.tex, \devicenormative blocks), plus the
// device behaviour the non-normative text specifies with "must"/"should".

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// "The device MUST set all the fields of the struct virtio_gpio_response
// before sending it back to the driver."
func TestDeviceMustSetAllResponseFields(t *testing.T) {
	b := newBench(t, 4, "a")
	reqs := []Request{
		{Type: MsgTypeGetDirection, GPIO: 1},
		{Type: MsgTypeSetValue, GPIO: 1, Value: 1},
		{Type: MsgTypeSetDirection, GPIO: 1, Value: uint32(DirectionOut)},
		{Type: MsgTypeGetValue, GPIO: 1},
		{Type: MsgTypeSetDirection, GPIO: 2, Value: uint32(DirectionIn)},
		{Type: MsgTypeSetIRQType, GPIO: 2, Value: uint32(IRQTypeEdgeBoth)},
		{Type: MsgTypeSetIRQType, GPIO: 2, Value: uint32(IRQTypeNone)},
		{Type: MsgTypeSetDirection, GPIO: 1, Value: uint32(DirectionNone)},
		{Type: MsgTypeGetValue, GPIO: 9},    // error
		{Type: 0x77, GPIO: 0},               // error
		{Type: MsgTypeSetValue, Value: 0x2}, // error
	}
	for _, r := range reqs {
		resp := b.c.HandleRequest(r.Bytes(), 64)
		if len(resp) != ResponseSize {
			t.Fatalf("%+v: %d bytes, want %d", r, len(resp), ResponseSize)
		}
		st := Status(resp[0])
		if st != StatusOK && st != StatusERR {
			t.Fatalf("%+v: status %d", r, st)
		}
		isGet := r.Type == MsgTypeGetDirection || r.Type == MsgTypeGetValue
		if (st == StatusERR || !isGet) && resp[1] != 0 {
			t.Fatalf("%+v: %v with value %d, want 0", r, st, resp[1])
		}
	}
	// GET_NAMES fills every byte of struct virtio_gpio_response_N.
	r := Request{Type: MsgTypeGetNames}.Bytes()
	resp := b.c.HandleRequest(r, 1000)
	if want := 1 + int(b.c.Config().GPIONamesSize); len(resp) != want {
		t.Fatalf("GET_NAMES: %d bytes, want %d", len(resp), want)
	}
}

// "The device MUST set all the fields of the struct virtio_gpio_config on
// receiving a configuration request from the driver."
func TestDeviceMustSetAllConfigFields(t *testing.T) {
	b := newBench(t, 300, "x")
	want := []byte{0x2c, 0x01, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(want[4:], 2+299) // "x\0" and 299 lone NULs
	for off := uint64(0); off < 12; off++ {
		for n := 0; off+uint64(n) <= 12; n++ {
			p := bytes.Repeat([]byte{0xee}, n)
			b.c.ReadConfig(off, p)
			for i := range p {
				var w byte
				if o := off + uint64(i); o < ConfigSize {
					w = want[o]
				}
				if p[i] != w {
					t.Fatalf("ReadConfig(%d, %d bytes)[%d] = %#x, want %#x", off, n, i, p[i], w)
				}
			}
		}
	}
	p := []byte{1, 2}
	b.c.ReadConfig(^uint64(0), p) // offset wraps: reads as zero
	if p[0] != 0 || p[1] != 0 {
		t.Fatalf("ReadConfig at the top of the address space = %x", p)
	}
	b.c.WriteConfig(0, []byte{9, 9, 9, 9})
	if got := b.c.Config(); got.NGPIO != 300 {
		t.Fatalf("WriteConfig changed the config: %+v", got)
	}
}

// "The device MUST set the gpio_names_size field as zero in the struct
// virtio_gpio_config, if it doesn't implement names for individual GPIO
// lines."
func TestNamesSizeZeroWithoutNames(t *testing.T) {
	for _, names := range [][]string{nil, {"", "", ""}} {
		b := newBench(t, 3, names...)
		if got := b.c.Config().GPIONamesSize; got != 0 {
			t.Fatalf("names %q: gpio_names_size %d, want 0", names, got)
		}
		// "The device sets the gpio_names_size to a non-zero value if this
		// message is supported by the device": here it is not.
		b.fail(MsgTypeGetNames, 0, 0)
	}
}

// "The device MUST set the gpio_names_size field ... with the size of
// gpio-names memory block in bytes, if the device implements names for
// individual GPIO lines. The strings MUST be zero-terminated and an unique
// (if available) within the GPIO device."
func TestNamesBlockSizeAndContents(t *testing.T) {
	// The example of "requestq Operation: Get Line Names".
	names := []string{"MMC-CD", "", "", "", "", "Red LED Vdd", "", "Ethernet reset", "", ""}
	spec := []byte("MMC-CD\x00\x00\x00\x00\x00Red LED Vdd\x00\x00Ethernet reset\x00\x00\x00")
	b := newBench(t, len(names), names...)
	if got := b.c.Config().GPIONamesSize; got != uint32(len(spec)) {
		t.Fatalf("gpio_names_size %d, want %d", got, len(spec))
	}
	resp := b.c.HandleRequest(Request{Type: MsgTypeGetNames}.Bytes(), 1+len(spec))
	if Status(resp[0]) != StatusOK || !bytes.Equal(resp[1:], spec) {
		t.Fatalf("GET_NAMES = %q, want OK %q", resp, spec)
	}
	// Parse it as virtio_gpio_get_names() does.
	got, ok := driverParseNames(resp[1:], len(names))
	if !ok {
		t.Fatal("driver rejects the names block")
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("driver reads line %d as %q, want %q", i, got[i], names[i])
		}
	}

	for _, bad := range [][]string{{"a", "a"}, {"a\x00b"}, {"caf\xc3\xa9"}} {
		if _, err := NewSim(3, bad...); err == nil {
			t.Errorf("NewSim(%q) accepted names the spec forbids", bad)
		}
		be := &namesBackend{Sim: mustSim(t, 3), names: bad}
		if _, err := NewController[int](be, false, nil); err == nil {
			t.Errorf("NewController accepted backend names %q", bad)
		}
	}
}

// driverParseNames is virtio_gpio_get_names() from gpio-virtio.c.
func driverParseNames(block []byte, ngpio int) ([]string, bool) {
	block = bytes.Clone(block)
	block[len(block)-1] = 0 // "NULL terminate the string instead of checking it"
	names := make([]string, ngpio)
	str := 0
	for i := 0; i < ngpio; i++ {
		n := bytes.IndexByte(block[str:], 0)
		names[i] = string(block[str : str+n])
		str += n + 1
		if str > len(block) {
			return nil, false // "gpio_names block is too short"
		}
	}
	return names, true
}

// namesBackend is a Sim reporting arbitrary names, to test NewController's
// checks.
type namesBackend struct {
	*Sim
	names []string
}

func (n *namesBackend) Name(line int) string {
	if line < len(n.names) {
		return n.names[line]
	}
	return ""
}

func mustSim(t *testing.T, n int, names ...string) *Sim {
	t.Helper()
	s, err := NewSim(n, names...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// "The device MUST process multiple messages, for the same GPIO line,
// sequentially and respond to them in the order they were received on the
// virtqueue."
func TestSameLineMessagesProcessedInOrder(t *testing.T) {
	b := newBench(t, 2)
	seq := []struct {
		typ         MsgType
		value, want uint32
	}{
		{MsgTypeSetValue, 1, 0},
		{MsgTypeSetDirection, uint32(DirectionOut), 0},
		{MsgTypeGetValue, 0, 1},
		{MsgTypeSetValue, 0, 0},
		{MsgTypeGetValue, 0, 0},
		{MsgTypeSetValue, 1, 0},
		{MsgTypeGetValue, 0, 1},
		{MsgTypeSetDirection, uint32(DirectionIn), 0},
		{MsgTypeGetDirection, 0, uint32(DirectionIn)},
		{MsgTypeGetValue, 0, 0}, // host input is low
	}
	for i, s := range seq {
		if got := b.ok(s.typ, 1, s.value); uint32(got) != s.want {
			t.Fatalf("step %d %v(%d) = %d, want %d", i, s.typ, s.value, got, s.want)
		}
	}
}

// "The device MAY process messages, for different GPIO lines, out of order
// and in parallel": HandleRequest may be called concurrently (run with
// -race); each line's own sequence stays consistent.
func TestDifferentLinesInParallel(t *testing.T) {
	b := newBench(t, 8)
	var wg sync.WaitGroup
	for line := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := uint16(line)
			for i := range 200 {
				v := uint32(i & 1)
				for _, r := range []Request{
					{Type: MsgTypeSetValue, GPIO: g, Value: v},
					{Type: MsgTypeSetDirection, GPIO: g, Value: uint32(DirectionOut)},
				} {
					if resp := b.c.HandleRequest(r.Bytes(), 2); resp[0] != byte(StatusOK) {
						t.Errorf("%+v: %x", r, resp)
						return
					}
				}
				resp := b.c.HandleRequest(Request{Type: MsgTypeGetValue, GPIO: g}.Bytes(), 2)
				if resp[0] != byte(StatusOK) || uint32(resp[1]) != v {
					t.Errorf("line %d: GET_VALUE %x, want %d", line, resp, v)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// "The device MUST discard all state information corresponding to a GPIO
// line, once the driver has requested to set its direction to
// VIRTIO_GPIO_DIRECTION_NONE."
func TestDirectionNoneDiscardsLineState(t *testing.T) {
	b := newBench(t, 2)
	// Line 0: a kept output value, then released.
	b.ok(MsgTypeSetValue, 0, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionNone))
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionOut))
	if out, dir, _ := b.sim.Output(0); out != 0 || dir != DirectionOut {
		t.Fatalf("after NONE, OUT drives %d (%v); the kept value 1 should be gone", out, dir)
	}

	// Line 1: interrupt enabled, an edge latched, then released.
	b.ok(MsgTypeSetDirection, 1, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 1, uint32(IRQTypeEdgeRising))
	want(t, "edge while masked", b.host(1, 1))
	b.ok(MsgTypeSetDirection, 1, uint32(DirectionNone))
	if st := b.state(1); st.irqType != IRQTypeNone || st.latched || st.held {
		t.Fatalf("line state after NONE: %+v", st)
	}
	if s, _ := b.sim.Line(1); s.IRQType != IRQTypeNone || s.Direction != DirectionNone {
		t.Fatalf("backend line after NONE: %+v", s)
	}
	// The interrupt is disabled: a buffer is held but never fires, and
	// disabling the interrupt returns it.
	want(t, "queue after NONE", b.queue(1, 7))
	want(t, "edge after NONE", b.c.HandleEvent(Event{Line: 1, Value: 0, Time: time.Now()}))
	b.ok(MsgTypeSetIRQType, 1, uint32(IRQTypeNone))
	want(t, "disable after NONE", b.rec.take(), invalid(7))

	// With a buffer held, releasing the line returns it INVALID.
	b.ok(MsgTypeSetDirection, 1, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 1, uint32(IRQTypeEdgeRising))
	want(t, "queue", b.queue(1, 8))
	b.ok(MsgTypeSetDirection, 1, uint32(DirectionNone))
	want(t, "held buffer on NONE", b.rec.take(), invalid(8))
}

// "The device MUST latch an edge interrupt if the interrupt is enabled but
// still masked." and, from the eventq message flow, "Once the interrupt is
// unmasked again and an interrupt was latched earlier, the device shall
// notify the driver again."
func TestLatchEdgeWhileMasked(t *testing.T) {
	for _, tc := range []struct {
		typ   IRQType
		start uint8
		edge  uint8 // level after the edge
	}{
		{IRQTypeEdgeRising, 0, 1},
		{IRQTypeEdgeFalling, 1, 0},
		{IRQTypeEdgeBoth, 0, 1},
		{IRQTypeEdgeBoth, 1, 0},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			b := newBench(t, 1)
			b.host(0, tc.start)
			b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
			b.ok(MsgTypeSetIRQType, 0, uint32(tc.typ)) // enabled, masked
			want(t, "edge while masked", b.host(0, tc.edge))
			want(t, "unmask", b.queue(0, 1), valid(1))
			// The latch is consumed: the next buffer waits.
			want(t, "unmask again", b.queue(0, 2))
		})
	}
}

// "The device MUST NOT latch an level interrupt if the interrupt is enabled
// but still masked."
func TestNoLatchLevelWhileMasked(t *testing.T) {
	for _, tc := range []struct {
		typ          IRQType
		active, idle uint8
	}{
		{IRQTypeLevelHigh, 1, 0},
		{IRQTypeLevelLow, 0, 1},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			b := newBench(t, 1)
			b.host(0, tc.idle)
			b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
			b.ok(MsgTypeSetIRQType, 0, uint32(tc.typ))
			b.host(0, tc.active) // active while masked...
			b.host(0, tc.idle)   // ...and gone before the unmask
			want(t, "unmask", b.queue(0, 1))
			if st := b.state(0); st.latched {
				t.Fatal("level interrupt latched")
			}
		})
	}
}

// "The device MUST discard any latched interrupt for a GPIO line, once
// interrupt is disabled for the same."
func TestDisableDiscardsLatch(t *testing.T) {
	b := newBench(t, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeRising))
	b.host(0, 1) // latched
	if !b.state(0).latched {
		t.Fatal("edge not latched")
	}
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeNone))
	if b.state(0).latched {
		t.Fatal("latch kept after disable")
	}
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeRising))
	want(t, "unmask after disable/enable", b.queue(0, 1))
}

// "The device MUST NOT send an interrupt event to the driver for a GPIO
// line unless the interrupt has been both unmasked and enabled by the
// driver."
func TestNoEventUnlessUnmaskedAndEnabled(t *testing.T) {
	b := newBench(t, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))

	edge := func(v uint8) []Completion[int] {
		return b.c.HandleEvent(Event{Line: 0, Value: v, Time: time.Now()})
	}
	// Neither: edges change nothing.
	want(t, "edge, disabled and masked", edge(1))
	want(t, "edge, disabled and masked", edge(0))
	// Unmasked but not enabled: the buffer is held, never VALID.
	want(t, "unmask while disabled", b.queue(0, 1))
	want(t, "edge, disabled and unmasked", edge(1))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeNone))
	want(t, "disable returns it", b.rec.take(), invalid(1))
	// Enabled but masked: an edge is latched, not sent.
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeEdgeBoth))
	want(t, "edge, enabled and masked", b.host(0, 1))
	want(t, "callback, enabled and masked", b.rec.take())
	// Both: sent.
	want(t, "unmask", b.queue(0, 2), valid(2))
	want(t, "unmask", b.queue(0, 3))
	want(t, "edge, enabled and unmasked", b.host(0, 0), valid(3))
}

// "On receiving VIRTIO_GPIO_MSG_SET_IRQ_TYPE message, with
// VIRTIO_GPIO_IRQ_TYPE_NONE trigger type, the device MUST return the
// buffers, if they were received earlier, after setting the status field to
// VIRTIO_GPIO_IRQ_STATUS_INVALID."
func TestDisableReturnsBufferInvalid(t *testing.T) {
	b := newBench(t, 2)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeLevelHigh))
	want(t, "unmask", b.queue(0, 1))

	// The buffer must be used before the SET_IRQ_TYPE response, so the
	// callback runs inside HandleRequest.
	var order []string
	b.c.complete = func(d []Completion[int]) {
		order = append(order, "eventq")
		b.rec.complete(d)
	}
	b.c.HandleRequest(Request{Type: MsgTypeSetIRQType, GPIO: 0}.Bytes(), 2)
	order = append(order, "requestq")
	want(t, "disable", b.rec.take(), invalid(1))
	if len(order) != 2 || order[0] != "eventq" {
		t.Fatalf("order %v, want the eventq buffer first", order)
	}
	// "if they were received earlier": without a buffer, nothing.
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeNone))
	want(t, "disable without buffer", b.rec.take())
	// The line stays disabled: activity does not complete anything.
	b.host(0, 1)
	want(t, "after disable", b.rec.take())
}

// SET_VALUE: "The line may already be configured for output or may get
// configured to output later, at which point this output value must be
// used by the device for the line."
func TestSetValueUsedWhenLineBecomesOutput(t *testing.T) {
	b := newBench(t, 1)
	b.ok(MsgTypeSetValue, 0, 1)
	if out, dir, _ := b.sim.Output(0); dir != DirectionNone || out != 0 {
		t.Fatalf("SET_VALUE on a released line drove it: %d %v", out, dir)
	}
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionOut))
	if out, dir, _ := b.sim.Output(0); dir != DirectionOut || out != 1 {
		t.Fatalf("OUT drives %d (%v), want the kept 1", out, dir)
	}
	b.ok(MsgTypeSetValue, 0, 0)
	if out, _, _ := b.sim.Output(0); out != 0 {
		t.Fatal("SET_VALUE on an output not applied")
	}
	// Back to input and out again: the last value written is used.
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetValue, 0, 1)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionOut))
	if out, _, _ := b.sim.Output(0); out != 1 {
		t.Fatal("value written while input not used")
	}
}

// SET_IRQ_TYPE: "This request is allowed only if the VIRTIO_GPIO_F_IRQ
// feature has been negotiated." (and the eventq "is available only if" it
// has been).
func TestSetIRQTypeRequiresFeature(t *testing.T) {
	for _, tc := range []struct {
		name     string
		offer    bool
		features uint64
	}{
		{"not offered", false, 1 << FeatureIRQ},
		{"not accepted", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := mustSim(t, 2)
			rec := &recorder{}
			c, err := NewController(sim, tc.offer, rec.complete)
			if err != nil {
				t.Fatal(err)
			}
			c.Negotiate(tc.features)
			b := &bench{t: t, sim: sim, c: c, rec: rec}
			b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
			for _, typ := range []IRQType{IRQTypeNone, IRQTypeEdgeRising, IRQTypeLevelLow} {
				b.fail(MsgTypeSetIRQType, 0, uint32(typ))
			}
			want(t, "eventq buffer", b.queue(0, 1), invalid(1))
			if s, _ := sim.Line(0); s.IRQType != IRQTypeNone {
				t.Fatal("backend interrupt enabled")
			}
		})
	}
	sim := mustSim(t, 1)
	c, _ := NewController[int](sim, true, func([]Completion[int]) {})
	if c.Features() != 1<<FeatureIRQ {
		t.Fatalf("Features() = %#x", c.Features())
	}
	c.Negotiate(^uint64(0))
	if !c.IRQ() {
		t.Fatal("F_IRQ accepted but not negotiated")
	}
	c2, _ := NewController[int](sim, false, nil)
	if c2.Features() != 0 {
		t.Fatalf("Features() = %#x without irq", c2.Features())
	}
}

// A buffer queued before the interrupt is enabled. The spec is of two
// minds: "The driver can do this before enabling the interrupt as well,
// though the interrupt must be both unmasked and enabled to get delivered"
// (eventq Operation), and "If ... the interrupt is unmasked without being
// enabled first, the device should return any unused pair of buffers ...
// INVALID" (Set IRQ Type; not device-normative). gvmm follows the first:
// gpio-virtio.c requeues every INVALID buffer of a line it thinks enabled,
// so the second turns any disagreement into an endless ping-pong (see
// TestDriverFreeWhileIRQEnabled, TestDriverEnableRefused). The held buffer
// is the unmask once the interrupt is enabled; disabling returns it.
func TestUnmaskBeforeEnable(t *testing.T) {
	b := newBench(t, 2)
	b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
	b.ok(MsgTypeSetDirection, 1, uint32(DirectionIn))

	// Level: enabling while the level is active fires the held buffer.
	want(t, "unmask line 0", b.queue(0, 1))
	b.host(0, 1)
	want(t, "not enabled: nothing", b.rec.take())
	b.ok(MsgTypeSetIRQType, 0, uint32(IRQTypeLevelHigh))
	want(t, "enable, level active", b.rec.take(), valid(1))

	// Edge: nothing at the enable; the next matching edge fires.
	want(t, "unmask line 1", b.queue(1, 2))
	b.ok(MsgTypeSetIRQType, 1, uint32(IRQTypeEdgeRising))
	want(t, "enable", b.rec.take())
	want(t, "edge", b.host(1, 1), valid(2))

	// Disabled without ever being enabled: the buffer comes back INVALID.
	b.ok(MsgTypeSetIRQType, 1, uint32(IRQTypeNone))
	want(t, "unmask line 1 again", b.queue(1, 3))
	b.ok(MsgTypeSetIRQType, 1, uint32(IRQTypeNone))
	want(t, "disable", b.rec.take(), invalid(3))
}

// eventq message flow: "If the GPIO line is configured for level
// interrupts, the device ignores any further interrupt signals on this
// GPIO line, until the interrupt is unmasked again ... Once the interrupt is
// unmasked again and the interrupt on the line is still active, the device
// shall notify the driver again."
func TestLevelRefiresWhileActive(t *testing.T) {
	for _, tc := range []struct {
		typ          IRQType
		active, idle uint8
	}{
		{IRQTypeLevelHigh, 1, 0},
		{IRQTypeLevelLow, 0, 1},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			b := newBench(t, 1)
			b.host(0, tc.idle)
			b.ok(MsgTypeSetDirection, 0, uint32(DirectionIn))
			b.ok(MsgTypeSetIRQType, 0, uint32(tc.typ))
			want(t, "unmask, idle", b.queue(0, 1))
			want(t, "becomes active", b.host(0, tc.active), valid(1))
			want(t, "requeue, still active", b.queue(0, 2), valid(2))
			want(t, "requeue, still active", b.queue(0, 3), valid(3))
			b.host(0, tc.idle) // acknowledged at the source
			want(t, "requeue, idle", b.queue(0, 4))
			want(t, "active again", b.host(0, tc.active), valid(4))
		})
	}
}
