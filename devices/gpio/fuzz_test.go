package gpio

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// FuzzHandleRequest feeds arbitrary request bytes and response capacities
// to a device with names and interrupts. It checks that no input panics,
// that every response has exactly the required length with status OK or
// ERR, and, treating the input also as a script of requests, eventq buffers
// and backend events, that every eventq buffer is completed exactly once
// and that the device and backend agree about every line.
//
//	go test -run '^$' -fuzz FuzzHandleRequest -fuzztime 60s ./devices/gpio
func FuzzHandleRequest(f *testing.F) {
	r := func(typ MsgType, gpio uint16, v uint32) []byte {
		return Request{Type: typ, GPIO: gpio, Value: v}.Bytes()
	}
	f.Add(r(MsgTypeGetNames, 0, 0), 1+9)
	f.Add(r(MsgTypeGetNames, 0, 0), 3)
	f.Add(r(MsgTypeGetDirection, 1, 0), 2)
	f.Add(r(MsgTypeSetDirection, 1, 2), 2)
	f.Add(r(MsgTypeGetValue, 4, 0), 2)
	f.Add(r(MsgTypeSetValue, 0, 1), 1)
	f.Add(r(MsgTypeSetIRQType, 2, 3), 2)
	f.Add(r(MsgTypeSetIRQType, 2, 8), 0)
	f.Add([]byte{1}, 2)
	f.Add([]byte{}, -5)
	script := []byte{}
	for _, op := range [][]byte{
		append([]byte{0, 8}, r(MsgTypeSetDirection, 2, 2)...),
		append([]byte{0, 8}, r(MsgTypeSetIRQType, 2, 3)...),
		{1, 2, 2, 0, 0, 0, 0, 0, 0, 0},
		{2, 2, 1, 0, 0, 0, 0, 0, 0, 0},
		{1, 2, 2, 0, 0, 0, 0, 0, 0, 0},
		append([]byte{0, 8}, r(MsgTypeSetIRQType, 2, 0)...),
	} {
		script = append(script, op...)
	}
	f.Add(script, 2)

	f.Fuzz(func(t *testing.T, data []byte, respCap int) {
		sim, err := NewSim(5, "a", "", "c", "d")
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		completed := map[int]int{}
		record := func(d []Completion[int]) {
			for _, c := range d {
				if c.Status != EventValid && c.Status != EventInvalid {
					t.Fatalf("eventq status %d", c.Status)
				}
				completed[c.Token]++
			}
		}
		c, err := NewController(sim, true, record)
		if err != nil {
			t.Fatal(err)
		}
		c.Negotiate(1 << FeatureIRQ)
		namesSize := int(c.Config().GPIONamesSize)

		check := func(req []byte, respCap int) {
			size := c.ResponseSize(req)
			if size != ResponseSize && size != 1+namesSize {
				t.Fatalf("ResponseSize %d", size)
			}
			resp := c.HandleRequest(req, respCap)
			if want := min(max(respCap, 0), size); len(resp) != want {
				t.Fatalf("request %x cap %d: %d bytes, want %d", req, respCap, len(resp), want)
			}
			if len(resp) == 0 {
				return
			}
			switch Status(resp[0]) {
			case StatusOK:
				if respCap < size {
					t.Fatalf("request %x cap %d < %d: OK", req, respCap, size)
				}
			case StatusERR:
				for _, b := range resp[1:] {
					if b != 0 {
						t.Fatalf("ERR response %x not zeroed", resp)
					}
				}
			default:
				t.Fatalf("request %x: status %d", req, resp[0])
			}
		}
		check(data, respCap)

		// The same bytes as a script: [op, arg, 8 bytes]...
		tok, queued := 0, 0
		for len(data) >= 10 {
			op, arg, chunk := data[0], data[1], data[2:10]
			data = data[10:]
			switch op % 4 {
			case 0: // a request of length arg%10, exact or fuzzed capacity
				n := int(arg % 10)
				req := chunk[:min(n, 8)]
				if n > 8 {
					req = append(req[:8:8], 0)
				}
				rc := c.ResponseSize(req)
				if arg&0x80 != 0 {
					rc = respCap
				}
				check(req, rc)
			case 1: // an eventq buffer
				tok++
				queued++
				n := int(arg % 4)
				record(c.QueueEvent(chunk[:n], int(chunk[2]%3), tok))
			case 2: // a backend event, possibly bogus
				record(c.HandleEvent(Event{Line: int(int8(arg)), Value: chunk[0]}))
			case 3: // host input
				_ = sim.SetInput(int(arg%6), chunk[0]%3)
			}
			// The device's view of each line matches the backend's.
			c.mu.Lock()
			for i, l := range c.lines {
				st, _ := sim.Line(i)
				if st.Direction != l.dir || st.IRQType != l.irqType {
					t.Fatalf("line %d: device %v/%v, backend %v/%v", i, l.dir, l.irqType, st.Direction, st.IRQType)
				}
				if l.irqType != IRQTypeNone && l.dir == DirectionOut {
					t.Fatalf("line %d: output with interrupt", i)
				}
				if l.latched && l.irqType == IRQTypeNone {
					t.Fatalf("line %d: latch while disabled", i)
				}
			}
			c.mu.Unlock()
		}
		// Disabling every interrupt returns every held buffer.
		for g := range c.Config().NGPIO {
			req := make([]byte, RequestSize)
			binary.LittleEndian.PutUint16(req, uint16(MsgTypeSetIRQType))
			binary.LittleEndian.PutUint16(req[2:], g)
			check(req, 2)
		}
		for i := 1; i <= queued; i++ {
			if completed[i] != 1 {
				t.Fatalf("eventq buffer %d completed %d times", i, completed[i])
			}
		}
	})
}

// FuzzDevice serves rings the fuzzer writes, both queues at once, through
// the Device glue: guest memory is the fuzzer's bytes, with a requestq and
// an eventq whose sizes, features and contents (descriptors, avail rings,
// requests) it chooses. It checks that nothing panics, that every chain
// popped from the requestq is returned, that the eventq holds back exactly
// the buffers the Controller holds (at most one per line), and that once
// host edges arrive, held buffers complete.
//
//	go test -run '^$' -fuzz FuzzDevice -fuzztime 60s ./devices/gpio
func FuzzDevice(f *testing.F) {
	// Seeds in the layout of virtiotest.DriverQueue: a requestq of 8 with
	// GET_DIRECTION, SET_DIRECTION(IN) and SET_IRQ_TYPE(BOTH) on line 1,
	// an eventq of 4 with a buffer for line 1.
	mem := virtiotest.NewMem(fuzzMemSize)
	req := virtiotest.NewDriverQueue(mem[:fuzzEvqBase], fuzzReqBase, 8)
	evq := virtiotest.NewDriverQueue(mem, fuzzEvqBase, 4)
	req.Add([][]byte{Request{Type: MsgTypeGetDirection, GPIO: 1}.Bytes()}, []int{2})
	req.AddIndirect([][]byte{Request{Type: MsgTypeSetDirection, GPIO: 1, Value: uint32(DirectionIn)}.Bytes()}, []int{1, 1})
	evq.Add([][]byte{IRQRequest(1)}, []int{1})
	f.Add(byte(0x23), byte(0x07), []byte(mem))
	req.Add([][]byte{Request{Type: MsgTypeSetIRQType, GPIO: 1, Value: uint32(IRQTypeEdgeBoth)}.Bytes()}, []int{2})
	f.Add(byte(0x23), byte(0x07), []byte(mem))
	f.Add(byte(0x23), byte(0x05), []byte(mem)) // without indirect descriptors

	f.Fuzz(func(t *testing.T, sizes, flags byte, data []byte) {
		mem := virtiotest.NewMem(fuzzMemSize)
		copy(mem, data)
		sim, err := NewSim(4, "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		d, err := NewDevice(sim)
		if err != nil {
			t.Fatal(err)
		}
		irq := &virtiotest.Interrupt{}
		queue := func(sizeBits byte, base uint64) *virtio.Queue {
			size := uint16(1) << (sizeBits % 5) // 1 to 16
			avail := base + virtio.DescSize*uint64(size)
			used := (avail + virtio.AvailRingSize(size, true) + 3) &^ 3
			return &virtio.Queue{
				MaxSize: QueueSize, Size: size, Ready: true,
				DescAddr: base, DriverAddr: avail, DeviceAddr: used,
				EventIdx: flags&1 != 0, IndirectDesc: flags&2 != 0,
			}
		}
		d.mem, d.irq = mem, irq
		d.reqQ, d.evQ = queue(sizes&0xf, fuzzReqBase), queue(sizes>>4, fuzzEvqBase)
		for _, q := range []*virtio.Queue{d.reqQ, d.evQ} {
			if err := q.Validate(mem); err != nil {
				t.Fatalf("layout: %v", err)
			}
		}
		d.ctl.Negotiate(uint64(flags>>2) & (1 << FeatureIRQ))

		d.serveRequests()
		d.serveEvents()
		check := func(when string) {
			if irq.NeedsReset() {
				return // a corrupt avail idx: the device gave up, as it should
			}
			if d.reqQ.NextUsed() != d.reqQ.LastAvail() {
				t.Fatalf("%s: requestq: %d chains taken, %d returned", when, d.reqQ.LastAvail(), d.reqQ.NextUsed())
			}
			held := d.ctl.heldCount()
			if out := d.evQ.LastAvail() - d.evQ.NextUsed(); int(out) != held {
				t.Fatalf("%s: eventq: %d buffers out, the Controller holds %d", when, out, held)
			}
		}
		check("after serving")
		// The host drives every line high; each event that reaches the
		// Controller is applied as Run would.
		for line := range 4 {
			st, _ := sim.Line(line)
			if err := sim.SetInput(line, 1); err != nil {
				t.Fatal(err)
			}
			if st.IRQType == IRQTypeNone || st.Direction == DirectionOut || st.Input == 1 {
				continue
			}
			select {
			case ev := <-sim.Events():
				d.completeEvents(d.ctl.HandleEvent(ev))
			case <-time.After(5 * time.Second):
				t.Fatalf("no event for line %d", line)
			}
		}
		check("after host edges")
	})
}

// The memory layout of FuzzDevice: the requestq's rings at fuzzReqBase,
// the eventq's at fuzzEvqBase, each laid out as virtiotest.DriverQueue
// does (descriptors, avail ring, used ring), buffers anywhere.
const (
	fuzzMemSize = 0x2000
	fuzzReqBase = 0x0
	fuzzEvqBase = 0x800
)
