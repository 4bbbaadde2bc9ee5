// Command gvmm-agent is the guest image's command agent. /init starts it
// when the guest has a virtio console (/dev/hvc0); it runs the commands
// gvmmtest sends, each with /bin/sh -c, and sends back their output and
// exit status (internal/agentwire describes the frames).
//
// Any number of commands run at once. Each gets /dev/null as standard
// input and its own process group, which Signal frames signal.
package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gvmm/gvmm/internal/agentwire"
	"golang.org/x/sys/unix"
)

// version is sent in Hello.
const version = "gvmm-agent 1"

func main() {
	dev := "/dev/hvc0"
	if len(os.Args) > 1 {
		dev = os.Args[1]
	}
	// serve returns only when the channel is unusable.
	fmt.Fprintf(os.Stderr, "gvmm-agent: %v\n", serve(dev))
	os.Exit(1)
}

// agent is one session on the console.
type agent struct {
	wmu sync.Mutex // one frame at a time on the console
	w   io.Writer

	mu    sync.Mutex
	procs map[uint32]*os.Process
}

func serve(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := makeRaw(int(f.Fd())); err != nil {
		return fmt.Errorf("%s: raw mode: %w", dev, err)
	}
	a := &agent{w: f, procs: map[uint32]*os.Process{}}
	if err := a.send(agentwire.Frame{Type: agentwire.Hello, Payload: []byte(version)}); err != nil {
		return err
	}
	r := agentwire.NewReader(f)
	for {
		fr, err := r.Next()
		if err != nil {
			return fmt.Errorf("%s: %w", dev, err)
		}
		switch fr.Type {
		case agentwire.Exec, agentwire.ExecTerminal:
			a.exec(fr.ID, string(fr.Payload), fr.Type == agentwire.ExecTerminal)
		case agentwire.Signal:
			a.signal(fr.ID, fr.Payload)
		default:
			return fmt.Errorf("%s: unexpected %s frame from the host", dev, fr.Type)
		}
	}
}

// makeRaw puts the console's tty in raw mode, so that every byte passes
// unchanged both ways and nothing is echoed.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

func (a *agent) send(f agentwire.Frame) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return agentwire.Write(a.w, f)
}

// outputGrace is how long the output of a command's children may go on
// after the command itself has exited: a background job that keeps the
// command's standard output open (sh -c 'daemon &') would otherwise keep
// the command from ever ending. Output that keeps flowing resets it.
const outputGrace = 2 * time.Second

// exec starts script and reports its output and status from goroutines;
// with terminal, its standard output is a pty (see agentwire.ExecTerminal).
func (a *agent) exec(id uint32, script string, terminal bool) {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var pipes [2]*pipe
	var err error
	for i := range pipes {
		if i == 0 && terminal {
			pipes[i], err = newPTY()
		} else {
			pipes[i], err = newPipe()
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		cmd.Stdout, cmd.Stderr = pipes[0].w, pipes[1].w
		err = cmd.Start()
	}
	for _, p := range pipes {
		if p != nil {
			_ = p.w.Close() // the command has its own copies
			if err != nil {
				_ = p.r.Close()
			}
		}
	}
	if err != nil {
		_ = a.send(agentwire.Frame{Type: agentwire.Error, ID: id, Payload: []byte(err.Error())})
		return
	}
	a.mu.Lock()
	a.procs[id] = cmd.Process
	a.mu.Unlock()
	for i, t := range []agentwire.Type{agentwire.Stdout, agentwire.Stderr} {
		go a.copy(id, t, pipes[i])
	}
	go func() {
		err := cmd.Wait()
		a.mu.Lock()
		delete(a.procs, id)
		a.mu.Unlock()
		for _, p := range pipes {
			p.drain(outputGrace)
		}
		st := cmd.ProcessState
		if st == nil {
			_ = a.send(agentwire.Frame{Type: agentwire.Error, ID: id, Payload: []byte(err.Error())})
			return
		}
		status := st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = 128 + int(ws.Signal())
		}
		_ = a.send(agentwire.ExitFrame(id, status))
	}()
}

// pipe is one standard stream of a command, read by agent.copy.
type pipe struct {
	r, w *os.File
	last atomic.Int64 // when copy last finished sending bytes (UnixNano); MaxInt64 while it sends
	done chan struct{}
}

func newPipe() (*pipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p := &pipe{r: r, w: w, done: make(chan struct{})}
	p.last.Store(time.Now().UnixNano())
	return p, nil
}

// newPTY returns a pty in raw mode as a pipe: w is the terminal the
// command writes to, r its master side. Reading the master of a terminal
// nobody holds any more fails with EIO, which ends copy like an EOF.
func newPTY() (*pipe, error) {
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("pty: %w", err)
	}
	master := os.NewFile(uintptr(m), "/dev/ptmx") // non-blocking: Close ends a Read
	fail := func(what string, err error) (*pipe, error) {
		_ = master.Close()
		return nil, fmt.Errorf("pty: %s: %w", what, err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlock", err)
	}
	n, err := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err != nil {
		return fail("number", err)
	}
	s, err := unix.Open(fmt.Sprintf("/dev/pts/%d", n), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open", err)
	}
	if err := makeRaw(s); err != nil {
		_ = unix.Close(s)
		return fail("raw mode", err)
	}
	_ = unix.IoctlSetWinsize(s, unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	p := &pipe{r: master, w: os.NewFile(uintptr(s), fmt.Sprintf("/dev/pts/%d", n)), done: make(chan struct{})}
	p.last.Store(time.Now().UnixNano())
	return p, nil
}

// drain waits until copy has read p to its end or, once nothing came for
// grace, closes it (which ends copy).
func (p *pipe) drain(grace time.Duration) {
	t := time.NewTicker(grace / 4)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			if time.Since(time.Unix(0, p.last.Load())) >= grace {
				_ = p.r.Close()
				<-p.done
				return
			}
		}
	}
}

// copy sends what p gives as frames of type t until p ends. If the channel
// fails it goes on reading, so that the command is not blocked for good.
func (a *agent) copy(id uint32, t agentwire.Type, p *pipe) {
	defer close(p.done)
	buf := make([]byte, 32<<10)
	failed := false
	for {
		n, err := p.r.Read(buf)
		if n > 0 {
			p.last.Store(math.MaxInt64) // busy: a slow host is not an idle pipe
			if !failed && a.send(agentwire.Frame{Type: t, ID: id, Payload: buf[:n]}) != nil {
				failed = true
			}
			p.last.Store(time.Now().UnixNano())
		}
		if err != nil {
			return
		}
	}
}

// signal sends the signal in payload to command id's process group; a
// command that has already ended is not an error. The lock is held across
// the kill so that it cannot reach a group whose leader was reaped.
func (a *agent) signal(id uint32, payload []byte) {
	if len(payload) != 1 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.procs[id]; p != nil {
		_ = syscall.Kill(-p.Pid, syscall.Signal(payload[0]))
	}
}
