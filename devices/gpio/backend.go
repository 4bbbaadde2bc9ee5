package gpio

import "time"

// Backend is the GPIO hardware behind a Controller: the simulated bank
// (Sim) or host lines reached through the Linux GPIO character device
// (GPIO v2 uAPI).
//
// The Controller validates every argument before calling a Backend: line
// is in [0, Lines()), values are 0 or 1, directions and trigger types are
// the spec's. It calls a Backend from one goroutine at a time (it holds its
// own lock around each call), so an implementation needs no locking for the
// Controller's sake. A Backend must not call into the Controller.
//
// Any error a method returns becomes VIRTIO_GPIO_STATUS_ERR for the request
// that caused the call; the Controller does not interpret errors.
//
// How the methods map onto the GPIO v2 uAPI (include/uapi/linux/gpio.h)
// in the host-passthrough backend (package cdev), which holds one line
// request for all its lines from start to end, so that no other user can
// take a line the guest was given:
//
//   - Lines, Name: the line count and gpio_v2_line_info.name, read once.
//   - SetDirection: GPIO_V2_LINE_SET_CONFIG_IOCTL for that line only; for
//     Out the initial value goes in the same config
//     (GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES) so the line never glitches;
//     None makes it an input without edge detection.
//   - Get, Set: GPIO_V2_LINE_GET_VALUES_IOCTL, GPIO_V2_LINE_SET_VALUES_IOCTL.
//   - SetIRQType: GPIO_V2_LINE_FLAG_EDGE_RISING|GPIO_V2_LINE_FLAG_EDGE_FALLING
//     whatever the type (the Controller tracks the level from both edges and
//     filters them itself); IRQTypeNone clears the edge flags.
//   - Events: gpio_v2_line_event records read from the request fd, id
//     GPIO_V2_LINE_EVENT_RISING_EDGE giving Value 1 and _FALLING_EDGE 0.
type Backend interface {
	// Lines is the number of lines, 1 to 65535. It must not change.
	Lines() int

	// Name is the name of line, or "" if it has none. Names must be 7-bit
	// ASCII without NUL and unique among the named lines. They must not
	// change.
	Name(line int) string

	// Direction reports the line's current direction.
	Direction(line int) (Direction, error)

	// SetDirection configures the line. DirectionNone releases it: the
	// backend drops everything it holds for the line, including its edge
	// detection. DirectionOut drives value from the moment the line
	// becomes an output. DirectionIn keeps any edge detection that
	// SetIRQType configured. value is 0 unless d is DirectionOut.
	SetDirection(line int, d Direction, value uint8) error

	// Get returns the level sensed on the line (for an output, the level it
	// drives), 0 or 1.
	Get(line int) (uint8, error)

	// Set drives value on a line that is an output. The Controller calls it
	// only for lines it has made outputs; it keeps values written to other
	// lines itself.
	Set(line int, value uint8) error

	// SetIRQType enables reporting of the line's edges on Events (t !=
	// None) or disables it (t == None). Whatever t is, the backend reports
	// every edge, rising and falling: the Controller tracks levels from
	// them and applies t itself; t is given so that a
	// backend can say it cannot sense a type. The Controller never enables
	// a line that is an output and never changes a line's type without
	// disabling it first.
	SetIRQType(line int, t IRQType) error

	// Events delivers the edges seen on lines whose reporting is enabled,
	// in the order they happened for each line, without dropping any. A
	// backend without interrupt support returns nil.
	Events() <-chan Event
}

// Event reports an edge on a line with enabled reporting: Value is the
// level after it, 1 for a rising edge and 0 for a falling one. Time is when
// the backend saw the edge, on a clock comparable with time.Now: the
// Controller drops events from before it last enabled the line's interrupt
// (still queued from an earlier enable). A zero Time counts as current.
type Event struct {
	Line  int       // line number, as for Backend methods
	Value uint8     // level after the edge, 0 or 1
	Time  time.Time // when the backend saw the edge
}
