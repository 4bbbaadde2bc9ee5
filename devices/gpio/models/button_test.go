package models

import (
	"fmt"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
)

// Presses and releases, as a watcher sees them: 2*Bounces+1 edges each,
// ending at the new level.
func TestButtonWatched(t *testing.T) {
	tests := []struct {
		bounces int
		moves   string // P press, R release
		levels  string // the line's levels after each change of the button's drive
	}{
		{0, "P", "0"},
		{0, "PR", "01"},
		{1, "P", "010"},
		{3, "PR", "0101010" + "1010101"},
		{2, "PRP", "01010" + "10101" + "01010"},
		// Pressing a pressed button: its first drive changes nothing,
		// and the bounce after it is still seen.
		{1, "PP", "010" + "10"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d bounces %s", tt.bounces, tt.moves), func(t *testing.T) {
			sim := newButtonSim(t)
			b := &Button{Bounces: tt.bounces, BounceInterval: 100 * time.Microsecond}
			if _, err := b.Attach(sim, "button", 0); err != nil {
				t.Fatal(err)
			}
			changes, cancel := sim.Watch()
			defer cancel()
			for _, m := range tt.moves {
				if m == 'P' {
					b.Press()
				} else {
					b.Release()
				}
			}
			b.Wait()
			got := ""
			for len(got) < len(tt.levels) {
				select {
				case c := <-changes:
					if c.Kind != gpio.ChangeInput || c.Driver != "button.0" {
						t.Fatalf("unexpected change %v", c)
					}
					got += fmt.Sprint(c.Level)
				case <-time.After(10 * time.Second):
					t.Fatalf("levels %q, want %q: no more changes", got, tt.levels)
				}
			}
			if got != tt.levels {
				t.Errorf("levels %q, want %q", got, tt.levels)
			}
			want := tt.levels[len(tt.levels)-1] - '0'
			if v, _ := sim.Get(0); v != want {
				t.Errorf("settled at %d, want %d", v, want)
			}
			// Nothing more comes.
			select {
			case c := <-changes:
				t.Errorf("change after settling: %v", c)
			case <-time.After(5 * time.Millisecond):
			}
		})
	}
}

// The guest's interrupt sees every edge of a bouncing press and release.
func TestButtonInterrupts(t *testing.T) {
	sim := newButtonSim(t)
	if err := sim.SetIRQType(0, gpio.IRQTypeEdgeBoth); err != nil {
		t.Fatal(err)
	}
	b := &Button{Bounces: 4, BounceInterval: 50 * time.Microsecond}
	a, err := b.Attach(sim, "button", 0)
	if err != nil {
		t.Fatal(err)
	}
	b.Press()
	b.Release()
	b.Wait()
	want := 2 * (2*b.Bounces + 1)
	var got []uint8
	for len(got) < want {
		select {
		case ev := <-sim.Events():
			if ev.Line != 0 {
				t.Fatalf("event on line %d", ev.Line)
			}
			got = append(got, ev.Value)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d events %v, want %d", len(got), got, want)
		}
	}
	var wantV []uint8
	for _, first := range []uint8{0, 1} { // the press, then the release
		for i := range 2*b.Bounces + 1 {
			wantV = append(wantV, first^uint8(i%2))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(wantV) {
		t.Errorf("event values %v, want %v", got, wantV)
	}
	if n := sim.EventsFolded(); n != 0 {
		t.Errorf("EventsFolded %d", n)
	}
	// Detached, the button lets go of the line and does nothing.
	b.Press()
	b.Wait()
	a.Detach()
	b.Press()
	b.Wait()
	if v, _ := sim.Get(0); v != 1 {
		t.Errorf("line %d after Detach, want the pull-up's 1", v)
	}
	if sim.Conflicts() != 0 || sim.CutOff() != 0 {
		t.Errorf("Conflicts %d, CutOff %d", sim.Conflicts(), sim.CutOff())
	}
}

// An unattached button does nothing, and Wait does not block.
func TestButtonUnattached(t *testing.T) {
	b := &Button{Bounces: 1}
	b.Press()
	b.Wait()
}

// newButtonSim is one line, pulled up, that the guest reads as an input.
func newButtonSim(t *testing.T) *gpio.Sim {
	t.Helper()
	sim, err := gpio.NewSim(1, "button")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	if err := sim.SetPull(0, gpio.PullUp); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetDirection(0, gpio.DirectionIn, 0); err != nil {
		t.Fatal(err)
	}
	return sim
}
