// Package ratelog writes one-line diagnostics at a bounded rate, so that a
// guest that repeats a mistake in a loop cannot flood gvmm's stderr or log
// file: after a burst of Burst lines, at most one line per Interval gets
// through, and the next line that does says how many were suppressed.
package ratelog

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Defaults of New.
const (
	Burst    = 20
	Interval = time.Second
)

// Logger writes lines to an io.Writer. It is safe for concurrent use.
type Logger struct {
	w      io.Writer
	prefix string
	now    func() time.Time

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
	// CRLF ends lines with "\r\n", for a terminal in raw mode.
	crlf bool
}

// New returns a Logger writing prefix and each line to w.
func New(w io.Writer, prefix string) *Logger {
	return &Logger{w: w, prefix: prefix, now: time.Now, tokens: Burst}
}

// SetCRLF makes the Logger end lines with "\r\n" (on) or "\n" (off): a
// terminal in raw mode needs the carriage return.
func (l *Logger) SetCRLF(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.crlf = on
}

// Log writes one line, unless the rate is exceeded. Newlines inside line
// are replaced by spaces: one diagnostic is one line.
func (l *Logger) Log(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
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
	line = strings.ReplaceAll(line, "\n", " ")
	if l.suppressed > 0 {
		line = fmt.Sprintf("%s (%d earlier lines suppressed)", line, l.suppressed)
		l.suppressed = 0
	}
	l.write(line)
}

// Close writes how many lines were suppressed since the last one written,
// if any.
func (l *Logger) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.suppressed > 0 {
		l.write(fmt.Sprintf("%d more lines suppressed", l.suppressed))
		l.suppressed = 0
	}
}

func (l *Logger) write(line string) {
	end := "\n"
	if l.crlf {
		end = "\r\n"
	}
	_, _ = io.WriteString(l.w, l.prefix+line+end)
}
