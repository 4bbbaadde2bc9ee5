package cdev

import (
	"testing"
	"unsafe"
)

// The expected sizes, offsets and ioctl numbers were printed by a C program
// built with gcc on x86_64 against include/uapi/linux/gpio.h of Linux
// 6.1.192 (sizeof, offsetof and the *_IOCTL macros), and agree with the
// layout worked out by hand from the header.

func TestLayout(t *testing.T) {
	var (
		ci  gpiochipInfo
		la  gpioV2LineAttribute
		lca gpioV2LineConfigAttribute
		lc  gpioV2LineConfig
		lr  gpioV2LineRequest
		li  gpioV2LineInfo
		lic gpioV2LineInfoChanged
		lv  gpioV2LineValues
		le  gpioV2LineEvent
	)
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct gpiochip_info)", unsafe.Sizeof(ci), 68},
		{"gpiochip_info.name", unsafe.Offsetof(ci.name), 0},
		{"gpiochip_info.label", unsafe.Offsetof(ci.label), 32},
		{"gpiochip_info.lines", unsafe.Offsetof(ci.lines), 64},

		{"sizeof(struct gpio_v2_line_attribute)", unsafe.Sizeof(la), 16},
		{"gpio_v2_line_attribute.id", unsafe.Offsetof(la.id), 0},
		{"gpio_v2_line_attribute.padding", unsafe.Offsetof(la.padding), 4},
		{"gpio_v2_line_attribute.{flags,values,debounce_period_us}", unsafe.Offsetof(la.value), 8},

		{"sizeof(struct gpio_v2_line_config_attribute)", unsafe.Sizeof(lca), 24},
		{"gpio_v2_line_config_attribute.attr", unsafe.Offsetof(lca.attr), 0},
		{"gpio_v2_line_config_attribute.mask", unsafe.Offsetof(lca.mask), 16},

		{"sizeof(struct gpio_v2_line_config)", unsafe.Sizeof(lc), 272},
		{"gpio_v2_line_config.flags", unsafe.Offsetof(lc.flags), 0},
		{"gpio_v2_line_config.num_attrs", unsafe.Offsetof(lc.numAttrs), 8},
		{"gpio_v2_line_config.padding", unsafe.Offsetof(lc.padding), 12},
		{"gpio_v2_line_config.attrs", unsafe.Offsetof(lc.attrs), 32},

		{"sizeof(struct gpio_v2_line_request)", unsafe.Sizeof(lr), 592},
		{"gpio_v2_line_request.offsets", unsafe.Offsetof(lr.offsets), 0},
		{"gpio_v2_line_request.consumer", unsafe.Offsetof(lr.consumer), 256},
		{"gpio_v2_line_request.config", unsafe.Offsetof(lr.config), 288},
		{"gpio_v2_line_request.num_lines", unsafe.Offsetof(lr.numLines), 560},
		{"gpio_v2_line_request.event_buffer_size", unsafe.Offsetof(lr.eventBufferSize), 564},
		{"gpio_v2_line_request.padding", unsafe.Offsetof(lr.padding), 568},
		{"gpio_v2_line_request.fd", unsafe.Offsetof(lr.fd), 588},

		{"sizeof(struct gpio_v2_line_info)", unsafe.Sizeof(li), 256},
		{"gpio_v2_line_info.name", unsafe.Offsetof(li.name), 0},
		{"gpio_v2_line_info.consumer", unsafe.Offsetof(li.consumer), 32},
		{"gpio_v2_line_info.offset", unsafe.Offsetof(li.offset), 64},
		{"gpio_v2_line_info.num_attrs", unsafe.Offsetof(li.numAttrs), 68},
		{"gpio_v2_line_info.flags", unsafe.Offsetof(li.flags), 72},
		{"gpio_v2_line_info.attrs", unsafe.Offsetof(li.attrs), 80},
		{"gpio_v2_line_info.padding", unsafe.Offsetof(li.padding), 240},

		{"sizeof(struct gpio_v2_line_info_changed)", unsafe.Sizeof(lic), 288},
		{"gpio_v2_line_info_changed.info", unsafe.Offsetof(lic.info), 0},
		{"gpio_v2_line_info_changed.timestamp_ns", unsafe.Offsetof(lic.timestampNs), 256},
		{"gpio_v2_line_info_changed.event_type", unsafe.Offsetof(lic.eventType), 264},
		{"gpio_v2_line_info_changed.padding", unsafe.Offsetof(lic.padding), 268},

		{"sizeof(struct gpio_v2_line_values)", unsafe.Sizeof(lv), 16},
		{"gpio_v2_line_values.bits", unsafe.Offsetof(lv.bits), 0},
		{"gpio_v2_line_values.mask", unsafe.Offsetof(lv.mask), 8},

		{"sizeof(struct gpio_v2_line_event)", unsafe.Sizeof(le), 48},
		{"gpio_v2_line_event.timestamp_ns", unsafe.Offsetof(le.timestampNs), 0},
		{"gpio_v2_line_event.id", unsafe.Offsetof(le.id), 8},
		{"gpio_v2_line_event.offset", unsafe.Offsetof(le.offset), 12},
		{"gpio_v2_line_event.seqno", unsafe.Offsetof(le.seqno), 16},
		{"gpio_v2_line_event.line_seqno", unsafe.Offsetof(le.lineSeqno), 20},
		{"gpio_v2_line_event.padding", unsafe.Offsetof(le.padding), 24},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

func TestIoctlNumbers(t *testing.T) {
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"GPIO_GET_CHIPINFO_IOCTL", gpioGetChipinfoIoctl, 0x8044b401},
		{"GPIO_V2_GET_LINEINFO_IOCTL", gpioV2GetLineinfoIoctl, 0xc100b405},
		{"GPIO_V2_GET_LINEINFO_WATCH_IOCTL", gpioV2GetLineinfoWatchIoctl, 0xc100b406},
		{"GPIO_GET_LINEINFO_UNWATCH_IOCTL", gpioGetLineinfoUnwatchIoctl, 0xc004b40c},
		{"GPIO_V2_GET_LINE_IOCTL", gpioV2GetLineIoctl, 0xc250b407},
		{"GPIO_V2_LINE_SET_CONFIG_IOCTL", gpioV2LineSetConfigIoctl, 0xc110b40d},
		{"GPIO_V2_LINE_GET_VALUES_IOCTL", gpioV2LineGetValuesIoctl, 0xc010b40e},
		{"GPIO_V2_LINE_SET_VALUES_IOCTL", gpioV2LineSetValuesIoctl, 0xc010b40f},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestConstants(t *testing.T) {
	tests := []struct {
		name      string
		got, want uint64
	}{
		{"GPIO_V2_LINE_FLAG_USED", uint64(LineFlagUsed), 1 << 0},
		{"GPIO_V2_LINE_FLAG_ACTIVE_LOW", uint64(LineFlagActiveLow), 1 << 1},
		{"GPIO_V2_LINE_FLAG_INPUT", uint64(LineFlagInput), 1 << 2},
		{"GPIO_V2_LINE_FLAG_OUTPUT", uint64(LineFlagOutput), 1 << 3},
		{"GPIO_V2_LINE_FLAG_EDGE_RISING", uint64(LineFlagEdgeRising), 1 << 4},
		{"GPIO_V2_LINE_FLAG_EDGE_FALLING", uint64(LineFlagEdgeFalling), 1 << 5},
		{"GPIO_V2_LINE_FLAG_OPEN_DRAIN", uint64(LineFlagOpenDrain), 1 << 6},
		{"GPIO_V2_LINE_FLAG_OPEN_SOURCE", uint64(LineFlagOpenSource), 1 << 7},
		{"GPIO_V2_LINE_FLAG_BIAS_PULL_UP", uint64(LineFlagBiasPullUp), 1 << 8},
		{"GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN", uint64(LineFlagBiasPullDown), 1 << 9},
		{"GPIO_V2_LINE_FLAG_BIAS_DISABLED", uint64(LineFlagBiasDisabled), 1 << 10},
		{"GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME", uint64(LineFlagEventClockRealtime), 1 << 11},
		{"GPIO_V2_LINE_FLAG_EVENT_CLOCK_HTE", uint64(LineFlagEventClockHTE), 1 << 12},
		{"GPIO_V2_LINE_ATTR_ID_FLAGS", attrIDFlags, 1},
		{"GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES", attrIDOutputValues, 2},
		{"GPIO_V2_LINE_ATTR_ID_DEBOUNCE", attrIDDebounce, 3},
		{"GPIO_V2_LINE_CHANGED_REQUESTED", uint64(LineChangedRequested), 1},
		{"GPIO_V2_LINE_CHANGED_RELEASED", uint64(LineChangedReleased), 2},
		{"GPIO_V2_LINE_CHANGED_CONFIG", uint64(LineChangedConfig), 3},
		{"GPIO_V2_LINE_EVENT_RISING_EDGE", uint64(EventRisingEdge), 1},
		{"GPIO_V2_LINE_EVENT_FALLING_EDGE", uint64(EventFallingEdge), 2},
		{"GPIO_MAX_NAME_SIZE", maxNameSize, 32},
		{"GPIO_V2_LINES_MAX", LinesMax, 64},
		{"GPIO_V2_LINE_NUM_ATTRS_MAX", numAttrsMax, 10},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestLineFlagString(t *testing.T) {
	tests := []struct {
		f    LineFlag
		want string
	}{
		{0, "0"},
		{LineFlagInput, "input"},
		{LineFlagUsed | LineFlagOutput | LineFlagBiasPullUp, "used|output|pull-up"},
		{LineFlagInput | LineFlagEdgeRising | LineFlagEdgeFalling, "input|edge-rising|edge-falling"},
		{LineFlagEventClockHTE | 1<<20, "clock-hte|0x100000"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("LineFlag(%#x).String() = %q, want %q", uint64(tt.f), got, tt.want)
		}
	}
}

func TestCString(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte("abc\x00def"), "abc"},
		{[]byte("abc"), "abc"},
		{[]byte{0, 'x'}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := cstring(tt.in); got != tt.want {
			t.Errorf("cstring(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
