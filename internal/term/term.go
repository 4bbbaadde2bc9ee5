// Package term puts the controlling terminal in raw mode for a guest
// console and filters the escape sequence that ends gvmm.
package term

import (
	"golang.org/x/sys/unix"
)

// MakeRaw puts the terminal on fd in raw mode (no echo, no line editing,
// no signals from ^C, no output post-processing) and returns a function
// that restores it. ok is false when fd is not a terminal.
func MakeRaw(fd int) (restore func(), ok bool) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}, false
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return func() {}, false
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, true
}

// EscapeKey is the prefix of gvmm's console commands: Ctrl-A, as in QEMU.
const EscapeKey = 0x01

// Escape filters console input. After Ctrl-A, 'x' asks to quit and a
// second Ctrl-A sends one Ctrl-A to the guest; any other key is passed on
// together with the Ctrl-A before it.
type Escape struct {
	pending bool
}

// Filter returns the bytes of in to pass to the guest and whether the
// user asked to quit. Bytes after a quit request are dropped.
func (e *Escape) Filter(in []byte) (out []byte, quit bool) {
	out = make([]byte, 0, len(in))
	for _, b := range in {
		if e.pending {
			e.pending = false
			switch b {
			case 'x', 'X':
				return out, true
			case EscapeKey:
				out = append(out, EscapeKey)
			default:
				out = append(out, EscapeKey, b)
			}
			continue
		}
		if b == EscapeKey {
			e.pending = true
			continue
		}
		out = append(out, b)
	}
	return out, false
}

// IsTerminal reports whether w is a terminal (a file with termios).
func IsTerminal(w any) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
