package cdev

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// kernelFlags and kernelOutputValue read a config the way
// gpio_v2_line_config_flags and gpio_v2_line_config_output_value in
// drivers/gpio/gpiolib-cdev.c do: the first attribute whose mask has the
// line wins, else the default.
func kernelFlags(lc *gpioV2LineConfig, i int) LineFlag {
	for _, a := range lc.attrs[:lc.numAttrs] {
		if a.attr.id == attrIDFlags && a.mask&(1<<i) != 0 {
			return LineFlag(a.attr.value)
		}
	}
	return LineFlag(lc.flags)
}

func kernelOutputValue(lc *gpioV2LineConfig, i int) uint8 {
	for _, a := range lc.attrs[:lc.numAttrs] {
		if a.attr.id == attrIDOutputValues && a.mask&(1<<i) != 0 {
			return uint8(a.attr.value >> i & 1)
		}
	}
	return 0
}

func TestLineConfig(t *testing.T) {
	in, out := LineConfig{Flags: LineFlagInput}, LineConfig{Flags: LineFlagOutput}
	edges := LineConfig{Flags: LineFlagInput | LineFlagEdgeRising | LineFlagEdgeFalling}
	many := make([]LineConfig, 12)
	for i := range many {
		many[i].Flags = LineFlagInput | LineFlag(i)<<8
	}
	tests := []struct {
		name      string
		config    []LineConfig
		wantAttrs int    // number of attributes
		wantErr   string // substring of the error
	}{
		{name: "none", config: nil},
		{name: "as is", config: []LineConfig{{}, {}}},
		{name: "all inputs", config: []LineConfig{in, in, in}},
		{name: "one differs", config: []LineConfig{in, edges, in}, wantAttrs: 1},
		{name: "most common is default", config: []LineConfig{edges, in, in}, wantAttrs: 1},
		{name: "outputs", config: []LineConfig{out, {Flags: LineFlagOutput, Value: 1}, in}, wantAttrs: 2},
		{name: "only the changed line", config: []LineConfig{{}, {}, {Flags: LineFlagOutput, Value: 1}, {}}, wantAttrs: 2},
		{name: "nine sets and outputs", config: append(many[:9:9], LineConfig{Flags: LineFlagOutput, Value: 1}), wantAttrs: 10},
		{name: "eleven sets", config: many[:11], wantAttrs: 10},
		{name: "twelve sets", config: many, wantErr: "at most 10"},
		{name: "ten sets and outputs", config: append(many[:10:10], out), wantErr: "at most 10"},
		{name: "bad value", config: []LineConfig{in, {Flags: LineFlagOutput, Value: 2}}, wantErr: "value 2"},
		{name: "too many lines", config: make([]LineConfig, 65), wantErr: "at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc, err := lineConfig(tt.config)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if int(lc.numAttrs) != tt.wantAttrs {
				t.Errorf("%d attributes, want %d", lc.numAttrs, tt.wantAttrs)
			}
			for i, c := range tt.config {
				if got := kernelFlags(&lc, i); got != c.Flags {
					t.Errorf("line %d: kernel sees flags %v, want %v", i, got, c.Flags)
				}
				if c.Flags&LineFlagOutput == 0 {
					continue
				}
				if got := kernelOutputValue(&lc, i); got != c.Value {
					t.Errorf("line %d: kernel sees output value %d, want %d", i, got, c.Value)
				}
			}
			// gpio_v2_line_config_validate rejects non-zero padding and
			// unused attributes that are not zero.
			if lc.padding != [5]uint32{} {
				t.Errorf("padding %v", lc.padding)
			}
			for i, a := range lc.attrs {
				if a.attr.padding != 0 || (i >= int(lc.numAttrs) && a != (gpioV2LineConfigAttribute{})) {
					t.Errorf("attribute %d not clean: %+v", i, a)
				}
			}
		})
	}
}

func TestOpenChipErrors(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked")
	if err := os.WriteFile(locked, nil, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
		skipRoot         bool
	}{
		{name: "missing", path: filepath.Join(dir, "gpiochip9"), want: "no such file"},
		{name: "not a chip", path: "/dev/null", want: "/dev/null is not a GPIO chip"},
		{name: "permission", path: locked, want: "run as root", skipRoot: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skipRoot && os.Geteuid() == 0 {
				t.Skip("root may open anything")
			}
			c, err := OpenChip(tt.path)
			if err == nil {
				c.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q, want one line containing %q", err, tt.want)
			}
		})
	}
}

// pipeRequest is a Request whose file is a pipe: the test writes raw
// gpio_v2_line_event records into w. Its ioctls fail (ENOTTY).
func pipeRequest(t *testing.T, offsets ...int) (*Request, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return &Request{f: r, offsets: offsets}, w
}

func writeEvents(t *testing.T, w *os.File, evs ...gpioV2LineEvent) {
	t.Helper()
	if len(evs) == 0 {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&evs[0])), len(evs)*int(unsafe.Sizeof(evs[0])))
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestReadEvents(t *testing.T) {
	req, w := pipeRequest(t, 3, 7)
	writeEvents(t, w,
		gpioV2LineEvent{timestampNs: 100, id: 1, offset: 3, seqno: 1, lineSeqno: 1},
		gpioV2LineEvent{timestampNs: 200, id: 2, offset: 7, seqno: 2, lineSeqno: 1},
		gpioV2LineEvent{timestampNs: 300, id: 2, offset: 3, seqno: 3, lineSeqno: 2},
	)
	want := []LineEvent{
		{Offset: 3, ID: EventRisingEdge, TimestampNs: 100, Seqno: 1, LineSeqno: 1},
		{Offset: 7, ID: EventFallingEdge, TimestampNs: 200, Seqno: 2, LineSeqno: 1},
		{Offset: 3, ID: EventFallingEdge, TimestampNs: 300, Seqno: 3, LineSeqno: 2},
	}
	var got []LineEvent
	buf := make([]LineEvent, 2)
	for len(got) < len(want) {
		n, err := req.ReadEvents(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	// A deadline bounds the wait; Close ends it.
	if err := req.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := req.ReadEvents(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after the deadline: err = %v, want os.ErrDeadlineExceeded", err)
	}
	if err := req.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := req.ReadEvents(buf)
		done <- err
	}()
	req.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("after Close: err = %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not interrupt ReadEvents within 10s")
	}
}

func TestReadEventsTornRecord(t *testing.T) {
	req, w := pipeRequest(t, 0)
	if _, err := w.Write(make([]byte, 50)); err != nil {
		t.Fatal(err)
	}
	if _, err := req.ReadEvents(make([]LineEvent, 4)); err == nil || !strings.Contains(err.Error(), "not a whole number") {
		t.Fatalf("err = %v, want a torn-record error", err)
	}
}

func TestRequestArgumentErrors(t *testing.T) {
	req, _ := pipeRequest(t, 3, 7)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"Values with no lines", func() error { _, err := req.Values(0); return err }(), "mask 0x0"},
		{"Values beyond the request", func() error { _, err := req.Values(4); return err }(), "mask 0x4"},
		{"SetValues beyond the request", req.SetValues(0, 1<<63), "mask"},
		{"Reconfigure with too few configs", req.Reconfigure(make([]LineConfig, 1)), "1 line configs for 2 lines"},
		{"ioctl on a pipe", func() error { _, err := req.Values(1); return err }(), "GPIO_V2_LINE_GET_VALUES_IOCTL"},
	}
	for _, tt := range tests {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one containing %q", tt.name, tt.err, tt.want)
		}
	}
	req.Close()
	if _, err := req.Values(1); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Values after Close: err = %v, want os.ErrClosed", err)
	}
}
