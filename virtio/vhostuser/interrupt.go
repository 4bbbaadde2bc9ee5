package vhostuser

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gvmm/gvmm/virtio"
)

// interrupt is the virtio.Interrupt the back end hands to Device.Activate.
// vhost-user has a call eventfd per ring (SET_VRING_CALL), where
// virtio-mmio has one interrupt line, and Signal does not say which queue
// it is about: it writes the call eventfd of each active ring whose used
// idx moved since that ring was last signalled. The device has already
// applied the driver's interrupt suppression for the queue it pushed to;
// another queue signalled along with it gets at worst a spurious
// interrupt, and no queue with new used buffers is left unsignalled.
//
// It also implements virtio.Logger (through the Backend's log) and
// virtio.NeedsResetter: vhost-user cannot set DEVICE_NEEDS_RESET, so it
// logs and writes the error eventfd (SET_VRING_ERR) of each active ring.
//
// The eventfds are written with one non-blocking write(2) each, under
// the lock that replacing or closing them takes, so a write never blocks
// (a full counter or pipe already has a wake-up pending) and never
// reaches a descriptor number reused after a close. Its methods are safe
// for concurrent use: device goroutines call Signal while the session
// replaces call descriptors.
type interrupt struct {
	mem  *guestMemory
	logf func(format string, args ...any)

	mu        sync.Mutex
	calls     []int // per ring; -1: none (or polling)
	errs      []int
	active    []bool   // the ring is one of the active device's queues
	usedAddr  []uint64 // guest address of an active ring's used ring
	signalled []uint16 // used idx when the ring was last signalled
}

func newInterrupt(n int, mem *guestMemory, logf func(string, ...any)) *interrupt {
	i := &interrupt{
		mem: mem, logf: logf,
		calls: make([]int, n), errs: make([]int, n),
		active: make([]bool, n), usedAddr: make([]uint64, n), signalled: make([]uint16, n),
	}
	for r := range n {
		i.calls[r], i.errs[r] = -1, -1
	}
	return i
}

var one = binary.LittleEndian.AppendUint64(nil, 1)

// Signal implements virtio.Interrupt. A configuration change has no
// channel without VHOST_USER_PROTOCOL_F_SLAVE_REQ (not offered): it is
// logged.
func (i *interrupt) Signal(bits uint32) {
	if bits&virtio.InterruptConfigChange != 0 {
		i.logf("configuration change notification: no way to send it over vhost-user; dropped")
	}
	if bits&virtio.InterruptUsedBuffer == 0 {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for r := range i.active {
		i.signal(r)
	}
}

// signal writes ring r's call eventfd if the ring is active, has one, and
// its used idx moved since it was last signalled. i.mu is held.
func (i *interrupt) signal(r int) {
	if !i.active[r] || i.calls[r] < 0 {
		return
	}
	idx, err := i.mem.LoadU16(i.usedAddr[r] + 2)
	if err == nil && idx == i.signalled[r] {
		return
	}
	i.signalled[r] = idx
	_, _ = unix.Write(i.calls[r], one)
}

// Logf implements virtio.Logger.
func (i *interrupt) Logf(format string, args ...any) { i.logf(format, args...) }

// SetNeedsReset implements virtio.NeedsResetter.
func (i *interrupt) SetNeedsReset() {
	i.logf("device needs a reset (DEVICE_NEEDS_RESET); signalling the rings' error eventfds")
	i.mu.Lock()
	defer i.mu.Unlock()
	for r, on := range i.active {
		if on && i.errs[r] >= 0 {
			_, _ = unix.Write(i.errs[r], one)
		}
	}
}

// activate marks the rings of the active device: usedAddr[r] is ring r's
// used ring, or ^0 for a ring the device does not use. Each starts as
// signalled at the used idx found in memory.
func (i *interrupt) activate(usedAddr []uint64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for r, a := range usedAddr {
		i.active[r] = a != ^uint64(0)
		i.usedAddr[r] = a
		if i.active[r] {
			i.signalled[r], _ = i.mem.LoadU16(a + 2)
		}
	}
}

// deactivate marks no ring active.
func (i *interrupt) deactivate() {
	i.mu.Lock()
	defer i.mu.Unlock()
	clear(i.active)
}

// setCall replaces ring r's call eventfd (-1: none), taking fd, and
// closes the old one. An active ring whose used idx moved while it had no
// call eventfd (QEMU's vhost_virtqueue_start sends SET_VRING_CALL after
// the SET_VRING_KICK that can start the device) is signalled on the new
// one, so that the interrupt is not lost.
func (i *interrupt) setCall(r, fd int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	replaceFD(&i.calls[r], fd)
	i.signal(r)
}

// setErr replaces ring r's error eventfd.
func (i *interrupt) setErr(r, fd int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	replaceFD(&i.errs[r], fd)
}

// replaceFD closes *old, if it is open, and puts fd in its place.
func replaceFD(old *int, fd int) {
	if *old >= 0 {
		_ = unix.Close(*old)
	}
	*old = fd
}

// closeAll closes every call and error eventfd.
func (i *interrupt) closeAll() {
	for r := range i.calls {
		i.setCall(r, -1)
		i.setErr(r, -1)
	}
}
