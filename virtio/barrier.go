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
// Store-store and load-load ordering need no fence on amd64; wmb and rmb
// mark where the spec puts them.
func fence() {
	fenceWord.Add(0)
}

// wmb orders the device's earlier stores to guest memory before its later
// ones: the used element before the used idx (virtio 1.2 §2.7.13.3). x86
// does not reorder stores with stores, and each access is a separate
// GuestMemory call the compiler keeps in program order, so it compiles to
// nothing; it is here so the ordering is named where the spec wants it.
func wmb() {}

// rmb orders the device's earlier loads from guest memory before its later
// ones: the avail idx before the ring entry and the descriptors it
// publishes (§2.7.13.4). Like wmb, nothing on x86.
func rmb() {}
