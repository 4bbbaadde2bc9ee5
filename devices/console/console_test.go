package console

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvmm/gvmm/virtio"
	"github.com/gvmm/gvmm/virtio/virtiotest"
)

// syncMem is guest memory shared by the device's goroutines and the test's
// driver. Every access holds mu: the device's through the
// virtio.GuestMemory methods, the driver's through do. So the driver can
// poll the used ring while the device works, as a guest does, without the
// race detector seeing unordered accesses.
type syncMem struct {
	mu sync.Mutex
	m  virtiotest.Mem
}

func (s *syncMem) ReadAt(p []byte, gpa uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.ReadAt(p, gpa)
}

func (s *syncMem) WriteAt(p []byte, gpa uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.WriteAt(p, gpa)
}

// CheckRange only looks at the length of m, which never changes.
func (s *syncMem) CheckRange(gpa, n uint64) error { return s.m.CheckRange(gpa, n) }

// do runs f, the driver's access to memory, under mu.
func (s *syncMem) do(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// outBuf is the host's end of the console: it keeps what the guest wrote
// and the size of the largest single write.
type outBuf struct {
	mu       sync.Mutex
	b        []byte
	writes   int
	maxWrite int
}

func (o *outBuf) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b = append(o.b, p...)
	o.writes++
	o.maxWrite = max(o.maxWrite, len(p))
	return len(p), nil
}

func (o *outBuf) bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.b)
}

func (o *outBuf) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.b)
}

// rig is a Device activated over fake memory, with a driver for each queue.
type rig struct {
	dev    *Device
	mem    *syncMem
	rx, tx *virtiotest.DriverQueue
	irq    virtiotest.Interrupt
	out    *outBuf
}

// rigConfig varies a rig; its zero value is the default.
type rigConfig struct {
	size     uint16 // queue size, default 16
	eventIdx bool   // VIRTIO_RING_F_EVENT_IDX negotiated
	noRx     bool   // the driver does not enable the receiveq
	noTx     bool   // nor the transmitq
	// dev, if set, is the device to activate (after a Reset); else New.
	dev *Device
	// out, if set, is the device's writer; else the rig's outBuf.
	out io.Writer
	// wrap, if set, gives the memory the device sees.
	wrap func(r *rig) virtio.GuestMemory
	// before, if set, runs before DRIVER_OK (Activate).
	before func(r *rig)
}

func newRig(t *testing.T, cfg rigConfig) *rig {
	t.Helper()
	size := cmp.Or(cfg.size, 16)
	r := &rig{mem: &syncMem{m: virtiotest.NewMem(4 << 20)}, out: &outBuf{}, dev: cfg.dev}
	if r.dev == nil {
		var out io.Writer = r.out
		if cfg.out != nil {
			out = cfg.out
		}
		r.dev = New(out)
	}
	// The receiveq's rings and buffers in the first MiB, the
	// transmitq's in the second.
	r.rx = virtiotest.NewDriverQueue(r.mem.m[:1<<20], 0, size)
	r.tx = virtiotest.NewDriverQueue(r.mem.m[:2<<20], 1<<20, size)
	r.rx.EventIdx, r.tx.EventIdx = cfg.eventIdx, cfg.eventIdx
	queues := []*virtio.Queue{r.rx.Queue(), r.tx.Queue()}
	if cfg.noRx {
		queues[ReceiveQueue] = nil
	}
	if cfg.noTx {
		queues[TransmitQueue] = nil
	}
	var mem virtio.GuestMemory = r.mem
	if cfg.wrap != nil {
		mem = cfg.wrap(r)
	}
	if cfg.before != nil {
		cfg.before(r)
	}
	if err := r.dev.Activate(mem, &r.irq, queues, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.dev.Reset)
	return r
}

// chainSpec is a chain the driver adds: device-readable buffers with
// these bytes, then device-writable buffers of these lengths, one
// descriptor each, in an indirect table if indirect.
type chainSpec struct {
	readable [][]byte
	writable []int
	indirect bool
}

// descs is the number of ring descriptors the chain takes.
func (c chainSpec) descs() int {
	if c.indirect {
		return 1
	}
	return len(c.readable) + len(c.writable)
}

func (r *rig) queue(qi int) *virtiotest.DriverQueue {
	if qi == ReceiveQueue {
		return r.rx
	}
	return r.tx
}

// add makes c available on dq, without notifying, and returns its head.
func (r *rig) add(dq *virtiotest.DriverQueue, c chainSpec) (head uint16) {
	r.mem.do(func() {
		if c.indirect {
			head = dq.AddIndirect(c.readable, c.writable)
		} else {
			head = dq.Add(c.readable, c.writable)
		}
	})
	return head
}

// used returns what the device returned on dq since the last call.
func (r *rig) used(dq *virtiotest.DriverQueue) (u []virtiotest.UsedElem) {
	r.mem.do(func() { u = dq.Used() })
	return u
}

// waitUsed waits up to 10 s for n used elements on dq and returns them
// (more if more came).
func (r *rig) waitUsed(t *testing.T, dq *virtiotest.DriverQueue, n int) []virtiotest.UsedElem {
	t.Helper()
	var used []virtiotest.UsedElem
	deadline := time.Now().Add(10 * time.Second)
	for {
		used = append(used, r.used(dq)...)
		if len(used) >= n {
			return used
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d used elements within 10 s: %+v", len(used), n, used)
		}
		r.irq.Wait(10 * time.Millisecond)
	}
}

// feed has the driver send chains on queue qi, as many at a time as the
// ring holds, notifying the device after each batch, until all came back.
// It returns the heads the chains got and the used elements in the order
// the device returned them.
func (r *rig) feed(t *testing.T, qi int, chains []chainSpec) (heads []uint16, used []virtiotest.UsedElem) {
	t.Helper()
	dq := r.queue(qi)
	inUse, next := 0, 0 // descriptors taken; next chain to add
	descs := map[uint16]int{}
	deadline := time.Now().Add(10 * time.Second)
	for len(used) < len(chains) {
		added := false
		for next < len(chains) && inUse+chains[next].descs() <= int(dq.Size) {
			h := r.add(dq, chains[next])
			heads = append(heads, h)
			descs[h] = chains[next].descs()
			inUse += descs[h]
			next++
			added = true
		}
		if added {
			r.dev.Notify(qi)
		}
		for _, u := range r.used(dq) {
			inUse -= descs[u.Head]
			used = append(used, u)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d chains returned within 10 s", len(used), len(chains))
		}
		if len(used) < len(chains) {
			r.irq.Wait(10 * time.Millisecond)
		}
	}
	return heads, used
}

// pendingLen is the number of host bytes waiting for the guest.
func (d *Device) pendingLen() int {
	d.pendMu.Lock()
	defer d.pendMu.Unlock()
	return len(d.pending)
}

// pattern returns n bytes that do not repeat with a period of 256.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i + i/251)
	}
	return b
}

func TestConfig(t *testing.T) {
	d := New(nil)
	if d.ID() != 3 || d.Features() != 0 {
		t.Errorf("ID %d, features %#x", d.ID(), d.Features())
	}
	if s := d.QueueMaxSizes(); len(s) != 2 || s[ReceiveQueue] != 256 || s[TransmitQueue] != 256 {
		t.Errorf("queue sizes %v", s)
	}
	d.WriteConfig(8, []byte{1, 2, 3, 4}) // emerg_wr, without the feature
	d.WriteConfig(0, []byte{80, 0, 25, 0})
	tests := []struct {
		off uint64
		n   int
	}{
		{0, 12}, {0, 2}, {2, 2}, {4, 4}, {8, 4}, {10, 4}, {12, 8}, {1 << 40, 4}, {^uint64(0), 1},
	}
	for _, tt := range tests {
		p := bytes.Repeat([]byte{0xff}, tt.n)
		d.ReadConfig(tt.off, p)
		if !bytes.Equal(p, make([]byte, tt.n)) {
			t.Errorf("ReadConfig(%#x, %d) = %x, want zeros", tt.off, tt.n, p)
		}
	}
}

func TestTransmit(t *testing.T) {
	big := pattern(150 << 10)
	lines := func(n int, spec func(i int) chainSpec) []chainSpec {
		c := make([]chainSpec, n)
		for i := range c {
			c[i] = spec(i)
		}
		return c
	}
	tests := []struct {
		name   string
		chains []chainSpec
	}{
		{"one buffer", []chainSpec{{readable: [][]byte{[]byte("hello\n")}}}},
		{"many chains in order", lines(100, func(i int) chainSpec {
			return chainSpec{readable: [][]byte{fmt.Appendf(nil, "line %d\n", i)}}
		})},
		{"multi-buffer chains", lines(30, func(i int) chainSpec {
			return chainSpec{readable: [][]byte{fmt.Appendf(nil, "%d:", i), []byte("ab"), {'c', byte('0' + i%10)}}}
		})},
		{"indirect chains", lines(30, func(i int) chainSpec {
			return chainSpec{readable: [][]byte{fmt.Appendf(nil, "%d:", i), []byte("xyz")}, indirect: true}
		})},
		{"writable buffers ignored", []chainSpec{
			{readable: [][]byte{[]byte("abc")}, writable: []int{8}},
			{writable: []int{4}},
			{readable: [][]byte{[]byte("def")}},
		}},
		{"larger than a piece", []chainSpec{
			{readable: [][]byte{big[:50<<10], big[50<<10 : 120<<10], big[120<<10:]}},
			{readable: [][]byte{big}, indirect: true},
		}},
	}
	for _, tt := range tests {
		for _, eventIdx := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/event_idx=%v", tt.name, eventIdx), func(t *testing.T) {
				r := newRig(t, rigConfig{eventIdx: eventIdx})
				heads, used := r.feed(t, TransmitQueue, tt.chains)
				var want []byte
				for i, c := range tt.chains {
					want = append(want, bytes.Join(c.readable, nil)...)
					if used[i].Head != heads[i] || used[i].Len != 0 {
						t.Errorf("used[%d] = head %d len %d, want head %d len 0", i, used[i].Head, used[i].Len, heads[i])
					}
				}
				if got := r.out.bytes(); !bytes.Equal(got, want) {
					t.Errorf("out %d bytes %.40q..., want %d bytes %.40q...", len(got), got, len(want), want)
				}
				if r.out.maxWrite > maxPiece {
					t.Errorf("a write of %d bytes to out, more than %d", r.out.maxWrite, maxPiece)
				}
				if logs := r.irq.Logs(); len(logs) != 0 {
					t.Errorf("logged %q", logs)
				}
			})
		}
	}
}

func TestReceive(t *testing.T) {
	w := func(n ...int) chainSpec { return chainSpec{writable: n} }
	tests := []struct {
		name        string
		host        []string // Write calls
		chains      []chainSpec
		want        []string // what each returned chain holds, in order
		wantPending int
		wantLogs    int
	}{
		{"one chain", []string{"hello"}, []chainSpec{w(16)}, []string{"hello"}, 0, 0},
		{"split across chains", []string{"abcdefghij"}, []chainSpec{w(4), w(4), w(4)}, []string{"abcd", "efgh", "ij"}, 0, 0},
		{"several writes", []string{"ab", "cd", "ef"}, []chainSpec{w(3), w(16)}, []string{"abc", "def"}, 0, 0},
		{"multi-buffer chain", []string{"abcdefgh"}, []chainSpec{w(3, 5)}, []string{"abcdefgh"}, 0, 0},
		{"chain partly filled", []string{"abc"}, []chainSpec{w(3, 5)}, []string{"abc"}, 0, 0},
		{"more chains than bytes", []string{"abc"}, []chainSpec{w(2), w(2), w(2)}, []string{"ab", "c"}, 0, 0},
		{"more bytes than chains", []string{"abcdefgh"}, []chainSpec{w(2), w(2)}, []string{"ab", "cd"}, 4, 0},
		{"readable-only chain gets 0", []string{"abc"}, []chainSpec{{readable: [][]byte{[]byte("xx")}}, w(8)}, []string{"", "abc"}, 0, 1},
		{"readable then writable", []string{"abc"}, []chainSpec{{readable: [][]byte{[]byte("hdr")}, writable: []int{8}}}, []string{"abc"}, 0, 0},
		{"indirect", []string{"abcd"}, []chainSpec{{writable: []int{2, 2}, indirect: true}}, []string{"abcd"}, 0, 0},
	}
	for _, tt := range tests {
		for _, mode := range []string{"before activation", "bytes first", "buffers first"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				addAll := func(r *rig) {
					for _, c := range tt.chains {
						r.add(r.rx, c)
					}
				}
				writeAll := func(r *rig) {
					for _, s := range tt.host {
						if n, err := r.dev.Write([]byte(s)); n != len(s) || err != nil {
							t.Fatalf("Write = %d, %v", n, err)
						}
					}
				}
				var r *rig
				switch mode {
				case "before activation":
					r = newRig(t, rigConfig{before: func(r *rig) { writeAll(r); addAll(r) }})
				case "bytes first":
					r = newRig(t, rigConfig{})
					writeAll(r)
					addAll(r)
					r.dev.Notify(ReceiveQueue)
				case "buffers first":
					// The device is woken by Write; the host's bytes
					// arrive at once, so that what each chain holds
					// does not depend on timing.
					r = newRig(t, rigConfig{})
					addAll(r)
					r.dev.Notify(ReceiveQueue)
					r.dev.Write([]byte(strings.Join(tt.host, "")))
				}
				used := r.waitUsed(t, r.rx, len(tt.want))
				if len(used) != len(tt.want) {
					t.Fatalf("used %+v, want %q", used, tt.want)
				}
				for i, u := range used {
					if u.Len != uint32(len(tt.want[i])) || string(u.Written) != tt.want[i] {
						t.Errorf("used[%d] = len %d %q, want %q", i, u.Len, u.Written, tt.want[i])
					}
				}
				time.Sleep(20 * time.Millisecond)
				if more := r.used(r.rx); len(more) != 0 {
					t.Errorf("more chains returned: %+v", more)
				}
				if n := r.dev.pendingLen(); n != tt.wantPending {
					t.Errorf("%d bytes pending, want %d", n, tt.wantPending)
				}
				if logs := r.irq.Logs(); len(logs) != tt.wantLogs {
					t.Errorf("logged %q, want %d lines", logs, tt.wantLogs)
				}
			})
		}
	}
}

// TestPendingSurvivesReset: host bytes the first driver did not take go
// to the next one, in order.
func TestPendingSurvivesReset(t *testing.T) {
	r := newRig(t, rigConfig{})
	r.dev.Write([]byte("hello, "))
	r.dev.Write([]byte("world"))
	r.add(r.rx, chainSpec{writable: []int{5}})
	r.dev.Notify(ReceiveQueue)
	if u := r.waitUsed(t, r.rx, 1); string(u[0].Written) != "hello" {
		t.Fatalf("first driver got %q", u[0].Written)
	}
	r.dev.Reset()
	r.dev.Write([]byte("!"))
	if n := r.dev.pendingLen(); n != len(", world!") {
		t.Fatalf("%d bytes pending after reset", n)
	}
	// The next driver, in fresh memory, posts its buffer before DRIVER_OK.
	r2 := newRig(t, rigConfig{dev: r.dev, before: func(r *rig) { r.add(r.rx, chainSpec{writable: []int{64}}) }})
	if u := r2.waitUsed(t, r2.rx, 1); string(u[0].Written) != ", world!" {
		t.Errorf("next driver got %q", u[0].Written)
	}
	if more := r.used(r.rx); len(more) != 0 {
		t.Errorf("the first driver's ring changed after reset: %+v", more)
	}
}

// TestQueueNotEnabled: a driver may enable only one of the queues; the
// other one is never touched, and the host can still write.
func TestQueueNotEnabled(t *testing.T) {
	t.Run("no receiveq", func(t *testing.T) {
		r := newRig(t, rigConfig{noRx: true})
		r.dev.Write([]byte("lost?"))
		r.dev.Notify(ReceiveQueue)
		if _, used := r.feed(t, TransmitQueue, []chainSpec{{readable: [][]byte{[]byte("out")}}}); used[0].Len != 0 {
			t.Errorf("used %+v", used)
		}
		if got := string(r.out.bytes()); got != "out" {
			t.Errorf("out %q", got)
		}
		if n := r.dev.pendingLen(); n != 5 {
			t.Errorf("%d bytes pending", n)
		}
	})
	t.Run("no transmitq", func(t *testing.T) {
		r := newRig(t, rigConfig{noTx: true})
		r.add(r.tx, chainSpec{readable: [][]byte{[]byte("ignored")}})
		r.dev.Notify(TransmitQueue)
		r.dev.Write([]byte("in"))
		r.add(r.rx, chainSpec{writable: []int{8}})
		r.dev.Notify(ReceiveQueue)
		if u := r.waitUsed(t, r.rx, 1); string(u[0].Written) != "in" {
			t.Errorf("used %+v", u)
		}
		if u := r.used(r.tx); len(u) != 0 || r.out.len() != 0 {
			t.Errorf("transmitq served: %+v, out %q", u, r.out.bytes())
		}
	})
}

// goid is the calling goroutine's id, from its stack header
// ("goroutine N [running]:").
func goid() uint64 {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	n, _ := strconv.ParseUint(strings.Fields(string(b))[1], 10, 64)
	return n
}

// callerOnly is a writer that holds every write made from a goroutine
// other than caller until release is closed: only what Notify serves
// inline, on the caller's goroutine, gets through at once.
type callerOnly struct {
	caller  uint64
	release chan struct{}
	mu      sync.Mutex
	b       []byte
}

func (w *callerOnly) Write(p []byte) (int, error) {
	if goid() != w.caller {
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	return len(p), nil
}

// TestTransmitInline: Notify serves the transmitq before it returns, on
// the caller's goroutine, as Linux's virtio_console needs (it spins,
// interrupts off, until its buffer comes back), and says so through
// ServesInline; the receiveq is left to the goroutine.
func TestTransmitInline(t *testing.T) {
	d := New(nil)
	if !d.ServesInline(TransmitQueue) || d.ServesInline(ReceiveQueue) {
		t.Fatalf("ServesInline: transmitq %v, receiveq %v; want true, false", d.ServesInline(TransmitQueue), d.ServesInline(ReceiveQueue))
	}
	for _, n := range []int{1, 3, 16} {
		t.Run(fmt.Sprintf("%d chains", n), func(t *testing.T) {
			w := &callerOnly{caller: goid(), release: make(chan struct{})}
			r := newRig(t, rigConfig{out: w})
			t.Cleanup(func() { close(w.release) }) // before the rig's Reset
			var want []byte
			for i := range n {
				line := fmt.Appendf(nil, "line %d\n", i)
				r.add(r.tx, chainSpec{readable: [][]byte{line}})
				want = append(want, line...)
			}
			r.dev.Notify(TransmitQueue)
			// No waiting: what a spinning driver sees when its vCPU resumes.
			if u := r.used(r.tx); len(u) != n {
				t.Errorf("%d of %d chains used when Notify returned", len(u), n)
			}
			w.mu.Lock()
			got := bytes.Clone(w.b)
			w.mu.Unlock()
			if !bytes.Equal(got, want) {
				t.Errorf("out %q, want %q", got, want)
			}
		})
	}
}

// gateWriter counts writes; the first one signals started and then waits
// for gate.
type gateWriter struct {
	started chan struct{}
	gate    <-chan struct{}
	writes  atomic.Int32
}

func (w *gateWriter) Write(p []byte) (int, error) {
	if w.writes.Add(1) == 1 {
		close(w.started)
		<-w.gate
	}
	return len(p), nil
}

// TestResetStopsInlinePass: Reset during Notify's inline pass over many
// chains waits for the write in progress, not for the whole pass, and
// Notify then returns.
func TestResetStopsInlinePass(t *testing.T) {
	const chains = 16
	w := &gateWriter{started: make(chan struct{})}
	r := newRig(t, rigConfig{out: w})
	w.gate = r.dev.ctx.Done() // the first write lasts until Reset began
	for i := range chains {
		r.add(r.tx, chainSpec{readable: [][]byte{{byte(i)}}})
	}
	done := make(chan struct{})
	go func() { r.dev.Notify(TransmitQueue); close(done) }()
	<-w.started
	reset := make(chan struct{})
	go func() { r.dev.Reset(); close(reset) }()
	select {
	case <-reset:
	case <-time.After(time.Minute):
		t.Fatal("Reset did not return while Notify's pass waited for it")
	}
	<-done
	if n := w.writes.Load(); n != 1 {
		t.Errorf("%d writes of the %d chains; want Reset to stop the pass after the one in progress", n, chains)
	}
}
