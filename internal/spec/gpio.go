package spec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/cdev"
	"github.com/gvmm/gvmm/fdt"
)

// GPIO is one --gpio flag: the lines of one controller, a simulated
// bank or host lines (host != nil).
type GPIO struct {
	value string // the flag's value, for messages
	lines int
	names []string
	pulls map[int]gpio.Pull // sim: lines with a pull resistor
	host  *cdev.Spec
}

// ParseGPIO reads a simulated bank, "sim:N" with options after commas:
//
//	sim:8                         8 lines
//	sim:8,pull-up=0-1             lines 0 and 1 pulled up (read 1 undriven)
//	sim:8,pull-up=0,1,4-5,pull-down=7
//	sim:8,names=a,b,c             names for the first lines in order (the
//	                              list takes the rest of the value)
//
// or host lines as cdev.ParseSpec reads them: "chip0:4-7",
// "gpiochip1:0,3,names=a,b", ...
func ParseGPIO(s string) (GPIO, error) {
	rest, ok := strings.CutPrefix(s, "sim:")
	if !ok {
		host, err := cdev.ParseSpec(s)
		if err != nil && !strings.Contains(s, ":") {
			return GPIO{}, fmt.Errorf("%v, or sim:N for a simulated bank", err)
		}
		if err != nil {
			return GPIO{}, err
		}
		return GPIO{value: s, lines: len(host.Lines), names: host.Names, host: &host}, nil
	}
	count, opts, _ := strings.Cut(rest, ",")
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > 65535 {
		return GPIO{}, fmt.Errorf("line count %q is not a number from 1 to 65535", count)
	}
	g := GPIO{value: s, lines: n}
	pull := gpio.PullNone // the list option being read, if any
	for opts != "" {
		if list, ok := strings.CutPrefix(opts, "names="); ok {
			g.names = strings.Split(list, ",")
			if len(g.names) > n {
				return GPIO{}, fmt.Errorf("%d names for %d lines", len(g.names), n)
			}
			break
		}
		var opt string
		opt, opts, _ = strings.Cut(opts, ",")
		k, v, isOpt := strings.Cut(opt, "=")
		if isOpt {
			switch k {
			case "pull-up":
				pull = gpio.PullUp
			case "pull-down":
				pull = gpio.PullDown
			default:
				return GPIO{}, fmt.Errorf("unknown option %q (want pull-up=LINES, pull-down=LINES or names=...)", opt)
			}
		} else if v = opt; pull == gpio.PullNone {
			return GPIO{}, fmt.Errorf("unknown option %q (want pull-up=LINES, pull-down=LINES or names=...)", opt)
		}
		lo, hi, err := lineRange(v, n)
		if err != nil {
			return GPIO{}, fmt.Errorf("pull-%s: %v", pull, err)
		}
		if g.pulls == nil {
			g.pulls = map[int]gpio.Pull{}
		}
		for l := lo; l <= hi; l++ {
			if p, ok := g.pulls[l]; ok {
				return GPIO{}, fmt.Errorf("line %d: pull-%s and pull-%s", l, p, pull)
			}
			g.pulls[l] = pull
		}
	}
	return g, nil
}

// lineRange reads "L" or "L-M", lines of a bank of n.
func lineRange(s string, n int) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err = strconv.Atoi(a)
	hi = lo
	if err == nil && isRange {
		hi, err = strconv.Atoi(b)
	}
	switch {
	case err != nil || lo < 0 || hi < 0:
		return 0, 0, fmt.Errorf("lines %q: want a line or a range such as 0-3", s)
	case lo > hi:
		return 0, 0, fmt.Errorf("lines %q: the range is backwards", s)
	case hi >= n:
		return 0, 0, fmt.Errorf("line %d: the bank has lines 0 to %d", hi, n-1)
	}
	return lo, hi, nil
}

// Pulls are the bank's pull resistors by line (nil if none): what sim's
// pull-up= and pull-down= options gave.
func (g GPIO) Pulls() map[int]gpio.Pull { return g.pulls }

// Value is the --gpio flag's value, as given.
func (g GPIO) Value() string { return g.value }

// Lines is the number of lines of the controller: N of sim:N, or the
// number of host lines.
func (g GPIO) Lines() int { return g.lines }

// Names are the names the flag gives the first lines, in order; nil if
// it gives none.
func (g GPIO) Names() []string { return g.names }

// Host is the host lines the controller passes through, nil for a
// simulated bank.
func (g GPIO) Host() *cdev.Spec { return g.host }

// CtrlLabel is the device-tree label of the i-th --gpio controller,
// counting from 0; --led and --key accept it in place of the index.
func CtrlLabel(i int) string { return fmt.Sprintf("gpio%d", i) }

// Controller describes the i-th --gpio bank in the device tree. Both kinds
// offer interrupts (NoIRQ false). Host lines keep their names unless the
// flag gives some: the device serves them to the guest (GET_NAMES), so the
// tree names only what the flag names.
func (g GPIO) Controller(i int) *fdt.GPIOController {
	return &fdt.GPIOController{Label: CtrlLabel(i), Lines: g.lines, LineNames: g.names}
}

// ConsumerName is the name gvmm's line requests carry on the host, shown
// by gpioinfo and named when a line is busy: "gvmm", or "gvmm-NAME" for a
// VM given --name NAME.
func ConsumerName(vmName string) string {
	if vmName == "" {
		return "gvmm"
	}
	return "gvmm-" + vmName
}

// maxVMName keeps "gvmm-NAME" within a GPIO consumer label (GPIO_MAX_NAME_SIZE,
// 32 bytes with the NUL).
const maxVMName = 26

// CheckVMName checks --name: 1 to maxVMName letters, digits, '.', '_' or '-'.
func CheckVMName(s string) error {
	if s == "" || len(s) > maxVMName {
		return fmt.Errorf("name %q: want 1 to %d characters", s, maxVMName)
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("name %q: %q is not a letter, digit, '.', '_' or '-'", s, r)
		}
	}
	return nil
}

// Open builds the bank's backend and its virtio device; sim is the
// simulated bank, nil for host lines, which are requested as consumer.
// close releases the backend (and so every host line it holds); call it
// on every way out.
func (g GPIO) Open(consumer string) (sim *gpio.Sim, dev *gpio.Device, close func(), err error) {
	var b gpio.Backend
	if g.host != nil {
		h, err := cdev.Open(*g.host, consumer)
		if err != nil {
			return nil, nil, nil, err
		}
		b, close = h, func() { _ = h.Close() }
	} else {
		if sim, err = gpio.NewSim(g.lines, g.names...); err != nil {
			return nil, nil, nil, err
		}
		for l, p := range g.pulls {
			if err := sim.SetPull(l, p); err != nil {
				sim.Close()
				return nil, nil, nil, err
			}
		}
		b, close = sim, sim.Close
	}
	if dev, err = gpio.NewDevice(b); err != nil {
		close()
		return nil, nil, nil, err
	}
	return sim, dev, close, nil
}
