package gpio

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// virtioRig is a Device activated over fake memory with two driver queues.
type virtioRig struct {
	sim      *Sim
	dev      *Device
	mem      virtiotest.Mem
	req, evq *virtiotest.DriverQueue
	irq      virtiotest.Interrupt
}

// rigConfig varies a virtioRig; its zero value is newVirtioRig's.
type rigConfig struct {
	lines    int    // default 4
	evqSize  uint16 // default 16
	noEventq bool   // the driver does not enable the eventq
	// wrap, if set, gives the memory the device sees.
	wrap func(r *virtioRig) virtio.GuestMemory
	// before, if set, runs before DRIVER_OK (Activate).
	before func(r *virtioRig)
}

func newVirtioRig(t *testing.T, irq bool) *virtioRig {
	return newRig(t, irq, rigConfig{})
}

func newRig(t *testing.T, irq bool, cfg rigConfig) *virtioRig {
	t.Helper()
	cfg.lines = cmp.Or(cfg.lines, 4)
	cfg.evqSize = cmp.Or(cfg.evqSize, 16)
	sim, err := NewSim(cfg.lines, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	r := &virtioRig{sim: sim, mem: virtiotest.NewMem(4 << 20)}
	if r.dev, err = NewDevice(sim); err != nil {
		t.Fatal(err)
	}
	r.req = virtiotest.NewDriverQueue(r.mem[:1<<20], 0, 16)
	r.evq = virtiotest.NewDriverQueue(r.mem[:2<<20], 1<<20, cfg.evqSize)
	features := uint64(0)
	if irq {
		features = 1 << FeatureIRQ
	}
	queues := []*virtio.Queue{r.req.Queue(), r.evq.Queue()}
	if cfg.noEventq {
		queues[EventQueue] = nil
	}
	var mem virtio.GuestMemory = r.mem
	if cfg.wrap != nil {
		mem = cfg.wrap(r)
	}
	if cfg.before != nil {
		cfg.before(r)
	}
	if err := r.dev.Activate(mem, &r.irq, queues, features); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.dev.Reset)
	return r
}

// waitUsed waits for the device's interrupt, which orders its writes to
// the used ring before the driver's reads (as the guest's would be), then
// returns the newly used buffers.
func (r *virtioRig) waitUsed(t *testing.T, d *virtiotest.DriverQueue, what string) []virtiotest.UsedElem {
	t.Helper()
	if !r.irq.Wait(10 * time.Second) {
		t.Fatalf("%s: no interrupt within 10 s", what)
	}
	return d.Used()
}

func request(typ MsgType, line uint16, value uint32) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint16(b, uint16(typ))
	binary.LittleEndian.PutUint16(b[2:], line)
	binary.LittleEndian.PutUint32(b[4:], value)
	return b
}

func TestVirtioRequests(t *testing.T) {
	r := newVirtioRig(t, true)
	tests := []struct {
		name     string
		readable [][]byte
		writable []int
		wantLen  uint32
		want     []byte
	}{
		{"set value", [][]byte{request(MsgTypeSetValue, 1, 1)}, []int{2}, 2, []byte{0, 0}},
		{"direction out applies it", [][]byte{request(MsgTypeSetDirection, 1, uint32(DirectionOut))}, []int{2}, 2, []byte{0, 0}},
		{"get value", [][]byte{request(MsgTypeGetValue, 1, 0)}, []int{2}, 2, []byte{0, 1}},
		{"request split over two buffers", [][]byte{request(MsgTypeGetDirection, 1, 0)[:3], request(MsgTypeGetDirection, 1, 0)[3:]}, []int{1, 1}, 2, []byte{0, byte(DirectionOut)}},
		{"line out of range", [][]byte{request(MsgTypeGetValue, 9, 0)}, []int{2}, 2, []byte{1, 0}},
		{"short request", [][]byte{{4, 0}}, []int{2}, 2, []byte{1, 0}},
		{"names", [][]byte{request(MsgTypeGetNames, 0, 0)}, []int{7}, 7, []byte("\x00a\x00b\x00\x00\x00")},
		{"no response buffer", [][]byte{request(MsgTypeGetValue, 0, 0)}, nil, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := r.req.Add(tt.readable, tt.writable)
			r.dev.Notify(RequestQueue)
			used := r.waitUsed(t, r.req, tt.name)
			if len(used) != 1 || used[0].Head != head || used[0].Len != tt.wantLen || string(used[0].Written) != string(tt.want) {
				t.Errorf("used %+v, want head %d len %d %q", used, head, tt.wantLen, tt.want)
			}
		})
	}
	if v, d, _ := r.sim.Output(1); v != 1 || d != DirectionOut {
		t.Errorf("host sees line 1 = %d dir %v, want 1 out", v, d)
	}
}

// A chain the device cannot read (its buffer lies outside RAM) is still
// completed, with nothing written, and the driver is interrupted, on
// either queue, so it never waits forever.
func TestVirtioMalformedChainCompleted(t *testing.T) {
	for _, q := range []int{RequestQueue, EventQueue} {
		r := newVirtioRig(t, true)
		d := map[int]*virtiotest.DriverQueue{RequestQueue: r.req, EventQueue: r.evq}[q]
		head := uint16(0)
		d.SetDesc(head, virtio.Desc{Addr: 1 << 40, Len: 8})
		d.Publish(head)
		r.dev.Notify(q)
		used := r.waitUsed(t, d, fmt.Sprintf("malformed chain on queue %d", q))
		if len(used) != 1 || used[0].Head != head || used[0].Len != 0 {
			t.Errorf("queue %d: used %+v", q, used)
		}
	}
}

func TestVirtioEdgeThroughEventq(t *testing.T) {
	r := newVirtioRig(t, true)
	for _, req := range [][]byte{
		request(MsgTypeSetDirection, 2, uint32(DirectionIn)),
		request(MsgTypeSetIRQType, 2, uint32(IRQTypeEdgeRising)),
	} {
		r.req.Add([][]byte{req}, []int{2})
		r.dev.Notify(RequestQueue)
		if u := r.waitUsed(t, r.req, "configure line 2"); len(u) != 1 || u[0].Written[0] != byte(StatusOK) {
			t.Fatalf("configure line 2: %+v", u)
		}
	}
	ev := r.evq.Add([][]byte{IRQRequest(2)}, []int{1})
	r.dev.Notify(EventQueue)
	if r.irq.Wait(50 * time.Millisecond) {
		t.Fatal("eventq buffer returned before any edge")
	}
	if err := r.sim.SetInput(2, 1); err != nil {
		t.Fatal(err)
	}
	used := r.waitUsed(t, r.evq, "rising edge")
	if len(used) != 1 || used[0].Head != ev || used[0].Len != 1 || used[0].Written[0] != byte(EventValid) {
		t.Errorf("eventq used %+v, want head %d VALID", used, ev)
	}
}
