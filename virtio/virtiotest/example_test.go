package virtiotest_test

import (
	"bytes"
	"fmt"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// A device under test sees the queue the way it would after activation;
// the test plays the driver.
func Example() {
	mem := virtiotest.NewMem(1 << 16)
	d := virtiotest.NewDriverQueue(mem, 0, 16)
	q := d.Queue()
	var irq virtiotest.Interrupt

	// The driver adds a request and a 5-byte response buffer.
	head := d.Add([][]byte{[]byte("hello")}, []int{5})

	// The device: pop, read, answer, push, notify.
	for {
		c, err := q.Pop(mem)
		if c == nil {
			break
		}
		n := 0
		if err == nil {
			req := make([]byte, c.ReadableLen())
			c.Read(mem, req)
			n, _ = c.Write(mem, bytes.ToUpper(req))
		}
		q.Push(mem, c.Head, uint32(n))
	}
	if q.NeedsInterrupt(mem) {
		irq.Signal(virtio.InterruptUsedBuffer)
	}

	// The driver collects the answer.
	for _, u := range d.Used() {
		fmt.Printf("head %d==%d: %d bytes %q, interrupt %d\n", u.Head, head, u.Len, u.Written, irq.Ack())
	}
	// Output: head 0==0: 5 bytes "HELLO", interrupt 1
}
