// Command gvmm-agent is the guest image's command agent. /init starts it
// when the guest has a virtio console (/dev/hvc0); it runs the commands
// gvmmtest sends, each with /bin/sh -c, and sends back their output and
// exit status (internal/agentwire describes the frames).
//
// Any number of commands run at once. Each gets /dev/null as standard
// input and its own process group, which Signal frames signal.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"

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
		case agentwire.Exec:
			a.exec(fr.ID, string(fr.Payload))
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

// exec starts script and reports its output and status from goroutines.
func (a *agent) exec(id uint32, script string) {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err1 := cmd.StdoutPipe()
	stderr, err2 := cmd.StderrPipe()
	err := errors.Join(err1, err2)
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		_ = a.send(agentwire.Frame{Type: agentwire.Error, ID: id, Payload: []byte(err.Error())})
		return
	}
	a.mu.Lock()
	a.procs[id] = cmd.Process
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range []struct {
		r io.Reader
		t agentwire.Type
	}{{stdout, agentwire.Stdout}, {stderr, agentwire.Stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.copy(id, p.t, p.r)
		}()
	}
	go func() {
		wg.Wait() // both pipes read to their end before Wait closes them
		err := cmd.Wait()
		a.mu.Lock()
		delete(a.procs, id)
		a.mu.Unlock()
		status := cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = 128 + int(ws.Signal())
		} else if status < 0 {
			_ = a.send(agentwire.Frame{Type: agentwire.Error, ID: id, Payload: []byte(err.Error())})
			return
		}
		_ = a.send(agentwire.ExitFrame(id, status))
	}()
}

// copy sends what r gives as frames of type t until r ends.
func (a *agent) copy(id uint32, t agentwire.Type, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if a.send(agentwire.Frame{Type: t, ID: id, Payload: buf[:n]}) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// signal sends the signal in payload to command id's process group; a
// command that has already ended is not an error.
func (a *agent) signal(id uint32, payload []byte) {
	if len(payload) != 1 {
		return
	}
	a.mu.Lock()
	p := a.procs[id]
	a.mu.Unlock()
	if p != nil {
		_ = syscall.Kill(-p.Pid, syscall.Signal(payload[0]))
	}
}
