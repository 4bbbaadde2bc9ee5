package spec

import (
	"maps"
	"strings"
	"testing"

	"github.com/gvmm/gvmm/devices/gpio"
)

func TestParseGPIOSim(t *testing.T) {
	up, down := gpio.PullUp, gpio.PullDown
	tests := []struct {
		in    string
		lines int
		names []string
		pulls map[int]gpio.Pull
	}{
		{"sim:8", 8, nil, nil},
		{"sim:3,names=a,,c", 3, []string{"a", "", "c"}, nil},
		{"sim:8,pull-up=0-1", 8, nil, map[int]gpio.Pull{0: up, 1: up}},
		{"sim:8,pull-up=0,1,4-5,pull-down=7", 8, nil, map[int]gpio.Pull{0: up, 1: up, 4: up, 5: up, 7: down}},
		{"sim:4,pull-down=3,names=a,b", 4, []string{"a", "b"}, map[int]gpio.Pull{3: down}},
		{"sim:2,pull-up=0-1,names=scl,sda", 2, []string{"scl", "sda"}, map[int]gpio.Pull{0: up, 1: up}},
	}
	for _, tt := range tests {
		g, err := ParseGPIO(tt.in)
		if err != nil {
			t.Errorf("ParseGPIO(%q): %v", tt.in, err)
			continue
		}
		if g.Lines() != tt.lines || strings.Join(g.Names(), "|") != strings.Join(tt.names, "|") || !maps.Equal(g.Pulls(), tt.pulls) {
			t.Errorf("ParseGPIO(%q) = %d lines, names %q, pulls %v; want %d, %q, %v", tt.in, g.Lines(), g.Names(), g.Pulls(), tt.lines, tt.names, tt.pulls)
		}
	}
}

func TestParseGPIOSimErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sim:0", "not a number from 1 to 65535"},
		{"sim:x", "not a number"},
		{"sim:8,pull=1", `unknown option "pull=1"`},
		{"sim:8,3", `unknown option "3"`},
		{"sim:8,pull-up=8", "line 8: the bank has lines 0 to 7"},
		{"sim:8,pull-up=3-1", "backwards"},
		{"sim:8,pull-up=a", `lines "a"`},
		{"sim:8,pull-up=", `lines ""`},
		{"sim:8,pull-up=1,pull-down=0-2", "line 1: pull-up and pull-down"},
		{"sim:2,names=a,b,c", "3 names for 2 lines"},
	}
	for _, tt := range tests {
		_, err := ParseGPIO(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseGPIO(%q): %v, want %q", tt.in, err, tt.want)
		}
	}
}

// Pulls reach the bank Open makes.
func TestOpenPulls(t *testing.T) {
	g, err := ParseGPIO("sim:3,pull-up=0,pull-down=2")
	if err != nil {
		t.Fatal(err)
	}
	sim, _, closeFn, err := g.Open("test")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	for l, want := range []struct {
		pull  gpio.Pull
		level uint8
	}{{gpio.PullUp, 1}, {gpio.PullNone, 0}, {gpio.PullDown, 0}} {
		st, _ := sim.Line(l)
		if st.Pull != want.pull || st.Level != want.level {
			t.Errorf("line %d: pull %s level %d, want %s %d", l, st.Pull, st.Level, want.pull, want.level)
		}
	}
}

// FuzzParseGPIO: any --gpio value is parsed or refused with an error,
// never a panic, and what is parsed is in range.
func FuzzParseGPIO(f *testing.F) {
	for _, s := range []string{"sim:8", "sim:8,pull-up=0-1", "sim:8,pull-up=0,1,4-5,pull-down=7,names=a,b",
		"chip0:4-7", "gpiochip1:0,3,names=a,b", "sim:65535,pull-down=0-65534"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGPIO(s)
		if err != nil {
			return
		}
		if g.Lines() < 1 || g.Lines() > 65535 || len(g.Names()) > g.Lines() {
			t.Fatalf("%q: %d lines, %d names", s, g.Lines(), len(g.Names()))
		}
		for l, p := range g.Pulls() {
			if l < 0 || l >= g.Lines() || (p != gpio.PullUp && p != gpio.PullDown) {
				t.Fatalf("%q: pull %v on line %d", s, p, l)
			}
		}
	})
}
