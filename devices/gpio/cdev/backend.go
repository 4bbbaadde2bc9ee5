package cdev

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
	"golang.org/x/sys/unix"
)

// Backend is a gpio.Backend over lines of a host GPIO chip: guest line i is
// host line Spec.Lines[i]. It holds all of them, and no other line of the
// chip, in one line request from Open to Close.
//
// The lines are requested as they are; the host hardware is untouched
// until the guest configures a line. Every change then reconfigures only
// that line (a line without direction flags in the config is left alone
// by the kernel):
//
//   - SetDirection(None): input without edge detection; the line stays
//     requested, so nobody else can take it while the guest runs.
//   - SetDirection(In): input, with both edges if the interrupt is enabled.
//   - SetDirection(Out, v): output driving v from the start
//     (GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES).
//   - SetIRQType(t): input with GPIO_V2_LINE_FLAG_EDGE_RISING|_FALLING for
//     any t but None, without edges for None.
//
// Events come from a goroutine that reads the request's edge events into a
// gpio.EdgeQueue: noisy hardware never makes it hold more than a bounded
// number of them, and a reader that falls behind gets them folded as the
// EdgeQueue documents.
type Backend struct {
	chip  *Chip // nil in tests
	req   *Request
	host  []int       // guest line -> host offset
	guest map[int]int // host offset -> guest line
	names []string

	mu    sync.Mutex
	lines []lineState

	events *gpio.EdgeQueue
	wg     sync.WaitGroup
	once   sync.Once
	err    error // of Close
}

// lineState is what the guest made of a line.
type lineState struct {
	dir gpio.Direction
	irq bool // edge reporting enabled
}

var _ gpio.Backend = (*Backend)(nil)

// Open opens the chip spec names, checks that every line of spec exists
// and is free, and requests them all, as they are, for consumer (at most
// 31 bytes; gvmm passes "gvmm"). Errors are one line naming the chip and
// line: a line held by someone else gives
//
//	gpiochip0 line 5 is busy (held by "foo")
func Open(spec Spec, consumer string) (*Backend, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	chip, err := openChip(spec.Chip)
	if err != nil {
		return nil, err
	}
	ci := chip.Info()
	names := make([]string, len(spec.Lines))
	for i, o := range spec.Lines {
		if o >= ci.Lines {
			chip.Close()
			return nil, fmt.Errorf("%s [%s] has %d lines (0-%d): no line %d", ci.Name, ci.Label, ci.Lines, ci.Lines-1, o)
		}
		li, err := chip.LineInfo(o)
		if err == nil && li.Used() {
			err = busy(ci.Name, li)
		}
		if err != nil {
			chip.Close()
			return nil, err
		}
		names[i] = li.Name
	}
	req, err := chip.RequestLines(consumer, spec.Lines, nil)
	if errors.Is(err, unix.EBUSY) {
		// Taken since we looked: name the holder if we can.
		for _, o := range spec.Lines {
			if li, e := chip.LineInfo(o); e == nil && li.Used() {
				err = busy(ci.Name, li)
				break
			}
		}
	}
	if err != nil {
		chip.Close()
		return nil, err
	}
	return newBackend(chip, req, spec.Lines, mergeNames(names, spec.Names)), nil
}

func busy(chip string, li LineInfo) error {
	holder := "a consumer without a name"
	if li.Consumer != "" {
		holder = fmt.Sprintf("%q", li.Consumer)
	}
	return fmt.Errorf("%s line %d is busy (held by %s)", chip, li.Offset, holder)
}

// openChip opens the chip that Spec.Chip names.
func openChip(name string) (*Chip, error) {
	path := chipPath(name)
	if path != "" {
		c, err := OpenChip(path)
		if errors.Is(err, fs.ErrNotExist) {
			_, have := scanChips("")
			return nil, fmt.Errorf("no GPIO chip %s (%s)", path, have)
		}
		return c, err
	}
	found, have := scanChips(name)
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no GPIO chip labelled %q (%s)", name, have)
	case 1:
		return OpenChip(found[0])
	}
	return nil, fmt.Errorf("GPIO chips %s are all labelled %q: name one as gpiochipN", strings.Join(found, ", "), name)
}

// scanChips returns the paths of the chips in /dev labelled label, and a
// list of all chips for error messages.
func scanChips(label string) (found []string, have string) {
	paths, _ := filepath.Glob("/dev/gpiochip*")
	var all []string
	denied := false
	for _, p := range paths {
		c, err := OpenChip(p)
		if errors.Is(err, fs.ErrPermission) {
			all = append(all, filepath.Base(p)+" (permission denied)")
			denied = true
			continue
		}
		if err != nil {
			all = append(all, fmt.Sprintf("%s (%v)", filepath.Base(p), err))
			continue
		}
		ci := c.Info()
		c.Close()
		all = append(all, fmt.Sprintf("%s [%s] %d lines", ci.Name, ci.Label, ci.Lines))
		if ci.Label == label {
			found = append(found, p)
		}
	}
	if all == nil {
		return found, "there are no GPIO chips in /dev"
	}
	have = "chips: " + strings.Join(all, ", ")
	if denied {
		have += "; run as root, or give this user read-write access to /dev/gpiochip*"
	}
	return found, have
}

// mergeNames names the guest lines as Backend.Name describes.
func mergeNames(host, override []string) []string {
	names := make([]string, len(host))
	taken := map[string]bool{"": true}
	for i, n := range override {
		names[i] = n
		taken[n] = true
	}
	for i, n := range host {
		if names[i] == "" && !taken[n] && checkName(n) == nil {
			names[i] = n
			taken[n] = true
		}
	}
	return names
}

func newBackend(chip *Chip, req *Request, host []int, names []string) *Backend {
	b := &Backend{
		chip:   chip,
		req:    req,
		host:   host,
		guest:  make(map[int]int, len(host)),
		names:  names,
		lines:  make([]lineState, len(host)),
		events: gpio.NewEdgeQueue(),
	}
	for i, o := range host {
		b.guest[o] = i
	}
	b.wg.Add(1)
	go b.read()
	return b
}

// Close releases the lines and the chip and closes the Events channel. It
// may be called from any goroutine, more than once; it returns when the
// Events channel is closed. The Backend's methods fail afterwards.
func (b *Backend) Close() error {
	b.once.Do(func() {
		b.err = b.req.Close()
		if b.chip != nil {
			b.err = errors.Join(b.err, b.chip.Close())
		}
		b.wg.Wait()
		b.events.Close()
	})
	return b.err
}

// read turns the request's edge events into gpio.Events for lines with
// reporting enabled, until the request is closed.
func (b *Backend) read() {
	defer b.wg.Done()
	buf := make([]LineEvent, 64)
	for {
		n, err := b.req.ReadEvents(buf)
		if err != nil {
			return // closed, or the chip is gone
		}
		now, mono := time.Now(), monotonicNs()
		b.mu.Lock()
		for _, e := range buf[:n] {
			g, ok := b.guest[e.Offset]
			if !ok || !b.lines[g].irq || (e.ID != EventRisingEdge && e.ID != EventFallingEdge) {
				continue
			}
			var v uint8
			if e.ID == EventRisingEdge {
				v = 1
			}
			age := time.Duration(max(mono-int64(e.TimestampNs), 0))
			b.events.Push(gpio.Event{Line: g, Value: v, Time: now.Add(-age)})
		}
		b.mu.Unlock()
	}
}

// monotonicNs is CLOCK_MONOTONIC, the clock of event timestamps, in ns.
func monotonicNs() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return ts.Nano()
}

func (b *Backend) check(line int) error {
	if line < 0 || line >= len(b.host) {
		return fmt.Errorf("%w: %d", gpio.ErrLine, line)
	}
	return nil
}

// reconfigure applies cfg to line and leaves the other lines alone.
func (b *Backend) reconfigure(line int, cfg LineConfig) error {
	cfgs := make([]LineConfig, len(b.host))
	cfgs[line] = cfg
	return b.req.Reconfigure(cfgs)
}

// Lines implements gpio.Backend.
func (b *Backend) Lines() int { return len(b.host) }

// Name implements gpio.Backend: the name Spec.Names gives the line, else
// the host line's name, unless that is not 7-bit ASCII or an override or
// an earlier line has it already (chips may repeat names like "NC"), as
// names must be unique.
func (b *Backend) Name(line int) string {
	if b.check(line) != nil {
		return ""
	}
	return b.names[line]
}

// Events implements gpio.Backend.
func (b *Backend) Events() <-chan gpio.Event { return b.events.Events() }

// EventsFolded is the number of edge events folded because the reader of
// Events fell behind (see gpio.EdgeQueue).
func (b *Backend) EventsFolded() uint64 { return b.events.Dropped() }

// Direction implements gpio.Backend: the direction the guest set, None
// until it sets one.
func (b *Backend) Direction(line int) (gpio.Direction, error) {
	if err := b.check(line); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lines[line].dir, nil
}

// SetDirection implements gpio.Backend. Making a line with enabled
// reporting an output fails with gpio.ErrIRQOnOutput.
func (b *Backend) SetDirection(line int, d gpio.Direction, value uint8) error {
	if err := b.check(line); err != nil {
		return err
	}
	if !d.Valid() {
		return fmt.Errorf("%w: %d", gpio.ErrDirection, d)
	}
	if value > 1 {
		return fmt.Errorf("%w: %d", gpio.ErrValue, value)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.lines[line]
	cfg := LineConfig{Flags: LineFlagInput}
	switch d {
	case gpio.DirectionNone:
		l = lineState{}
	case gpio.DirectionIn:
		l.dir = gpio.DirectionIn
		if l.irq {
			cfg.Flags |= LineFlagEdgeRising | LineFlagEdgeFalling
		}
	case gpio.DirectionOut:
		if l.irq {
			return gpio.ErrIRQOnOutput
		}
		l.dir = gpio.DirectionOut
		cfg = LineConfig{Flags: LineFlagOutput, Value: value}
	}
	if err := b.reconfigure(line, cfg); err != nil {
		return err
	}
	b.lines[line] = l
	return nil
}

// Get implements gpio.Backend.
func (b *Backend) Get(line int) (uint8, error) {
	if err := b.check(line); err != nil {
		return 0, err
	}
	v, err := b.req.Values(1 << line)
	if err != nil {
		return 0, err
	}
	return uint8(v >> line & 1), nil
}

// Set implements gpio.Backend.
func (b *Backend) Set(line int, value uint8) error {
	if err := b.check(line); err != nil {
		return err
	}
	if value > 1 {
		return fmt.Errorf("%w: %d", gpio.ErrValue, value)
	}
	return b.req.SetValues(uint64(value)<<line, 1<<line)
}

// SetIRQType implements gpio.Backend: any t but None enables both edges.
// Enabling reporting on an output fails with gpio.ErrIRQOnOutput.
func (b *Backend) SetIRQType(line int, t gpio.IRQType) error {
	if err := b.check(line); err != nil {
		return err
	}
	if !t.Valid() {
		return fmt.Errorf("%w: %d", gpio.ErrIRQType, t)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l := &b.lines[line]
	on := t != gpio.IRQTypeNone
	if on == l.irq {
		return nil // the same edges whatever the type; an output stays one
	}
	if on && l.dir == gpio.DirectionOut {
		return gpio.ErrIRQOnOutput
	}
	cfg := LineConfig{Flags: LineFlagInput}
	if on {
		cfg.Flags |= LineFlagEdgeRising | LineFlagEdgeFalling
	}
	if err := b.reconfigure(line, cfg); err != nil {
		return err
	}
	l.irq = on
	return nil
}
