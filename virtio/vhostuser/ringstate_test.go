package vhostuser

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gvmm/gvmm/virtio"
)

// recDevice is a virtio.Device with two queues that records each
// Activate (the features and the queues it was given) and each Reset.
type recDevice struct {
	mu     sync.Mutex
	events []string // "features rings", e.g. "0x100000000 [0]", or "reset"
}

func (d *recDevice) ID() uint32                 { return 41 }
func (d *recDevice) Features() uint64           { return 1 }
func (d *recDevice) QueueMaxSizes() []uint16    { return []uint16{256, 256} }
func (d *recDevice) ReadConfig(uint64, []byte)  {}
func (d *recDevice) WriteConfig(uint64, []byte) {}
func (d *recDevice) Notify(int)                 {}
func (d *recDevice) Reset()                     { d.record("reset") }
func (d *recDevice) record(e string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, e)
}
func (d *recDevice) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.events)
}
func (d *recDevice) Activate(_ virtio.GuestMemory, _ virtio.Interrupt, queues []*virtio.Queue, features uint64) error {
	var rings []int
	for i, q := range queues {
		if q != nil {
			rings = append(rings, i)
		}
	}
	d.record(fmt.Sprintf("%#x %v", features, rings))
	return nil
}

// TestRingStates: a ring runs when it is started (SET_VRING_KICK, until
// GET_VRING_BASE) and enabled, and the device starts once every ring
// given addresses runs. Rings start disabled; SET_VRING_ENABLE enables
// them once VHOST_USER_F_PROTOCOL_FEATURES is acked, SET_FEATURES without
// it enables them all; the enabled state is kept while a ring is stopped
// (QEMU's docs/interop/vhost-user.rst, "Ring states"). Stopping or
// disabling a ring stops (resets) the device only if it runs the ring;
// RESET_OWNER disables every ring and discards nothing else.
func TestRingStates(t *testing.T) {
	const (
		plain = 1<<virtio.FVersion1 | 1 // the device's bit, VERSION_1
		proto = plain | 1<<FProtocolFeatures
	)
	started := fmt.Sprintf("%#x [0]", uint64(plain)) // the device as it should start
	type step func(f *frontEnd, g *guestRAM, ring0 *vring)
	features := func(f uint64) step {
		return func(fe *frontEnd, _ *guestRAM, _ *vring) { fe.mustAck(SetFeatures, u64Payload(f)) }
	}
	memTable := func(fe *frontEnd, g *guestRAM, _ *vring) {
		fe.mustAck(SetMemTable, MemTableBytes(g.regions()), g.fd, g.fd)
	}
	setUp := func(fe *frontEnd, _ *guestRAM, v *vring) { // ring 0's num, base, addresses
		fe.mustAck(SetVringNum, state(0, uint32(v.d.Size)))
		fe.mustAck(SetVringBase, state(0, 0))
		fe.mustAck(SetVringAddr, VringAddr{Desc: userAddr(v.d.DescAddr), Used: userAddr(v.d.UsedAddr),
			Avail: userAddr(v.d.AvailAddr)}.Bytes())
	}
	kick := func(i uint64) step {
		return func(fe *frontEnd, _ *guestRAM, v *vring) { fe.mustAck(SetVringKick, u64Payload(i), v.kick) }
	}
	enable := func(i, on uint32) step {
		return func(fe *frontEnd, _ *guestRAM, _ *vring) { fe.mustAck(SetVringEnable, state(i, on)) }
	}
	getBase := func(i uint32) step {
		return func(fe *frontEnd, _ *guestRAM, _ *vring) { fe.call(GetVringBase, state(i, 0)) }
	}
	resetOwner := func(fe *frontEnd, _ *guestRAM, _ *vring) { fe.mustAck(ResetOwner, nil) }
	running := []step{features(proto), memTable, setUp, kick(0), enable(0, 1)}

	cases := []struct {
		name  string
		steps []step
		want  []string // what the device saw
	}{
		{"without protocol features: SET_FEATURES enables, the kick starts",
			[]step{features(plain), memTable, setUp, kick(0)}, []string{started}},
		{"a kick before SET_FEATURES waits for the features",
			[]step{memTable, setUp, kick(0), features(plain)}, []string{started}},
		{"with protocol features: disabled until SET_VRING_ENABLE",
			[]step{features(proto), memTable, setUp, kick(0)}, nil},
		{"with protocol features: SET_VRING_ENABLE 1 starts it", running, []string{started}},
		{"enabled before its kick",
			[]step{features(proto), enable(0, 1), memTable, setUp, kick(0)}, []string{started}},
		{"disabled again",
			[]step{features(proto), enable(0, 1), enable(0, 0), memTable, setUp, kick(0)}, nil},
		{"SET_FEATURES with the bit does not disable rings enabled without it",
			[]step{features(plain), features(proto), memTable, setUp, kick(0)}, []string{started}},
		{"stopped by GET_VRING_BASE", append(running, getBase(0), setUp), []string{started, "reset"}},
		{"enabled state kept across GET_VRING_BASE",
			append(running, getBase(0), setUp, kick(0)), []string{started, "reset", started}},
		{"stopped by SET_VRING_ENABLE 0", append(running, enable(0, 0)), []string{started, "reset"}},
		{"GET_VRING_BASE of a ring the device does not run",
			append(running, kick(1), getBase(1)), []string{started}},
		{"SET_VRING_ENABLE 0 of a ring the device does not run",
			append(running, enable(1, 0)), []string{started}},
		{"RESET_OWNER disables the rings and keeps their set-up and the memory",
			append(running, resetOwner, enable(0, 1)), []string{started, "reset", started}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dev := &recDevice{}
			s := connect(t, &Backend{Device: dev})
			s.fe.send(SetProtocolFeatures, 0, u64Payload(ProtocolFeatures))
			g := newGuestRAM(t)
			v := &vring{d: layOut(g)[0], kick: eventFD(t)}
			for _, st := range c.steps {
				st(s.fe, g, v)
			}
			if got := dev.seen(); !slices.Equal(got, c.want) {
				t.Errorf("device saw %q, want %q", got, c.want)
			}
		})
	}
}

// TestStartLogNamesRequest: the lines logged when the device starts or
// restarts name the request that started it.
func TestStartLogNamesRequest(t *testing.T) {
	cases := []struct {
		name  string
		proto bool     // ack VHOST_USER_F_PROTOCOL_FEATURES
		steps []string // features, mem, addr0, addr1, kick0, kick1, enable0
		want  string
	}{
		{"SET_VRING_ENABLE", true, []string{"features", "mem", "addr0", "kick0", "enable0"},
			"VHOST_USER_SET_VRING_ENABLE: device started"},
		{"SET_VRING_KICK", false, []string{"features", "mem", "addr0", "kick0"},
			"VHOST_USER_SET_VRING_KICK: device started"},
		{"SET_FEATURES", false, []string{"mem", "addr0", "kick0", "features"},
			"VHOST_USER_SET_FEATURES: device started"},
		{"SET_MEM_TABLE", false, []string{"features", "addr0", "kick0", "mem"},
			"VHOST_USER_SET_MEM_TABLE: device started"},
		{"a late ring's SET_VRING_KICK", false, []string{"features", "mem", "addr0", "kick0", "addr1", "kick1"},
			"VHOST_USER_SET_VRING_KICK: a ring started after the device did"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log := &logLines{}
			s := connect(t, &Backend{Device: &recDevice{}, Log: log.add, Verbose: true})
			fe := s.fe
			g := newGuestRAM(t)
			d := layOut(g)
			f := uint64(1<<virtio.FVersion1 | 1)
			if c.proto {
				f |= 1 << FProtocolFeatures
			}
			addr := func(i uint32) func() {
				return func() {
					fe.mustAck(SetVringNum, state(i, uint32(d[i].Size)))
					fe.mustAck(SetVringAddr, VringAddr{Index: i, Desc: userAddr(d[i].DescAddr),
						Used: userAddr(d[i].UsedAddr), Avail: userAddr(d[i].AvailAddr)}.Bytes())
				}
			}
			kick := func(i uint64) func() {
				return func() { fe.mustAck(SetVringKick, u64Payload(i), eventFD(t)) }
			}
			steps := map[string]func(){
				"features": func() { fe.mustAck(SetFeatures, u64Payload(f)) },
				"mem":      func() { fe.mustAck(SetMemTable, MemTableBytes(g.regions()), g.fd, g.fd) },
				"addr0":    addr(0), "addr1": addr(1),
				"kick0": kick(0), "kick1": kick(1),
				"enable0": func() { fe.mustAck(SetVringEnable, state(0, 1)) },
			}
			for _, st := range c.steps {
				steps[st]()
			}
			if !strings.Contains(log.String(), c.want) {
				t.Errorf("log lacks %q:\n%s", c.want, log)
			}
		})
	}
}
