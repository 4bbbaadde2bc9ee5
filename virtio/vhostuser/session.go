package vhostuser

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gvmm/gvmm/virtio"
)

// Device feature bits: bits 0-23 and 50-63 belong to the device type
// (virtio 1.2 §2.2); the back end adds those of the split virtqueue it
// implements.
const deviceFeatureMask uint64 = 1<<24 - 1 | (1<<64-1)&^(1<<50-1)

// session is the back end's side of one connection: what the front end
// negotiated and set up, and the device's activation. Only the goroutine
// running serve touches it (the kickers and the interrupt have their own
// synchronisation).
type session struct {
	b    *Backend
	dev  virtio.Device
	w    io.Writer
	logf func(format string, args ...any)

	offered     uint64 // virtio features offered (GET_FEATURES)
	features    uint64 // acked (SET_FEATURES)
	mem         *guestMemory
	irq         *interrupt
	rings       []*ring
	active      bool
	queues      []*virtio.Queue // handed to Activate; nil for rings not used
	activations int
}

func newSession(b *Backend, w io.Writer) *session {
	s := &session{
		b:       b,
		dev:     b.Device,
		w:       w,
		logf:    func(f string, a ...any) { b.logf("vhost-user: "+f, a...) },
		offered: b.Device.Features()&deviceFeatureMask | virtio.TransportFeatures | 1<<FProtocolFeatures,
		mem:     &guestMemory{},
	}
	s.irq = newInterrupt(len(b.Device.QueueMaxSizes()), s.mem, b.logf)
	for _, max := range b.Device.QueueMaxSizes() {
		s.rings = append(s.rings, &ring{size: max})
	}
	return s
}

// fatalError ends the connection whatever the request: the reply could
// not be written.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

// serve reads and handles messages until the stream ends (nil) or a
// message ends the connection (its error), then stops the device and
// releases everything the front end gave.
func (s *session) serve(r MsgReader) error {
	defer s.teardown()
	for {
		m, err := ReadMessage(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading a message: %w", err)
		}
		err = s.dispatch(m)
		m.CloseFDs()
		if err != nil {
			return err
		}
	}
}

// dispatch handles one message. A request refused is answered with an
// error where the protocol has a way to say so (a REPLY_ACK reply of 1
// when the front end asked for one, an empty GET_CONFIG reply) and
// logged; otherwise it ends the connection. Every NEED_REPLY is answered,
// whatever was negotiated: a front end that sets it waits for the reply
// (SET_PROTOCOL_FEATURES can even change REPLY_ACK on the way).
func (s *session) dispatch(m *Message) error {
	h := handlers[m.Request]
	var err error
	if h == nil {
		err = errors.New("unknown or unsupported request")
	} else {
		err = h(s, m)
	}
	ack := m.NeedReply() && !hasReply[m.Request]
	var fatal fatalError
	switch {
	case err == nil && ack:
		return s.reply(m.Request, binary.LittleEndian.AppendUint64(nil, 0))
	case err == nil:
		return nil
	case errors.As(err, &fatal):
		return fmt.Errorf("%v: %w", m.Request, err)
	case m.Request == GetConfig:
		s.logf("%v: %v; answered with an empty payload", m.Request, err)
		return s.reply(m.Request, nil)
	case ack:
		s.logf("%v: %v; refused", m.Request, err)
		return s.reply(m.Request, binary.LittleEndian.AppendUint64(nil, 1))
	}
	return fmt.Errorf("%v: %w", m.Request, err)
}

// hasReply are the requests answered with a payload of their own; the
// others get a REPLY_ACK reply when NEED_REPLY asks for one.
var hasReply = map[Request]bool{
	GetFeatures: true, GetProtocolFeatures: true, GetVringBase: true,
	GetQueueNum: true, GetConfig: true,
}

// reply writes a reply to request r.
func (s *session) reply(r Request, payload []byte) error {
	if _, err := s.w.Write(Reply(r, payload)); err != nil {
		return fatalError{fmt.Errorf("writing the reply: %w", err)}
	}
	return nil
}

// replyU64 writes a reply of one u64.
func (s *session) replyU64(r Request, v uint64) error {
	return s.reply(r, binary.LittleEndian.AppendUint64(nil, v))
}

// ring returns ring i, or an error naming the request's bad index.
func (s *session) ring(i uint32) (*ring, error) {
	if uint64(i) >= uint64(len(s.rings)) {
		return nil, fmt.Errorf("ring %d: no such ring (the device has %d)", i, len(s.rings))
	}
	return s.rings[i], nil
}

// protocolFeatures reports whether VHOST_USER_F_PROTOCOL_FEATURES was
// acked: SET_VRING_ENABLE then enables and disables rings; without it
// SET_FEATURES enables them all.
func (s *session) protocolFeatures() bool { return s.features&(1<<FProtocolFeatures) != 0 }

// maybeActivate starts the device once every ring the front end gave
// addresses is started and enabled, and there is a memory table. A ring
// that starts after the device did (a front end without protocol
// features sets the rings up one by one, each running from its kick)
// restarts it with all of them. req is the request handled, for the log.
func (s *session) maybeActivate(req Request) error {
	if s.active {
		late := false
		for i, r := range s.rings {
			if s.queues[i] == nil && r.hasAddr && r.started() && r.enabled {
				late = true
			}
		}
		if !late {
			return nil
		}
		s.logf("%v: a ring started after the device did; restarting the device with it", req)
		s.stopDevice()
	}
	t := s.mem.table()
	if t == nil {
		return nil
	}
	var used []int
	for i, r := range s.rings {
		if !r.hasAddr {
			continue
		}
		if !r.started() || !r.enabled {
			return nil
		}
		used = append(used, i)
	}
	if len(used) == 0 {
		return nil
	}
	queues := make([]*virtio.Queue, len(s.rings))
	usedAddr := make([]uint64, len(s.rings))
	for i := range usedAddr {
		usedAddr[i] = ^uint64(0)
	}
	for _, i := range used {
		q, err := s.queue(t, i)
		if err != nil {
			return fmt.Errorf("ring %d: %v; device not started", i, err)
		}
		queues[i], usedAddr[i] = q, q.DeviceAddr
	}
	s.irq.activate(usedAddr)
	if err := s.dev.Activate(s.mem, s.irq, queues, s.features&^(1<<FProtocolFeatures)); err != nil {
		s.irq.deactivate()
		s.dev.Reset()
		return fmt.Errorf("starting the device: %v", err)
	}
	s.active, s.queues = true, queues
	s.activations++
	// A kick read while the device was starting found notify unset:
	// notify each queue once, so that none is lost.
	for _, i := range used {
		s.rings[i].notify.Store(true)
		s.dev.Notify(i)
	}
	if s.b.Verbose {
		s.logf("%v: device started: rings %s, features %#x", req, intList(used), s.features)
	}
	return nil
}

// queue builds the device's copy of ring i: its addresses translated to
// guest physical ones through t, validated, with its base and the used
// idx found in memory as positions.
func (s *session) queue(t *memTable, i int) (*virtio.Queue, error) {
	r := s.rings[i]
	var gpa [3]uint64
	for k, ua := range []uint64{r.addr.Desc, r.addr.Avail, r.addr.Used} {
		a, err := t.translate(ua)
		if err != nil {
			return nil, err
		}
		gpa[k] = a
	}
	q := &virtio.Queue{
		MaxSize:      r.size, // the front end's choice (setVringNum)
		Size:         r.size,
		DescAddr:     gpa[0],
		DriverAddr:   gpa[1],
		DeviceAddr:   gpa[2],
		Ready:        true,
		EventIdx:     s.features&(1<<virtio.RingFEventIdx) != 0,
		IndirectDesc: s.features&(1<<virtio.RingFIndirectDesc) != 0,
	}
	if err := q.Validate(s.mem); err != nil {
		return nil, err
	}
	used, err := s.mem.LoadU16(q.DeviceAddr + 2)
	if err != nil {
		return nil, err
	}
	q.StartAt(r.base, used)
	return q, nil
}

// stopDevice resets an active device and keeps where each of its rings
// stopped as the ring's base, for GET_VRING_BASE and the next start. The
// device touches the queues no more once Reset returns.
func (s *session) stopDevice() {
	if !s.active {
		return
	}
	for i, q := range s.queues {
		if q != nil {
			s.rings[i].notify.Store(false)
		}
	}
	s.dev.Reset()
	s.irq.deactivate()
	for i, q := range s.queues {
		if q != nil {
			s.rings[i].base = q.LastAvail()
		}
	}
	s.active, s.queues = false, nil
	if s.b.Verbose {
		s.logf("device stopped")
	}
}

// stopRing stops ring i (GET_VRING_BASE): its kick and call go, and it
// waits, without addresses, for the front end to set it up and start it
// again. It stays enabled or disabled: the spec has the back end keep
// that state while a ring is stopped.
func (s *session) stopRing(i int) {
	r := s.rings[i]
	if r.kick != nil {
		r.kick.close()
		r.kick = nil
	}
	s.irq.setCall(i, -1)
	r.hasAddr = false
}

// teardown ends the connection's state: the device is stopped and reset
// (whether or not it ran), every descriptor closed, memory unmapped.
func (s *session) teardown() {
	if s.active {
		s.stopDevice()
	} else {
		s.dev.Reset()
	}
	for i := range s.rings {
		s.stopRing(i)
	}
	s.irq.closeAll()
	s.mem.swap(nil)
}

func intList(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}
