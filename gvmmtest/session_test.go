package gvmmtest

// Tests of the host side of the agent's channel and of the console tail,
// without a VM: the frames are what gvmm-agent would send.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gvmm/gvmm/internal/agentwire"
)

// agentSide is the guest end of a session: what the test writes goes to
// session.serve, what the session sends is recorded.
type agentSide struct {
	w    *io.PipeWriter
	sent chan []byte
}

func newTestSession(t *testing.T) (*session, *agentSide) {
	pr, pw := io.Pipe()
	a := &agentSide{w: pw, sent: make(chan []byte, 100)}
	s := newSession(func(b []byte) { a.sent <- b })
	done := make(chan struct{})
	go func() { s.serve(pr); close(done) }()
	t.Cleanup(func() { _ = pw.Close(); <-done })
	return s, a
}

func (a *agentSide) send(t *testing.T, f agentwire.Frame) {
	t.Helper()
	if err := agentwire.Write(a.w, f); err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, p *Proc) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.Wait(ctx)
}

func TestSessionCommand(t *testing.T) {
	s, a := newTestSession(t)
	a.send(t, agentwire.Frame{Type: agentwire.Hello, Payload: []byte("gvmm-agent 1")})
	<-s.ready
	p := s.start("echo hi", false)
	if got := <-a.sent; string(got[agentwire.HeaderSize:]) != "echo hi" || agentwire.Type(got[1]) != agentwire.Exec {
		t.Fatalf("sent %q", got)
	}
	a.send(t, agentwire.Frame{Type: agentwire.Stdout, ID: p.id, Payload: []byte("h")})
	a.send(t, agentwire.Frame{Type: agentwire.Stdout, ID: p.id, Payload: []byte("i\npartial")})
	a.send(t, agentwire.Frame{Type: agentwire.Stderr, ID: p.id, Payload: []byte("warn")})
	ctx := context.Background()
	if l, err := p.WaitLine(ctx, "h"); l != "hi" || err != nil {
		t.Fatalf("WaitLine = %q, %v", l, err)
	}
	a.send(t, agentwire.ExitFrame(p.id, 5))
	if st, err := wait(t, p); st != 5 || err != nil {
		t.Fatalf("Wait = %d, %v", st, err)
	}
	if l, err := p.WaitLine(ctx, "part"); l != "partial" || err != nil {
		t.Fatalf("WaitLine of the unterminated last line = %q, %v", l, err)
	}
	if out, errOut := p.Output(); out != "hi\npartial" || errOut != "warn" {
		t.Fatalf("Output = %q, %q", out, errOut)
	}
}

// TestSessionBadGuest: whatever the guest sends, the commands waiting get
// an error naming the problem and the stream is read to its end.
func TestSessionBadGuest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes []byte
		want  string
	}{
		{"garbage", []byte("\x00\x01 random bytes from a confused guest"), "malformed frame"},
		{"huge length", []byte{agentwire.Magic, byte(agentwire.Stdout), 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}, "at most"},
		{"unknown command", frame(agentwire.Frame{Type: agentwire.Stdout, ID: 99, Payload: []byte("x")}), "command 99, which is not running"},
		{"exit without status", frame(agentwire.Frame{Type: agentwire.Exit, ID: 1}), "not an exit status"},
		{"host frame from the guest", frame(agentwire.Frame{Type: agentwire.Exec, ID: 1}), "unexpected exec frame"},
		{"second hello", frame(agentwire.Frame{Type: agentwire.Hello}), "agent restarted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, a := newTestSession(t)
			a.send(t, agentwire.Frame{Type: agentwire.Hello})
			<-s.ready
			p := s.start("sleep 1000", false)
			<-a.sent
			if _, err := a.w.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if _, err := wait(t, p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			// The stream is still read (to its end), and new commands fail at once.
			if _, err := a.w.Write(make([]byte, 1<<20)); err != nil {
				t.Fatalf("the session stopped reading: %v", err)
			}
			if _, err := wait(t, s.start("true", false)); err == nil {
				t.Fatal("a command on a broken channel did not fail")
			}
		})
	}
}

func frame(f agentwire.Frame) []byte {
	b, err := agentwire.Append(nil, f)
	if err != nil {
		panic(err)
	}
	return b
}

// TestSessionOutputBounded: a command printing more than MaxOutput keeps
// the first MaxOutput bytes and counts the rest.
func TestSessionOutputBounded(t *testing.T) {
	s, a := newTestSession(t)
	a.send(t, agentwire.Frame{Type: agentwire.Hello})
	<-s.ready
	p := s.start("yes", true)
	<-a.sent
	chunk := make([]byte, agentwire.MaxPayload)
	for range MaxOutput/len(chunk) + 3 {
		a.send(t, agentwire.Frame{Type: agentwire.Stdout, ID: p.id, Payload: chunk})
	}
	a.send(t, agentwire.ExitFrame(p.id, 0))
	if _, err := wait(t, p); err != nil {
		t.Fatal(err)
	}
	if out, _ := p.Output(); len(out) != MaxOutput || p.stdout.dropped != 3*len(chunk) {
		t.Fatalf("kept %d bytes, dropped %d", len(out), p.stdout.dropped)
	}
}

func TestSessionEnds(t *testing.T) {
	s, a := newTestSession(t)
	a.send(t, agentwire.Frame{Type: agentwire.Hello})
	<-s.ready
	p := s.start("sleep 1000", false)
	<-a.sent
	s.fail(errors.New("the guest kernel panicked: Kernel panic - not syncing: test"))
	if _, err := wait(t, p); err == nil || !strings.Contains(err.Error(), "Kernel panic") {
		t.Fatalf("got %v", err)
	}
	if _, err := p.WaitLine(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "Kernel panic") {
		t.Fatalf("WaitLine after the end: %v", err)
	}
}

func TestTail(t *testing.T) {
	tl := newTail(3)
	_, _ = tl.Write([]byte("one\r\ntwo\nthr"))
	_, _ = tl.Write([]byte("ee\nfour\nfi"))
	tl.Log("six " + strings.Repeat("x", 2*maxLineLen))
	got := tl.String()
	if want := "[... 2 earlier lines]\nthree\nfour\nsix "; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "\nfi\n") {
		t.Fatalf("got %q, want it to start with %q", got, want)
	}
	if n := len(strings.Split(got, "\n")[3]); n != maxLineLen {
		t.Errorf("long line kept at %d bytes, want %d", n, maxLineLen)
	}
}

// FuzzSession feeds any bytes, as the guest's side of the console, to a
// session with two commands waiting: nothing may panic, and once the
// stream ends both commands have ended, each with at most MaxOutput bytes
// of each stream kept. No guest output can wedge the host side.
//
//	go test -run '^$' -fuzz FuzzSession ./gvmmtest
func FuzzSession(f *testing.F) {
	var ok []byte
	for _, fr := range []agentwire.Frame{
		{Type: agentwire.Hello, Payload: []byte("gvmm-agent 1")},
		{Type: agentwire.Stdout, ID: 1, Payload: []byte("out\n")},
		{Type: agentwire.Stderr, ID: 2, Payload: []byte("err")},
		agentwire.ExitFrame(1, 0),
		{Type: agentwire.Error, ID: 2, Payload: []byte("no such file")},
	} {
		ok = append(ok, frame(fr)...)
	}
	f.Add(ok)
	f.Add(ok[:len(ok)-3])
	f.Add([]byte("\x00\x01 random bytes"))
	f.Add(frame(agentwire.Frame{Type: agentwire.Exit, ID: 1, Payload: []byte{1}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSession(func([]byte) {})
		p1, p2 := s.start("one", false), s.start("two", true)
		s.serve(bytes.NewReader(data))
		for _, p := range []*Proc{p1, p2} {
			select {
			case <-p.done:
			default:
				t.Fatalf("command %q still waits after the stream ended", p.cmd)
			}
			if out, errOut := p.Output(); len(out) > MaxOutput || len(errOut) > MaxOutput {
				t.Fatalf("kept %d and %d bytes", len(out), len(errOut))
			}
		}
	})
}
