package virtiotest

import (
	"fmt"
	"sync"
	"time"

	"github.com/gvmm/gvmm/virtio"
)

// Interrupt records the notifications a device sends and the lines it
// logs. It implements virtio.Interrupt, virtio.NeedsResetter and
// virtio.Logger, is safe for concurrent use, and its zero value is ready
// to use.
type Interrupt struct {
	mu         sync.Mutex
	bits       uint32
	count      int
	needsReset bool
	ch         chan struct{}
	logs       []string
}

// Logf records a line the device logs.
func (i *Interrupt) Logf(format string, args ...any) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.logs = append(i.logs, fmt.Sprintf(format, args...))
}

// Logs returns the lines the device logged so far.
func (i *Interrupt) Logs() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.logs...)
}

// Signal records bits, as InterruptStatus would.
func (i *Interrupt) Signal(bits uint32) {
	i.mu.Lock()
	i.bits |= bits
	i.count++
	ch := i.chanLocked()
	i.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// SetNeedsReset records DEVICE_NEEDS_RESET and signals a configuration
// change, as the transport does.
func (i *Interrupt) SetNeedsReset() {
	i.mu.Lock()
	i.needsReset = true
	i.mu.Unlock()
	i.Signal(virtio.InterruptConfigChange)
}

// Ack returns the bits signalled since the last Ack and clears them, as
// a driver reading InterruptStatus and writing InterruptACK.
func (i *Interrupt) Ack() uint32 {
	i.mu.Lock()
	defer i.mu.Unlock()
	b := i.bits
	i.bits = 0
	return b
}

// Count is the number of Signal calls so far.
func (i *Interrupt) Count() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.count
}

// NeedsReset reports whether the device called SetNeedsReset.
func (i *Interrupt) NeedsReset() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.needsReset
}

// Wait waits up to timeout for a Signal that came after the previous
// Wait returned, and reports whether one came.
func (i *Interrupt) Wait(timeout time.Duration) bool {
	i.mu.Lock()
	ch := i.chanLocked()
	i.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

func (i *Interrupt) chanLocked() chan struct{} {
	if i.ch == nil {
		i.ch = make(chan struct{}, 1)
	}
	return i.ch
}
