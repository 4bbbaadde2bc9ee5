package gpio

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewSim(t *testing.T) {
	for _, tc := range []struct {
		n     int
		names []string
	}{{0, nil}, {-1, nil}, {65536, nil}, {1, []string{"a", "b"}}, {2, []string{"x", "x"}}} {
		if _, err := NewSim(tc.n, tc.names...); err == nil {
			t.Errorf("NewSim(%d, %q) succeeded", tc.n, tc.names)
		}
	}
	s := mustSim(t, 3, "a")
	if s.Lines() != 3 || s.Name(0) != "a" || s.Name(1) != "" || s.Name(-1) != "" || s.Name(3) != "" {
		t.Fatal("lines or names wrong")
	}
}

func TestSimErrors(t *testing.T) {
	s := mustSim(t, 2)
	if err := s.SetDirection(0, DirectionIn, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetIRQType(0, IRQTypeEdgeBoth); err != nil {
		t.Fatal(err)
	}
	_, getErr := s.Get(2)
	_, dirErr := s.Direction(-1)
	_, _, outErr := s.Output(5)
	_, lineErr := s.Line(2)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"Get line 2", getErr, ErrLine},
		{"Direction line -1", dirErr, ErrLine},
		{"Output line 5", outErr, ErrLine},
		{"Line 2", lineErr, ErrLine},
		{"SetInput line 2", s.SetInput(2, 0), ErrLine},
		{"SetInput 2", s.SetInput(1, 2), ErrValue},
		{"Set 2", s.Set(1, 2), ErrValue},
		{"SetDirection value 2", s.SetDirection(1, DirectionOut, 2), ErrValue},
		{"SetDirection 3", s.SetDirection(1, 3, 0), ErrDirection},
		{"SetIRQType 5", s.SetIRQType(1, 5), ErrIRQType},
		{"Set on input", s.Set(0, 1), ErrNotOutput},
		{"Set on released", s.Set(1, 1), ErrNotOutput},
		{"out with irq", s.SetDirection(0, DirectionOut, 1), ErrIRQOnOutput},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if err := s.SetDirection(1, DirectionOut, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetIRQType(1, IRQTypeEdgeRising); !errors.Is(err, ErrIRQOnOutput) {
		t.Fatalf("irq on output: %v", err)
	}
	if err := s.SetIRQType(1, IRQTypeNone); err != nil {
		t.Fatalf("disabling irq on an output: %v", err)
	}
}

// The host's drive on an output line is a conflict: the guest's output
// wins, the host's drive is kept, and it becomes the level when the line
// stops being an output.
func TestSimInputOnOutput(t *testing.T) {
	s := mustSim(t, 1)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	level := func() uint8 {
		t.Helper()
		v, err := s.Get(0)
		must(err)
		return v
	}
	must(s.SetDirection(0, DirectionOut, 0))
	must(s.SetInput(0, 1))
	if level() != 0 {
		t.Fatal("host input overrode the guest's output")
	}
	st, _ := s.Line(0)
	if st.Input != 1 || st.Output != 0 || st.Level != 0 {
		t.Fatalf("state %+v", st)
	}
	must(s.SetDirection(0, DirectionIn, 0))
	if level() != 1 {
		t.Fatal("remembered input not the level of the input line")
	}
	must(s.SetDirection(0, DirectionNone, 0))
	if out, dir, _ := s.Output(0); out != 0 || dir != DirectionNone || level() != 1 {
		t.Fatal("released line: output kept or input lost")
	}
}

// Events are reported for level changes of lines with an enabled
// interrupt, whatever the trigger type, and only for them.
func TestSimEvents(t *testing.T) {
	s := mustSim(t, 2)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SetInput(0, 1)) // disabled: no event
	must(s.SetDirection(1, DirectionIn, 0))
	must(s.SetIRQType(1, IRQTypeEdgeRising))
	must(s.SetInput(1, 1))
	must(s.SetInput(1, 1)) // no change: no event
	must(s.SetInput(1, 0)) // falling, reported though the type is rising
	for _, want := range []uint8{1, 0} {
		select {
		case ev := <-s.Events():
			if ev.Line != 1 || ev.Value != want || ev.Time.IsZero() {
				t.Fatalf("event %+v, want line 1 value %d", ev, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("missing event")
		}
	}
	select {
	case ev := <-s.Events():
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(10 * time.Millisecond):
	}
}

// Watch reports every change, in order, with timestamps; cancel and Close
// end subscriptions.
func TestSimWatch(t *testing.T) {
	s, err := NewSim(2, "led")
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := s.Watch()
	ops := []func() error{
		func() error { return s.SetDirection(0, DirectionOut, 1) },
		func() error { return s.Set(0, 0) },
		func() error { return s.Set(0, 0) }, // no change
		func() error { return s.SetInput(1, 1) },
		func() error { return s.SetDirection(1, DirectionIn, 0) },
		func() error { return s.SetIRQType(1, IRQTypeLevelLow) },
		func() error { return s.SetDirection(0, DirectionNone, 0) },
	}
	for _, op := range ops {
		if err := op(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"line 0 direction none→out level 1",
		"line 0 output 0→1 level 1",
		"line 0 output 1→0 level 0",
		"line 1 input released→1 level 1",
		"line 1 direction none→in level 1",
		"line 1 irq NONE→LEVEL_LOW level 1",
		"line 0 direction out→none level 0",
	}
	var last time.Time
	for i, w := range want {
		c := <-ch
		if got := strings.Split(c.String(), " at ")[0]; got != w {
			t.Fatalf("change %d: %q, want %q", i, got, w)
		}
		if c.Time.Before(last) {
			t.Fatal("time went backwards")
		}
		last = c.Time
	}
	cancel()
	for range ch { // drains, then closed
	}
	cancel() // idempotent

	ch2, cancel2 := s.Watch()
	defer cancel2()
	s.Close()
	s.Close()
	if _, ok := <-ch2; ok {
		t.Fatal("watch open after Close")
	}
	if _, ok := <-s.Events(); ok {
		t.Fatal("events open after Close")
	}
	ch3, cancel3 := s.Watch()
	defer cancel3()
	if _, ok := <-ch3; ok {
		t.Fatal("watch on a closed Sim open")
	}
	if err := s.SetInput(0, 1); err != nil {
		t.Fatal("closed Sim stopped answering")
	}
	if ChangeKind(9).String() == "" {
		t.Fatal("ChangeKind name")
	}
}

// Concurrent host and guest activity with a watcher that never reads:
// nothing blocks, and a reading watcher sees every change (-race).
func TestSimConcurrent(t *testing.T) {
	s := mustSim(t, 4)
	_, cancelIdle := s.Watch() // never read
	defer cancelIdle()
	ch, cancel := s.Watch()
	defer cancel()
	var wg sync.WaitGroup
	for line := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				if err := s.SetInput(line, uint8(i&1)); err != nil {
					t.Error(err)
				}
				s.Snapshot()
			}
		}()
	}
	wg.Wait()
	for range 1000 - 4 { // each line's first SetInput(0) changes nothing
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("watcher missed changes")
		}
	}
}
