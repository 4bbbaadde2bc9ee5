// Package agentwire is the framing between the host side of gvmmtest and
// gvmm-agent, the guest's command agent, over the guest's virtio console
// (/dev/hvc0 in raw mode).
//
// Every message is a frame: a 10-byte header, then the payload.
//
//	offset 0  u8      Magic (0xa7)
//	offset 1  u8      Type
//	offset 2  le32    ID: the command it is about (0 for Hello)
//	offset 6  le32    payload length, at most MaxPayload
//	offset 10 payload
//
// The agent starts by sending Hello; the host sends nothing before it (the
// console echoes until the agent has made it raw). The host then sends
// Exec (or ExecTerminal) frames, each with a fresh ID; the agent answers with Stdout and
// Stderr frames as the command writes, then exactly one Exit (or Error if
// the command could not start). Signal asks the agent to signal a
// command's process group.
package agentwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic starts every frame, so that a stream out of step is noticed at the
// next header rather than read as a huge length.
const Magic = 0xa7

// HeaderSize is the length of a frame header.
const HeaderSize = 10

// MaxPayload bounds a frame's payload; longer output is sent as several
// frames.
const MaxPayload = 64 << 10

// Type says what a frame carries.
type Type uint8

// Frame types. The direction is in the comment.
const (
	Hello  Type = iota + 1 // guest→host: the agent is ready; payload: its version
	Exec                   // host→guest: run payload with /bin/sh -c
	Signal                 // host→guest: payload: one byte, the signal number
	Stdout                 // guest→host: bytes the command wrote to standard output
	Stderr                 // guest→host: bytes the command wrote to standard error
	Exit                   // guest→host: payload: le32 exit status (128+N if killed by signal N)
	Error                  // guest→host: payload: why the command did not start
	// ExecTerminal is Exec with the command's standard output a terminal
	// (a pty in raw mode: bytes pass unchanged), so that programs which
	// buffer their output when it is a pipe, as C's stdio does, send each
	// line as they print it.
	ExecTerminal // host→guest
	lastType
)

var typeNames = [...]string{"", "hello", "exec", "signal", "stdout", "stderr", "exit", "error", "exec-terminal"}

// String returns the type's name.
func (t Type) String() string {
	if t > 0 && t < lastType {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Frame is one message.
type Frame struct {
	Type    Type
	ID      uint32
	Payload []byte
}

// ErrFrame is wrapped by every error about a malformed frame.
var ErrFrame = errors.New("agentwire: malformed frame")

// Append appends f's encoding to b. It returns an error if the payload is
// longer than MaxPayload.
func Append(b []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return b, fmt.Errorf("%w: %s payload of %d bytes, at most %d", ErrFrame, f.Type, len(f.Payload), MaxPayload)
	}
	b = append(b, Magic, byte(f.Type))
	b = binary.LittleEndian.AppendUint32(b, f.ID)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(f.Payload)))
	return append(b, f.Payload...), nil
}

// Write writes f to w in one Write call.
func Write(w io.Writer, f Frame) error {
	b, err := Append(make([]byte, 0, HeaderSize+len(f.Payload)), f)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Reader reads frames from a stream.
type Reader struct {
	r   *bufio.Reader
	hdr [HeaderSize]byte
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, HeaderSize+MaxPayload)} }

// Next reads the next frame. Its payload is a new slice of at most
// MaxPayload bytes. At the end of the stream it returns io.EOF, or
// io.ErrUnexpectedEOF inside a frame; a header with the wrong magic, an
// unknown type or a length over MaxPayload is an error wrapping ErrFrame,
// after which the stream cannot be trusted.
func (r *Reader) Next() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Frame{}, err
	}
	f, n, err := parseHeader(r.hdr[:])
	if err != nil {
		return Frame{}, err
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(r.r, f.Payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return f, nil
}

func parseHeader(h []byte) (Frame, uint32, error) {
	if h[0] != Magic {
		return Frame{}, 0, fmt.Errorf("%w: header starts with %#02x, not %#02x", ErrFrame, h[0], Magic)
	}
	f := Frame{Type: Type(h[1]), ID: binary.LittleEndian.Uint32(h[2:])}
	if f.Type == 0 || f.Type >= lastType {
		return Frame{}, 0, fmt.Errorf("%w: unknown type %d", ErrFrame, h[1])
	}
	n := binary.LittleEndian.Uint32(h[6:])
	if n > MaxPayload {
		return Frame{}, 0, fmt.Errorf("%w: %s payload of %d bytes, at most %d", ErrFrame, f.Type, n, MaxPayload)
	}
	return f, n, nil
}

// Status returns the exit status an Exit frame carries.
func (f Frame) Status() (int, error) {
	if f.Type != Exit || len(f.Payload) != 4 {
		return 0, fmt.Errorf("%w: %s frame with %d payload bytes is not an exit status", ErrFrame, f.Type, len(f.Payload))
	}
	return int(int32(binary.LittleEndian.Uint32(f.Payload))), nil
}

// ExitFrame returns the Exit frame for command id with status.
func ExitFrame(id uint32, status int) Frame {
	return Frame{Type: Exit, ID: id, Payload: binary.LittleEndian.AppendUint32(nil, uint32(int32(status)))}
}
