package ratelog

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRate(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "gvmm: ")
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for range Burst + 5 {
		l.Log("queue broken")
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != Burst || lines[0] != "gvmm: queue broken" {
		t.Fatalf("%d lines after a burst, want %d: %q", len(lines), Burst, lines)
	}
	now = now.Add(Interval)
	l.Log("next\nline")
	if want := "gvmm: next line (5 earlier lines suppressed)\n"; !strings.HasSuffix(buf.String(), want) {
		t.Errorf("after the interval: %q, want suffix %q", buf.String(), want)
	}
	l.Log("dropped")
	l.SetCRLF(true)
	l.Close()
	if want := "gvmm: 1 more lines suppressed\r\n"; !strings.HasSuffix(buf.String(), want) {
		t.Errorf("Close: %q, want suffix %q", buf.String(), want)
	}
}
