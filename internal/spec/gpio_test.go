package spec

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/cdev"
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

func TestParseModel(t *testing.T) {
	tests := []struct {
		in    string
		name  string
		ctrl  int
		lines []int
	}{
		{"at24c02=0:0,1", "at24c02@50", 0, []int{0, 1}},
		{"at24c02=gpio1:3,2,addr=0x51", "at24c02@51", 1, []int{3, 2}},
		{"at24c02=0:4,5,addr=87,file=/dev/null", "at24c02@57", 0, []int{4, 5}},
	}
	for _, tt := range tests {
		m, err := ParseModel(tt.in)
		if err != nil {
			t.Errorf("ParseModel(%q): %v", tt.in, err)
			continue
		}
		if m.Name() != tt.name || m.Controller() != tt.ctrl || !slices.Equal(m.lines, tt.lines) {
			t.Errorf("ParseModel(%q) = %s on %d lines %v, want %s on %d %v", tt.in, m.Name(), m.Controller(), m.lines, tt.name, tt.ctrl, tt.lines)
		}
	}
}

func TestParseModelErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"at24c02", "want at24c02=CTRL:SCL,SDA"},
		{"eeprom=0:0,1", `unknown model "eeprom"`},
		{"at24c02=0:0", "want CTRL:SCL,SDA"},
		{"at24c02=0,1", "want CTRL:LINE"},
		{"at24c02=0:1,1", "both line 1"},
		{"at24c02=0:0,x", `SDA line "x"`},
		{"at24c02=0:0,1,addr=0x80", "7-bit I2C address"},
		{"at24c02=0:0,1,addr=", "7-bit I2C address"},
		{"at24c02=0:0,1,file=", "want a path"},
		{"at24c02=0:0,1,speed=1", `unknown option "speed=1"`},
	}
	for _, tt := range tests {
		_, err := ParseModel(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseModel(%q): %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestCheckModels(t *testing.T) {
	parse := func(s string) GPIO {
		g, err := ParseGPIO(s)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	model := func(s string) Model {
		m, err := ParseModel(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	pulled, bare := parse("sim:2,pull-up=0-1"), parse("sim:4")
	host := GPIO{value: "chip0:0-1", lines: 2, host: &cdev.Spec{}}
	tests := []struct {
		gpios    []GPIO
		models   []string
		warnings int
		err      string
	}{
		{[]GPIO{pulled}, []string{"at24c02=0:0,1"}, 0, ""},
		{[]GPIO{pulled}, []string{"at24c02=0:0,1", "at24c02=0:0,1,addr=0x51"}, 0, ""},
		{[]GPIO{bare}, []string{"at24c02=0:0,1"}, 2, ""},
		{[]GPIO{pulled}, []string{"at24c02=0:0,1", "at24c02=0:1,0"}, 0, "at that address already"},
		{[]GPIO{pulled}, []string{"at24c02=1:0,1"}, 0, "no GPIO controller 1"},
		{[]GPIO{pulled}, []string{"at24c02=0:0,2"}, 0, "no line 2 on controller 0"},
		{[]GPIO{host}, []string{"at24c02=0:0,1"}, 0, "is host lines"},
	}
	for _, tt := range tests {
		var ms []Model
		for _, s := range tt.models {
			ms = append(ms, model(s))
		}
		w, err := CheckModels(tt.gpios, ms)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: %v, want %q", tt.models, err, tt.err)
			}
			continue
		}
		if err != nil || len(w) != tt.warnings {
			t.Errorf("%v: warnings %q, error %v; want %d warnings", tt.models, w, err, tt.warnings)
		}
	}
}

// Open attaches the EEPROM with its file's contents.
func TestModelOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rom")
	if err := os.WriteFile(path, []byte("gvmm"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParseModel("at24c02=0:0,1,file=" + path)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := gpio.NewSim(2)
	if err != nil {
		t.Fatal(err)
	}
	e, a, err := m.Open(sim)
	if err != nil {
		t.Fatal(err)
	}
	if b := e.Bytes(); string(b[:4]) != "gvmm" || b[4] != 0xff || a.Name() != "at24c02@50" {
		t.Errorf("bytes % x..., name %s", b[:5], a.Name())
	}
	if err := os.WriteFile(path, make([]byte, 257), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Open(sim); err == nil || !strings.Contains(err.Error(), "longer than the EEPROM's 256 bytes") {
		t.Errorf("a 257-byte file: %v", err)
	}
}

// FuzzParseModel: any --model value is parsed or refused, never a panic;
// what is parsed has two distinct lines and a 7-bit address.
func FuzzParseModel(f *testing.F) {
	for _, s := range []string{"at24c02=0:0,1", "at24c02=gpio1:3,2,addr=0x51", "at24c02=0:4,5,addr=87,file=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseModel(s)
		if err != nil {
			return
		}
		if len(m.lines) != 2 || m.lines[0] == m.lines[1] || m.addr > 0x7f || m.ctrl < 0 {
			t.Fatalf("%q: %+v", s, m)
		}
	})
}
