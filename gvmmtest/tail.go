package gvmmtest

import (
	"strconv"
	"strings"
	"sync"
)

// tail keeps the last lines written to it, for failure messages: at most
// maxLines lines of at most maxLineLen bytes each, whatever is written.
type tail struct {
	mu       sync.Mutex
	lines    []string // ring of complete lines
	next     int      // where the next complete line goes once the ring is full
	partial  []byte   // the line being written
	dropped  int      // lines that fell off the ring
	maxLines int
}

const maxLineLen = 1024

func newTail(maxLines int) *tail { return &tail{maxLines: maxLines} }

// Write records p; it never fails.
func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range p {
		switch {
		case b == '\n':
			t.add(strings.TrimRight(string(t.partial), "\r"))
			t.partial = t.partial[:0]
		case len(t.partial) < maxLineLen:
			t.partial = append(t.partial, b)
		}
	}
	return len(p), nil
}

// Log records one line.
func (t *tail) Log(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(line) > maxLineLen {
		line = line[:maxLineLen]
	}
	t.add(line)
}

func (t *tail) add(l string) {
	if len(t.lines) < t.maxLines {
		t.lines = append(t.lines, l)
		return
	}
	t.lines[t.next] = l
	t.next = (t.next + 1) % t.maxLines
	t.dropped++
}

// String returns the lines kept, oldest first, each ending in a newline,
// then the line being written if any; a first line says how many were
// dropped.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	if t.dropped > 0 {
		b.WriteString("[... " + strconv.Itoa(t.dropped) + " earlier lines]\n")
	}
	for i := range t.lines {
		b.WriteString(t.lines[(t.next+i)%len(t.lines)])
		b.WriteByte('\n')
	}
	if len(t.partial) > 0 {
		b.Write(t.partial)
		b.WriteByte('\n')
	}
	return b.String()
}
