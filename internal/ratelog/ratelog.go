// Package ratelog writes one-line diagnostics at a bounded rate, so that a
// guest that repeats a mistake in a loop cannot flood gvmm's stderr or log
// file: after a burst of Burst lines, at most one line per Interval gets
// through, and the next line that does says how many were suppressed.
//
// Log never blocks its caller (a vCPU thread, a device goroutine): lines
// go to a goroutine that writes them, through a queue of QueueLen lines;
// when the writer is stuck (stderr piped into a pager nobody reads), a
// line that finds the queue full counts as suppressed.
package ratelog

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Limits.
const (
	Burst    = 20          // lines let through at once
	Interval = time.Second // then one line per Interval
	QueueLen = 64          // lines waiting for the writer
)

// Logger writes lines to an io.Writer. It is safe for concurrent use.
type Logger struct {
	w       io.Writer
	prefix  string
	now     func() time.Time
	lines   chan string
	written chan struct{} // closed when the writer has returned

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
	crlf       bool
	closed     bool
}

// New returns a Logger writing prefix and each line to w.
func New(w io.Writer, prefix string) *Logger {
	l := &Logger{w: w, prefix: prefix, now: time.Now, tokens: Burst,
		lines: make(chan string, QueueLen), written: make(chan struct{})}
	go func() {
		defer close(l.written)
		for line := range l.lines {
			_, _ = io.WriteString(l.w, line)
		}
	}()
	return l
}

// SetCRLF makes the Logger end lines with "\r\n" (on) or "\n" (off): a
// terminal in raw mode needs the carriage return.
func (l *Logger) SetCRLF(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.crlf = on
}

// Log writes one line, unless the rate is exceeded or the writer is too
// far behind. Line breaks inside line become spaces: one diagnostic is
// one line.
func (l *Logger) Log(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(Burst, l.tokens+float64(now.Sub(l.last))/float64(Interval))
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return
	}
	l.tokens--
	line = strings.NewReplacer("\r", " ", "\n", " ").Replace(line)
	if l.suppressed > 0 {
		line = fmt.Sprintf("%s (%d earlier lines suppressed)", line, l.suppressed)
	}
	select {
	case l.lines <- l.format(line):
		l.suppressed = 0
	default:
		l.suppressed++
	}
}

// Close writes what is queued, then how many lines were suppressed since
// the last one written, if any. Log does nothing afterwards.
func (l *Logger) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.lines)
	l.mu.Unlock()
	<-l.written
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.suppressed > 0 {
		_, _ = io.WriteString(l.w, l.format(fmt.Sprintf("%d more lines suppressed", l.suppressed)))
		l.suppressed = 0
	}
}

// format adds the prefix and the line end; l.mu is held.
func (l *Logger) format(line string) string {
	end := "\n"
	if l.crlf {
		end = "\r\n"
	}
	return l.prefix + line + end
}
