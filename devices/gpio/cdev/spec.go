package cdev

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
)

// Spec selects the host lines a Backend passes through: guest line i is
// line Lines[i] of Chip.
type Spec struct {
	// Chip is "chipN" or "gpiochipN" (/dev/gpiochipN), a path starting
	// with "/", or else a chip label, looked up among /dev/gpiochip* by
	// Open.
	Chip string
	// Lines are the host offsets of guest lines 0, 1, ...: 1 to LinesMax
	// of them, no offset twice.
	Lines []int
	// Names, if given, name guest lines 0, 1, ... in order; there may be
	// fewer names than lines, and "" keeps the host line's name.
	Names []string
}

// ParseSpec reads a passthrough spec, CHIP:LINES[,names=NAME,...]:
//
//	chip0:4-7                 lines 4, 5, 6, 7 of /dev/gpiochip0
//	gpiochip1:0,3,8-9         guest lines 0-3 are host lines 0, 3, 8, 9
//	/dev/gpiochip2:5
//	pinctrl-bcm2711:17,27,names=led,button
//
// LINES is a comma-separated list of offsets and ascending ranges A-B;
// guest lines follow the order of the list. names=, if present, comes
// last and takes the rest of the spec, like the simulated banks' sim:N,names=...
// (cmd/gvmm). CHIP is everything before the last ':' of the part before
// ",names=", so a label may contain ':'. The chip is looked up, and the
// offsets checked against its size, by Open. Errors are one line and do
// not repeat s; the caller names the flag.
func ParseSpec(s string) (Spec, error) {
	body, names, hasNames := strings.Cut(s, ",names=")
	i := strings.LastIndexByte(body, ':')
	if i < 0 {
		return Spec{}, errors.New("want CHIP:LINES[,names=a,b,...], e.g. chip0:4-7")
	}
	spec := Spec{Chip: body[:i]}
	list := body[i+1:]
	if spec.Chip == "" {
		return Spec{}, errors.New("no chip before ':' (want e.g. chip0:4-7)")
	}
	if list == "" {
		return Spec{}, errors.New("empty line list (want e.g. chip0:4-7 or chip0:1,3)")
	}
	seen := map[int]bool{}
	for item := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := parseOffset(lo, item)
		if err != nil {
			return Spec{}, err
		}
		b := a
		if isRange {
			if b, err = parseOffset(hi, item); err != nil {
				return Spec{}, err
			}
			if a > b {
				return Spec{}, fmt.Errorf("line range %q runs backwards (%d > %d)", item, a, b)
			}
		}
		if len(spec.Lines)+(b-a+1) > LinesMax {
			return Spec{}, fmt.Errorf("more than %d lines (GPIO_V2_LINES_MAX, the most one line request holds)", LinesMax)
		}
		for o := a; o <= b; o++ {
			if seen[o] {
				return Spec{}, fmt.Errorf("line %d given twice", o)
			}
			seen[o] = true
			spec.Lines = append(spec.Lines, o)
		}
	}
	if hasNames {
		spec.Names = strings.Split(names, ",")
	}
	if err := spec.check(); err != nil {
		return Spec{}, err
	}
	return spec, nil
}

// parseOffset reads one offset of item, a decimal number.
func parseOffset(s, item string) (int, error) {
	if s == "" {
		if item == "" {
			return 0, errors.New("empty entry in the line list")
		}
		return 0, fmt.Errorf("line list entry %q: want N or A-B", item)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("line list entry %q: %q is not a line number", item, s)
	}
	return int(n), nil
}

// check validates what ParseSpec and Open need of any Spec.
func (s Spec) check() error {
	if s.Chip == "" {
		return errors.New("no chip")
	}
	if len(s.Lines) == 0 || len(s.Lines) > LinesMax {
		return fmt.Errorf("%d lines, want 1 to %d", len(s.Lines), LinesMax)
	}
	for i, o := range s.Lines {
		if o < 0 || uint64(o) > math.MaxUint32 {
			return fmt.Errorf("line %d is not a line number", o)
		}
		for _, p := range s.Lines[:i] {
			if p == o {
				return fmt.Errorf("line %d given twice", o)
			}
		}
	}
	if len(s.Names) > len(s.Lines) {
		return fmt.Errorf("%d names for %d lines", len(s.Names), len(s.Lines))
	}
	return checkNames(s.Names, "name")
}

// checkNames checks what gpio.Backend requires of line names: 7-bit ASCII
// without NUL, unique among the non-empty ones. what says what they are in
// errors.
func checkNames(names []string, what string) error {
	seen := map[string]int{}
	for i, n := range names {
		if err := checkName(n); err != nil {
			return fmt.Errorf("%s of line %d: %w", what, i, err)
		}
		if k, ok := seen[n]; ok && n != "" {
			return fmt.Errorf("lines %d and %d are both named %q", k, i, n)
		}
		seen[n] = i
	}
	return nil
}

func checkName(n string) error {
	for i := 0; i < len(n); i++ {
		if n[i] == 0 || n[i] >= 0x80 {
			return fmt.Errorf("%q is not 7-bit ASCII without NUL", n)
		}
	}
	return nil
}

// String formats s in the syntax ParseSpec reads, with runs of
// consecutive ascending offsets as ranges.
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString(s.Chip)
	b.WriteByte(':')
	for i := 0; i < len(s.Lines); {
		j := i
		for j+1 < len(s.Lines) && s.Lines[j+1] == s.Lines[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s.Lines[i]))
		if j > i {
			fmt.Fprintf(&b, "-%d", s.Lines[j])
		}
		i = j + 1
	}
	if s.Names != nil {
		b.WriteString(",names=")
		b.WriteString(strings.Join(s.Names, ","))
	}
	return b.String()
}

// chipPath returns the device path for chip, "" if chip is a label.
func chipPath(chip string) string {
	if strings.HasPrefix(chip, "/") {
		return chip
	}
	n, ok := strings.CutPrefix(chip, "gpiochip")
	if !ok {
		n, ok = strings.CutPrefix(chip, "chip")
	}
	if ok && n != "" && strings.Trim(n, "0123456789") == "" {
		return filepath.Join("/dev", "gpiochip"+n)
	}
	return ""
}
