package spec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gvmm/gvmm/fdt"
)

// The syntax of --led and --key, for messages and help.
const (
	ledSyntax = "NAME=CTRL:LINE[,active-low][,default-on]"
	keySyntax = "CODE=CTRL:LINE[,active-low|,level-high|,level-low][,debounce-interval=MS]"

	// keyMax is KEY_MAX in include/uapi/linux/input-event-codes.h: the
	// highest code gpio-keys can report as EV_KEY.
	keyMax = 0x2ff
	// maxDebounce bounds debounce-interval: gpio-keys passes it to
	// gpiod_set_debounce in microseconds, a 32-bit number.
	maxDebounce = 60000
)

// lineRef is CTRL:LINE: line LINE of the ctrl-th --gpio controller.
type lineRef struct{ ctrl, line int }

// LED is one --led flag: an LED of the gpio-leds device.
type LED struct {
	value     string // the flag's value, for messages
	name      string // label, the LED's name in /sys/class/leds
	ref       lineRef
	activeLow bool
	defaultOn bool
}

// Key is one --key flag: a key of the gpio-keys device.
type Key struct {
	value     string // the flag's value, for messages
	code      uint32 // linux,code
	ref       lineRef
	activeLow bool
	irq       fdt.Trigger // level-high or level-low: interrupt-only
	debounce  *uint32     // debounce-interval in ms; nil for the default
}

// ParseLED reads NAME=CTRL:LINE[,active-low][,default-on].
func ParseLED(s string) (LED, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok {
		return LED{}, fmt.Errorf("want %s, e.g. status=0:3", ledSyntax)
	}
	if err := checkName(name); err != nil {
		return LED{}, err
	}
	l := LED{value: s, name: name}
	opts, err := parseRefOpts(rest, &l.ref)
	if err != nil {
		return LED{}, err
	}
	for _, o := range opts {
		switch o {
		case "active-low":
			l.activeLow = true
		case "default-on":
			l.defaultOn = true
		default:
			return LED{}, fmt.Errorf("unknown option %q (want active-low or default-on)", o)
		}
	}
	return l, nil
}

// ParseKey reads CODE=CTRL:LINE[,active-low|,level-high|,level-low][,debounce-interval=MS].
func ParseKey(s string) (Key, error) {
	codeStr, rest, ok := strings.Cut(s, "=")
	if !ok {
		return Key{}, fmt.Errorf("want %s, e.g. 28=0:3", keySyntax)
	}
	code, err := parseCode(codeStr)
	if err != nil {
		return Key{}, err
	}
	k := Key{value: s, code: code}
	opts, err := parseRefOpts(rest, &k.ref)
	if err != nil {
		return Key{}, err
	}
	for _, o := range opts {
		if err := k.option(o); err != nil {
			return Key{}, err
		}
	}
	if k.activeLow && k.irq != fdt.TriggerDefault {
		return Key{}, fmt.Errorf("active-low does not go with %s: an interrupt-only key has no GPIO to invert (use level-low or level-high)", triggerOption(k.irq))
	}
	return k, nil
}

// option applies one of a --key flag's options.
func (k *Key) option(o string) error {
	name, val, hasVal := strings.Cut(o, "=")
	switch {
	case o == "active-low":
		k.activeLow = true
	case o == "level-high":
		return k.setTrigger(fdt.LevelHigh)
	case o == "level-low":
		return k.setTrigger(fdt.LevelLow)
	case name == "debounce-interval" && hasVal:
		ms, err := strconv.ParseUint(val, 10, 32)
		if err != nil || ms > maxDebounce {
			return fmt.Errorf("debounce-interval %q: want milliseconds from 0 to %d", val, maxDebounce)
		}
		v := uint32(ms)
		k.debounce = &v
	default:
		return fmt.Errorf("unknown option %q (want active-low, level-high, level-low or debounce-interval=MS)", o)
	}
	return nil
}

// setTrigger makes the key interrupt-only with trigger t.
func (k *Key) setTrigger(t fdt.Trigger) error {
	if k.irq != fdt.TriggerDefault && k.irq != t {
		return fmt.Errorf("level-high and level-low together: choose one")
	}
	k.irq = t
	return nil
}

// triggerOption is the --key option that gives trigger t.
func triggerOption(t fdt.Trigger) string {
	if t == fdt.LevelLow {
		return "level-low"
	}
	return "level-high"
}

// parseRefOpts reads CTRL:LINE[,option...] into ref and returns the
// options.
func parseRefOpts(s string, ref *lineRef) ([]string, error) {
	parts := strings.Split(s, ",")
	ctrl, line, ok := strings.Cut(parts[0], ":")
	if !ok {
		return nil, fmt.Errorf("%q: want CTRL:LINE, e.g. 0:3 for line 3 of the first --gpio controller", parts[0])
	}
	var err error
	if ref.ctrl, err = parseCtrl(ctrl); err != nil {
		return nil, err
	}
	if ref.line, ok = parseIndex(line); !ok {
		return nil, fmt.Errorf("line %q: want a line number, 0 for the first", line)
	}
	return parts[1:], nil
}

// parseCtrl reads a controller: its index in --gpio order, or its label
// (gpio0, gpio1, ...).
func parseCtrl(s string) (int, error) {
	n, ok := parseIndex(strings.TrimPrefix(s, "gpio"))
	if !ok {
		return 0, fmt.Errorf("controller %q: want its index in --gpio order (0, 1, ...) or its label (gpio0, gpio1, ...)", s)
	}
	return n, nil
}

// parseIndex reads a decimal number from 0 to 65535, digits only.
func parseIndex(s string) (int, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return int(n), err == nil
}

// parseCode reads a key code, decimal or 0x-prefixed hexadecimal, 1 to
// KEY_MAX.
func parseCode(s string) (uint32, error) {
	base, digits := 10, s
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		base, digits = 16, h
	}
	n, err := strconv.ParseUint(digits, base, 32)
	if err != nil || n < 1 || n > keyMax {
		return 0, fmt.Errorf("key code %q: want an input event code from 1 to %d (%#x, KEY_MAX), e.g. 28 for KEY_ENTER or 0x74 for KEY_POWER", s, keyMax, keyMax)
	}
	return uint32(n), nil
}

// checkName checks an LED name: it becomes the node's label property and
// the LED's name in /sys/class/leds, so it keeps to the characters of a
// device-tree node name and starts with a letter or digit (no "." or "..").
func checkName(s string) error {
	if s == "" || !isAlnum(s[0]) || strings.Contains(s, "@") || !fdt.ValidNodeName(s) {
		return fmt.Errorf("LED name %q: want 1 to 31 letters, digits or , . _ + -, starting with a letter or digit", s)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// CheckConsumers checks the LEDs and keys against the controllers they
// use (ctrls, in --gpio order) and each other: each names a controller and
// a line that exist, no line serves two of them, LED names are unique, and
// keys have interrupts.
func CheckConsumers(ctrls []*fdt.GPIOController, leds []LED, keys []Key) error {
	used := map[lineRef]string{} // line -> the flag that uses it
	use := func(what string, r lineRef) error {
		if err := checkRef(ctrls, r); err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		if other, ok := used[r]; ok {
			return fmt.Errorf("%s: line %d of controller %d is already used by %s", what, r.line, r.ctrl, other)
		}
		used[r] = what
		return nil
	}
	names := map[string]string{}
	for _, l := range leds {
		what := fmt.Sprintf("--led %q", l.value)
		if err := use(what, l.ref); err != nil {
			return err
		}
		if other, ok := names[l.name]; ok {
			return fmt.Errorf("%s: LED name %q is already used by %s", what, l.name, other)
		}
		names[l.name] = what
	}
	for _, k := range keys {
		what := fmt.Sprintf("--key %q", k.value)
		if err := use(what, k.ref); err != nil {
			return err
		}
		if ctrls[k.ref.ctrl].NoIRQ {
			return fmt.Errorf("%s: controller %d has no interrupts, which gpio-keys needs", what, k.ref.ctrl)
		}
	}
	return nil
}

// checkRef checks that r names an existing controller and line.
func checkRef(ctrls []*fdt.GPIOController, r lineRef) error {
	switch n := len(ctrls); {
	case n == 0:
		return fmt.Errorf("no GPIO controller %d: there is none (add one with --gpio sim:N)", r.ctrl)
	case n == 1 && r.ctrl > 0:
		return fmt.Errorf("no GPIO controller %d: there is one, controller 0 (controllers count from 0 in --gpio order)", r.ctrl)
	case r.ctrl >= n:
		return fmt.Errorf("no GPIO controller %d: there are %d, 0 to %d (in --gpio order)", r.ctrl, n, n-1)
	case r.line >= ctrls[r.ctrl].Lines:
		return fmt.Errorf("no line %d on controller %d: its last line is %d", r.line, r.ctrl, ctrls[r.ctrl].Lines-1)
	}
	return nil
}

// fdtRef is the device-tree reference to r.
func (r lineRef) fdtRef(activeLow bool) fdt.GPIORef {
	return fdt.GPIORef{Controller: CtrlLabel(r.ctrl), Line: r.line, ActiveLow: activeLow}
}

// FDT is the gpio-leds entry for l. Without default-on the LED has no
// default-state, which leds-gpio and the binding take as "off".
func (l LED) FDT() fdt.LED {
	led := fdt.LED{Label: l.name, GPIO: l.ref.fdtRef(l.activeLow)}
	if l.defaultOn {
		led.DefaultState = "on"
	}
	return led
}

// FDT is the gpio-keys entry for k.
func (k Key) FDT() fdt.Key {
	return fdt.Key{Code: k.code, GPIO: k.ref.fdtRef(k.activeLow), Interrupt: k.irq, DebounceInterval: k.debounce}
}

// Value is the --led flag's value, as given.
func (l LED) Value() string { return l.value }

// Value is the --key flag's value, as given.
func (k Key) Value() string { return k.value }

// Controller is the index, in --gpio order, of the controller of the
// key's line.
func (k Key) Controller() int { return k.ref.ctrl }
