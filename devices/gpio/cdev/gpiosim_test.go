package cdev

// Tests against the kernel's gpio-sim (Documentation/admin-guide/gpio/
// gpio-sim.rst): simulated chips made through configfs by internal/gpiosim,
// whose lines the test pulls up and down and whose outputs it reads in
// sysfs. They need root and CONFIG_GPIO_SIM, so they run in the guest (see
// doc.go) and skip unless GVMM_GPIO_SIM=1.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/internal/gpiosim"
	"golang.org/x/sys/unix"
)

const testConsumer = "gvmm-test"

// simWait bounds the reads of line info changes and of a Request's edge
// events.
const simWait = 10 * time.Second

// needSim skips the test outside the guest and makes sure gpio-sim chips
// can be made.
func needSim(t *testing.T) {
	t.Helper()
	if os.Getenv("GVMM_GPIO_SIM") != "1" {
		t.Skip("needs the kernel's gpio-sim: runs inside the guest with GVMM_GPIO_SIM=1, see devices/gpio/cdev/doc.go")
	}
	if err := gpiosim.Check(); err != nil {
		t.Fatalf("GVMM_GPIO_SIM=1 but %v", err)
	}
}

// newSim makes a gpio-sim chip (see gpiosim.New) once needSim lets the
// test run.
func newSim(t *testing.T, n int, names []string, hogs map[int]string) *gpiosim.Chip {
	t.Helper()
	needSim(t)
	return gpiosim.New(t, n, names, hogs)
}

// info reads line's info through a chip of the test's own.
func info(t *testing.T, s *gpiosim.Chip, line int) LineInfo {
	t.Helper()
	c, err := OpenChip(s.Dev())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	li, err := c.LineInfo(line)
	if err != nil {
		t.Fatal(err)
	}
	return li
}

func openSim(t *testing.T, spec Spec) *Backend {
	t.Helper()
	b, err := Open(spec, testConsumer)
	if err != nil {
		t.Fatalf("Open(%v): %v", spec, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func mustOK(t *testing.T, step string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
}

// Guest line i is host line 2+i: names, levels sensed, levels driven.
func TestSimMapping(t *testing.T) {
	s := newSim(t, 8, []string{"sim0", "sim1", "sim2", "sim3", "sim4", "sim5", "sim6", "sim7"}, nil)
	b := openSim(t, Spec{Chip: s.Dev(), Lines: []int{2, 3, 4, 5}, Names: []string{"", "guest1"}})
	if b.Lines() != 4 {
		t.Fatalf("Lines() = %d, want 4", b.Lines())
	}
	for i, want := range []string{"sim2", "guest1", "sim4", "sim5"} {
		if got := b.Name(i); got != want {
			t.Errorf("Name(%d) = %q, want %q", i, got, want)
		}
	}
	for i := range 4 {
		s.Pull(2+i, 1)
		for j := range 4 {
			v, err := b.Get(j)
			mustOK(t, fmt.Sprintf("Get(%d) with host line %d pulled up", j, 2+i), err)
			want := uint8(0)
			if j == i {
				want = 1
			}
			if v != want {
				t.Errorf("host line %d pulled up: Get(%d) = %d, want %d", 2+i, j, v, want)
			}
		}
		s.Pull(2+i, 0)
	}
	for i := range 4 {
		mustOK(t, fmt.Sprintf("SetDirection(%d, out, 1)", i), b.SetDirection(i, gpio.DirectionOut, 1))
		for j := range 4 {
			want := uint8(0)
			if j == i {
				want = 1
			}
			if got := s.Value(2 + j); got != want {
				t.Errorf("guest line %d driven high: host line %d value %d, want %d", i, 2+j, got, want)
			}
		}
		mustOK(t, fmt.Sprintf("Set(%d, 0)", i), b.Set(i, 0))
		if got := s.Value(2 + i); got != 0 {
			t.Errorf("after Set(%d, 0): host line %d value %d, want 0", i, 2+i, got)
		}
		if v, err := b.Get(i); err != nil || v != 0 {
			t.Errorf("Get(%d) of an output driving 0 = %d, %v", i, v, err)
		}
		mustOK(t, fmt.Sprintf("SetDirection(%d, none)", i), b.SetDirection(i, gpio.DirectionNone, 0))
	}
}

func TestSimDirection(t *testing.T) {
	s := newSim(t, 8, nil, nil)
	b := openSim(t, Spec{Chip: s.Dev(), Lines: []int{2, 3, 4, 5}})
	check := func(step string, line int, wantDir gpio.Direction, want LineFlag) {
		t.Helper()
		if d, err := b.Direction(line); err != nil || d != wantDir {
			t.Errorf("%s: Direction(%d) = %v, %v; want %v", step, line, d, err, wantDir)
		}
		li := info(t, s, 2+line)
		const mask = LineFlagUsed | LineFlagInput | LineFlagOutput | LineFlagEdgeRising | LineFlagEdgeFalling
		if li.Flags&mask != want|LineFlagUsed || li.Consumer != testConsumer {
			t.Errorf("%s: host line %d is %v held by %q, want %v held by %q", step, 2+line, li.Flags, li.Consumer, want|LineFlagUsed, testConsumer)
		}
	}
	check("after Open", 0, gpio.DirectionNone, LineFlagInput)

	// Guest line 1 drives 1 throughout: changes of line 0 leave it alone.
	mustOK(t, "SetDirection(1, out, 1)", b.SetDirection(1, gpio.DirectionOut, 1))
	check("SetDirection(1, out, 1)", 1, gpio.DirectionOut, LineFlagOutput)

	mustOK(t, "SetDirection(0, in)", b.SetDirection(0, gpio.DirectionIn, 0))
	check("SetDirection(0, in)", 0, gpio.DirectionIn, LineFlagInput)
	mustOK(t, "SetIRQType(0, level-high)", b.SetIRQType(0, gpio.IRQTypeLevelHigh))
	check("SetIRQType(0, level-high)", 0, gpio.DirectionIn, LineFlagInput|LineFlagEdgeRising|LineFlagEdgeFalling)
	if err := b.SetDirection(0, gpio.DirectionOut, 0); !errors.Is(err, gpio.ErrIRQOnOutput) {
		t.Errorf("SetDirection(out) with reporting enabled: err = %v, want gpio.ErrIRQOnOutput", err)
	}
	mustOK(t, "SetIRQType(0, none)", b.SetIRQType(0, gpio.IRQTypeNone))
	check("SetIRQType(0, none)", 0, gpio.DirectionIn, LineFlagInput)
	mustOK(t, "SetDirection(0, out, 1)", b.SetDirection(0, gpio.DirectionOut, 1))
	check("SetDirection(0, out, 1)", 0, gpio.DirectionOut, LineFlagOutput)
	if got := s.Value(2); got != 1 {
		t.Errorf("SetDirection(0, out, 1): host line 2 value %d, want 1", got)
	}
	if err := b.SetIRQType(0, gpio.IRQTypeEdgeBoth); !errors.Is(err, gpio.ErrIRQOnOutput) {
		t.Errorf("SetIRQType on an output: err = %v, want gpio.ErrIRQOnOutput", err)
	}
	mustOK(t, "SetDirection(0, none)", b.SetDirection(0, gpio.DirectionNone, 0))
	check("SetDirection(0, none)", 0, gpio.DirectionNone, LineFlagInput)
	mustOK(t, "SetIRQType(0, edge-both) on a released line", b.SetIRQType(0, gpio.IRQTypeEdgeBoth))
	check("SetIRQType(0, edge-both) on a released line", 0, gpio.DirectionNone, LineFlagInput|LineFlagEdgeRising|LineFlagEdgeFalling)
	mustOK(t, "SetDirection(0, none) with reporting", b.SetDirection(0, gpio.DirectionNone, 0))
	check("SetDirection(0, none) with reporting", 0, gpio.DirectionNone, LineFlagInput)

	check("after line 0's changes", 1, gpio.DirectionOut, LineFlagOutput)
	if got := s.Value(3); got != 1 {
		t.Errorf("after line 0's changes: host line 3 value %d, want 1", got)
	}
}

// Both edges are reported whatever the type, with the level after each;
// nothing is reported for a line whose reporting is off.
func TestSimEvents(t *testing.T) {
	s := newSim(t, 8, nil, nil)
	b := openSim(t, Spec{Chip: s.Dev(), Lines: []int{2, 3, 4, 5}})
	mustOK(t, "SetDirection(0, in)", b.SetDirection(0, gpio.DirectionIn, 0))
	mustOK(t, "SetIRQType(0, edge-rising)", b.SetIRQType(0, gpio.IRQTypeEdgeRising))
	for _, v := range []uint8{1, 0, 1, 0} {
		s.Pull(2, v)
		step := fmt.Sprintf("host line 2 pulled to %d", v)
		e := recv(t, b.Events(), step)
		if e.Line != 0 || e.Value != v {
			t.Fatalf("%s: event for line %d value %d, want line 0 value %d", step, e.Line, e.Value, v)
		}
		if e.Time.IsZero() || time.Since(e.Time) > time.Minute || time.Since(e.Time) < 0 {
			t.Errorf("%s: event time %v", step, e.Time)
		}
	}
	mustOK(t, "SetIRQType(0, none)", b.SetIRQType(0, gpio.IRQTypeNone))
	s.Pull(2, 1) // not reported
	mustOK(t, "SetIRQType(1, edge-falling)", b.SetIRQType(1, gpio.IRQTypeEdgeFalling))
	s.Pull(3, 1)
	// Events keep their order, so an event for line 0 would come first.
	if e := recv(t, b.Events(), "host line 3 pulled up"); e.Line != 1 || e.Value != 1 {
		t.Fatalf("host line 3 pulled up after host line 2 with reporting off: event for line %d value %d, want line 1 value 1", e.Line, e.Value)
	}
}

func TestSimBusy(t *testing.T) {
	s := newSim(t, 8, nil, map[int]string{3: "test-hog"})
	_, err := Open(Spec{Chip: s.Dev(), Lines: []int{2, 3, 4, 5}}, testConsumer)
	if want := fmt.Sprintf(`%s line 3 is busy (held by "test-hog")`, s.Name()); err == nil || err.Error() != want {
		t.Fatalf("Open over a hogged line: err = %v, want %q", err, want)
	}

	c, err := OpenChip(s.Dev())
	mustOK(t, "OpenChip", err)
	defer c.Close()
	other, err := c.RequestLines("other-user", []int{6}, nil)
	mustOK(t, "request line 6 as other-user", err)
	_, err = Open(Spec{Chip: s.Dev(), Lines: []int{5, 6}}, testConsumer)
	if want := fmt.Sprintf(`%s line 6 is busy (held by "other-user")`, s.Name()); err == nil || err.Error() != want {
		t.Fatalf("Open over a line another process holds: err = %v, want %q", err, want)
	}
	if li := info(t, s, 5); li.Used() {
		t.Errorf("after the failed Open, host line 5 is held by %q", li.Consumer)
	}
	mustOK(t, "release line 6", other.Close())
	b := openSim(t, Spec{Chip: s.Dev(), Lines: []int{5, 6}})
	mustOK(t, "Close", b.Close())
}

func TestSimOpenErrors(t *testing.T) {
	s := newSim(t, 8, nil, nil)
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"line out of range", Spec{Chip: s.Dev(), Lines: []int{6, 7, 8, 9}},
			fmt.Sprintf("%s [%s] has 8 lines (0-7): no line 8", s.Name(), s.Label())},
		{"unknown chip", Spec{Chip: "chip9999", Lines: []int{0}},
			"no GPIO chip /dev/gpiochip9999 (chips: "},
		{"unknown label", Spec{Chip: "gvmm-no-such-chip", Lines: []int{0}},
			`no GPIO chip labelled "gvmm-no-such-chip" (chips: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Open(tt.spec, testConsumer)
			if err == nil {
				b.Close()
				t.Fatalf("Open(%v) succeeded", tt.spec)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Open(%v): err = %q, want one line containing %q", tt.spec, err, tt.want)
			}
			if tt.name != "line out of range" && !strings.Contains(err.Error(), fmt.Sprintf("%s [%s] 8 lines", s.Name(), s.Label())) {
				t.Errorf("Open(%v): err = %q does not list the chips", tt.spec, err)
			}
		})
	}
	for l := range 8 {
		if li := info(t, s, l); li.Used() {
			t.Errorf("after the failed Opens, host line %d is held by %q", l, li.Consumer)
		}
	}
}

// A label, as ParseSpec reads it, finds the chip.
func TestSimLabel(t *testing.T) {
	s := newSim(t, 4, []string{"", "one", "", "three"}, nil)
	spec, err := ParseSpec(s.Label() + ":3,1")
	mustOK(t, "ParseSpec", err)
	b := openSim(t, spec)
	if b.Name(0) != "three" || b.Name(1) != "one" {
		t.Errorf("names %q, %q; want three, one", b.Name(0), b.Name(1))
	}
}

// Only the mapped lines are held, and Close releases them.
func TestSimRelease(t *testing.T) {
	s := newSim(t, 8, nil, nil)
	c, err := OpenChip(s.Dev())
	mustOK(t, "OpenChip", err)
	defer c.Close()
	if ci := c.Info(); ci.Name != s.Name() || ci.Label != s.Label() || ci.Lines != 8 {
		t.Errorf("Info() = %+v, want %s [%s] 8 lines", ci, s.Name(), s.Label())
	}
	mapped := []int{2, 3, 4, 5}
	for _, l := range mapped {
		_, err := c.WatchLineInfo(l)
		mustOK(t, fmt.Sprintf("watch line %d", l), err)
	}
	changes := func(step string, want ChangeType) {
		t.Helper()
		seen := map[int]bool{}
		mustOK(t, "SetReadDeadline", c.SetReadDeadline(time.Now().Add(simWait)))
		for len(seen) < len(mapped) {
			ch, err := c.ReadLineInfoChanged()
			if err != nil {
				t.Fatalf("%s: waiting for line info changes of lines %v (have %v): %v", step, mapped, seen, err)
			}
			if ch.Type != want || ch.TimestampNs == 0 {
				t.Fatalf("%s: change %+v, want type %d", step, ch, want)
			}
			seen[ch.Info.Offset] = true
		}
	}

	b := openSim(t, Spec{Chip: s.Dev(), Lines: mapped})
	changes("Open", LineChangedRequested)
	for l := range 8 {
		li, err := c.LineInfo(l)
		mustOK(t, fmt.Sprintf("LineInfo(%d)", l), err)
		isMapped := l >= 2 && l <= 5
		if li.Used() != isMapped || isMapped && li.Consumer != testConsumer {
			t.Errorf("backend open: host line %d used %v by %q, want used %v", l, li.Used(), li.Consumer, isMapped)
		}
	}

	mustOK(t, "Close", b.Close())
	if _, ok := <-b.Events(); ok {
		t.Error("Events not closed after Close")
	}
	mustOK(t, "second Close", b.Close())
	changes("Close", LineChangedReleased)
	for l := range 8 {
		if li := info(t, s, l); li.Used() {
			t.Errorf("after Close: host line %d held by %q", l, li.Consumer)
		}
	}
	mustOK(t, "unwatch", c.UnwatchLineInfo(2))
	if err := c.UnwatchLineInfo(2); !errors.Is(err, unix.EBUSY) {
		t.Errorf("unwatching an unwatched line: err = %v, want EBUSY", err)
	}
}

// The Request API on its own: mixed configs, values, reconfiguration and
// edge events with their sequence numbers.
func TestSimRequest(t *testing.T) {
	s := newSim(t, 8, nil, nil)
	c, err := OpenChip(s.Dev())
	mustOK(t, "OpenChip", err)
	defer c.Close()
	r, err := c.RequestLines(testConsumer, []int{1, 4, 6}, []LineConfig{
		{Flags: LineFlagOutput, Value: 1},
		{Flags: LineFlagInput | LineFlagEdgeRising | LineFlagEdgeFalling},
		{Flags: LineFlagOutput},
	})
	mustOK(t, "RequestLines", err)
	defer r.Close()
	if s.Value(1) != 1 || s.Value(6) != 0 {
		t.Errorf("after the request: host lines 1, 6 = %d, %d; want 1, 0", s.Value(1), s.Value(6))
	}
	v, err := r.Values(0b111)
	mustOK(t, "Values", err)
	if v != 0b001 {
		t.Errorf("Values(0b111) = %#b, want 0b001", v)
	}
	mustOK(t, "SetValues", r.SetValues(0b100, 0b101))
	if s.Value(1) != 0 || s.Value(6) != 1 {
		t.Errorf("after SetValues: host lines 1, 6 = %d, %d; want 0, 1", s.Value(1), s.Value(6))
	}
	if err := r.SetValues(0b010, 0b010); !errors.Is(err, unix.EPERM) {
		t.Errorf("SetValues on an input: err = %v, want EPERM", err)
	}

	buf := make([]LineEvent, 4)
	for i, v := range []uint8{1, 0} {
		s.Pull(4, v)
		mustOK(t, "SetReadDeadline", r.SetReadDeadline(time.Now().Add(simWait)))
		n, err := r.ReadEvents(buf[:1])
		mustOK(t, fmt.Sprintf("ReadEvents after pulling host line 4 to %d", v), err)
		want := LineEvent{Offset: 4, ID: EventFallingEdge, Seqno: uint32(i + 1), LineSeqno: uint32(i + 1)}
		if v == 1 {
			want.ID = EventRisingEdge
		}
		got := buf[0]
		want.TimestampNs = got.TimestampNs
		if n != 1 || got != want || got.TimestampNs == 0 {
			t.Errorf("host line 4 pulled to %d: %d events, %+v; want %+v", v, n, got, want)
		}
	}

	// Line 0 (host 1) has no direction flags: it stays an output.
	mustOK(t, "Reconfigure", r.Reconfigure([]LineConfig{{}, {Flags: LineFlagInput}, {Flags: LineFlagInput}}))
	for _, tt := range []struct {
		line int
		want LineFlag
	}{{1, LineFlagOutput}, {4, LineFlagInput}, {6, LineFlagInput}} {
		if li := info(t, s, tt.line); li.Flags&(LineFlagInput|LineFlagOutput|LineFlagEdgeRising|LineFlagEdgeFalling) != tt.want {
			t.Errorf("after Reconfigure: host line %d is %v, want %v", tt.line, li.Flags, tt.want)
		}
	}
	mustOK(t, "Close", r.Close())
	for _, l := range []int{1, 4, 6} {
		if li := info(t, s, l); li.Used() {
			t.Errorf("after Close: host line %d held by %q", l, li.Consumer)
		}
	}
}

// TestSimEventsBesideOthers: edges keep coming on a line while the guest
// changes its other lines (an output held high, an input requested and
// released again and again), as in gvmm's passthrough test: a change to
// one line must not clear another line's edge detection.
func TestSimEventsBesideOthers(t *testing.T) {
	s := newSim(t, 8, nil, nil)
	b := openSim(t, Spec{Chip: s.Dev(), Lines: []int{4, 5, 6, 7}})
	mustOK(t, "SetDirection(1, out 1)", b.SetDirection(1, gpio.DirectionOut, 1))
	mustOK(t, "SetDirection(3, in)", b.SetDirection(3, gpio.DirectionIn, 0))
	mustOK(t, "SetIRQType(3, both)", b.SetIRQType(3, gpio.IRQTypeEdgeBoth))
	for i, v := range []uint8{1, 0, 1, 0} {
		mustOK(t, "SetDirection(2, in)", b.SetDirection(2, gpio.DirectionIn, 0))
		mustOK(t, "SetDirection(2, none)", b.SetDirection(2, gpio.DirectionNone, 0))
		s.Pull(7, v)
		step := fmt.Sprintf("edge %d: host line 7 pulled to %d", i, v)
		if e := recv(t, b.Events(), step); e.Line != 3 || e.Value != v {
			t.Fatalf("%s: event for line %d value %d", step, e.Line, e.Value)
		}
	}
}
