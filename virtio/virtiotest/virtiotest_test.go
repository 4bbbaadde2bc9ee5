package virtiotest_test

import (
	"testing"
	"time"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

func TestMemBounds(t *testing.T) {
	m := virtiotest.NewMem(16)
	tests := []struct {
		gpa, n uint64
		ok     bool
	}{
		{0, 16, true}, {15, 1, true}, {16, 0, true}, {16, 1, false}, {17, 0, false},
		{0, 17, false}, {^uint64(0), 2, false}, {1, ^uint64(0), false},
	}
	for _, tt := range tests {
		if err := m.CheckRange(tt.gpa, tt.n); (err == nil) != tt.ok {
			t.Errorf("CheckRange(%#x, %#x) = %v", tt.gpa, tt.n, err)
		}
	}
	if err := m.WriteAt([]byte{1, 2}, 15); err == nil {
		t.Error("WriteAt past the end succeeded")
	}
	if err := m.WriteAt([]byte{1, 2}, 14); err != nil || m[15] != 2 {
		t.Errorf("WriteAt = %v", err)
	}
	b := make([]byte, 2)
	if err := m.ReadAt(b, 14); err != nil || b[1] != 2 {
		t.Errorf("ReadAt = %v, %v", err, b)
	}
	if err := m.ReadAt(b, 1<<62); err == nil {
		t.Error("ReadAt far away succeeded")
	}
}

func TestDriverQueueLayout(t *testing.T) {
	mem := virtiotest.NewMem(4096)
	d := virtiotest.NewDriverQueue(mem, 0x101, 16)
	q := d.Queue()
	q.EventIdx = true
	if err := q.Validate(mem); err != nil {
		t.Fatalf("layout refused: %v", err)
	}
	if d.DescAddr != 0x110 {
		t.Errorf("descriptor table at %#x, want 0x110", d.DescAddr)
	}
	// Descriptors come back to the free list: more chains than
	// descriptors over time.
	for i := range 100 {
		head := d.Add([][]byte{{byte(i)}}, []int{1, 1})
		c, err := q.Pop(mem)
		if err != nil || c == nil || c.Head != head {
			t.Fatalf("Pop %d = %v, %v", i, c, err)
		}
		c.Write(mem, []byte{byte(i), 7})
		q.Push(mem, c.Head, 2)
		if u := d.Used(); len(u) != 1 || u[0].Written[0] != byte(i) || u[0].Written[1] != 7 {
			t.Fatalf("Used = %+v", u)
		}
	}
	if d.Outstanding() != 0 {
		t.Errorf("%d chains outstanding", d.Outstanding())
	}
	defer func() {
		if recover() == nil {
			t.Error("a chain longer than the free descriptors did not panic")
		}
	}()
	d.Add(make([][]byte, 17), nil)
}

func TestInterrupt(t *testing.T) {
	var irq virtiotest.Interrupt
	if irq.Wait(time.Millisecond) {
		t.Error("Wait returned true with no signal")
	}
	go irq.Signal(virtio.InterruptUsedBuffer)
	if !irq.Wait(10 * time.Second) {
		t.Fatal("no signal")
	}
	if !virtio.SetNeedsReset(&irq) || !irq.NeedsReset() {
		t.Error("SetNeedsReset not recorded")
	}
	if b := irq.Ack(); b != 3 || irq.Ack() != 0 || irq.Count() != 2 {
		t.Errorf("Ack = %d, count %d", b, irq.Count())
	}
}
