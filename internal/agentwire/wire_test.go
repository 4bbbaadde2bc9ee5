package agentwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: Hello, Payload: []byte("gvmm-agent 1")},
		{Type: Exec, ID: 1, Payload: []byte("gpioget gpiochip0 3")},
		{Type: Stdout, ID: 1, Payload: bytes.Repeat([]byte{0, 0xa7, '\n', 0xff}, MaxPayload/4)},
		{Type: Stderr, ID: 1, Payload: []byte{}},
		ExitFrame(1, -1),
		ExitFrame(2, 130),
		{Type: Signal, ID: 7, Payload: []byte{15}},
		{Type: Error, ID: 0xffffffff, Payload: []byte("fork: out of memory")},
	}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := Write(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	for i, want := range frames {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || got.ID != want.ID || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %s %d (%d bytes), want %s %d (%d bytes)", i, got.Type, got.ID, len(got.Payload), want.Type, want.ID, len(want.Payload))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
	if s, err := frames[4].Status(); err != nil || s != -1 {
		t.Errorf("Status = %d, %v; want -1", s, err)
	}
}

func TestBadFrames(t *testing.T) {
	valid, _ := Append(nil, Frame{Type: Stdout, ID: 3, Payload: []byte("abc")})
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"bad magic", append([]byte{0x41}, valid[1:]...), ErrFrame},
		{"type 0", append([]byte{Magic, 0}, valid[2:]...), ErrFrame},
		{"unknown type", append([]byte{Magic, byte(lastType)}, valid[2:]...), ErrFrame},
		{"length over the limit", []byte{Magic, byte(Stdout), 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x00}, ErrFrame},
		{"length 4 GiB", []byte{Magic, byte(Stdout), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, ErrFrame},
		{"truncated header", valid[:5], io.ErrUnexpectedEOF},
		{"truncated payload", valid[:len(valid)-1], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.input)).Next()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Append(nil, Frame{Type: Stdout, Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrFrame) {
		t.Errorf("Append of an over-long payload: %v, want ErrFrame", err)
	}
	if _, err := (Frame{Type: Stdout, Payload: make([]byte, 4)}).Status(); !errors.Is(err, ErrFrame) {
		t.Errorf("Status of a stdout frame: %v, want ErrFrame", err)
	}
}

// FuzzReader: whatever the guest sends, Next returns frames no longer than
// MaxPayload or an error, and never panics; every frame it returns
// re-encodes to the bytes it came from.
func FuzzReader(f *testing.F) {
	ok, _ := Append(nil, Frame{Type: Hello, Payload: []byte("gvmm-agent 1")})
	ok, _ = Append(ok, ExitFrame(1, 0))
	f.Add(ok)
	f.Add([]byte{Magic, byte(Stdout), 1, 0, 0, 0, 0xff, 0xff, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		var re []byte
		for {
			fr, err := r.Next()
			if err != nil {
				if !bytes.HasPrefix(data, re) {
					t.Fatalf("frames read do not re-encode to a prefix of the input")
				}
				return
			}
			if len(fr.Payload) > MaxPayload {
				t.Fatalf("payload of %d bytes", len(fr.Payload))
			}
			if fr.Type == Exit {
				_, _ = fr.Status()
			}
			if re, err = Append(re, fr); err != nil {
				t.Fatal(err)
			}
		}
	})
}
