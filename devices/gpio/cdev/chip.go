package cdev

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Chip is an open GPIO chip character device, /dev/gpiochipN. Its methods
// are safe for concurrent use; Close makes them fail with os.ErrClosed.
type Chip struct {
	f    *os.File
	info ChipInfo
}

// ChipInfo describes a chip (struct gpiochip_info).
type ChipInfo struct {
	Name  string // the device name, e.g. "gpiochip0"
	Label string // the driver's label, e.g. "pinctrl-bcm2711"
	Lines int    // number of lines, offsets 0 to Lines-1
}

// LineInfo describes a line of a chip (struct gpio_v2_line_info).
type LineInfo struct {
	Offset   int
	Name     string   // "" if the line has no name
	Consumer string   // who holds it; "" if nobody does, or the holder gave no label
	Flags    LineFlag // LineFlagUsed, the direction, edges, bias, drive
}

// Used reports whether someone (a process, a kernel driver, a hog) holds
// the line, in which case it cannot be requested.
func (l LineInfo) Used() bool { return l.Flags&LineFlagUsed != 0 }

// LineInfoChanged reports a change of a watched line (struct
// gpio_v2_line_info_changed).
type LineInfoChanged struct {
	Info        LineInfo // the line after the change
	Type        ChangeType
	TimestampNs uint64 // CLOCK_MONOTONIC
}

// OpenChip opens the chip at path (e.g. /dev/gpiochip0) and reads its
// information (GPIO_GET_CHIPINFO_IOCTL).
func OpenChip(path string) (*Chip, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("%w: run as root, or give this user read-write access to %s (e.g. a udev rule for a gpio group)", err, path)
	}
	if err != nil {
		return nil, err
	}
	var ci gpiochipInfo
	if err := ioctl(f, "GPIO_GET_CHIPINFO_IOCTL", gpioGetChipinfoIoctl, unsafe.Pointer(&ci)); err != nil {
		f.Close()
		if errors.Is(err, unix.ENOTTY) {
			return nil, fmt.Errorf("%s is not a GPIO chip (%w)", path, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Chip{f: f, info: ChipInfo{
		Name:  cstring(ci.name[:]),
		Label: cstring(ci.label[:]),
		Lines: int(ci.lines),
	}}, nil
}

// Info returns the chip's information, as read when it was opened.
func (c *Chip) Info() ChipInfo { return c.info }

// Close closes the chip. Requests made through it stay valid.
func (c *Chip) Close() error { return c.f.Close() }

func (c *Chip) checkOffset(offset int) error {
	if offset < 0 || offset >= c.info.Lines {
		return fmt.Errorf("%s has %d lines: no line %d", c.info.Name, c.info.Lines, offset)
	}
	return nil
}

func (c *Chip) lineInfo(offset int, name string, req uintptr) (LineInfo, error) {
	if err := c.checkOffset(offset); err != nil {
		return LineInfo{}, err
	}
	li := gpioV2LineInfo{offset: uint32(offset)}
	if err := ioctl(c.f, name, req, unsafe.Pointer(&li)); err != nil {
		return LineInfo{}, fmt.Errorf("%s line %d: %w", c.info.Name, offset, err)
	}
	return decodeLineInfo(&li), nil
}

func decodeLineInfo(li *gpioV2LineInfo) LineInfo {
	return LineInfo{
		Offset:   int(li.offset),
		Name:     cstring(li.name[:]),
		Consumer: cstring(li.consumer[:]),
		Flags:    LineFlag(li.flags),
	}
}

// LineInfo returns the current information of the line at offset
// (GPIO_V2_GET_LINEINFO_IOCTL).
func (c *Chip) LineInfo(offset int) (LineInfo, error) {
	return c.lineInfo(offset, "GPIO_V2_GET_LINEINFO_IOCTL", gpioV2GetLineinfoIoctl)
}

// WatchLineInfo returns the line's information like LineInfo and starts
// reporting its changes to ReadLineInfoChanged
// (GPIO_V2_GET_LINEINFO_WATCH_IOCTL). Watching a watched line fails with
// EBUSY.
func (c *Chip) WatchLineInfo(offset int) (LineInfo, error) {
	return c.lineInfo(offset, "GPIO_V2_GET_LINEINFO_WATCH_IOCTL", gpioV2GetLineinfoWatchIoctl)
}

// UnwatchLineInfo stops reporting the line's changes
// (GPIO_GET_LINEINFO_UNWATCH_IOCTL).
func (c *Chip) UnwatchLineInfo(offset int) error {
	if err := c.checkOffset(offset); err != nil {
		return err
	}
	o := uint32(offset)
	if err := ioctl(c.f, "GPIO_GET_LINEINFO_UNWATCH_IOCTL", gpioGetLineinfoUnwatchIoctl, unsafe.Pointer(&o)); err != nil {
		return fmt.Errorf("%s line %d: %w", c.info.Name, offset, err)
	}
	return nil
}

// ReadLineInfoChanged waits for the next change of a watched line. It
// fails with os.ErrDeadlineExceeded after the deadline set by
// SetReadDeadline, and with os.ErrClosed once the chip is closed.
func (c *Chip) ReadLineInfoChanged() (LineInfoChanged, error) {
	var ev gpioV2LineInfoChanged
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&ev)), unsafe.Sizeof(ev))
	n, err := c.f.Read(buf)
	if err != nil {
		return LineInfoChanged{}, err
	}
	if n != len(buf) {
		return LineInfoChanged{}, fmt.Errorf("%s: read %d bytes of line info change, want %d", c.info.Name, n, len(buf))
	}
	return LineInfoChanged{
		Info:        decodeLineInfo(&ev.info),
		Type:        ChangeType(ev.eventType),
		TimestampNs: ev.timestampNs,
	}, nil
}

// SetReadDeadline sets the deadline of ReadLineInfoChanged; the zero time
// means none.
func (c *Chip) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }
