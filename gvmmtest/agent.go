package gvmmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gvmm/gvmm/internal/agentwire"
)

// MaxOutput bounds what is kept of each standard stream of a guest
// command: past it, output is counted and dropped; Proc.Dropped counts it
// and Run's error says so.
const MaxOutput = 16 << 20

// session is the host side of the guest agent's channel: it reads frames
// from the console device's output and hands them to the commands.
type session struct {
	send   func([]byte) // writes to the guest's console port
	nextID atomic.Uint32
	ready  chan struct{} // closed at the agent's Hello

	mu     sync.Mutex
	procs  map[uint32]*Proc
	err    error         // why the channel is unusable, once it is
	broken chan struct{} // closed when err is set
}

func newSession(send func([]byte)) *session {
	return &session{send: send, ready: make(chan struct{}), procs: map[uint32]*Proc{}, broken: make(chan struct{})}
}

// serve reads frames from r (the console device's output) until it ends
// or breaks. It always reads r to its end, so the guest never waits on a
// host that stopped listening.
func (s *session) serve(r io.Reader) {
	defer func() { _, _ = io.Copy(io.Discard, r) }()
	fr := agentwire.NewReader(r)
	for {
		f, err := fr.Next()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the guest's console closed")
			}
			s.fail(fmt.Errorf("agent channel: %w", err))
			return
		}
		if err := s.handle(f); err != nil {
			s.fail(fmt.Errorf("agent channel: %w", err))
			return
		}
	}
}

func (s *session) handle(f agentwire.Frame) error {
	switch f.Type {
	case agentwire.Hello:
		select {
		case <-s.ready:
			return fmt.Errorf("a second hello (%q): the agent restarted", f.Payload)
		default:
			close(s.ready)
		}
		return nil
	case agentwire.Stdout, agentwire.Stderr, agentwire.Exit, agentwire.Error:
	default:
		return fmt.Errorf("unexpected %s frame from the guest", f.Type)
	}
	s.mu.Lock()
	p := s.procs[f.ID]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s frame for command %d, which is not running", f.Type, f.ID)
	}
	switch f.Type {
	case agentwire.Stdout:
		p.stdout.write(f.Payload)
	case agentwire.Stderr:
		p.stderr.write(f.Payload)
	case agentwire.Exit:
		st, err := f.Status()
		if err != nil {
			return err // fail ends p
		}
		s.end(p, st, nil)
	case agentwire.Error:
		s.end(p, -1, fmt.Errorf("gvmmtest: guest command %q failed in the agent: %s", p.cmd, f.Payload))
	}
	return nil
}

// end ends p with status and err.
func (s *session) end(p *Proc, status int, err error) {
	s.mu.Lock()
	delete(s.procs, p.id)
	s.mu.Unlock()
	p.finish(status, err)
}

// fail marks the channel broken and ends every running command with err.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	close(s.broken)
	procs := s.procs
	s.procs = map[uint32]*Proc{}
	s.mu.Unlock()
	for _, p := range procs {
		p.finish(-1, err)
	}
}

// start sends cmd to the agent; with terminal, its standard output is a
// terminal (agentwire.ExecTerminal).
func (s *session) start(cmd string, terminal bool) *Proc {
	p := &Proc{cmd: cmd, s: s, id: s.nextID.Add(1), done: make(chan struct{})}
	p.stdout.changed = make(chan struct{})
	s.mu.Lock()
	if err := s.err; err != nil {
		s.mu.Unlock()
		p.finish(-1, err)
		return p
	}
	s.procs[p.id] = p
	s.mu.Unlock()
	t := agentwire.Exec
	if terminal {
		t = agentwire.ExecTerminal
	}
	b, err := agentwire.Append(nil, agentwire.Frame{Type: t, ID: p.id, Payload: []byte(cmd)})
	if err != nil {
		s.mu.Lock()
		delete(s.procs, p.id)
		s.mu.Unlock()
		p.finish(-1, fmt.Errorf("gvmmtest: command of %d bytes: at most %d", len(cmd), agentwire.MaxPayload))
		return p
	}
	s.send(b)
	return p
}

// Proc is a command running in the guest, started by VM.Start.
type Proc struct {
	cmd string
	s   *session
	id  uint32

	stdout, stderr stream
	done           chan struct{}
	finished       sync.Once
	status         int
	err            error
	lineOff        int // where WaitLine's next search starts in stdout
}

// stream is one standard stream of a command, kept up to MaxOutput.
type stream struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	dropped int
	changed chan struct{} // closed and replaced at each write (stdout only)
}

func (s *stream) write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(p), MaxOutput-s.buf.Len())
	s.buf.Write(p[:n])
	s.dropped += len(p) - n
	if s.changed != nil {
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

func (s *stream) droppedBytes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

func (s *stream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// finish ends p; only the first call counts (the channel and the VM may
// end it at once).
func (p *Proc) finish(status int, err error) {
	p.finished.Do(func() {
		p.status, p.err = status, err
		close(p.done)
		p.stdout.write(nil) // wakes WaitLine
	})
}

// Wait waits for the command to end and returns its exit status (128+N if
// signal N killed it). The error is non-nil if the status could not be
// known: ctx ended first (without a deadline: after DefaultCmdTimeout; the
// error names the command), the VM stopped, or the agent's channel broke.
func (p *Proc) Wait(ctx context.Context) (int, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	select {
	case <-p.done:
		return p.status, p.err
	case <-ctx.Done():
		return -1, fmt.Errorf("gvmmtest: guest command %q: %w", p.cmd, context.Cause(ctx))
	}
}

// Output returns what the command wrote to its standard output and error
// so far, each up to MaxOutput bytes.
func (p *Proc) Output() (stdout, stderr string) { return p.stdout.String(), p.stderr.String() }

// Dropped returns how many bytes of each stream were dropped past
// MaxOutput.
func (p *Proc) Dropped() (stdout, stderr int) {
	return p.stdout.droppedBytes(), p.stderr.droppedBytes()
}

// Signal sends sig to the command's process group in the guest. A command
// that has ended is not an error.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	b, _ := agentwire.Append(nil, agentwire.Frame{Type: agentwire.Signal, ID: p.id, Payload: []byte{byte(sig)}})
	p.s.send(b)
	return nil
}

// WaitLine waits for a line of the command's standard output containing
// substr and returns it (without its newline). Each call looks only at
// output after the line the previous call returned. It fails if ctx ends
// first (without a deadline: after DefaultCmdTimeout) or the command ends
// without printing such a line.
func (p *Proc) WaitLine(ctx context.Context, substr string) (string, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	for {
		ended := false
		select {
		case <-p.done:
			ended = true // all the output is in: the last line may lack its newline
		default:
		}
		line, ok, changed := p.nextLine(substr, ended)
		if ok {
			return line, nil
		}
		if ended {
			return "", p.endedWithout(substr)
		}
		select {
		case <-changed:
		case <-p.done:
		case <-ctx.Done():
			return "", fmt.Errorf("gvmmtest: guest command %q: no line with %q on its output: %w", p.cmd, substr, context.Cause(ctx))
		}
	}
}

// nextLine looks through the output WaitLine has not looked at for a line
// containing substr, taking an unterminated last line too if final.
func (p *Proc) nextLine(substr string, final bool) (line string, ok bool, changed <-chan struct{}) {
	p.stdout.mu.Lock()
	defer p.stdout.mu.Unlock()
	out := p.stdout.buf.Bytes()[p.lineOff:]
	for len(out) > 0 {
		n := bytes.IndexByte(out, '\n') + 1
		if n == 0 && !final {
			break
		}
		if n == 0 {
			n = len(out)
		}
		line, out = strings.TrimSuffix(string(out[:n]), "\n"), out[n:]
		p.lineOff += n
		if strings.Contains(line, substr) {
			return line, true, nil
		}
	}
	return "", false, p.stdout.changed
}

func (p *Proc) endedWithout(substr string) error {
	if p.err != nil {
		return fmt.Errorf("gvmmtest: guest command %q: no line with %q: %w", p.cmd, substr, p.err)
	}
	return fmt.Errorf("gvmmtest: guest command %q exited with status %d without a line with %q", p.cmd, p.status, substr)
}

// ExitError is the error of VM.Run for a command that exited with a status
// other than 0.
type ExitError struct {
	Cmd    string
	Status int
	Stderr string // the command's standard error
}

// Error names the command and its status, with its standard error.
func (e *ExitError) Error() string {
	msg := fmt.Sprintf("gvmmtest: guest command %q exited with status %d", e.Cmd, e.Status)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += "; stderr: " + s
	}
	return msg
}
