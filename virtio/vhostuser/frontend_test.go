package vhostuser

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// The test front end: the master side of vhost-user as QEMU speaks it,
// over one end of a socketpair, with guest RAM in a memfd it maps itself
// and lays split rings out in (virtiotest.DriverQueue), as a guest's
// driver would.

const (
	testMemSize  = 1 << 20
	testUserBase = 0x7f12_3400_0000 // where the "front end" has guest RAM
	testUserGap  = 0x1000_0000      // the second region's user addresses are elsewhere
	testQueue    = 1024             // as QEMU's virtio-mmio has guests make them, past the device's 256
	timeout      = 5 * time.Second
)

// guestRAM is the front end's guest memory: a memfd mapped in this
// process, guest physical address a at mem[a].
type guestRAM struct {
	fd  int
	mem virtiotest.Mem
}

func newGuestRAM(t testing.TB) *guestRAM {
	t.Helper()
	fd, err := unix.MemfdCreate("vhostuser-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, testMemSize); err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(fd, 0, testMemSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(b); _ = unix.Close(fd) })
	return &guestRAM{fd: fd, mem: virtiotest.Mem(b)}
}

// regions describes the RAM as QEMU would, in two regions whose user
// addresses are not contiguous, so that translation is exercised.
func (g *guestRAM) regions() []MemoryRegion {
	const half = testMemSize / 2
	return []MemoryRegion{
		{GuestAddr: 0, Size: half, UserAddr: testUserBase, MmapOffset: 0},
		{GuestAddr: half, Size: half, UserAddr: testUserBase + testUserGap, MmapOffset: half},
	}
}

// userAddr is the front end's address of guest physical address gpa.
func userAddr(gpa uint64) uint64 {
	if gpa < testMemSize/2 {
		return testUserBase + gpa
	}
	return testUserBase + testUserGap + gpa - testMemSize/2
}

// frontEnd speaks the master side on c.
type frontEnd struct {
	t testing.TB
	c *net.UnixConn
}

// socketPair returns two connected Unix stream sockets.
func socketPair(t testing.TB) (a, b *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// serving is one connection of the back end served by ServeConn in a
// goroutine.
type serving struct {
	fe   *frontEnd
	done chan error
}

// connect serves a new socketpair connection with b.
func connect(t testing.TB, b *Backend) *serving {
	t.Helper()
	front, back := socketPair(t)
	s := &serving{fe: &frontEnd{t: t, c: front}, done: make(chan error, 1)}
	go func() { s.done <- b.ServeConn(back) }()
	t.Cleanup(func() { s.hangUp() })
	return s
}

// hangUp closes the front end's side and waits until ServeConn is done
// (device reset, descriptors closed), returning its error.
func (s *serving) hangUp() error {
	_ = s.fe.c.Close()
	select {
	case err := <-s.done:
		s.done <- err // for a second call
		return err
	case <-time.After(timeout):
		s.fe.t.Fatal("ServeConn did not return after the front end hung up")
		return nil
	}
}

// send writes a request with flags (Version added) and descriptors.
func (f *frontEnd) send(r Request, flags uint32, payload []byte, fds ...int) {
	f.t.Helper()
	h := Header{Request: r, Flags: Version | flags, Size: uint32(len(payload))}.Bytes()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := f.c.WriteMsgUnix(append(h[:], payload...), oob, nil); err != nil {
		f.t.Fatalf("sending %v: %v", r, err)
	}
}

// recv reads a reply, checking its flags as QEMU does.
func (f *frontEnd) recv() (Header, []byte, error) {
	_ = f.c.SetReadDeadline(time.Now().Add(timeout))
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(f.c, hb[:]); err != nil {
		return Header{}, nil, err
	}
	h := ParseHeader(hb)
	if h.Flags != Version|FlagReply {
		return h, nil, errors.New("reply flags not VERSION|REPLY")
	}
	if h.Size > MaxPayload {
		return h, nil, errors.New("reply too large")
	}
	p := make([]byte, h.Size)
	_, err := io.ReadFull(f.c, p)
	return h, p, err
}

// call sends a request that has a reply and returns its payload.
func (f *frontEnd) call(r Request, payload []byte, fds ...int) []byte {
	f.t.Helper()
	f.send(r, 0, payload, fds...)
	h, p, err := f.recv()
	if err != nil {
		f.t.Fatalf("%v: reply: %v", r, err)
	}
	if h.Request != r {
		f.t.Fatalf("%v: reply to %v", r, h.Request)
	}
	return p
}

// callU64 sends a request answered with a u64.
func (f *frontEnd) callU64(r Request) uint64 {
	f.t.Helper()
	p := f.call(r, nil)
	if len(p) != 8 {
		f.t.Fatalf("%v: reply of %d bytes", r, len(p))
	}
	return binary.LittleEndian.Uint64(p)
}

// ack sends a request with NEED_REPLY and returns the REPLY_ACK value.
func (f *frontEnd) ack(r Request, payload []byte, fds ...int) uint64 {
	f.t.Helper()
	f.send(r, FlagNeedReply, payload, fds...)
	h, p, err := f.recv()
	if err != nil {
		f.t.Fatalf("%v: ack: %v", r, err)
	}
	if h.Request != r || len(p) != 8 {
		f.t.Fatalf("%v: ack for %v of %d bytes", r, h.Request, len(p))
	}
	return binary.LittleEndian.Uint64(p)
}

// mustAck sends a request with NEED_REPLY that must succeed.
func (f *frontEnd) mustAck(r Request, payload []byte, fds ...int) {
	f.t.Helper()
	if v := f.ack(r, payload, fds...); v != 0 {
		f.t.Fatalf("%v: ack %d, want 0", r, v)
	}
}

func u64Payload(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func state(i, n uint32) []byte { return VringState{Index: i, Num: n}.Bytes() }

// eventFD returns a non-blocking eventfd, closed at the end of the test.
func eventFD(t testing.TB) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd
}

// signalled waits up to d for the eventfd to be written, and clears it.
func signalled(fd int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		n, err := unix.Poll(fds, int(left/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		if n > 0 {
			var b [8]byte
			_, _ = unix.Read(fd, b[:])
			return true
		}
		if err != nil {
			return false
		}
	}
}

// vring is one ring as the test front end set it up.
type vring struct {
	d          *virtiotest.DriverQueue
	kick, call int
}

// kick tells the back end about new buffers.
func (v *vring) notify(t testing.TB) {
	t.Helper()
	if _, err := unix.Write(v.kick, u64Payload(1)); err != nil {
		t.Fatal(err)
	}
}

// wait kicks, then collects used elements until n came.
func (v *vring) wait(t testing.TB, n int) []virtiotest.UsedElem {
	t.Helper()
	var got []virtiotest.UsedElem
	deadline := time.Now().Add(timeout)
	for len(got) < n {
		got = append(got, v.d.Used()...)
		if len(got) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d used buffers after %v", len(got), n, timeout)
		}
		signalled(v.call, 50*time.Millisecond)
	}
	return got
}

// features the test front end acks: all a GPIO driver and QEMU would.
const wantFeatures = 1<<virtio.FVersion1 | 1<<virtio.RingFEventIdx | 1<<virtio.RingFIndirectDesc |
	1<<gpio.FeatureIRQ | 1<<FProtocolFeatures

// handshake is what QEMU's vhost_dev_init does: owner, features, protocol
// features (REPLY_ACK, CONFIG, MQ), the queue count.
func (f *frontEnd) handshake() {
	f.t.Helper()
	if got := f.callU64(GetFeatures); got&wantFeatures != wantFeatures {
		f.t.Fatalf("GET_FEATURES %#x lacks %#x", got, wantFeatures&^got)
	}
	if got := f.callU64(GetProtocolFeatures); got != ProtocolFeatures {
		f.t.Fatalf("GET_PROTOCOL_FEATURES %#x, want %#x", got, ProtocolFeatures)
	}
	f.send(SetProtocolFeatures, 0, u64Payload(ProtocolFeatures))
	f.send(SetOwner, 0, nil)
	if n := f.callU64(GetQueueNum); n != 2 {
		f.t.Fatalf("GET_QUEUE_NUM %d, want 2", n)
	}
}

// start is what QEMU's vhost_dev_start does when the guest's driver sets
// DRIVER_OK: features, memory table, then each ring (num, base, address,
// kick, call) and last the rings enabled. bases are the rings' bases. It
// returns the two rings (requestq, eventq).
func (f *frontEnd) start(g *guestRAM, rings [2]*virtiotest.DriverQueue, bases [2]uint16) [2]*vring {
	f.t.Helper()
	f.mustAck(SetFeatures, u64Payload(wantFeatures))
	fds := make([]int, 0, 2)
	for range g.regions() {
		fds = append(fds, g.fd)
	}
	f.mustAck(SetMemTable, MemTableBytes(g.regions()), fds...)
	var out [2]*vring
	for i, d := range rings {
		v := &vring{d: d, kick: eventFD(f.t), call: eventFD(f.t)}
		f.mustAck(SetVringNum, state(uint32(i), uint32(d.Size)))
		f.mustAck(SetVringBase, state(uint32(i), uint32(bases[i])))
		f.mustAck(SetVringAddr, VringAddr{Index: uint32(i), Desc: userAddr(d.DescAddr),
			Used: userAddr(d.UsedAddr), Avail: userAddr(d.AvailAddr)}.Bytes())
		f.mustAck(SetVringKick, u64Payload(uint64(i)), v.kick)
		f.mustAck(SetVringCall, u64Payload(uint64(i)), v.call)
		out[i] = v
	}
	for i := range rings {
		f.mustAck(SetVringEnable, state(uint32(i), 1))
	}
	return out
}

// layOut lays the two rings out in g's RAM, the requestq in the first
// region and the eventq in the second, each with buffer space after it.
func layOut(g *guestRAM) [2]*virtiotest.DriverQueue {
	req := virtiotest.NewDriverQueue(g.mem[:testMemSize/2], 0, testQueue)
	ev := virtiotest.NewDriverQueue(g.mem, testMemSize/2, testQueue)
	req.EventIdx, ev.EventIdx = true, true
	return [2]*virtiotest.DriverQueue{req, ev}
}

// rig is a gpio.Device over a simulated bank, served by a Backend whose
// log the test reads.
type rig struct {
	sim *gpio.Sim
	dev *gpio.Device
	b   *Backend
	log *logLines
}

func newRig(t testing.TB) *rig {
	t.Helper()
	sim, err := gpio.NewSim(8, "led", "button", "", "out3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	dev, err := gpio.NewDevice(sim)
	if err != nil {
		t.Fatal(err)
	}
	l := &logLines{}
	return &rig{sim: sim, dev: dev, log: l, b: &Backend{Device: dev, Log: l.add, Verbose: true}}
}

// logLines collects the Backend's log.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

// since returns the lines logged from index n on, and the new count.
func (l *logLines) since(n int) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines[n:]...), len(l.lines)
}

func (l *logLines) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// gpioReq sends one GPIO request on the requestq and returns the
// response's status and value.
func gpioReq(t testing.TB, v *vring, typ gpio.MsgType, line uint16, value uint32) (gpio.Status, uint8) {
	t.Helper()
	v.d.Add([][]byte{gpio.Request{Type: typ, GPIO: line, Value: value}.Bytes()}, []int{gpio.ResponseSize})
	v.notify(t)
	u := v.wait(t, 1)
	if len(u) != 1 || len(u[0].Written) != gpio.ResponseSize {
		t.Fatalf("%v(%d, %d): used %+v", typ, line, value, u)
	}
	return gpio.Status(u[0].Written[0]), u[0].Written[1]
}

// gpioOK sends a request that must succeed and returns its value.
func gpioOK(t testing.TB, v *vring, typ gpio.MsgType, line uint16, value uint32) uint8 {
	t.Helper()
	st, val := gpioReq(t, v, typ, line, value)
	if st != gpio.StatusOK {
		t.Fatalf("%v(%d, %d): status %v", typ, line, value, st)
	}
	return val
}

// openFDs counts this process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	d, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(d)
}
