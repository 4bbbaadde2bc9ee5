package vhostuser

import (
	"bytes"
	"encoding/binary"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvmm/gvmm/devices/gpio"
)

// TestBackendGPIO drives a real gpio.Device over a simulated bank through
// the whole protocol, as QEMU's vhost-user-gpio-device would: the
// handshake, GET_CONFIG, the rings started, a SET_VALUE seen on the bank,
// an edge interrupt on the eventq, GET_VRING_BASE and a restart of the
// rings from the bases it answered (QEMU's stop and cont).
func TestBackendGPIO(t *testing.T) {
	r := newRig(t)
	s := connect(t, r.b)
	fe := s.fe
	fe.handshake()

	cfg := fe.call(GetConfig, ConfigSpace{Size: gpio.ConfigSize, Data: make([]byte, gpio.ConfigSize)}.Bytes())
	want := make([]byte, gpio.ConfigSize)
	r.dev.ReadConfig(0, want)
	if len(cfg) != configHdrSize+gpio.ConfigSize || !bytes.Equal(cfg[configHdrSize:], want) {
		t.Fatalf("GET_CONFIG = %x, want header and %x", cfg, want)
	}
	if n := binary.LittleEndian.Uint16(cfg[configHdrSize:]); n != 8 {
		t.Errorf("ngpio %d, want 8", n)
	}
	if n := binary.LittleEndian.Uint32(cfg[configHdrSize+4:]); n == 0 {
		t.Errorf("gpio_names_size 0, want the names block's size")
	}

	g := newGuestRAM(t)
	d := layOut(g)
	v := fe.start(g, d, [2]uint16{})
	req, ev := v[0], v[1]

	// SET_VALUE, seen on the bank.
	gpioOK(t, req, gpio.MsgTypeSetDirection, 3, uint32(gpio.DirectionOut))
	gpioOK(t, req, gpio.MsgTypeSetValue, 3, 1)
	if st, _ := r.sim.Line(3); st.Direction != gpio.DirectionOut || st.Level != 1 {
		t.Fatalf("line 3 after SET_VALUE 1: %+v", st)
	}
	if got := gpioOK(t, req, gpio.MsgTypeGetValue, 3, 0); got != 1 {
		t.Fatalf("GET_VALUE 3 = %d, want 1", got)
	}

	// An edge: the guest enables a rising-edge interrupt on line 1 and
	// queues an eventq buffer; the host raises the line.
	gpioOK(t, req, gpio.MsgTypeSetDirection, 1, uint32(gpio.DirectionIn))
	gpioOK(t, req, gpio.MsgTypeSetIRQType, 1, uint32(gpio.IRQTypeEdgeRising))
	ev.d.Add([][]byte{gpio.IRQRequest(1)}, []int{gpio.IRQResponseSize})
	ev.notify(t)
	time.Sleep(20 * time.Millisecond) // let the device take the buffer
	if u := ev.d.Used(); len(u) != 0 {
		t.Fatalf("eventq buffer returned before any edge: %+v", u)
	}
	if err := r.sim.SetInput(1, 1); err != nil {
		t.Fatal(err)
	}
	if !signalled(ev.call, timeout) {
		t.Fatal("no interrupt on the eventq's call eventfd after the edge")
	}
	u := ev.wait(t, 1)
	if len(u) != 1 || !bytes.Equal(u[0].Written, []byte{byte(gpio.EventValid)}) {
		t.Fatalf("eventq: %+v, want one VALID", u)
	}

	// Stop (GET_VRING_BASE) and restart from the bases: requests go on.
	bases := [2]uint16{}
	for i := range 2 {
		p := fe.call(GetVringBase, state(uint32(i), 0))
		st := VringState{binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:])}
		if st.Index != uint32(i) || st.Num != uint32(d[i].AvailIdx()) {
			t.Fatalf("GET_VRING_BASE %d = %+v, want num %d (the avail idx)", i, st, d[i].AvailIdx())
		}
		bases[i] = uint16(st.Num)
	}
	if st, _ := r.sim.Line(3); st.Direction != gpio.DirectionNone {
		t.Fatalf("line 3 after the device stopped: %+v, want released", st)
	}
	v = fe.start(g, d, bases)
	req = v[0]
	gpioOK(t, req, gpio.MsgTypeSetDirection, 2, uint32(gpio.DirectionOut))
	gpioOK(t, req, gpio.MsgTypeSetValue, 2, 1)
	if st, _ := r.sim.Line(2); st.Level != 1 {
		t.Fatalf("line 2 after the restart's SET_VALUE: %+v", st)
	}
	if err := s.hangUp(); err != nil {
		t.Fatalf("ServeConn after the front end hung up: %v", err)
	}
	if st, _ := r.sim.Line(2); st.Direction != gpio.DirectionNone {
		t.Fatalf("line 2 after the front end hung up: %+v, want released", st)
	}
}

// TestBackendReconnect: a front end goes away, another connects to the
// same socket (Serve), and the bank's host-side state is as it was.
func TestBackendReconnect(t *testing.T) {
	r := newRig(t)
	sock := filepath.Join(t.TempDir(), "gpio.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- r.b.Serve(l) }()

	dial := func() *frontEnd {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		return &frontEnd{t: t, c: c.(*net.UnixConn)}
	}
	if err := r.sim.SetPull(5, gpio.PullUp); err != nil {
		t.Fatal(err)
	}

	fe := dial()
	fe.handshake()
	g := newGuestRAM(t)
	v := fe.start(g, layOut(g), [2]uint16{})
	gpioOK(t, v[0], gpio.MsgTypeSetDirection, 0, uint32(gpio.DirectionOut))
	gpioOK(t, v[0], gpio.MsgTypeSetValue, 0, 1)
	if err := r.sim.SetInput(1, 1); err != nil { // the host drives line 1
		t.Fatal(err)
	}
	_ = fe.c.Close()
	waitFor(t, "the device reset after the hang-up", func() bool {
		st, _ := r.sim.Line(0)
		return st.Direction == gpio.DirectionNone
	})

	fe = dial()
	fe.handshake()
	g = newGuestRAM(t) // a new guest
	v = fe.start(g, layOut(g), [2]uint16{})
	for _, c := range []struct {
		line uint16
		want uint8
	}{{1, 1}, {5, 1}, {0, 0}} {
		gpioOK(t, v[0], gpio.MsgTypeSetDirection, c.line, uint32(gpio.DirectionIn))
		if got := gpioOK(t, v[0], gpio.MsgTypeGetValue, c.line, 0); got != c.want {
			t.Errorf("line %d after reconnecting reads %d, want %d", c.line, got, c.want)
		}
	}
	_ = fe.c.Close()
	if err := r.b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Close: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("Serve did not return after Close")
	}
	if strings.Count(r.log.String(), "device started") != 2 {
		t.Errorf("log, want two device starts:\n%s", r.log)
	}
}

// TestBackendCloseWhileServing: Close ends the connection being served
// and resets the device.
func TestBackendCloseWhileServing(t *testing.T) {
	r := newRig(t)
	s := connect(t, r.b)
	s.fe.handshake()
	g := newGuestRAM(t)
	v := s.fe.start(g, layOut(g), [2]uint16{})
	gpioOK(t, v[0], gpio.MsgTypeSetDirection, 4, uint32(gpio.DirectionOut))
	if err := r.b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("ServeConn after Close: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("ServeConn did not return after Close")
	}
	if st, _ := r.sim.Line(4); st.Direction != gpio.DirectionNone {
		t.Fatalf("line 4 after Close: %+v, want released", st)
	}
	s.done <- nil
}

// TestBackendNoProtocolFeatures: a front end that does not ack
// VHOST_USER_F_PROTOCOL_FEATURES has each ring enabled at its kick; the
// device starts with the requestq alone, then restarts when the eventq
// comes.
func TestBackendNoProtocolFeatures(t *testing.T) {
	r := newRig(t)
	s := connect(t, r.b)
	fe := s.fe
	fe.send(SetOwner, 0, nil)
	fe.send(SetFeatures, 0, u64Payload(wantFeatures&^(1<<FProtocolFeatures)))
	g := newGuestRAM(t)
	fe.send(SetMemTable, 0, MemTableBytes(g.regions()), g.fd, g.fd)
	d := layOut(g)
	var v [2]*vring
	for i := range 2 {
		v[i] = &vring{d: d[i], kick: eventFD(t), call: eventFD(t)}
		fe.send(SetVringCall, 0, u64Payload(uint64(i)), v[i].call)
		fe.send(SetVringNum, 0, state(uint32(i), testQueue))
		fe.send(SetVringAddr, 0, VringAddr{Index: uint32(i), Desc: userAddr(d[i].DescAddr),
			Used: userAddr(d[i].UsedAddr), Avail: userAddr(d[i].AvailAddr)}.Bytes())
		fe.send(SetVringKick, 0, u64Payload(uint64(i)), v[i].kick)
		if i == 0 { // the device runs with the requestq alone
			gpioOK(t, v[0], gpio.MsgTypeGetValue, 6, 0)
		}
	}
	gpioOK(t, v[0], gpio.MsgTypeSetDirection, 6, uint32(gpio.DirectionIn))
	gpioOK(t, v[0], gpio.MsgTypeSetIRQType, 6, uint32(gpio.IRQTypeEdgeFalling))
	v[1].d.Add([][]byte{gpio.IRQRequest(6)}, []int{gpio.IRQResponseSize})
	v[1].notify(t)
	if err := r.sim.SetInput(6, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.sim.SetInput(6, 0); err != nil {
		t.Fatal(err)
	}
	if u := v[1].wait(t, 1); u[0].Written[0] != byte(gpio.EventValid) {
		t.Fatalf("eventq: %+v", u)
	}
	if !strings.Contains(r.log.String(), "restarting the device") {
		t.Errorf("log does not say the device restarted:\n%s", r.log)
	}
}

// TestMapTableUnalignedOffset: a region whose mmap offset is not page
// aligned maps the right bytes.
func TestMapTableUnalignedOffset(t *testing.T) {
	g := newGuestRAM(t)
	copy(g.mem[0x1800:], "hello, region")
	fd, err := unix.Dup(g.fd)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := mapTable([]MemoryRegion{{GuestAddr: 0x4000, Size: 0x800, UserAddr: 0x10000, MmapOffset: 0x1800}}, []int{fd})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.unmap()
	b := make([]byte, 13)
	if err := tb.mem.ReadAt(b, 0x4000); err != nil || string(b) != "hello, region" {
		t.Fatalf("ReadAt(0x4000) = %q, %v", b, err)
	}
	if err := tb.mem.ReadAt(b[:1], 0x4800); err == nil {
		t.Fatal("ReadAt past the region succeeded")
	}
	if gpa, err := tb.translate(0x107ff); err != nil || gpa != 0x47ff {
		t.Fatalf("translate(0x107ff) = %#x, %v", gpa, err)
	}
}

// waitFor polls cond until it holds or the timeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBackendRequestqOnly is QEMU 7.2's vhost-user-gpio-device, which
// does not pass VIRTIO_GPIO_F_IRQ on to the guest: the guest's driver
// sets up the requestq alone, QEMU starts only that ring (yet enables
// both) and stops only it. The device runs without interrupts.
func TestBackendRequestqOnly(t *testing.T) {
	r := newRig(t)
	s := connect(t, r.b)
	fe := s.fe
	fe.handshake()
	g := newGuestRAM(t)
	d := layOut(g)
	fe.mustAck(SetFeatures, u64Payload(wantFeatures&^(1<<gpio.FeatureIRQ)))
	fe.mustAck(SetMemTable, MemTableBytes(g.regions()), g.fd, g.fd)
	v := &vring{d: d[0], kick: eventFD(t), call: eventFD(t)}
	fe.mustAck(SetVringNum, state(0, testQueue))
	fe.mustAck(SetVringBase, state(0, 0))
	fe.mustAck(SetVringAddr, VringAddr{Index: 0, Desc: userAddr(d[0].DescAddr),
		Used: userAddr(d[0].UsedAddr), Avail: userAddr(d[0].AvailAddr)}.Bytes())
	fe.mustAck(SetVringKick, u64Payload(0), v.kick)
	fe.mustAck(SetVringCall, u64Payload(0), v.call)
	fe.mustAck(SetVringCall, u64Payload(1), eventFD(t)) // QEMU sets every ring's call
	fe.mustAck(SetVringEnable, state(0, 1))
	fe.mustAck(SetVringEnable, state(1, 1))

	gpioOK(t, v, gpio.MsgTypeSetDirection, 0, uint32(gpio.DirectionOut))
	gpioOK(t, v, gpio.MsgTypeSetValue, 0, 1)
	if st, _ := r.sim.Line(0); st.Level != 1 {
		t.Fatalf("line 0: %+v", st)
	}
	gpioOK(t, v, gpio.MsgTypeSetDirection, 1, uint32(gpio.DirectionIn))
	if st, _ := gpioReq(t, v, gpio.MsgTypeSetIRQType, 1, uint32(gpio.IRQTypeEdgeBoth)); st != gpio.StatusERR {
		t.Errorf("SET_IRQ_TYPE without VIRTIO_GPIO_F_IRQ: %v, want ERR", st)
	}
	p := fe.call(GetVringBase, state(0, 0))
	if n := binary.LittleEndian.Uint32(p[4:]); n != uint32(d[0].AvailIdx()) {
		t.Errorf("GET_VRING_BASE 0 = %d, want %d", n, d[0].AvailIdx())
	}
	if st, _ := r.sim.Line(0); st.Direction != gpio.DirectionNone {
		t.Errorf("line 0 after the ring stopped: %+v, want released", st)
	}
}
