package vmm

import (
	"bytes"
	"io"
	"strconv"
	"sync"
)

// Lines the guest prints that tell gvmm how it ended.
var (
	panicStart = []byte("Kernel panic - not syncing")
	panicEnd   = []byte("---[ end Kernel panic")
	// statusLine is printed by the image's /init (images/init) after a
	// command given with gvmm.run= finished.
	statusLine = []byte("[gvmm] command exited with status ")
)

// consoleWatch passes the console stream through to w and notes, line by
// line, a kernel panic and the exit status reported by the image's init.
type consoleWatch struct {
	w       io.Writer
	onPanic func() // called once the panic report is complete

	mu       sync.Mutex
	line     []byte
	panicked string
	status   int
	hasExit  bool
}

const maxLine = 512

func (c *consoleWatch) Write(p []byte) (int, error) {
	c.mu.Lock()
	for _, b := range p {
		if b != '\n' {
			if len(c.line) < maxLine {
				c.line = append(c.line, b)
			}
			continue
		}
		c.endLine()
		c.line = c.line[:0]
	}
	c.mu.Unlock()
	if c.w == nil {
		return len(p), nil
	}
	return c.w.Write(p)
}

func (c *consoleWatch) endLine() {
	l := bytes.TrimRight(c.line, "\r")
	switch {
	case bytes.Contains(l, panicEnd):
		if c.onPanic != nil {
			go c.onPanic()
		}
	case bytes.Contains(l, panicStart):
		if c.panicked == "" {
			c.panicked = string(l[bytes.Index(l, panicStart):])
		}
	case bytes.HasPrefix(l, statusLine):
		if n, err := strconv.Atoi(string(l[len(statusLine):])); err == nil {
			c.status, c.hasExit = n, true
		}
	}
}

// result returns the panic message (if any) and the reported exit status.
func (c *consoleWatch) result() (panicMsg string, status int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.panicked, c.status, c.hasExit
}
