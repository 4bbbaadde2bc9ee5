package ratelog

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRate(t *testing.T) {
	var buf syncBuffer
	l := New(&buf, "gvmm: ")
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for range Burst + 5 {
		l.Log("queue broken")
	}
	now = now.Add(Interval)
	l.Log("next\nline\r")
	l.Log("dropped")
	l.SetCRLF(true)
	l.Close()
	l.Log("after Close")
	lines := strings.Split(buf.String(), "\n")
	if len(lines) != Burst+3 || lines[0] != "gvmm: queue broken" {
		t.Fatalf("%d lines: %q", len(lines), lines)
	}
	if got, want := lines[Burst], "gvmm: next line  (5 earlier lines suppressed)"; got != want {
		t.Errorf("after the interval: %q, want %q", got, want)
	}
	if got, want := lines[Burst+1], "gvmm: 1 more lines suppressed\r"; got != want {
		t.Errorf("Close: %q, want %q", got, want)
	}
}

// blockedWriter blocks in Write until released, then writes to buf.
type blockedWriter struct {
	release chan struct{}
	buf     *syncBuffer
}

func (b blockedWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.buf.Write(p)
}

// TestStuckWriter: a writer that blocks (stderr piped into a pager nobody
// reads) never blocks Log; the lines that do not fit are counted as
// suppressed, and every line is accounted for in the end.
func TestStuckWriter(t *testing.T) {
	const lines = 10 * QueueLen
	w := blockedWriter{make(chan struct{}), &syncBuffer{}}
	l := New(w, "")
	now := time.Unix(1000, 0)
	l.now = func() time.Time { now = now.Add(time.Hour); return now } // no rate limit
	done := make(chan struct{})
	go func() {
		for range lines {
			l.Log("x")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Log blocked on a stuck writer")
	}
	close(w.release)
	l.Close()
	total := 0
	for _, line := range strings.Split(strings.TrimSuffix(w.buf.String(), "\n"), "\n") {
		var n int
		switch {
		case line == "x":
			total++
		case strings.HasPrefix(line, "x ("):
			fmt.Sscanf(line, "x (%d earlier lines suppressed)", &n)
			total += 1 + n
		default:
			if _, err := fmt.Sscanf(line, "%d more lines suppressed", &n); err != nil {
				t.Fatalf("line %q", line)
			}
			total += n
		}
	}
	if total != lines {
		t.Errorf("%d lines accounted for, want %d:\n%s", total, lines, w.buf.String())
	}
}
