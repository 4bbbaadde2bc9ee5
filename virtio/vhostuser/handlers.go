package vhostuser

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/gvmm/gvmm/virtio"
)

// handlers are the requests the back end implements. A handler checks
// the payload and descriptors, acts, and writes the request's own reply
// if it has one; an error refuses the request (see session.dispatch).
// Descriptors a handler does not take are closed after it returns.
var handlers map[Request]func(*session, *Message) error

func init() {
	handlers = map[Request]func(*session, *Message) error{
		GetFeatures:         (*session).getFeatures,
		SetFeatures:         (*session).setFeatures,
		SetOwner:            (*session).setOwner,
		ResetOwner:          (*session).resetOwner,
		SetMemTable:         (*session).setMemTable,
		SetVringNum:         (*session).setVringNum,
		SetVringAddr:        (*session).setVringAddr,
		SetVringBase:        (*session).setVringBase,
		GetVringBase:        (*session).getVringBase,
		SetVringKick:        (*session).setVringKick,
		SetVringCall:        (*session).setVringCall,
		SetVringErr:         (*session).setVringErr,
		GetProtocolFeatures: (*session).getProtocolFeatures,
		SetProtocolFeatures: (*session).setProtocolFeatures,
		GetQueueNum:         (*session).getQueueNum,
		SetVringEnable:      (*session).setVringEnable,
		GetConfig:           (*session).getConfig,
		SetConfig:           (*session).setConfig,
	}
}

// noPayload refuses a payload or descriptors on a request that has none.
func noPayload(m *Message) error {
	if len(m.Payload) != 0 {
		return fmt.Errorf("%w: %d bytes, want none", ErrPayload, len(m.Payload))
	}
	return noFDs(m)
}

// noFDs refuses descriptors on a request that takes none.
func noFDs(m *Message) error {
	if len(m.FDs) != 0 {
		return fmt.Errorf("%w: %d descriptors, want none", ErrFDs, len(m.FDs))
	}
	return nil
}

// u64 decodes a u64 payload of a request without descriptors.
func u64(m *Message) (uint64, error) {
	if err := noFDs(m); err != nil {
		return 0, err
	}
	return m.U64()
}

// vringState decodes a vring state of a request without descriptors and
// returns the ring it names.
func (s *session) vringState(m *Message) (VringState, *ring, error) {
	if err := noFDs(m); err != nil {
		return VringState{}, nil, err
	}
	st, err := m.VringState()
	if err != nil {
		return st, nil, err
	}
	r, err := s.ring(st.Index)
	return st, r, err
}

// stopped refuses to change a started ring's set-up.
func stopped(r *ring, i uint32) error {
	if r.started() {
		return fmt.Errorf("ring %d is started: stop it first (GET_VRING_BASE)", i)
	}
	return nil
}

// getFeatures: VHOST_USER_GET_FEATURES. The device's own bits,
// VIRTIO_F_VERSION_1, the ring features of virtio.Queue (indirect
// descriptors, event idx) and VHOST_USER_F_PROTOCOL_FEATURES.
func (s *session) getFeatures(m *Message) error {
	if err := noPayload(m); err != nil {
		return err
	}
	return s.replyU64(m.Request, s.offered)
}

// setFeatures: VHOST_USER_SET_FEATURES. Only features offered; they
// apply at the device's next start. Without
// VHOST_USER_F_PROTOCOL_FEATURES every ring is enabled ("Ring states"):
// rings start disabled, so the device never starts before it knows its
// features.
func (s *session) setFeatures(m *Message) error {
	f, err := u64(m)
	if err != nil {
		return err
	}
	if f&^s.offered != 0 {
		return fmt.Errorf("features %#x were not offered (offered %#x)", f&^s.offered, s.offered)
	}
	if s.active && f != s.features {
		s.logf("%v: features %#x while the device runs with %#x: they apply at its next start", m.Request, f, s.features)
	}
	s.features = f
	if !s.protocolFeatures() {
		for _, r := range s.rings {
			r.enabled = true
		}
	}
	return s.maybeActivate(m.Request)
}

// setOwner: VHOST_USER_SET_OWNER, the start of a session. Nothing to do:
// a connection is a session.
func (s *session) setOwner(m *Message) error { return noPayload(m) }

// resetOwner: VHOST_USER_RESET_OWNER, deprecated: the spec has back ends
// ignore it or disable every ring, and warns that discarding the
// connection's state breaks front ends. Every ring is disabled (the
// device stops); the memory table, the rings' set-up and descriptors
// stay.
func (s *session) resetOwner(m *Message) error {
	if err := noPayload(m); err != nil {
		return err
	}
	s.stopDevice()
	for _, r := range s.rings {
		r.enabled = false
	}
	return nil
}

// setMemTable: VHOST_USER_SET_MEM_TABLE. The regions are mapped (see
// mapTable) and replace the previous table; while the device runs, the
// rings it uses must still lie in the new table.
func (s *session) setMemTable(m *Message) error {
	regions, err := m.MemTable()
	if err != nil {
		return err
	}
	fds := m.FDs
	m.FDs = nil // mapTable closes them
	t, err := mapTable(regions, fds)
	if err != nil {
		return err
	}
	if s.active {
		for i, q := range s.queues {
			if q == nil {
				continue
			}
			if err := q.Validate(&t.mem); err != nil {
				t.unmap()
				return fmt.Errorf("the running ring %d would leave guest memory: %v", i, err)
			}
		}
	}
	s.mem.swap(t)
	return s.maybeActivate(m.Request)
}

// setVringNum: VHOST_USER_SET_VRING_NUM. A power of two up to a split
// ring's largest, 32768: the front end's transport decided the size with
// the guest, not the device (QEMU's virtio-mmio offers every queue 1024
// entries, whatever the device's own maximum, Device.QueueMaxSizes).
func (s *session) setVringNum(m *Message) error {
	st, r, err := s.vringState(m)
	if err != nil {
		return err
	}
	if err := stopped(r, st.Index); err != nil {
		return err
	}
	if st.Num == 0 || st.Num&(st.Num-1) != 0 || st.Num > virtio.MaxQueueSize {
		return fmt.Errorf("ring %d: size %d: want a power of two up to %d", st.Index, st.Num, virtio.MaxQueueSize)
	}
	r.size = uint16(st.Num)
	return nil
}

// setVringAddr: VHOST_USER_SET_VRING_ADDR. The addresses are the front
// end's; with a memory table they must translate already (and do again
// when the device starts, through the table then current).
func (s *session) setVringAddr(m *Message) error {
	if err := noFDs(m); err != nil {
		return err
	}
	a, err := m.VringAddr()
	if err != nil {
		return err
	}
	r, err := s.ring(a.Index)
	if err != nil {
		return err
	}
	if err := stopped(r, a.Index); err != nil {
		return err
	}
	if a.Flags&^vringFLog != 0 {
		return fmt.Errorf("ring %d: flags %#x: unknown bits", a.Index, a.Flags)
	}
	if t := s.mem.table(); t != nil {
		for _, x := range []struct {
			name string
			ua   uint64
		}{{"descriptor table", a.Desc}, {"available ring", a.Avail}, {"used ring", a.Used}} {
			if _, err := t.translate(x.ua); err != nil {
				return fmt.Errorf("ring %d: %s: %v", a.Index, x.name, err)
			}
		}
	}
	r.addr, r.hasAddr = a, true
	return nil
}

// setVringBase: VHOST_USER_SET_VRING_BASE, the next available ring entry
// the device takes (a split ring's 16-bit index).
func (s *session) setVringBase(m *Message) error {
	st, r, err := s.vringState(m)
	if err != nil {
		return err
	}
	if err := stopped(r, st.Index); err != nil {
		return err
	}
	if st.Num > 0xffff {
		return fmt.Errorf("ring %d: base %d: past a split ring's 16-bit index", st.Index, st.Num)
	}
	r.base = uint16(st.Num)
	return nil
}

// getVringBase: VHOST_USER_GET_VRING_BASE. The ring stops, and the
// device with it if it runs the ring (all of the device: its queues are
// served together); the reply is where the ring stopped, the next
// available entry the device would have taken.
func (s *session) getVringBase(m *Message) error {
	st, r, err := s.vringState(m)
	if err != nil {
		return err
	}
	if s.active && s.queues[st.Index] != nil {
		s.stopDevice()
	}
	s.stopRing(int(st.Index))
	return s.reply(m.Request, VringState{Index: st.Index, Num: uint32(r.base)}.Bytes())
}

// vringFile decodes SET_VRING_KICK/CALL/ERR and takes its descriptor,
// made ready for use (-1 with the no-fd flag).
func (s *session) vringFile(m *Message) (i int, fd int, err error) {
	i, noFD, err := m.VringFile()
	if err != nil {
		return 0, -1, err
	}
	if _, err := s.ring(uint32(i)); err != nil {
		return 0, -1, err
	}
	if noFD {
		return i, -1, nil
	}
	if err := prepareEventFD(m.FDs[0]); err != nil {
		return 0, -1, fmt.Errorf("ring %d: %w", i, err)
	}
	return i, m.takeFD(), nil
}

// setVringKick: VHOST_USER_SET_VRING_KICK. The ring starts: a goroutine
// reads the eventfd and passes each kick to Device.Notify while the
// device runs with the ring (with the no-fd flag it polls instead).
func (s *session) setVringKick(m *Message) error {
	i, fd, err := s.vringFile(m)
	if err != nil {
		return err
	}
	r := s.rings[i]
	if r.kick != nil {
		r.kick.close()
	}
	var f *os.File
	if fd >= 0 {
		f = os.NewFile(uintptr(fd), "vhost-user kick "+strconv.Itoa(i))
	}
	r.kick = startKicker(f, func() {
		if r.notify.Load() {
			s.dev.Notify(i)
		}
	})
	return s.maybeActivate(m.Request)
}

// setVringCall: VHOST_USER_SET_VRING_CALL, the eventfd the ring's used
// buffer notifications go to (none with the no-fd flag: the front end
// polls). QEMU replaces it while the rings run, as the guest masks and
// unmasks the queue's interrupt.
func (s *session) setVringCall(m *Message) error {
	i, fd, err := s.vringFile(m)
	if err != nil {
		return err
	}
	s.irq.setCall(i, fd)
	return nil
}

// setVringErr: VHOST_USER_SET_VRING_ERR, written when the device needs a
// reset.
func (s *session) setVringErr(m *Message) error {
	i, fd, err := s.vringFile(m)
	if err != nil {
		return err
	}
	s.irq.setErr(i, fd)
	return nil
}

// getProtocolFeatures: VHOST_USER_GET_PROTOCOL_FEATURES: MQ, REPLY_ACK,
// CONFIG.
func (s *session) getProtocolFeatures(m *Message) error {
	if err := noPayload(m); err != nil {
		return err
	}
	return s.replyU64(m.Request, ProtocolFeatures)
}

// setProtocolFeatures: VHOST_USER_SET_PROTOCOL_FEATURES. Only those
// offered; none changes what the back end does (it answers GET_QUEUE_NUM,
// GET_CONFIG and NEED_REPLY whatever was acked).
func (s *session) setProtocolFeatures(m *Message) error {
	f, err := u64(m)
	if err != nil {
		return err
	}
	if f&^ProtocolFeatures != 0 {
		return fmt.Errorf("protocol features %#x were not offered (offered %#x)", f&^ProtocolFeatures, ProtocolFeatures)
	}
	return nil
}

// getQueueNum: VHOST_USER_GET_QUEUE_NUM, the device's number of queues.
func (s *session) getQueueNum(m *Message) error {
	if err := noPayload(m); err != nil {
		return err
	}
	return s.replyU64(m.Request, uint64(len(s.rings)))
}

// setVringEnable: VHOST_USER_SET_VRING_ENABLE, only with protocol
// features. Disabling a ring the device runs with stops the device:
// a GPIO request cannot be processed "without side effects".
func (s *session) setVringEnable(m *Message) error {
	st, r, err := s.vringState(m)
	if err != nil {
		return err
	}
	if !s.protocolFeatures() {
		return errors.New("VHOST_USER_F_PROTOCOL_FEATURES not negotiated")
	}
	if st.Num > 1 {
		return fmt.Errorf("ring %d: enable %d: want 0 or 1", st.Index, st.Num)
	}
	r.enabled = st.Num == 1
	if !r.enabled && s.active && s.queues[st.Index] != nil {
		s.stopDevice()
	}
	return s.maybeActivate(m.Request)
}

// getConfig: VHOST_USER_GET_CONFIG, from Device.ReadConfig.
func (s *session) getConfig(m *Message) error {
	if err := noFDs(m); err != nil {
		return err
	}
	c, err := m.Config()
	if err != nil {
		return err
	}
	c.Data = make([]byte, c.Size)
	s.dev.ReadConfig(uint64(c.Offset), c.Data)
	return s.reply(m.Request, c.Bytes())
}

// Flags of VHOST_USER_SET_CONFIG.
const (
	configWritable  = 0 // VHOST_SET_CONFIG_TYPE_FRONTEND: the driver wrote writable fields
	configMigration = 1 // VHOST_SET_CONFIG_TYPE_MIGRATION
)

// setConfig: VHOST_USER_SET_CONFIG, to Device.WriteConfig, which decides
// what is writable. Migration writes are ignored: the device's
// configuration is its own.
func (s *session) setConfig(m *Message) error {
	if err := noFDs(m); err != nil {
		return err
	}
	c, err := m.Config()
	if err != nil {
		return err
	}
	switch c.Flags {
	case configWritable:
		s.dev.WriteConfig(uint64(c.Offset), c.Data)
	case configMigration:
	default:
		return fmt.Errorf("flags %#x: want 0 (front end) or 1 (migration)", c.Flags)
	}
	return nil
}
