// Package qemuboot boots the project's guest image under Debian's QEMU
// (qemu-system-x86_64 with -accel kvm) and watches a VMM process from the
// outside: its console and standard error line by line, each line stamped
// with the time it arrived, its exit, and its memory (/proc/PID/smaps).
//
// It is the one place that knows QEMU's command line. make bench
// (cmd/gvmm's TestBench) boots gvmm and QEMU -M microvm and -M pc through
// it, watching gvmm with the same Proc so that both are timed alike; a
// test that boots the guest image under QEMU with `gvmm gpio-backend`
// attached over vhost-user sets Config.VhostUserGPIO and uses the same
// Command, Proc.WaitFor, Proc.Wait and ReadMemory.
//
//	c := qemuboot.Config{Machine: qemuboot.MachineMicrovm, Kernel: k, Initrd: i,
//		Append: "console=ttyS0 panic=-1 reboot=t gvmm.run=...", VhostUserGPIO: sock}
//	p, err := qemuboot.Start(c.Command(ctx))
//	_, err = p.WaitFor(ctx, "boot to /init", qemuboot.Console, "gvmm-init: started")
//	mem, err := qemuboot.ReadMemory(p.Cmd.Process.Pid, c.GuestRAM())
//	err = p.Wait(ctx, "guest powers off")
//
// The guest ends QEMU by rebooting: with reboot=t on the kernel command
// line, `reboot -f` is a triple fault, and -no-reboot makes QEMU exit
// instead of resetting (neither machine has a power-off QEMU understands
// without ACPI).
package qemuboot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Machines for Config.Machine: the two QEMU compares gvmm with.
const (
	// MachineMicrovm is QEMU's minimal machine: no PCI, no ACPI (so the
	// guest finds its CPUs in an MP table), virtio-mmio devices announced
	// on the kernel command line, qboot as firmware.
	MachineMicrovm = "microvm,acpi=off"
	// MachinePC is the i440FX PC with SeaBIOS.
	MachinePC = "pc"
)

// RunningMarker is on QEMU's standard error, with Config.TraceRunState,
// when the VM starts running (trace event vm_state_notify): its vCPUs
// enter KVM_RUN right after, so it ends QEMU's set-up.
const RunningMarker = "vm_state_notify running 1"

// Config is a QEMU guest: the same kernel, initrd and command line that
// gvmm boots.
type Config struct {
	Binary  string // default "qemu-system-x86_64"
	Machine string // -M: MachineMicrovm or MachinePC
	Kernel  string // bzImage
	Initrd  string // initramfs; "" for none
	Append  string // the whole kernel command line
	MemMiB  int    // guest RAM (-m); default 256
	CPUs    int    // -smp; default 1
	// VhostUserGPIO is the Unix socket of a vhost-user GPIO back end
	// (`gvmm gpio-backend`). When set, guest RAM is a shared memfd the back
	// end can map, and the machine gets a vhost-user GPIO device on it
	// (vhost-user-gpio-device on microvm's virtio-mmio, else
	// vhost-user-gpio-pci). QEMU 7.2 does not offer VIRTIO_GPIO_F_IRQ
	// through it: the guest gets no GPIO interrupts.
	VhostUserGPIO string
	// TraceRunState has QEMU print RunningMarker on standard error when
	// the vCPUs start (-trace vm_state_notify).
	TraceRunState bool
	// Extra arguments, appended last.
	Extra []string
}

func (c Config) memMiB() int {
	if c.MemMiB == 0 {
		return 256
	}
	return c.MemMiB
}

// GuestRAM is the size of guest RAM in bytes, as ReadMemory wants it.
func (c Config) GuestRAM() uint64 { return uint64(c.memMiB()) << 20 }

// Args returns QEMU's arguments, without the binary.
func (c Config) Args() []string {
	cpus := c.CPUs
	if cpus == 0 {
		cpus = 1
	}
	mem := strconv.Itoa(c.memMiB())
	a := []string{"-M", c.Machine, "-accel", "kvm", "-cpu", "host", "-m", mem, "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", c.Kernel}
	if c.Initrd != "" {
		a = append(a, "-initrd", c.Initrd)
	}
	a = append(a, "-append", c.Append)
	if c.VhostUserGPIO != "" {
		dev := "vhost-user-gpio-pci"
		if strings.HasPrefix(c.Machine, "microvm") {
			dev = "vhost-user-gpio-device"
		}
		a = append(a, "-object", "memory-backend-memfd,id=mem,size="+mem+"M,share=on",
			"-numa", "node,memdev=mem",
			"-chardev", "socket,id=gpio0,path="+c.VhostUserGPIO,
			"-device", dev+",chardev=gpio0")
	}
	if c.TraceRunState {
		a = append(a, "-trace", "vm_state_notify")
	}
	return append(a, c.Extra...)
}

func (c Config) binary() string {
	if c.Binary == "" {
		return "qemu-system-x86_64"
	}
	return c.Binary
}

// String is the command line, quoted for a shell where needed, for
// reports.
func (c Config) String() string {
	return ShellQuote(append([]string{c.binary()}, c.Args()...))
}

// Command returns QEMU's command, killed when ctx ends; Start starts it.
func (c Config) Command(ctx context.Context) *exec.Cmd {
	return exec.CommandContext(ctx, c.binary(), c.Args()...)
}

// ShellQuote joins args into one line a POSIX shell reads back as args.
func ShellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+,./:@%") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// Stream is where a line came from.
type Stream int

// The streams of a Proc.
const (
	Console Stream = iota // standard output: the guest's serial console
	Stderr                // the VMM's standard error
)

func (s Stream) String() string {
	if s == Console {
		return "console"
	}
	return "stderr"
}

// Line is one line of a Proc's output, without its line end, with the
// time it was read.
type Line struct {
	Stream Stream
	Text   string
	Time   time.Time
}

// Proc is a started VMM process (QEMU or gvmm alike) whose console and
// standard error are read line by line as they come.
type Proc struct {
	Cmd *exec.Cmd
	// Started is the time just before the process was started.
	Started time.Time

	stdin io.WriteCloser
	done  chan struct{} // closed once the process has exited and its output is read
	// exited is when the process's exit was seen; err is cmd.Wait's.
	exited time.Time
	err    error

	mu      sync.Mutex
	lines   []Line
	partial [2][]byte     // an unfinished line per stream
	next    [2]int        // per stream: WaitFor looks from this index of lines on
	changed chan struct{} // closed and replaced when a line comes
}

// lineWriter is a Proc's writer for one stream.
type lineWriter struct {
	p *Proc
	s Stream
}

func (w lineWriter) Write(b []byte) (int, error) {
	now := time.Now()
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	buf := append(p.partial[w.s], b...)
	added := false
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		p.lines = append(p.lines, Line{w.s, strings.TrimRight(string(buf[:i]), "\r"), now})
		buf = buf[i+1:]
		added = true
	}
	p.partial[w.s] = append([]byte(nil), buf...)
	if added {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	return len(b), nil
}

// Start starts cmd (which must not have Stdin, Stdout or Stderr set) and
// reads its output. Whatever ends it, the caller must see that it ends:
// Wait, or Kill.
func Start(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = lineWriter{p, Console}, lineWriter{p, Stderr}
	if cmd.WaitDelay == 0 {
		// A child that outlives the process keeps its output open: stop
		// reading then rather than wait for the child.
		cmd.WaitDelay = 10 * time.Second
	}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		err := cmd.Wait()
		now := time.Now()
		p.mu.Lock()
		p.exited, p.err = now, err
		// An unfinished last line is a line too.
		for s := range p.partial {
			if len(p.partial[s]) > 0 {
				p.lines = append(p.lines, Line{Stream(s), strings.TrimRight(string(p.partial[s]), "\r"), now})
				p.partial[s] = nil
			}
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// WaitFor waits for a line of stream s containing substr, past the line
// the last WaitFor on s returned (like an expect script), and returns it.
// step names what is awaited for the error, which comes when ctx ends or
// the process exits first, with the tail of the process's output.
func (p *Proc) WaitFor(ctx context.Context, step string, s Stream, substr string) (Line, error) {
	exited := false
	for {
		p.mu.Lock()
		for i := p.next[s]; i < len(p.lines); i++ {
			if l := p.lines[i]; l.Stream == s && strings.Contains(l.Text, substr) {
				p.next[s] = i + 1
				p.mu.Unlock()
				return l, nil
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if exited {
			return Line{}, fmt.Errorf("step %q: %s exited (%v) before %q on its %v; %s", step, p.name(), p.err, substr, s, p.Tail(30))
		}
		select {
		case <-changed:
		case <-p.done: // its last lines are in: look once more
			exited = true
		case <-ctx.Done():
			return Line{}, fmt.Errorf("step %q: timed out waiting for %q on the %v of %s (%v); %s", step, substr, s, p.name(), context.Cause(ctx), p.Tail(30))
		}
	}
}

func (p *Proc) name() string {
	return fmt.Sprintf("%s (pid %d)", p.Cmd.Path, p.Cmd.Process.Pid)
}

// Type writes text to the process's standard input: the guest's console
// for QEMU -serial stdio and for gvmm run.
func (p *Proc) Type(text string) error {
	_, err := io.WriteString(p.stdin, text)
	return err
}

// Wait waits for the process to exit and returns when it did; a non-zero
// exit status is an error, as is ctx ending first (step names what is
// awaited; the process is then killed).
func (p *Proc) Wait(ctx context.Context, step string) (time.Time, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Kill()
		return time.Time{}, fmt.Errorf("step %q: timed out waiting for %s to exit (%v); %s", step, p.name(), context.Cause(ctx), p.Tail(30))
	}
	if p.err != nil {
		return p.exited, fmt.Errorf("step %q: %s: %v; %s", step, p.name(), p.err, p.Tail(30))
	}
	return p.exited, nil
}

// Kill kills the process (if it still runs) and waits for it.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Output returns the lines of stream s so far, each ending in "\n".
func (p *Proc) Output(s Stream) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		if l.Stream == s {
			b.WriteString(l.Text + "\n")
		}
	}
	return b.String()
}

// Lines returns the lines of both streams so far, in order.
func (p *Proc) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Line(nil), p.lines...)
}

// Tail describes the last n lines of output, for error messages.
func (p *Proc) Tail(n int) string {
	l := p.Lines()
	if len(l) > n {
		l = l[len(l)-n:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "its last %d lines of output:", len(l))
	for _, x := range l {
		fmt.Fprintf(&b, "\n  %s| %s", x.Stream, x.Text)
	}
	return b.String()
}

// Memory is how much of a VMM process's memory is resident.
type Memory struct {
	// RSS is the process's resident set, summed over its mappings.
	RSS uint64
	// GuestRAM is the resident part of the mapping of guest RAM.
	GuestRAM uint64
	// GuestRAMMapping is that mapping's line in smaps.
	GuestRAMMapping string
}

// BeyondGuestRAM is what the VMM holds resident beyond guest RAM: its
// code, heap, stacks, libraries and device memory.
func (m Memory) BeyondGuestRAM() uint64 { return m.RSS - m.GuestRAM }

// guardSlack is how much larger than guest RAM its mapping may be (a VMM
// may round it up, add a guard page, or the kernel merge a neighbour in).
const guardSlack = 4 << 20

// memfdRAM begins the path of a mapping of QEMU's -object
// memory-backend-memfd in smaps: QEMU maps it whole, a vhost-user back
// end in pieces (one per region of its memory table).
const memfdRAM = "/memfd:memory-backend-memfd"

// ReadMemory reads /proc/PID/smaps: the process's RSS, and that of its
// mappings of guest RAM of guestRAM bytes: every mapping of QEMU's memfd
// memory backend if there is one (QEMU with shared memory, or a
// vhost-user back end), else the one mapping of guest RAM's size, give or
// take guardSlack, with the most resident (gvmm's anonymous mapping,
// QEMU's for -m alone).
func ReadMemory(pid int, guestRAM uint64) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	m, err := ParseSmaps(f, guestRAM)
	if err != nil {
		return Memory{}, fmt.Errorf("/proc/%d/smaps: %w", pid, err)
	}
	return m, nil
}

// ParseSmaps reads a /proc/PID/smaps as ReadMemory does.
func ParseSmaps(r io.Reader, guestRAM uint64) (Memory, error) {
	var m Memory
	var header string
	var size, memfd, sized uint64
	var memfdMaps []string
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			// A mapping's header: "start-end perms offset dev inode [path]".
			if !strings.Contains(f[0], "-") || len(f) < 5 {
				return Memory{}, fmt.Errorf("unexpected line %q", sc.Text())
			}
			header, size = sc.Text(), 0
			continue
		}
		if f[0] != "Size:" && f[0] != "Rss:" {
			continue
		}
		if len(f) != 3 || f[2] != "kB" {
			return Memory{}, fmt.Errorf("unexpected line %q", sc.Text())
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("line %q: %v", sc.Text(), err)
		}
		if f[0] == "Size:" {
			size = kb << 10
			continue
		}
		rss := kb << 10
		m.RSS += rss
		if h := strings.Fields(header); len(h) > 5 && strings.HasPrefix(h[5], memfdRAM) {
			memfd += rss
			memfdMaps = append(memfdMaps, header)
		} else if size >= guestRAM && size <= guestRAM+guardSlack && (!found || rss > sized) {
			sized, m.GuestRAMMapping, found = rss, header, true
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, err
	}
	switch {
	case memfdMaps != nil:
		m.GuestRAM, m.GuestRAMMapping = memfd, strings.Join(memfdMaps, "\n")
	case found:
		m.GuestRAM = sized
	default:
		return Memory{}, errors.New("no mapping of guest RAM's size " + strconv.FormatUint(guestRAM>>20, 10) + " MiB, nor of " + memfdRAM)
	}
	return m, nil
}
