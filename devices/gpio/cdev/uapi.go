package cdev

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Limits of the uAPI.
const (
	maxNameSize = 32 // GPIO_MAX_NAME_SIZE, including the NUL
	numAttrsMax = 10 // GPIO_V2_LINE_NUM_ATTRS_MAX

	// LinesMax is GPIO_V2_LINES_MAX, the most lines one request holds.
	LinesMax = 64
)

// LineFlag is a set of line flags (enum gpio_v2_line_flag): in a LineInfo,
// what the line is; in a LineConfig, what it should become.
type LineFlag uint64

// Line flags.
const (
	LineFlagUsed               LineFlag = 1 << 0  // GPIO_V2_LINE_FLAG_USED
	LineFlagActiveLow          LineFlag = 1 << 1  // GPIO_V2_LINE_FLAG_ACTIVE_LOW
	LineFlagInput              LineFlag = 1 << 2  // GPIO_V2_LINE_FLAG_INPUT
	LineFlagOutput             LineFlag = 1 << 3  // GPIO_V2_LINE_FLAG_OUTPUT
	LineFlagEdgeRising         LineFlag = 1 << 4  // GPIO_V2_LINE_FLAG_EDGE_RISING
	LineFlagEdgeFalling        LineFlag = 1 << 5  // GPIO_V2_LINE_FLAG_EDGE_FALLING
	LineFlagOpenDrain          LineFlag = 1 << 6  // GPIO_V2_LINE_FLAG_OPEN_DRAIN
	LineFlagOpenSource         LineFlag = 1 << 7  // GPIO_V2_LINE_FLAG_OPEN_SOURCE
	LineFlagBiasPullUp         LineFlag = 1 << 8  // GPIO_V2_LINE_FLAG_BIAS_PULL_UP
	LineFlagBiasPullDown       LineFlag = 1 << 9  // GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN
	LineFlagBiasDisabled       LineFlag = 1 << 10 // GPIO_V2_LINE_FLAG_BIAS_DISABLED
	LineFlagEventClockRealtime LineFlag = 1 << 11 // GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME
	LineFlagEventClockHTE      LineFlag = 1 << 12 // GPIO_V2_LINE_FLAG_EVENT_CLOCK_HTE
)

var lineFlagNames = []string{
	"used", "active-low", "input", "output", "edge-rising", "edge-falling",
	"open-drain", "open-source", "pull-up", "pull-down", "bias-disabled",
	"clock-realtime", "clock-hte",
}

// String lists the flags as libgpiod's tools name them, joined by "|"
// ("input|edge-rising"), with unknown bits in hex; "0" for none.
func (f LineFlag) String() string {
	var s []string
	for i, name := range lineFlagNames {
		if f&(1<<i) != 0 {
			s = append(s, name)
		}
	}
	if rest := f &^ (1<<len(lineFlagNames) - 1); rest != 0 {
		s = append(s, fmt.Sprintf("%#x", uint64(rest)))
	}
	if s == nil {
		return "0"
	}
	return strings.Join(s, "|")
}

// Attribute ids (enum gpio_v2_line_attr_id).
const (
	attrIDFlags        = 1 // GPIO_V2_LINE_ATTR_ID_FLAGS
	attrIDOutputValues = 2 // GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES
	attrIDDebounce     = 3 // GPIO_V2_LINE_ATTR_ID_DEBOUNCE
)

// ChangeType says what happened to a watched line (enum
// gpio_v2_line_changed_type).
type ChangeType uint32

// Line info change types.
const (
	LineChangedRequested ChangeType = 1 // GPIO_V2_LINE_CHANGED_REQUESTED
	LineChangedReleased  ChangeType = 2 // GPIO_V2_LINE_CHANGED_RELEASED
	LineChangedConfig    ChangeType = 3 // GPIO_V2_LINE_CHANGED_CONFIG
)

// EventID is the kind of an edge event (enum gpio_v2_line_event_id).
type EventID uint32

// Edge event ids.
const (
	EventRisingEdge  EventID = 1 // GPIO_V2_LINE_EVENT_RISING_EDGE
	EventFallingEdge EventID = 2 // GPIO_V2_LINE_EVENT_FALLING_EDGE
)

// The structures below are laid out exactly like their C namesakes on
// 64-bit Linux (__aligned_u64 is uint64, which Go aligns to 8 bytes on
// amd64 and arm64). uapi_test.go checks every size and offset.

// gpiochipInfo is struct gpiochip_info.
type gpiochipInfo struct {
	name  [maxNameSize]byte
	label [maxNameSize]byte
	lines uint32
}

// gpioV2LineAttribute is struct gpio_v2_line_attribute. value is the
// union {flags; values; debounce_period_us}; debounce_period_us is its low
// 32 bits on a little-endian machine.
type gpioV2LineAttribute struct {
	id      uint32
	padding uint32
	value   uint64
}

// gpioV2LineConfigAttribute is struct gpio_v2_line_config_attribute.
type gpioV2LineConfigAttribute struct {
	attr gpioV2LineAttribute
	mask uint64
}

// gpioV2LineConfig is struct gpio_v2_line_config.
type gpioV2LineConfig struct {
	flags    uint64
	numAttrs uint32
	padding  [5]uint32
	attrs    [numAttrsMax]gpioV2LineConfigAttribute
}

// gpioV2LineRequest is struct gpio_v2_line_request.
type gpioV2LineRequest struct {
	offsets         [LinesMax]uint32
	consumer        [maxNameSize]byte
	config          gpioV2LineConfig
	numLines        uint32
	eventBufferSize uint32
	padding         [5]uint32
	fd              int32
}

// gpioV2LineInfo is struct gpio_v2_line_info.
type gpioV2LineInfo struct {
	name     [maxNameSize]byte
	consumer [maxNameSize]byte
	offset   uint32
	numAttrs uint32
	flags    uint64
	attrs    [numAttrsMax]gpioV2LineAttribute
	padding  [4]uint32
}

// gpioV2LineInfoChanged is struct gpio_v2_line_info_changed.
type gpioV2LineInfoChanged struct {
	info        gpioV2LineInfo
	timestampNs uint64
	eventType   uint32
	padding     [5]uint32
}

// gpioV2LineValues is struct gpio_v2_line_values.
type gpioV2LineValues struct {
	bits uint64
	mask uint64
}

// gpioV2LineEvent is struct gpio_v2_line_event.
type gpioV2LineEvent struct {
	timestampNs uint64
	id          uint32
	offset      uint32
	seqno       uint32
	lineSeqno   uint32
	padding     [6]uint32
}

// ioc encodes an ioctl request number of type 0xB4 (GPIO) the way _IOC in
// include/uapi/asm-generic/ioctl.h does; x86 and arm64 use that encoding.
func ioc(dir, nr, size uintptr) uintptr {
	const (
		nrShift   = 0
		typeShift = 8
		sizeShift = 16
		dirShift  = 30
	)
	return dir<<dirShift | 0xB4<<typeShift | nr<<nrShift | size<<sizeShift
}

const (
	iocWrite = 1 // _IOC_WRITE
	iocRead  = 2 // _IOC_READ
)

func ior(nr, size uintptr) uintptr  { return ioc(iocRead, nr, size) }
func iowr(nr, size uintptr) uintptr { return ioc(iocRead|iocWrite, nr, size) }

// The ioctls, as include/uapi/linux/gpio.h defines them.
var (
	gpioGetChipinfoIoctl        = ior(0x01, unsafe.Sizeof(gpiochipInfo{}))
	gpioV2GetLineinfoIoctl      = iowr(0x05, unsafe.Sizeof(gpioV2LineInfo{}))
	gpioV2GetLineinfoWatchIoctl = iowr(0x06, unsafe.Sizeof(gpioV2LineInfo{}))
	gpioV2GetLineIoctl          = iowr(0x07, unsafe.Sizeof(gpioV2LineRequest{}))
	gpioGetLineinfoUnwatchIoctl = iowr(0x0C, unsafe.Sizeof(uint32(0)))
	gpioV2LineSetConfigIoctl    = iowr(0x0D, unsafe.Sizeof(gpioV2LineConfig{}))
	gpioV2LineGetValuesIoctl    = iowr(0x0E, unsafe.Sizeof(gpioV2LineValues{}))
	gpioV2LineSetValuesIoctl    = iowr(0x0F, unsafe.Sizeof(gpioV2LineValues{}))
)

// ioctl runs ioctl(2) request req, called name in errors, with pointer
// argument arg on f's descriptor. Going through f's RawConn keeps the
// descriptor from being closed and reused while the call runs; after
// Close it fails with os.ErrClosed. The error wraps the errno.
func ioctl(f *os.File, name string, req uintptr, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var errno unix.Errno
	if rc.Control(func(fd uintptr) {
		for {
			_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
			if errno != unix.EINTR {
				return
			}
		}
	}) != nil {
		// Control fails only once f is closed, with internal/poll's
		// error; os.File methods say os.ErrClosed.
		return fmt.Errorf("%s: %w", name, os.ErrClosed)
	}
	if errno != 0 {
		return fmt.Errorf("%s: %w", name, errno)
	}
	return nil
}

// cstring is the NUL-terminated string at the start of b.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
