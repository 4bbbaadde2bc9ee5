package vhostuser

import (
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

// TestCallSetLate: a front end can send a ring's SET_VRING_CALL after
// its SET_VRING_KICK (QEMU's vhost_virtqueue_start does), and the kick
// can start the device (a ring still enabled from before GET_VRING_BASE,
// or no protocol features), which then serves what the guest queued
// meanwhile: the call eventfd that comes next is signalled for it. A
// call eventfd replaced with nothing new used is not.
func TestCallSetLate(t *testing.T) {
	const noProto = wantFeatures &^ (1<<FProtocolFeatures | 1<<gpio.FeatureIRQ)
	cases := []struct {
		name   string
		stop   bool   // stop the ring (GET_VRING_BASE) and restart it
		feats  uint64 // SET_FEATURES
		queued bool   // a request waits when the ring starts
		want   bool   // the new call eventfd is signalled
	}{
		{"restarted after GET_VRING_BASE, a request waiting", true, wantFeatures &^ (1 << gpio.FeatureIRQ), true, true},
		{"restarted after GET_VRING_BASE, nothing waiting", true, wantFeatures &^ (1 << gpio.FeatureIRQ), false, false},
		{"no protocol features, a request waiting at the first start", false, noProto, true, true},
		{"no protocol features, nothing waiting", false, noProto, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			s := connect(t, r.b)
			fe := s.fe
			fe.handshake()
			g := newGuestRAM(t)
			d := layOut(g)[0]
			fe.mustAck(SetFeatures, u64Payload(c.feats))
			fe.mustAck(SetMemTable, MemTableBytes(g.regions()), g.fd, g.fd)
			setUp := func(base uint32) *vring {
				v := &vring{d: d, kick: eventFD(t), call: eventFD(t)}
				fe.mustAck(SetVringNum, state(0, uint32(d.Size)))
				fe.mustAck(SetVringBase, state(0, base))
				fe.mustAck(SetVringAddr, VringAddr{Desc: userAddr(d.DescAddr), Used: userAddr(d.UsedAddr),
					Avail: userAddr(d.AvailAddr)}.Bytes())
				return v
			}
			queue := func() {
				d.Add([][]byte{gpio.Request{Type: gpio.MsgTypeGetValue, GPIO: 1}.Bytes()}, []int{gpio.ResponseSize})
			}
			var v *vring
			if c.stop {
				v = setUp(0)
				fe.mustAck(SetVringKick, u64Payload(0), v.kick)
				fe.mustAck(SetVringCall, u64Payload(0), v.call)
				fe.mustAck(SetVringEnable, state(0, 1))
				gpioOK(t, v, gpio.MsgTypeGetValue, 0, 0)
				fe.call(GetVringBase, state(0, 0))
				v = setUp(uint32(d.AvailIdx()))
			} else {
				v = setUp(0)
			}
			if c.queued {
				queue()
			}
			fe.mustAck(SetVringKick, u64Payload(0), v.kick) // starts the device
			if c.queued {
				waitFor(t, "the waiting request served", func() bool { return d.UsedIdx() == d.AvailIdx() })
			}
			fe.mustAck(SetVringCall, u64Payload(0), v.call)
			if got := signalled(v.call, 200*time.Millisecond); got != c.want {
				t.Errorf("call eventfd signalled: %v, want %v", got, c.want)
			}
		})
	}
}
