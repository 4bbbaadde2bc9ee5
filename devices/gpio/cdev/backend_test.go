package cdev

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/gvmm/gvmm/devices/gpio"
)

// pipeBackend is a Backend over host lines 10, 11, 12 of a Request whose
// file is a pipe: the test writes edge events into w; every ioctl fails.
func pipeBackend(t *testing.T) (*Backend, *os.File) {
	t.Helper()
	req, w := pipeRequest(t, 10, 11, 12)
	b := newBackend(nil, req, []int{10, 11, 12}, []string{"a", "", "c"})
	t.Cleanup(func() { b.Close() })
	return b, w
}

// enable turns reporting on for lines as SetIRQType would (whose ioctl
// fails on a pipe).
func enable(b *Backend, lines ...int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range lines {
		b.lines[l].irq = true
	}
}

func recv(t *testing.T, ch <-chan gpio.Event, what string) gpio.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatalf("%s: Events closed", what)
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no event within 10s", what)
	}
	panic("unreachable")
}

func TestBackendEvents(t *testing.T) {
	b, w := pipeBackend(t)
	enable(b, 0, 2)
	mono := uint64(monotonicNs())
	writeEvents(t, w,
		gpioV2LineEvent{timestampNs: mono, id: 1, offset: 10, seqno: 1},
		gpioV2LineEvent{timestampNs: mono, id: 1, offset: 11, seqno: 2}, // reporting off: dropped
		gpioV2LineEvent{timestampNs: mono, id: 2, offset: 12, seqno: 3},
		gpioV2LineEvent{timestampNs: mono, id: 9, offset: 12, seqno: 4}, // unknown id: dropped
		gpioV2LineEvent{timestampNs: mono, id: 2, offset: 10, seqno: 5},
	)
	want := []gpio.Event{{Line: 0, Value: 1}, {Line: 2, Value: 0}, {Line: 0, Value: 0}}
	for i, w := range want {
		e := recv(t, b.Events(), fmt.Sprintf("event %d", i))
		if e.Line != w.Line || e.Value != w.Value {
			t.Errorf("event %d = line %d value %d, want line %d value %d", i, e.Line, e.Value, w.Line, w.Value)
		}
		if d := time.Since(e.Time); d < 0 || d > time.Minute {
			t.Errorf("event %d: time %v is %v from now", i, e.Time, d)
		}
	}
}

// A reader of Events that does not keep up loses nothing, and the order
// holds: the backend drains the request (here a pipe of 64 KiB, about
// 1365 events) into its queue while nobody reads Events, so writing more
// than the pipe holds finishes.
func TestBackendEventsUnbounded(t *testing.T) {
	b, w := pipeBackend(t)
	enable(b, 1)
	const n = 3000
	var evs []gpioV2LineEvent
	for i := range n {
		evs = append(evs, gpioV2LineEvent{id: uint32(1 + i%2), offset: 11, seqno: uint32(i + 1)})
	}
	wrote := make(chan error)
	go func() {
		// In writes of at most PIPE_BUF (4096) bytes, which are atomic,
		// so that reads get whole records as from the kernel.
		for c := range slices.Chunk(evs, 4096/48) {
			if _, err := w.Write(unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), len(c)*48)); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("writing %d events with nobody reading Events did not finish within 10s: the backend blocks", n)
	}
	for i := range n {
		e := recv(t, b.Events(), "queued event")
		if e.Line != 1 || e.Value != uint8(1-i%2) {
			t.Fatalf("event %d = line %d value %d, want line 1 value %d", i, e.Line, e.Value, 1-i%2)
		}
	}
}

func TestBackendClose(t *testing.T) {
	b, w := pipeBackend(t)
	enable(b, 0)
	writeEvents(t, w, gpioV2LineEvent{id: 1, offset: 10})
	// Events pending, nobody reading: Close must still finish, from
	// several goroutines at once, and close Events.
	time.Sleep(10 * time.Millisecond)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { b.Close() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s")
	}
	for range b.Events() { // drained or not, it is closed
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b.Get(0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Get after Close: err = %v, want os.ErrClosed", err)
	}
}

func TestBackendArguments(t *testing.T) {
	b, _ := pipeBackend(t)
	b.lines[2].dir = gpio.DirectionOut
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"Get(-1)", second(b.Get(-1)), gpio.ErrLine},
		{"Get(3)", second(b.Get(3)), gpio.ErrLine},
		{"Direction(3)", second(b.Direction(3)), gpio.ErrLine},
		{"Set(3)", b.Set(3, 1), gpio.ErrLine},
		{"Set(0, 2)", b.Set(0, 2), gpio.ErrValue},
		{"SetDirection(0, 3)", b.SetDirection(0, 3, 0), gpio.ErrDirection},
		{"SetDirection(0, out, 2)", b.SetDirection(0, gpio.DirectionOut, 2), gpio.ErrValue},
		{"SetIRQType(0, 5)", b.SetIRQType(0, 5), gpio.ErrIRQType},
		{"SetIRQType(3)", b.SetIRQType(3, gpio.IRQTypeEdgeBoth), gpio.ErrLine},
		{"SetIRQType on an output", b.SetIRQType(2, gpio.IRQTypeEdgeBoth), gpio.ErrIRQOnOutput},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if b.Lines() != 3 {
		t.Errorf("Lines() = %d, want 3", b.Lines())
	}
	for i, want := range []string{"a", "", "c", ""} {
		if got := b.Name(i); got != want {
			t.Errorf("Name(%d) = %q, want %q", i, got, want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// A failed reconfiguration leaves the line as it was.
func TestBackendFailedChangeKeepsState(t *testing.T) {
	b, _ := pipeBackend(t)
	if err := b.SetDirection(1, gpio.DirectionOut, 1); err == nil {
		t.Fatal("SetDirection through a pipe succeeded")
	}
	if err := b.SetIRQType(1, gpio.IRQTypeEdgeRising); err == nil {
		t.Fatal("SetIRQType through a pipe succeeded")
	}
	if d, err := b.Direction(1); err != nil || d != gpio.DirectionNone {
		t.Errorf("Direction(1) = %v, %v; want none", d, err)
	}
	if b.lines[1].irq {
		t.Error("reporting enabled after a failed SetIRQType")
	}
	// Disabling what is disabled needs no ioctl.
	if err := b.SetIRQType(1, gpio.IRQTypeNone); err != nil {
		t.Errorf("SetIRQType(None) on a disabled line: %v", err)
	}
}

func TestMergeNames(t *testing.T) {
	tests := []struct {
		host, override, want []string
	}{
		{[]string{"a", "b", "c"}, nil, []string{"a", "b", "c"}},
		{[]string{"a", "b", "c"}, []string{"x", "", "y"}, []string{"x", "b", "y"}},
		{[]string{"NC", "NC", "led"}, nil, []string{"NC", "", "led"}},
		{[]string{"a", "b"}, []string{"", "a"}, []string{"", "a"}},
		{[]string{"caf\xc3\xa9", ""}, nil, []string{"", ""}},
	}
	for _, tt := range tests {
		if got := mergeNames(tt.host, tt.override); !slices.Equal(got, tt.want) {
			t.Errorf("mergeNames(%q, %q) = %q, want %q", tt.host, tt.override, got, tt.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"no lines", Spec{Chip: "chip0"}, "0 lines"},
		{"duplicate", Spec{Chip: "chip0", Lines: []int{1, 1}}, "line 1 given twice"},
		{"negative", Spec{Chip: "chip0", Lines: []int{-1}}, "not a line number"},
		{"too many names", Spec{Chip: "chip0", Lines: []int{1}, Names: []string{"a", "b"}}, "2 names for 1 lines"},
		{"no such chip", Spec{Chip: "chip4242", Lines: []int{1}}, "no GPIO chip /dev/gpiochip4242 ("},
		{"no such path", Spec{Chip: "/nonexistent/gpiochip0", Lines: []int{1}}, "no GPIO chip /nonexistent/gpiochip0 ("},
		{"not a chip", Spec{Chip: "/dev/null", Lines: []int{1}}, "not a GPIO chip"},
		{"no such label", Spec{Chip: "gvmm-no-such-label", Lines: []int{1}}, `no GPIO chip labelled "gvmm-no-such-label" (`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Open(tt.spec, "gvmm")
			if err == nil {
				b.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q, want one line containing %q", err, tt.want)
			}
		})
	}
}
