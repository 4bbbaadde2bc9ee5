package cdev

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Request holds lines of one chip, requested together
// (GPIO_V2_GET_LINE_IOCTL): the kernel's line request file. The lines are
// addressed by their index in the request: bit i of a mask or of values
// is the line at Offsets()[i]. The methods are safe for concurrent use;
// Close releases the lines and makes them fail with os.ErrClosed.
type Request struct {
	f       *os.File
	offsets []int
}

// LineConfig is the configuration of one line of a request.
type LineConfig struct {
	// Flags are the line's flags, e.g. LineFlagInput|LineFlagEdgeRising.
	// Without LineFlagInput or LineFlagOutput the line is left as it is:
	// requested "as is", not changed by Reconfigure.
	Flags LineFlag
	// Value is the level the line drives from the moment it becomes an
	// output (Flags has LineFlagOutput), 0 or 1; otherwise ignored.
	Value uint8
}

// LineEvent is an edge seen on a line with edge detection (struct
// gpio_v2_line_event).
type LineEvent struct {
	Offset      int     // the line's offset on the chip
	ID          EventID // EventRisingEdge or EventFallingEdge
	TimestampNs uint64  // CLOCK_MONOTONIC unless the line asked for another clock
	Seqno       uint32  // the event's number among the request's events, from 1
	LineSeqno   uint32  // the event's number among the line's events, from 1
}

// eventBufferSize is the kernel's largest event buffer for a request
// (GPIO_V2_LINES_MAX * 16 events), so that a burst of edges is not
// dropped before Request.ReadEvents drains it.
const eventBufferSize = LinesMax * 16

// RequestLines requests the lines at offsets, at most LinesMax of them,
// for consumer (at most 31 bytes: it shows in LineInfo.Consumer), and
// configures them: config has one LineConfig per offset, or is nil to take
// every line as it is. It fails, with an error wrapping EBUSY, if any of
// the lines is held already.
func (c *Chip) RequestLines(consumer string, offsets []int, config []LineConfig) (*Request, error) {
	if len(offsets) == 0 || len(offsets) > LinesMax {
		return nil, fmt.Errorf("%s: %d lines in one request, want 1 to %d", c.info.Name, len(offsets), LinesMax)
	}
	if config != nil && len(config) != len(offsets) {
		return nil, fmt.Errorf("%s: %d line configs for %d lines", c.info.Name, len(config), len(offsets))
	}
	if len(consumer) >= maxNameSize || strings.IndexByte(consumer, 0) >= 0 {
		return nil, fmt.Errorf("consumer %q: want at most %d bytes, no NUL", consumer, maxNameSize-1)
	}
	var lr gpioV2LineRequest
	for i, o := range offsets {
		if err := c.checkOffset(o); err != nil {
			return nil, err
		}
		if slices.Contains(offsets[:i], o) {
			return nil, fmt.Errorf("%s: line %d requested twice", c.info.Name, o)
		}
		lr.offsets[i] = uint32(o)
	}
	copy(lr.consumer[:], consumer)
	lc, err := lineConfig(config)
	if err != nil {
		return nil, err
	}
	lr.config = lc
	lr.numLines = uint32(len(offsets))
	lr.eventBufferSize = eventBufferSize
	if err := ioctl(c.f, "GPIO_V2_GET_LINE_IOCTL", gpioV2GetLineIoctl, unsafe.Pointer(&lr)); err != nil {
		return nil, fmt.Errorf("%s lines %v: %w", c.info.Name, offsets, err)
	}
	fd := int(lr.fd)
	// Non-blocking, the file joins the runtime poller: ReadEvents waits
	// there, and Close or a deadline interrupts it.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s lines %v: %w", c.info.Name, offsets, err)
	}
	name := fmt.Sprintf("%s lines %v", c.info.Name, offsets)
	return &Request{f: os.NewFile(uintptr(fd), name), offsets: slices.Clone(offsets)}, nil
}

// lineConfig encodes config, one LineConfig per line of a request, as
// struct gpio_v2_line_config. The most common flags become the default
// (config.flags); every other distinct set of flags becomes one
// GPIO_V2_LINE_ATTR_ID_FLAGS attribute with the mask of its lines, in the
// order the sets first appear; the values of the output lines become one
// GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES attribute. That must fit in
// GPIO_V2_LINE_NUM_ATTRS_MAX attributes.
func lineConfig(config []LineConfig) (gpioV2LineConfig, error) {
	var lc gpioV2LineConfig
	if len(config) > LinesMax {
		return lc, fmt.Errorf("%d line configs, at most %d", len(config), LinesMax)
	}
	count := map[LineFlag]int{}
	var sets []LineFlag // distinct flags in order of appearance
	var outMask, outBits uint64
	for i, c := range config {
		if c.Value > 1 {
			return lc, fmt.Errorf("line %d of the request: value %d, want 0 or 1", i, c.Value)
		}
		if count[c.Flags] == 0 {
			sets = append(sets, c.Flags)
		}
		count[c.Flags]++
		if c.Flags&LineFlagOutput != 0 {
			outMask |= 1 << i
			outBits |= uint64(c.Value) << i
		}
	}
	if len(sets) == 0 {
		return lc, nil
	}
	def := sets[0]
	for _, f := range sets {
		if count[f] > count[def] {
			def = f
		}
	}
	lc.flags = uint64(def)
	need := len(sets) - 1
	if outMask != 0 {
		need++
	}
	if need > numAttrsMax {
		return lc, fmt.Errorf("%d different line configurations need %d attributes, at most %d", len(sets), need, numAttrsMax)
	}
	add := func(id uint32, value, mask uint64) {
		lc.attrs[lc.numAttrs] = gpioV2LineConfigAttribute{
			attr: gpioV2LineAttribute{id: id, value: value},
			mask: mask,
		}
		lc.numAttrs++
	}
	for _, f := range sets {
		if f == def {
			continue
		}
		var mask uint64
		for i, c := range config {
			if c.Flags == f {
				mask |= 1 << i
			}
		}
		add(attrIDFlags, uint64(f), mask)
	}
	if outMask != 0 {
		add(attrIDOutputValues, outBits, outMask)
	}
	return lc, nil
}

// Offsets returns the chip offsets of the request's lines, in request
// order.
func (r *Request) Offsets() []int { return slices.Clone(r.offsets) }

func (r *Request) checkMask(mask uint64) error {
	if mask == 0 || mask>>len(r.offsets) != 0 {
		return fmt.Errorf("%s: mask %#x, want a non-empty subset of %#x", r.f.Name(), mask, uint64(1)<<len(r.offsets)-1)
	}
	return nil
}

// Values returns the levels of the lines selected by mask (bit i: the
// request's line i); bits outside mask are 0
// (GPIO_V2_LINE_GET_VALUES_IOCTL). An output reads as the level it
// drives.
func (r *Request) Values(mask uint64) (uint64, error) {
	if err := r.checkMask(mask); err != nil {
		return 0, err
	}
	lv := gpioV2LineValues{mask: mask}
	if err := ioctl(r.f, "GPIO_V2_LINE_GET_VALUES_IOCTL", gpioV2LineGetValuesIoctl, unsafe.Pointer(&lv)); err != nil {
		return 0, fmt.Errorf("%s: %w", r.f.Name(), err)
	}
	return lv.bits & mask, nil
}

// SetValues drives bits onto the lines selected by mask, which must all
// be outputs (GPIO_V2_LINE_SET_VALUES_IOCTL; the kernel refuses an input
// with EPERM).
func (r *Request) SetValues(bits, mask uint64) error {
	if err := r.checkMask(mask); err != nil {
		return err
	}
	lv := gpioV2LineValues{bits: bits & mask, mask: mask}
	if err := ioctl(r.f, "GPIO_V2_LINE_SET_VALUES_IOCTL", gpioV2LineSetValuesIoctl, unsafe.Pointer(&lv)); err != nil {
		return fmt.Errorf("%s: %w", r.f.Name(), err)
	}
	return nil
}

// Reconfigure applies config, one LineConfig per line of the request
// (GPIO_V2_LINE_SET_CONFIG_IOCTL). Lines whose Flags have neither
// LineFlagInput nor LineFlagOutput keep their configuration.
func (r *Request) Reconfigure(config []LineConfig) error {
	if len(config) != len(r.offsets) {
		return fmt.Errorf("%s: %d line configs for %d lines", r.f.Name(), len(config), len(r.offsets))
	}
	lc, err := lineConfig(config)
	if err != nil {
		return fmt.Errorf("%s: %w", r.f.Name(), err)
	}
	if err := ioctl(r.f, "GPIO_V2_LINE_SET_CONFIG_IOCTL", gpioV2LineSetConfigIoctl, unsafe.Pointer(&lc)); err != nil {
		return fmt.Errorf("%s: %w", r.f.Name(), err)
	}
	return nil
}

// ReadEvents waits for edge events and reads at least one and at most
// len(buf) of them into buf, oldest first. It fails with
// os.ErrDeadlineExceeded after the deadline set by SetReadDeadline, and
// with os.ErrClosed once the request is closed.
func (r *Request) ReadEvents(buf []LineEvent) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	raw := make([]gpioV2LineEvent, len(buf))
	size := int(unsafe.Sizeof(raw[0]))
	n, err := r.f.Read(unsafe.Slice((*byte)(unsafe.Pointer(&raw[0])), len(raw)*size))
	if err != nil {
		return 0, err
	}
	if n%size != 0 {
		return 0, fmt.Errorf("%s: read %d bytes, not a whole number of %d-byte events", r.f.Name(), n, size)
	}
	for i, e := range raw[:n/size] {
		buf[i] = LineEvent{
			Offset:      int(e.offset),
			ID:          EventID(e.id),
			TimestampNs: e.timestampNs,
			Seqno:       e.seqno,
			LineSeqno:   e.lineSeqno,
		}
	}
	return n / size, nil
}

// SetReadDeadline sets the deadline of ReadEvents; the zero time means
// none.
func (r *Request) SetReadDeadline(t time.Time) error { return r.f.SetReadDeadline(t) }

// Close releases the lines.
func (r *Request) Close() error { return r.f.Close() }
