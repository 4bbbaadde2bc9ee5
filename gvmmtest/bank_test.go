package gvmmtest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

// TestChangeLog checks the bank's log without a VM: lost records stay
// where the watcher lost changes, and past MaxChanges the oldest entries
// give way, counted (a lost record by what it stood for) in a first entry.
func TestChangeLog(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n        int // changes recorded, line = index
		lostAt   int // index of a ChangeLost record of 5 (-1: none)
		wantHead uint64
		wantLen  int
	}{
		{"short", 10, -1, 0, 10},
		{"short with a gap", 10, 4, 0, 10},
		{"full", MaxChanges, -1, 0, MaxChanges},
		{"overflow", MaxChanges + 7, -1, 7, MaxChanges + 1},
		{"gap falls off", MaxChanges + 7, 3, 6 + 5, MaxChanges + 1},
		{"gap kept", MaxChanges + 7, 100, 7, MaxChanges + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Bank{changed: make(chan struct{})}
			for i := range tc.n {
				c := Change{Line: i, Kind: gpio.ChangeOutput}
				if i == tc.lostAt {
					c = Change{Line: i, Kind: gpio.ChangeLost, Lost: 5}
				}
				b.record(c)
			}
			got := b.Changes()
			if len(got) != tc.wantLen {
				t.Fatalf("%d entries, want %d", len(got), tc.wantLen)
			}
			first := 0
			if tc.wantHead > 0 {
				if got[0].Kind != gpio.ChangeLost || got[0].Lost != tc.wantHead {
					t.Fatalf("head %+v, want a lost record of %d", got[0], tc.wantHead)
				}
				first = 1
			}
			for i, c := range got[first:] {
				want := tc.n - (len(got) - first) + i
				if c.Line != want {
					t.Fatalf("entry %d is line %d, want %d (oldest first)", i, c.Line, want)
				}
				if (c.Kind == gpio.ChangeLost) != (want == tc.lostAt) {
					t.Fatalf("entry %d: %+v; the lost record was at %d", i, c, tc.lostAt)
				}
			}
		})
	}
}

// TestWaitForHistory drives a simulated bank as the guest's driver would,
// without a VM, and checks that WaitFor goes through a line's states in
// order: a pulse that is over still counts, each call starts after the
// state the previous one returned, and a wait that cannot be met fails
// naming the line and its changes.
func TestWaitForHistory(t *testing.T) {
	sim, err := gpio.NewSim(4)
	if err != nil {
		t.Fatal(err)
	}
	var failed string
	vm := &VM{fail: func(format string, args ...any) { failed = fmt.Sprintf(format, args...) }}
	b := newBank(vm, 0, "sim:4", sim, nil, sim.Close)
	defer b.close()
	// The guest pulses line 2 high and releases it, as gpioset does.
	must(t, sim.SetDirection(2, gpio.DirectionOut, 0))
	must(t, sim.Set(2, 1))
	must(t, sim.Set(2, 0))
	must(t, sim.SetDirection(2, gpio.DirectionNone, 0))
	must(t, sim.SetInput(3, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if l := b.WaitFor(ctx, 3, func(l Line) bool { return l.Direction == gpio.DirectionNone }); l.Input != 0 {
		t.Fatalf("line 3 at boot: %+v", l)
	}
	if l := b.WaitFor(ctx, 3, func(l Line) bool { return l.Input == 1 }); l.Level != 1 {
		t.Fatalf("line 3 driven high by the host: %+v", l)
	}
	for i, want := range []int{0, 1, 0} {
		if l := b.WaitFor(ctx, 2, Output(want)); l.Output != uint8(want) || l.Direction != gpio.DirectionOut {
			t.Fatalf("state %d of line 2: %+v, want an output at %d", i, l, want)
		}
	}
	if l := b.WaitFor(ctx, 2, func(l Line) bool { return l.Direction == gpio.DirectionNone }); l.Output != 0 {
		t.Fatalf("released line 2: %+v", l)
	}
	// Everything of line 2 is used up: a fourth output state never comes.
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	b.WaitFor(short, 2, Output(1))
	if !strings.Contains(failed, "line 2 never met the condition") || !strings.Contains(failed, "output 1 -> 0") {
		t.Fatalf("failure message %q", failed)
	}
	// A line the bank does not have.
	failed = ""
	b.Line(9)
	if !strings.Contains(failed, "line 9") || !strings.Contains(failed, "lines 0 to 3") {
		t.Fatalf("failure message %q", failed)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnknownBank: a bank the VM does not have fails naming it, and so
// does a bank of host lines.
func TestUnknownBank(t *testing.T) {
	var failed string
	vm := &VM{fail: func(format string, args ...any) { failed = fmt.Sprintf(format, args...) }}
	vm.banks = []*Bank{{vm: vm, spec: "chip0:4-7"}}
	for _, tc := range []struct {
		bank int
		want string
	}{
		{3, "no bank 3: the VM has 1"},
		{-1, "no bank -1"},
		{0, "bank 0 is host lines (chip0:4-7)"},
	} {
		failed = ""
		vm.Bank(tc.bank)
		if !strings.Contains(failed, tc.want) {
			t.Errorf("Bank(%d): %q, want %q", tc.bank, failed, tc.want)
		}
	}
}

type lowModel struct{}

func (lowModel) Attached(w *gpio.Wires) { w.Drive(0, gpio.DriveLow) }

func (lowModel) Changed(*gpio.Wires, int, uint8, time.Time) {}

// TestChangeLogState: each entry's line state follows every kind of
// change, as the bank itself reports it: the host's drive and its
// release, a pull, a model's drive and a conflict.
func TestChangeLogState(t *testing.T) {
	sim, err := gpio.NewSim(2)
	if err != nil {
		t.Fatal(err)
	}
	vm := &VM{fail: func(format string, args ...any) { t.Errorf(format, args...) }}
	b := newBank(vm, 0, "sim:2", sim, nil, sim.Close)
	defer b.close()
	steps := []func() error{
		func() error { return sim.SetInput(1, 1) },
		func() error { return sim.SetDrive(1, gpio.DriveReleased) },
		func() error { return sim.SetPull(1, gpio.PullUp) },
		func() error { _, err := sim.Attach("m", lowModel{}, 1); return err },
		func() error { return sim.SetDirection(1, gpio.DirectionOut, 1) }, // against the model: a conflict
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, step := range steps {
		must(t, step())
		want, err := sim.Line(1)
		if err != nil {
			t.Fatal(err)
		}
		// The log reaches exactly the bank's state (or WaitFor fails
		// the test, naming the line's changes).
		b.WaitFor(ctx, 1, func(l Line) bool { return reflect.DeepEqual(l, want) })
		if t.Failed() {
			t.Fatalf("step %d: the log never had the bank's state %s", i, describe(want))
		}
	}
	if l := b.Line(1); !l.Conflict || l.Conflicts != 1 || len(l.Models) != 1 {
		t.Errorf("final state: %s", describe(l))
	}
}
