package virtio

import "sync/atomic"

var fenceWord atomic.Uint32

// fence is a full memory barrier between the plain guest-memory accesses
// before and after it, the smp_mb() of virtio 1.2 §2.7.13 and of Linux's
// vhost. Go has no explicit fence; an atomic read-modify-write compiles to
// a LOCK-prefixed instruction on amd64, which orders earlier stores before
// later loads (the one reordering x86 allows), and the compiler does not
// move memory accesses across it.
//
// Store-store and load-load ordering (used element before used idx, avail
// idx before the ring entry and descriptors) need no fence on amd64: the
// accesses go through separate GuestMemory calls in program order and x86
// keeps that order.
func fence() {
	fenceWord.Add(0)
}
