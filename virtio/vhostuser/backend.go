package vhostuser

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gvmm/gvmm/virtio"
)

// WriteTimeout bounds how long a reply may wait for the front end to
// read it; a front end that stops reading is hung up on.
const WriteTimeout = 10 * time.Second

// Backend serves one virtio.Device to vhost-user front ends, one
// connection at a time: the device keeps its state between connections
// (a simulated bank's lines, held host lines), and is reset at the end of
// each.
type Backend struct {
	// Device is the device served. The Backend calls its methods as a
	// transport does (virtio.Device): Activate when the front end has
	// started and enabled every ring it set up, Notify on each kick,
	// Reset when the rings stop (GET_VRING_BASE, SET_VRING_ENABLE 0),
	// on RESET_OWNER and when the connection ends.
	Device virtio.Device
	// Log, if set, receives one line, without a newline, for each
	// message refused (naming the request and the problem), each
	// connection ended by an error, and each line the device logs. It is
	// called from the connection's goroutine and the device's, maybe at
	// once; the caller rate-limits it.
	Log func(line string)
	// Verbose also logs connections, device starts and stops.
	Verbose bool

	serving sync.Mutex // held by ServeConn: one session at a time

	mu     sync.Mutex
	closed bool
	l      net.Listener
	conn   *net.UnixConn
}

// Serve accepts connections on l and serves each in turn until Close,
// when it returns nil, or until Accept fails otherwise. A front end that
// goes away is replaced by the next one to connect; a front end that
// sends a malformed message is logged and hung up on, and the next one
// served.
func (b *Backend) Serve(l net.Listener) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return l.Close()
	}
	b.l = l
	b.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			if b.isClosed() {
				return nil
			}
			return err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			b.logf("vhost-user: a %T connection refused: not a Unix socket", c)
			_ = c.Close()
			continue
		}
		_ = b.ServeConn(uc)
	}
}

// ServeConn serves one front end on c until it hangs up (nil), sends a
// message that ends the connection (the error, which is also logged),
// or Close. It closes c, and stops and resets the device, before it
// returns.
func (b *Backend) ServeConn(c *net.UnixConn) error {
	b.serving.Lock()
	defer b.serving.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = c.Close()
		return net.ErrClosed
	}
	b.conn = c
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.conn = nil
		b.mu.Unlock()
		_ = c.Close()
	}()
	if b.Verbose {
		b.logf("vhost-user: front end connected")
	}
	s := newSession(b, connWriter{c})
	err := s.serve(c)
	switch {
	case b.isClosed():
		return nil
	case err != nil:
		b.logf("vhost-user: %v; connection closed", err)
	case b.Verbose:
		b.logf("vhost-user: front end disconnected")
	}
	return err
}

// Close stops Serve and ends the connection being served, if any (its
// device is reset as the connection ends, before ServeConn returns).
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	var err error
	if b.l != nil {
		err = b.l.Close()
	}
	if b.conn != nil {
		_ = b.conn.Close()
	}
	return err
}

func (b *Backend) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *Backend) logf(format string, args ...any) {
	if b.Log != nil {
		b.Log(fmt.Sprintf(format, args...))
	}
}

// connWriter writes replies with a deadline.
type connWriter struct{ c *net.UnixConn }

func (w connWriter) Write(p []byte) (int, error) {
	_ = w.c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	return w.c.Write(p)
}
