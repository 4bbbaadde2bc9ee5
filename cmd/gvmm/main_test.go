package main

// These tests run gvmm as a user would: the test binary re-executes itself
// as gvmm (see TestMain) and boots the real guest image under real KVM.
// On a host without usable KVM run them through the nested test host:
// `make test` does (go test -exec images/l1/l1-exec).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio/control"
	"github.com/gvmm/gvmm/internal/cpio"
	"github.com/gvmm/gvmm/internal/imagecache"
	"github.com/gvmm/gvmm/vmm"
)

func TestMain(m *testing.M) {
	if os.Getenv("GVMM_TEST_AS_GVMM") == "1" {
		os.Exit(gvmm(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// bootTimeout is generous: under the nested test host everything is slow.
const bootTimeout = 5 * time.Minute

// quietCmdline keeps the console short; tests read only what they print.
const quietCmdline = "console=ttyS0 panic=-1 quiet"

type result struct {
	stdout, stderr string
	status         int
}

// command prepares gvmm with args.
func command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GVMM_TEST_AS_GVMM=1")
	// At the deadline, have gvmm print where each vCPU is (SIGUSR1) so a
	// hung guest leaves a trace in stderr, then kill it.
	cmd.Cancel = func() error {
		_ = cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(2 * time.Second)
		return cmd.Process.Kill()
	}
	return cmd
}

// gvmmRun runs gvmm with args to the end; step names what it is doing for
// the timeout message.
func gvmmRun(t *testing.T, step string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := command(ctx, args...)
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&stdout, os.Stderr), io.MultiWriter(&stderr, os.Stderr)
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("timed out after %v at step %q; console so far:\n%s\nstderr:\n%s", bootTimeout, step, stdout.String(), stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("step %q: %v", step, err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// lockedBuffer is a bytes.Buffer that may be read while it is written.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is a gvmm started in the background whose console is read line
// by line.
type running struct {
	t      *testing.T
	ctx    context.Context
	cmd    *exec.Cmd
	lines  chan string
	stderr lockedBuffer    // read while gvmm still writes it
	seen   strings.Builder // the console lines waitLine has read
	sock   string          // its --control socket, if any
	input  io.WriteCloser  // gvmm's standard input: it types on the guest's console
}

func start(t *testing.T, ctx context.Context, args ...string) *running {
	t.Helper()
	r := &running{t: t, ctx: ctx, cmd: command(ctx, args...), lines: make(chan string, 1000)}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = &r.stderr
	if r.input, err = r.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
	}()
	return r
}

// waitLine waits for a console line containing want; step names what the
// test is doing, for the failure message.
func (r *running) waitLine(step, want string) {
	r.t.Helper()
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				r.t.Fatalf("step %q: console ended before %q; console:\n%s\nstderr: %s", step, want, r.seen.String(), r.stderr.String())
			}
			r.seen.WriteString(l + "\n")
			if strings.Contains(l, want) {
				return
			}
		case <-r.ctx.Done():
			r.wait() // gvmm dumps its vCPUs to stderr, then is killed
			r.t.Fatalf("step %q: timed out waiting for %q; console:\n%s\nstderr: %s", step, want, r.seen.String(), r.stderr.String())
		}
	}
}

// wait reads the console to its end and waits for gvmm to exit.
func (r *running) wait() int {
	for range r.lines {
	}
	_ = r.cmd.Wait()
	return r.cmd.ProcessState.ExitCode()
}

func needKVM(t *testing.T) {
	t.Helper()
	if err := vmm.CheckHost(); err != nil {
		t.Fatalf("this test boots a guest and needs real KVM (run it with `make test`, which goes through the nested test host): %v", err)
	}
}

func TestGuestRunsCommandAndPowersOff(t *testing.T) {
	needKVM(t)
	r := gvmmRun(t, "boot, echo a marker, power off", "run", "--append", quietCmdline,
		"--cmd", "echo GVMM-MARKER-$((6*7)); poweroff")
	if !strings.Contains(r.stdout, "GVMM-MARKER-42") {
		t.Errorf("marker not on the console:\n%s", r.stdout)
	}
	if r.status != 0 {
		t.Errorf("exit status %d, want 0; stderr: %s", r.status, r.stderr)
	}
}

func TestGuestEnds(t *testing.T) {
	needKVM(t)
	const panicked = "gvmm: guest kernel panic: Kernel panic - not syncing: sysrq triggered crash"
	tests := []struct {
		name    string
		cpus    int
		script  string
		status  int
		console string // expected on stdout
		stderr  string // expected on stderr
	}{
		{"command status", 1, "echo failing; exit 7", 7, "failing", ""},
		{"reboot", 1, "reboot -f", 0, "", ""},
		{"panic", 1, "echo c > /proc/sysrq-trigger", 1, "", panicked},
		// With two vCPUs, each end comes from the second one.
		{"poweroff from CPU 1", 2, "taskset -c 1 poweroff -f", 0, "", ""},
		{"reboot from CPU 1", 2, "taskset -c 1 reboot -f", 0, "", ""},
		{"panic on CPU 1", 2, "taskset -c 1 sh -c 'echo c > /proc/sysrq-trigger'", 1, "", panicked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gvmmRun(t, tt.name, "run", "--append", quietCmdline, "--cpus", strconv.Itoa(tt.cpus), "--cmd", tt.script)
			if r.status != tt.status {
				t.Errorf("exit status %d, want %d\nconsole:\n%s\nstderr: %s", r.status, tt.status, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.console) || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("want %q on the console and %q on stderr; got console:\n%s\nstderr: %s", tt.console, tt.stderr, r.stdout, r.stderr)
			}
		})
	}
}

func TestSignalStopsGuest(t *testing.T) {
	needKVM(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
			defer cancel()
			r := start(t, ctx, "run", "--append", quietCmdline, "--cmd", "echo GUEST-UP; sleep 1000")
			r.waitLine("wait for the guest to start its command", "GUEST-UP")
			if err := r.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			status := r.wait()
			if ctx.Err() != nil {
				t.Fatalf("step 'stop on %v': timed out", sig)
			}
			if want := 128 + int(sig); status != want {
				t.Errorf("exit status %d, want %d; stderr: %s", status, want, r.stderr.String())
			}
			if want := fmt.Sprintf("gvmm: stopped by %v", sig); !strings.Contains(r.stderr.String(), want) {
				t.Errorf("stderr %q does not say %q", r.stderr.String(), want)
			}
		})
	}
}

// TestBadInput needs no KVM: every mistake is caught before the VM exists
// and reported in one line.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		status int
		want   string
	}{
		{"no command", nil, 2, "Usage:"},
		{"unknown command", []string{"boot"}, 2, `unknown command "boot"`},
		{"unknown flag", []string{"run", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"bad size", []string{"run", "--mem", "lots"}, 2, `bad size "lots"`},
		{"too little memory", []string{"run", "--mem", "1M"}, 2, "--mem 1M is too little"},
		{"zero cpus", []string{"run", "--cpus", "0"}, 2, "--cpus 0: want 1 to 255 vCPUs"},
		{"too many cpus", []string{"run", "--cpus", "256"}, 2, "--cpus 256: want 1 to 255 vCPUs"},
		{"stray argument", []string{"run", "bzImage"}, 2, `unexpected argument "bzImage"`},
		{"gpio unknown host chip", []string{"run", "--gpio", "chip99:4-7"}, 1, `--gpio "chip99:4-7": no GPIO chip /dev/gpiochip99`},
		{"gpio bad host lines", []string{"run", "--gpio", "chip0:7-4"}, 2, `"7-4" runs backwards`},
		{"gpio neither kind", []string{"run", "--gpio", "pins"}, 2, `or sim:N for a simulated bank`},
		{"gpio zero lines", []string{"run", "--gpio", "sim:0"}, 2, `line count "0"`},
		{"gpio too many names", []string{"run", "--gpio", "sim:2,names=a,b,c"}, 2, "3 names for 2 lines"},
		{"gpio unknown option", []string{"run", "--gpio", "sim:2,pull=up"}, 2, `unknown option "pull=up"`},
		{"gpio duplicate names", []string{"run", "--kernel", "/proc/self/exe", "--gpio", "sim:2,names=a,a"}, 2, `--gpio "sim:2,names=a,a":`},
		{"too many controllers", []string{"run", "--gpio", "sim:1", "--gpio", "sim:1", "--gpio", "sim:1", "--gpio", "sim:1",
			"--gpio", "sim:1", "--gpio", "sim:1", "--gpio", "sim:1", "--gpio", "sim:1", "--gpio", "sim:1"}, 2, "9 --gpio controllers: at most 8"},
		{"LED on a missing controller", []string{"run", "--gpio", "sim:2", "--led", "a=1:0"}, 2, `--led "a=1:0": no GPIO controller 1`},
		{"key code past KEY_MAX", []string{"run", "--gpio", "sim:2", "--key", "768=0:1,level-high"}, 2, `key code "768"`},
		{"empty name", []string{"run", "--name", ""}, 2, `name "": want 1 to 26 characters`},
		{"long name", []string{"run", "--name", strings.Repeat("v", 27)}, 2, "want 1 to 26 characters"},
		{"name with a space", []string{"run", "--name", "my vm"}, 2, `name "my vm": ' ' is not a letter`},
		{"missing kernel", []string{"run", "--kernel", "/nonexistent/bzImage"}, 1, "kernel /nonexistent/bzImage does not exist"},
		{"missing system map", []string{"run", "--kernel", "/proc/self/exe", "--initrd", "", "--system-map", "/nonexistent/System.map"}, 1, "--system-map: open /nonexistent/System.map: no such file or directory"},
		{"not a system map", []string{"run", "--kernel", "/proc/self/exe", "--initrd", "", "--system-map", "/proc/self/exe"}, 1, "--system-map: /proc/self/exe: "},
		{"missing initrd", []string{"run", "--kernel", "/proc/self/exe", "--initrd", "/nonexistent.cpio"}, 1, "initrd /nonexistent.cpio does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gvmmRun(t, tt.name, tt.args...)
			if r.status != tt.status {
				t.Errorf("exit status %d, want %d", r.status, tt.status)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.want)
			}
			if tt.want != "Usage:" && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("error is not one line: %q", r.stderr)
			}
		})
	}
}

// TestGPIOControllers boots with two simulated banks and looks at them with
// libgpiod's tools through the kernel's own gpio-virtio driver.
func TestGPIOControllers(t *testing.T) {
	needKVM(t)
	r := gvmmRun(t, "boot with two GPIO banks, gpiodetect and gpioinfo", "run", "--append", quietCmdline,
		"--gpio", "sim:8,names=led0,led1,btn0", "--gpio", "sim:4",
		"--cmd", "gpiodetect && gpioinfo gpiochip0 && gpioset gpiochip0 1=1 && gpioget gpiochip0 2")
	if r.status != 0 {
		t.Fatalf("exit status %d\nconsole:\n%s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"gpiochip0 [virtio0] (8 lines)", "gpiochip1 [virtio1] (4 lines)",
		`line   0:       "led0"`, `line   2:       "btn0"`, "line   3:      unnamed",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("console lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestNotABzImage(t *testing.T) {
	needKVM(t)
	r := gvmmRun(t, "load an ELF as kernel", "run", "--kernel", "/proc/self/exe", "--initrd", "")
	if r.status != 1 || !strings.Contains(r.stderr, "not a bzImage") {
		t.Errorf("status %d stderr %q", r.status, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	r := gvmmRun(t, "help", "run", "--help")
	for _, want := range []string{"-kernel", "-initrd", "-append", "-mem", "-cpus", "-cmd", "Ctrl-A x", "-led", "-key", "level-high"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("gvmm run --help does not mention %s", want)
		}
	}
	if r.status != 0 {
		t.Errorf("status %d", r.status)
	}
}

// TestControlSocket drives a simulated bank from both sides while the
// guest runs, through gvmm run's --control socket (the surface for people
// and other languages; Go tests use gvmmtest): the guest's gpioset is seen
// through it and the host's input is read by the guest's gpioget.
func TestControlSocket(t *testing.T) {
	needKVM(t)
	script := `gpioset --mode=signal gpiochip0 1=1 &
until [ "$(gpioget gpiochip0 2)" = 1 ]; do sleep 0.1; done
echo GUEST-SAW-HIGH`
	r, cl, ctx := startControlled(t, "--append", quietCmdline, "--gpio", "sim:4", "--cmd", script)

	waitState(t, ctx, cl, "guest gpioset drives line 1 high", 0, 1, func(l control.Line) bool {
		return l.Direction == "out" && l.Output == 1 && l.Level == 1
	})
	setInput(t, cl, 0, 2, 1)
	r.waitLine("guest gpioget reads the host's input", "GUEST-SAW-HIGH")
}

// startControlled starts gvmm run with args and a --control socket, and
// connects to that; ctx ends at bootTimeout, and the test's end kills gvmm.
func startControlled(t *testing.T, args ...string) (*running, *control.Client, context.Context) {
	t.Helper()
	return startControlledFor(t, bootTimeout, args...)
}

// startControlledFor is startControlled with ctx ending after timeout.
func startControlledFor(t *testing.T, timeout time.Duration, args ...string) (*running, *control.Client, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	sock := filepath.Join(t.TempDir(), "gvmm.sock")
	r := start(t, ctx, append([]string{"run", "--control", sock}, args...)...)
	r.sock = sock
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		r.wait()
		if t.Failed() {
			t.Logf("gvmm's stderr: %s", r.stderr.String())
		}
	})
	return r, dialControl(t, ctx, sock), ctx
}

// dialControl connects to a running gvmm's control socket, retrying until
// gvmm has created it.
func dialControl(t *testing.T, ctx context.Context, sock string) *control.Client {
	t.Helper()
	for {
		cl, err := control.Dial(sock)
		if err == nil {
			t.Cleanup(func() { cl.Close() })
			return cl
		}
		if ctx.Err() != nil {
			t.Fatalf("step 'connect to the control socket': %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitState polls the control surface until cond holds for a line; step
// names what is awaited, for the timeout message.
func waitState(t *testing.T, ctx context.Context, cl *control.Client, step string, bank, line int, cond func(control.Line) bool) {
	t.Helper()
	for ctx.Err() == nil {
		r, err := cl.Do(control.Request{Op: "get", Bank: bank, Line: line})
		if err == nil && cond(*r.Line) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("step %q: timed out", step)
}

// setInput drives an input through the control surface.
func setInput(t *testing.T, cl *control.Client, bank, line int, v uint8) {
	t.Helper()
	if _, err := cl.Do(control.Request{Op: "set", Bank: bank, Line: line, Value: v}); err != nil {
		t.Fatalf("set line %d of bank %d to %d: %v", line, bank, v, err)
	}
}

// guestInitrd returns the path of an initramfs made of the default
// image's followed by an archive with the given programs from guestBin,
// installed in the guest's /usr/bin. The kernel unpacks archives that
// follow one another into one root file system.
func guestInitrd(t *testing.T, programs ...string) string {
	t.Helper()
	base, err := os.ReadFile(filepath.Join(imagecache.Dir(), "initramfs.cpio.gz"))
	if err != nil {
		t.Fatalf("step 'read the guest image': %v (build it with 'make image')", err)
	}
	initrd, err := cpio.Append(base, func(w *cpio.Writer) error {
		for _, p := range programs {
			b, err := os.ReadFile(filepath.Join(guestBin, p))
			if err != nil {
				return fmt.Errorf("step 'add %s to the guest image': %w (build it with 'make guest-bins')", p, err)
			}
			if err := w.File("usr/bin/"+p, 0o755, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "initramfs")
	if err := os.WriteFile(path, initrd, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
