package spec

// Tests of --led and --key: the parsers and the checks against --gpio.

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gvmm/gvmm/fdt"
)

func u32(v uint32) *uint32 { return &v }

func TestLEDFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want fdt.LED
	}{
		{"status=0:3", fdt.LED{Label: "status", GPIO: fdt.GPIORef{Controller: "gpio0", Line: 3}}},
		{"status=gpio1:0", fdt.LED{Label: "status", GPIO: fdt.GPIORef{Controller: "gpio1"}}},
		{"a=2:7,active-low", fdt.LED{Label: "a", GPIO: fdt.GPIORef{Controller: "gpio2", Line: 7, ActiveLow: true}}},
		{"a=0:1,default-on", fdt.LED{Label: "a", GPIO: fdt.GPIORef{Controller: "gpio0", Line: 1}, DefaultState: "on"}},
		{"0Led_1.x+y,z-w=0:65535,default-on,active-low", fdt.LED{
			Label: "0Led_1.x+y,z-w", GPIO: fdt.GPIORef{Controller: "gpio0", Line: 65535, ActiveLow: true}, DefaultState: "on",
		}},
		{strings.Repeat("x", 31) + "=0:0", fdt.LED{Label: strings.Repeat("x", 31), GPIO: fdt.GPIORef{Controller: "gpio0"}}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			l, err := ParseLED(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.FDT(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLEDFlagErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"status", "want NAME=CTRL:LINE[,active-low][,default-on]"},
		{"=0:1", `LED name "": want 1 to 31 letters, digits or , . _ + -`},
		{"my led=0:1", `LED name "my led"`},
		{"led@1=0:1", `LED name "led@1"`},
		{"a/b=0:1", `LED name "a/b"`},
		{".=0:1", `LED name ".": want 1 to 31 letters, digits or , . _ + -, starting with a letter or digit`},
		{"..=0:1", `LED name ".."`},
		{"-x=0:1", `LED name "-x"`},
		{"_x=0:1", `LED name "_x"`},
		{"é=0:1", `LED name "é"`},
		{strings.Repeat("x", 32) + "=0:1", "want 1 to 31"},
		{"a=0", `"0": want CTRL:LINE`},
		{"a=:1", `controller "": want its index in --gpio order`},
		{"a=x:1", `controller "x"`},
		{"a=gpio:1", `controller "gpio"`},
		{"a=-1:1", `controller "-1"`},
		{"a=0:", `line "": want a line number`},
		{"a=0:x", `line "x"`},
		{"a=0:+1", `line "+1"`},
		{"a=0:65536", `line "65536"`},
		{"a=0:1,blink", `unknown option "blink" (want active-low or default-on)`},
		{"a=0:1,", `unknown option ""`},
		{"a=0:1,level-high", `unknown option "level-high"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseLED(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseLED(%q) = %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestKeyFlag(t *testing.T) {
	ref := func(c string, line int, low bool) fdt.GPIORef {
		return fdt.GPIORef{Controller: c, Line: line, ActiveLow: low}
	}
	for _, tc := range []struct {
		in   string
		want fdt.Key
	}{
		{"28=0:1", fdt.Key{Code: 28, GPIO: ref("gpio0", 1, false)}},
		{"0x74=gpio3:2,active-low", fdt.Key{Code: 116, GPIO: ref("gpio3", 2, true)}},
		{"0X2FF=0:0", fdt.Key{Code: 0x2ff, GPIO: ref("gpio0", 0, false)}},
		{"1=0:0,debounce-interval=20", fdt.Key{Code: 1, GPIO: ref("gpio0", 0, false), DebounceInterval: u32(20)}},
		{"767=0:4,level-high", fdt.Key{Code: 767, GPIO: ref("gpio0", 4, false), Interrupt: fdt.LevelHigh}},
		{"2=1:4,level-low,debounce-interval=0", fdt.Key{
			Code: 2, GPIO: ref("gpio1", 4, false), Interrupt: fdt.LevelLow, DebounceInterval: u32(0),
		}},
		{"3=0:5,debounce-interval=60000,level-high,level-high", fdt.Key{
			Code: 3, GPIO: ref("gpio0", 5, false), Interrupt: fdt.LevelHigh, DebounceInterval: u32(60000),
		}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			k, err := ParseKey(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := k.FDT(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestKeyFlagErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"28", "want CODE=CTRL:LINE["},
		{"0=0:1", `key code "0": want an input event code from 1 to 767 (0x2ff, KEY_MAX)`},
		{"768=0:1", `key code "768"`},
		{"0x300=0:1", `key code "0x300"`},
		{"-1=0:1", `key code "-1"`},
		{"KEY_ENTER=0:1", `key code "KEY_ENTER"`},
		{"=0:1", `key code ""`},
		{"0x=0:1", `key code "0x"`},
		{"28=0", `"0": want CTRL:LINE`},
		{"28=y:1", `controller "y"`},
		{"28=0:z", `line "z"`},
		{"28=0:1,pull-up", `unknown option "pull-up" (want active-low, level-high, level-low or debounce-interval=MS)`},
		{"28=0:1,debounce-interval", `unknown option "debounce-interval"`},
		{"28=0:1,default-on", `unknown option "default-on"`},
		{"28=0:1,debounce-interval=", `debounce-interval "": want milliseconds from 0 to 60000`},
		{"28=0:1,debounce-interval=60001", `debounce-interval "60001"`},
		{"28=0:1,debounce-interval=-5", `debounce-interval "-5"`},
		{"28=0:1,level-high,level-low", "level-high and level-low together"},
		{"28=0:1,level-low,level-high", "level-high and level-low together"},
		{"28=0:1,level-high,active-low", "active-low does not go with level-high"},
		{"28=0:1,active-low,level-low", "active-low does not go with level-low"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseKey(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseKey(%q) = %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

// TestConsumerChecks checks LEDs and keys against the controllers, with
// one controller that has no interrupts (no --gpio bank makes one).
func TestConsumerChecks(t *testing.T) {
	ctrls := []*fdt.GPIOController{{Lines: 8}, {Lines: 2, NoIRQ: true}}
	led := func(s string) LED {
		l, err := ParseLED(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	key := func(s string) Key {
		k, err := ParseKey(s)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, tc := range []struct {
		name string
		leds []LED
		keys []Key
		want string // "" for no error
	}{
		{"none", nil, nil, ""},
		{"valid", []LED{led("a=0:0"), led("b=0:7"), led("c=1:1")}, []Key{key("28=0:1"), key("1=0:2,level-high")}, ""},
		{"LED on controller 2", []LED{led("a=2:0")}, nil, `--led "a=2:0": no GPIO controller 2: there are 2, 0 to 1 (in --gpio order)`},
		{"key on controller 5", nil, []Key{key("28=5:0")}, `--key "28=5:0": no GPIO controller 5`},
		{"LED past the last line", []LED{led("a=0:8")}, nil, `--led "a=0:8": no line 8 on controller 0: its last line is 7`},
		{"key past the last line", nil, []Key{key("28=1:2")}, `--key "28=1:2": no line 2 on controller 1: its last line is 1`},
		{"level key past the last line", nil, []Key{key("28=0:9,level-low")}, "no line 9 on controller 0"},
		{"two LEDs on a line", []LED{led("a=0:3"), led("b=gpio0:3")}, nil,
			`--led "b=gpio0:3": line 3 of controller 0 is already used by --led "a=0:3"`},
		{"LED and key on a line", []LED{led("a=0:3")}, []Key{key("28=0:3,active-low")}, `--key "28=0:3,active-low": line 3 of controller 0 is already used by --led "a=0:3"`},
		{"two keys on a line", nil, []Key{key("28=0:4"), key("29=0:4,level-high")}, `--key "29=0:4,level-high": line 4 of controller 0 is already used by --key "28=0:4"`},
		{"same line of two controllers", []LED{led("a=0:1"), led("b=1:1")}, nil, ""},
		{"duplicate LED names", []LED{led("a=0:1"), led("a=0:2")}, nil, `--led "a=0:2": LED name "a" is already used by --led "a=0:1"`},
		{"LED names differ in case", []LED{led("a=0:1"), led("A=0:2")}, nil, ""},
		{"key without interrupts", nil, []Key{key("28=1:0")}, `--key "28=1:0": controller 1 has no interrupts, which gpio-keys needs`},
		{"level key without interrupts", nil, []Key{key("28=1:0,level-high")}, "controller 1 has no interrupts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckConsumers(ctrls, tc.leds, tc.keys)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestConsumerNoControllers(t *testing.T) {
	l, err := ParseLED("a=0:0")
	if err != nil {
		t.Fatal(err)
	}
	err = CheckConsumers(nil, []LED{l}, nil)
	if want := "no GPIO controller 0: there is none (add one with --gpio sim:N)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
	err = CheckConsumers([]*fdt.GPIOController{{Lines: 1}}, []LED{{value: "a=1:0", ref: lineRef{ctrl: 1}}}, nil)
	if want := "no GPIO controller 1: there is one, controller 0"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}
