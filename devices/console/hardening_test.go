package console

// Tests of what a misbehaving driver, or a failing host writer, can make
// the device do, through real queues in fake guest memory.

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// TestMalformedChains: a chain the device cannot use is returned with
// used length 0 and logged, one line, and the device goes on with the
// next chain. On the receiveq it takes none of the pending bytes.
func TestMalformedChains(t *testing.T) {
	const size = 16
	const h = size - 1 // a descriptor the driver's Add does not take soon
	const next, write = virtio.DescFNext, virtio.DescFWrite
	tests := []struct {
		name  string
		build func(d *virtiotest.DriverQueue, flags uint16) uint16 // returns the head
	}{
		{"bad address", func(d *virtiotest.DriverQueue, flags uint16) uint16 {
			d.SetDesc(h, virtio.Desc{Addr: 1 << 40, Len: 8, Flags: flags})
			return h
		}},
		{"buffer past the end of memory", func(d *virtiotest.DriverQueue, flags uint16) uint16 {
			d.SetDesc(h, virtio.Desc{Addr: 4<<20 - 4, Len: 8, Flags: flags})
			return h
		}},
		{"loop", func(d *virtiotest.DriverQueue, flags uint16) uint16 {
			d.SetDesc(h, virtio.Desc{Addr: d.Alloc(4), Len: 4, Flags: flags | next, Next: h - 1})
			d.SetDesc(h-1, virtio.Desc{Addr: d.Alloc(4), Len: 4, Flags: flags | next, Next: h})
			return h
		}},
		{"head out of range", func(d *virtiotest.DriverQueue, flags uint16) uint16 {
			return size + 3
		}},
		{"readable after writable", func(d *virtiotest.DriverQueue, flags uint16) uint16 {
			d.SetDesc(h, virtio.Desc{Addr: d.Alloc(4), Len: 4, Flags: write | next, Next: h - 1})
			d.SetDesc(h-1, virtio.Desc{Addr: d.Alloc(4), Len: 4})
			return h
		}},
		{"indirect table outside memory", func(d *virtiotest.DriverQueue, flags uint16) uint16 {
			d.SetDesc(h, virtio.Desc{Addr: 1 << 40, Len: 32, Flags: virtio.DescFIndirect})
			return h
		}},
		{"chain longer than the queue", func(d *virtiotest.DriverQueue, flags uint16) uint16 {
			descs := make([]virtio.Desc, size+1)
			for i := range descs {
				descs[i] = virtio.Desc{Addr: d.Alloc(1), Len: 1, Flags: flags | next, Next: uint16(i + 1)}
			}
			descs[size].Flags &^= next
			table := d.Alloc(virtio.DescSize * len(descs))
			d.WriteDescs(table, descs)
			d.SetDesc(h, virtio.Desc{Addr: table, Len: uint32(virtio.DescSize * len(descs)), Flags: virtio.DescFIndirect})
			return h
		}},
	}
	for _, tt := range tests {
		for _, qi := range []int{ReceiveQueue, TransmitQueue} {
			t.Run(fmt.Sprintf("%s/%s", tt.name, queueNames[qi]), func(t *testing.T) {
				r := newRig(t, rigConfig{size: size})
				dq := r.queue(qi)
				flags := uint16(0)
				if qi == ReceiveQueue {
					flags = write
					r.dev.Write([]byte("ok"))
				}
				var bad, good uint16
				r.mem.do(func() {
					bad = tt.build(dq, flags)
					dq.Publish(bad)
				})
				if qi == ReceiveQueue {
					good = r.add(dq, chainSpec{writable: []int{8}})
				} else {
					good = r.add(dq, chainSpec{readable: [][]byte{[]byte("ok")}})
				}
				r.dev.Notify(qi)
				used := r.waitUsed(t, dq, 2)
				wantLen := uint32(0)
				if qi == ReceiveQueue {
					wantLen = 2
				}
				if len(used) != 2 || used[0].Head != bad || used[0].Len != 0 || used[1].Head != good || used[1].Len != wantLen {
					t.Errorf("used %+v, want head %d len 0 then head %d len %d", used, bad, good, wantLen)
				}
				if qi == ReceiveQueue && string(used[1].Written) != "ok" {
					t.Errorf("good chain got %q", used[1].Written)
				}
				if qi == TransmitQueue && string(r.out.bytes()) != "ok" {
					t.Errorf("out %q", r.out.bytes())
				}
				logs := r.irq.Logs()
				if len(logs) != 1 || !strings.HasPrefix(logs[0], "virtio-console: "+queueNames[qi]+": ") {
					t.Errorf("logged %q, want one line", logs)
				}
				if r.irq.NeedsReset() {
					t.Error("DEVICE_NEEDS_RESET for a malformed chain")
				}
			})
		}
	}
}

// TestBrokenRing: an avail idx more than the queue size ahead is a
// corrupt ring: DEVICE_NEEDS_RESET, one log line, and the device stops
// using that queue; the other one goes on working.
func TestBrokenRing(t *testing.T) {
	for _, qi := range []int{ReceiveQueue, TransmitQueue} {
		t.Run(queueNames[qi], func(t *testing.T) {
			r := newRig(t, rigConfig{})
			r.dev.Write([]byte("x"))
			dq := r.queue(qi)
			r.mem.do(func() { dq.SetAvailIdx(dq.Size + 1) })
			r.dev.Notify(qi)
			deadline := time.Now().Add(10 * time.Second)
			for !r.irq.NeedsReset() {
				if time.Now().After(deadline) {
					t.Fatal("no DEVICE_NEEDS_RESET")
				}
				time.Sleep(time.Millisecond)
			}
			for range 5 {
				r.dev.Notify(qi)
				r.dev.Write([]byte("y"))
				time.Sleep(5 * time.Millisecond)
			}
			if logs := r.irq.Logs(); len(logs) != 1 || !strings.Contains(logs[0], "DEVICE_NEEDS_RESET") {
				t.Errorf("logged %q, want one line", logs)
			}
			// The other queue still works.
			if qi == ReceiveQueue {
				r.feed(t, TransmitQueue, []chainSpec{{readable: [][]byte{[]byte("tx")}}})
				if got := string(r.out.bytes()); got != "tx" {
					t.Errorf("out %q", got)
				}
			} else {
				_, used := r.feed(t, ReceiveQueue, []chainSpec{{writable: []int{16}}})
				if got := string(used[0].Written); got != "xyyyyy" {
					t.Errorf("received %q", got)
				}
			}
		})
	}
}

// scriptWriter fails the writes whose index is in fail.
type scriptWriter struct {
	mu   sync.Mutex
	fail map[int]bool
	n    int
	ok   []byte
}

func (w *scriptWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := w.n
	w.n++
	if w.fail[i] {
		return 1, errors.New("host end closed")
	}
	w.ok = append(w.ok, p...)
	return len(p), nil
}

// TestOutputError: bytes the host writer refuses are dropped and the
// chain returned anyway; the first error of a run of failures is logged,
// not every one.
func TestOutputError(t *testing.T) {
	tests := []struct {
		name     string
		fail     []int
		want     string
		wantLogs int
	}{
		{"all fail", []int{0, 1, 2, 3}, "", 1},
		{"fail, recover, fail", []int{0, 1, 3}, "c", 2},
		{"one fails", []int{2}, "abd", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &scriptWriter{fail: map[int]bool{}}
			for _, i := range tt.fail {
				w.fail[i] = true
			}
			r := newRig(t, rigConfig{out: w})
			var chains []chainSpec
			for _, s := range []string{"a", "b", "c", "d"} {
				chains = append(chains, chainSpec{readable: [][]byte{[]byte(s)}})
			}
			// One at a time: a write per chain.
			for _, c := range chains {
				if _, used := r.feed(t, TransmitQueue, []chainSpec{c}); used[0].Len != 0 {
					t.Errorf("used %+v", used)
				}
			}
			w.mu.Lock()
			got := string(w.ok)
			w.mu.Unlock()
			if got != tt.want {
				t.Errorf("host got %q, want %q", got, tt.want)
			}
			if logs := r.irq.Logs(); len(logs) != tt.wantLogs {
				t.Errorf("logged %q, want %d lines", logs, tt.wantLogs)
			}
		})
	}
}

// checkWriter compares what it is given with a repeating pattern and
// counts it, keeping nothing.
type checkWriter struct {
	mu       sync.Mutex
	pattern  []byte
	n        int
	maxWrite int
	bad      bool
}

func (w *checkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.maxWrite = max(w.maxWrite, len(p))
	for q := p; len(q) > 0; {
		off := w.n % len(w.pattern)
		m := min(len(q), len(w.pattern)-off)
		if !bytes.Equal(q[:m], w.pattern[off:off+m]) {
			w.bad = true
		}
		q, w.n = q[m:], w.n+m
	}
	return len(p), nil
}

// TestHugeTransmitChain: a chain of 255 MiB (255 descriptors of 1 MiB,
// all at the same address) is streamed in pieces of at most 64 KiB; the
// device allocates nothing near the declared length.
func TestHugeTransmitChain(t *testing.T) {
	const bufLen, n = 1 << 20, 255
	w := &checkWriter{pattern: pattern(bufLen)}
	r := newRig(t, rigConfig{size: 256, out: w})
	const buf = 2 << 20 // outside both queues' areas
	copy(r.mem.m[buf:], w.pattern)
	descs := make([]virtio.Desc, n)
	for i := range descs {
		descs[i] = virtio.Desc{Addr: buf, Len: bufLen, Flags: virtio.DescFNext, Next: uint16(i + 1)}
	}
	descs[n-1].Flags = 0
	const table = 3 << 20
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	r.mem.do(func() {
		// The tx driver's Mem ends at 2 MiB; the table is past it.
		(&virtiotest.DriverQueue{Mem: r.mem.m}).WriteDescs(table, descs)
		r.tx.SetDesc(0, virtio.Desc{Addr: table, Len: virtio.DescSize * n, Flags: virtio.DescFIndirect})
		r.tx.Publish(0)
	})
	r.dev.Notify(TransmitQueue)
	used := r.waitUsed(t, r.tx, 1)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if len(used) != 1 || used[0].Head != 0 || used[0].Len != 0 {
		t.Errorf("used %+v", used)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n != n*bufLen || w.bad {
		t.Errorf("host got %d bytes (mismatch: %v), want %d", w.n, w.bad, n*bufLen)
	}
	if w.maxWrite > maxPiece {
		t.Errorf("a write of %d bytes", w.maxWrite)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("%d bytes allocated for a chain of %d", alloc, n*bufLen)
	}
}

// keepFull is a driver that keeps one ring full: whenever the device
// reads that queue's avail idx, the driver collects what was used and adds
// one-descriptor chains (add(i) adds the i-th) until the ring is full,
// until it has added left. It runs on the device's goroutine.
type keepFull struct {
	*syncMem
	d     *virtiotest.DriverQueue
	add   func(i int)
	added int
	left  int
	used  []virtiotest.UsedElem
}

func (k *keepFull) ReadAt(p []byte, gpa uint64) error {
	if gpa == k.d.AvailAddr+2 {
		k.do(func() {
			k.used = append(k.used, k.d.Used()...)
			for k.left > 0 && k.d.Outstanding() < int(k.d.Size) {
				k.add(k.added)
				k.added++
				k.left--
			}
		})
	}
	return k.syncMem.ReadAt(p, gpa)
}

// flood sets up a rig whose driver keeps queue qi full, for chains
// chains: on the transmitq each carries one byte, byte(i); on the
// receiveq each has a one-byte buffer, and the host wrote host bytes
// before activation.
func flood(t *testing.T, qi int, chains int, host []byte) (*rig, *keepFull) {
	var k *keepFull
	r := newRig(t, rigConfig{
		wrap: func(r *rig) virtio.GuestMemory {
			k = &keepFull{syncMem: r.mem, d: r.queue(qi), left: chains}
			if qi == TransmitQueue {
				k.add = func(i int) { k.d.Add([][]byte{{byte(i)}}, nil) }
			} else {
				k.add = func(i int) { k.d.Add(nil, []int{1}) }
			}
			return k
		},
		before: func(r *rig) { r.dev.Write(host) },
	})
	r.dev.Notify(qi)
	return r, k
}

// received is what the receiveq driver of a flood got, once the device
// is stopped.
func (k *keepFull) received() []byte {
	var got []byte
	for _, u := range append(k.used, k.d.Used()...) {
		got = append(got, u.Written...)
	}
	return got
}

// TestRingKeptFull: a driver that keeps a ring full gets 2^16
// completions without the ring ever running dry. It must be interrupted
// along the way, at least once per queue size, not only when the ring
// runs dry (which would also be 0 interrupts: 2^16 pushes bring the used
// idx back where it started).
func TestRingKeptFull(t *testing.T) {
	const completions = 1 << 16
	host := pattern(completions)
	for _, qi := range []int{ReceiveQueue, TransmitQueue} {
		t.Run(queueNames[qi], func(t *testing.T) {
			var hostBytes []byte
			if qi == ReceiveQueue {
				hostBytes = host
			}
			r, k := flood(t, qi, completions, hostBytes)
			done := func() bool {
				if qi == ReceiveQueue {
					return r.dev.pendingLen() == 0
				}
				return r.out.len() == completions
			}
			deadline := time.Now().Add(time.Minute)
			for !done() {
				if time.Now().After(deadline) {
					t.Fatalf("%d interrupts, %d bytes out, %d pending", r.irq.Count(), r.out.len(), r.dev.pendingLen())
				}
				time.Sleep(10 * time.Millisecond)
			}
			r.dev.Reset() // the device is done with the queue
			if want := completions / 16; r.irq.Count() < want {
				t.Errorf("%d interrupts for %d completions, want at least %d", r.irq.Count(), completions, want)
			}
			got, want := k.received(), host
			if qi == TransmitQueue {
				got, want = r.out.bytes(), make([]byte, completions)
				for i := range want {
					want[i] = byte(i)
				}
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%d bytes arrived, not the %d sent in order", len(got), len(want))
			}
		})
	}
}

// TestResetWhileFlooded: a driver that never lets a ring run dry does
// not keep the device from being reset: the device takes at most a queue
// size of chains per wake-up and comes back by itself, so Reset finds its
// goroutine between drains. On the receiveq, the bytes not delivered stay
// pending, none lost or doubled.
func TestResetWhileFlooded(t *testing.T) {
	host := pattern(4 << 20)
	for _, qi := range []int{ReceiveQueue, TransmitQueue} {
		t.Run(queueNames[qi], func(t *testing.T) {
			var hostBytes []byte
			if qi == ReceiveQueue {
				hostBytes = host
			}
			r, k := flood(t, qi, 1<<40, hostBytes)
			deadline := time.Now().Add(time.Minute)
			for r.irq.Count() < 100 {
				if time.Now().After(deadline) {
					t.Fatalf("%d interrupts within a minute", r.irq.Count())
				}
				time.Sleep(time.Millisecond)
			}
			done := make(chan struct{})
			go func() { r.dev.Reset(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Reset did not return while the driver kept the ring full")
			}
			if qi == TransmitQueue {
				out := r.out.bytes()
				for i, b := range out {
					if b != byte(i) {
						t.Fatalf("out[%d] = %d", i, b)
					}
				}
				return
			}
			got := k.received()
			r.dev.pendMu.Lock()
			pending := bytes.Clone(r.dev.pending)
			r.dev.pendMu.Unlock()
			if len(pending) == 0 {
				t.Fatal("all bytes delivered before Reset; the flood was too short")
			}
			if !bytes.Equal(append(got, pending...), host) {
				t.Errorf("%d bytes delivered + %d pending is not the %d written, in order", len(got), len(pending), len(host))
			}
		})
	}
}

// watchMem fails the test on any access once closed is set.
type watchMem struct {
	*syncMem
	t      *testing.T
	closed atomic.Bool
}

func (m *watchMem) ReadAt(p []byte, gpa uint64) error {
	if m.closed.Load() {
		m.t.Errorf("read of %#x after Reset", gpa)
	}
	return m.syncMem.ReadAt(p, gpa)
}

func (m *watchMem) WriteAt(p []byte, gpa uint64) error {
	if m.closed.Load() {
		m.t.Errorf("write of %#x after Reset", gpa)
	}
	return m.syncMem.WriteAt(p, gpa)
}

// TestNothingAfterReset: after Reset, neither Notify nor Write makes the
// device touch memory, though work is waiting on both queues.
func TestNothingAfterReset(t *testing.T) {
	var wm *watchMem
	r := newRig(t, rigConfig{wrap: func(r *rig) virtio.GuestMemory {
		wm = &watchMem{syncMem: r.mem, t: t}
		return wm
	}})
	r.feed(t, TransmitQueue, []chainSpec{{readable: [][]byte{[]byte("before")}}})
	r.dev.Reset()
	wm.closed.Store(true)
	r.add(r.rx, chainSpec{writable: []int{8}})
	r.add(r.tx, chainSpec{readable: [][]byte{[]byte("after")}})
	r.dev.Notify(ReceiveQueue)
	r.dev.Notify(TransmitQueue)
	r.dev.Write([]byte("host"))
	time.Sleep(50 * time.Millisecond)
	if got := string(r.out.bytes()); got != "before" {
		t.Errorf("out %q", got)
	}
	if n := r.dev.pendingLen(); n != 4 {
		t.Errorf("%d bytes pending", n)
	}
}
