package virtio_test

import (
	"testing"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

func TestNeedEvent(t *testing.T) {
	tests := []struct {
		event, newIdx, oldIdx uint16
		want                  bool
	}{
		{0, 1, 0, true},
		{0, 0, 0, false},
		{1, 1, 0, false}, // event 1 not yet reached
		{5, 3, 0, false},
		{5, 6, 3, true},
		{5, 5, 3, false},
		{5, 6, 5, true},
		{65535, 2, 65534, true}, // wraps through the event
		{0, 2, 65534, true},
		{3, 2, 65534, false},
		{65533, 2, 65534, false}, // event already behind
	}
	for _, tt := range tests {
		if got := virtio.NeedEvent(tt.event, tt.newIdx, tt.oldIdx); got != tt.want {
			t.Errorf("needEvent(event %d, new %d, old %d) = %v, want %v", tt.event, tt.newIdx, tt.oldIdx, got, tt.want)
		}
	}
}

// pushN pops and pushes n chains the driver adds.
func pushN(t *testing.T, d *virtiotest.DriverQueue, q *virtio.Queue, mem virtiotest.Mem, n int) {
	t.Helper()
	for range n {
		d.Add([][]byte{{1}}, nil)
		c, err := q.Pop(mem)
		if c == nil || err != nil {
			t.Fatalf("Pop = %v, %v", c, err)
		}
		if err := q.Push(mem, c.Head, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNeedsInterruptFlags(t *testing.T) {
	d, q, mem := newQueue(t, 8, false)
	if q.NeedsInterrupt(mem) {
		t.Error("interrupt with nothing pushed")
	}
	pushN(t, d, q, mem, 2)
	if !q.NeedsInterrupt(mem) {
		t.Error("no interrupt with flags 0")
	}
	if q.NeedsInterrupt(mem) {
		t.Error("second interrupt for the same batch")
	}
	d.Used()
	d.SetAvailFlags(virtio.AvailFNoInterrupt)
	pushN(t, d, q, mem, 1)
	if q.NeedsInterrupt(mem) {
		t.Error("interrupt despite VIRTQ_AVAIL_F_NO_INTERRUPT")
	}
	// Without EVENT_IDX, used_event means nothing.
	d.SetAvailFlags(0)
	d.SetUsedEvent(100)
	pushN(t, d, q, mem, 1)
	if !q.NeedsInterrupt(mem) {
		t.Error("used_event honoured without EVENT_IDX")
	}
}

func TestNeedsInterruptEventIdx(t *testing.T) {
	tests := []struct {
		name      string
		start     uint16 // used idx before the batch
		usedEvent uint16
		pushes    int
		flags     uint16
		want      bool
	}{
		{"first push", 0, 0, 1, 0, true},
		{"event ahead", 0, 5, 3, 0, false},
		{"batch crosses event", 3, 5, 3, 0, true},
		{"batch ends on event", 3, 5, 2, 0, false},
		{"NO_INTERRUPT ignored", 0, 0, 1, virtio.AvailFNoInterrupt, true},
		{"wrap through event", 65534, 65535, 4, 0, true},
		{"wrap, event after batch", 65534, 3, 4, 0, false},
		{"event behind", 10, 2, 3, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, q, mem := newQueue(t, 8, true)
			q.SetPositions(tt.start, tt.start)
			d.SetAvailIdx(tt.start)
			d.SetAvailFlags(tt.flags)
			d.SetUsedEvent(tt.usedEvent)
			pushN(t, d, q, mem, tt.pushes)
			if got := q.NeedsInterrupt(mem); got != tt.want {
				t.Errorf("NeedsInterrupt = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAvailEvent checks the device's side of EVENT_IDX: the driver is
// asked to notify when the device has run out of work, and not while it
// is still busy.
func TestAvailEvent(t *testing.T) {
	d, q, mem := newQueue(t, 8, true)
	if c, _ := q.Pop(mem); c != nil {
		t.Fatal("chain on an empty queue")
	}
	if got := d.AvailEvent(); got != 0 {
		t.Fatalf("avail_event = %d, want 0", got)
	}
	d.Add([][]byte{{1}}, nil)
	if !d.Kick() {
		t.Error("no kick for the first buffer after the device went idle")
	}
	d.Add([][]byte{{2}}, nil)
	if d.Kick() {
		t.Error("kick while the device has not caught up")
	}
	for {
		c, err := q.Pop(mem)
		if err != nil {
			t.Fatal(err)
		}
		if c == nil {
			break
		}
		q.Push(mem, c.Head, 0)
	}
	if got := d.AvailEvent(); got != 2 {
		t.Errorf("avail_event = %d after draining 2, want 2", got)
	}
	d.Add([][]byte{{3}}, nil)
	if !d.Kick() {
		t.Error("no kick after the device drained the queue")
	}
	if d.UsedFlags() != 0 {
		t.Errorf("used flags = %#x, must stay 0 with EVENT_IDX", d.UsedFlags())
	}
}

// racingMem adds a chain the moment the device writes avail_event, as a
// driver on another CPU might between the device's two looks at the ring.
type racingMem struct {
	virtiotest.Mem
	d    *virtiotest.DriverQueue
	done bool
}

func (m *racingMem) WriteAt(p []byte, gpa uint64) error {
	if !m.done && gpa == m.d.UsedAddr+4+virtio.UsedElemSize*uint64(m.d.Size) {
		m.done = true
		m.d.Add([][]byte{{42}}, nil)
		// The driver sees the old avail_event and does not kick.
		if m.d.Kick() {
			panic("driver kicked")
		}
	}
	return m.Mem.WriteAt(p, gpa)
}

func TestPopRechecksAfterAvailEvent(t *testing.T) {
	d, q, mem := newQueue(t, 8, true)
	d.Add([][]byte{{1}}, nil)
	d.Kick()
	// avail_event is 0, the driver is at 1: its next add will not kick.
	c, _ := q.Pop(mem)
	q.Push(mem, c.Head, 0)
	rm := &racingMem{Mem: mem, d: d}
	c, err := q.Pop(rm)
	if err != nil || c == nil {
		t.Fatalf("Pop = %v, %v: missed a chain added while avail_event was written", c, err)
	}
	var b [1]byte
	if _, err := c.Read(mem, b[:]); err != nil || b[0] != 42 {
		t.Errorf("read %d, %v; want 42", b[0], err)
	}
}
