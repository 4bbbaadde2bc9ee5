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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio/control"
	"github.com/gvmm/gvmm/internal/cpio"
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

// running is a gvmm started in the background whose console is read line
// by line.
type running struct {
	t      *testing.T
	ctx    context.Context
	cmd    *exec.Cmd
	lines  chan string
	stderr bytes.Buffer
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
	tests := []struct {
		name    string
		script  string
		status  int
		console string // expected on stdout
		stderr  string // expected on stderr
	}{
		{"command status", "echo failing; exit 7", 7, "failing", ""},
		{"reboot", "reboot -f", 0, "", ""},
		{"panic", "echo c > /proc/sysrq-trigger", 1, "", "gvmm: guest kernel panic: Kernel panic - not syncing: sysrq triggered crash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gvmmRun(t, tt.name, "run", "--append", quietCmdline, "--cmd", tt.script)
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
		{"zero cpus", []string{"run", "--cpus", "0"}, 2, "--cpus 0"},
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

// TestGPIOHostAndGuest drives a simulated bank from both sides while the
// guest runs: the guest's gpioset is seen through the control surface and
// the host's input is read by the guest's gpioget.
func TestGPIOHostAndGuest(t *testing.T) {
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

// monEvents returns the "MON <offset> <event>" lines gpiomon printed with
// -F 'MON %o %e' (event 1 rising, 0 falling), per offset.
func monEvents(console string) map[int][]int {
	ev := map[int][]int{}
	for _, l := range strings.Split(console, "\n") {
		var off, e int
		if _, err := fmt.Sscanf(strings.TrimSpace(l), "MON %d %d", &off, &e); err == nil {
			ev[off] = append(ev[off], e)
		}
	}
	return ev
}

// TestGPIOEdges injects edges spaced wider than a round trip (each awaited
// in the guest before the next that should be reported) on three lines
// monitored for both, rising and falling edges, and checks gpiomon in the
// guest saw exactly the edges its trigger type selects, in order.
func TestGPIOEdges(t *testing.T) {
	needKVM(t)
	script := `gpiomon -F 'MON %o %e' gpiochip0 3 & a=$!
gpiomon -F 'MON %o %e' --rising-edge gpiochip0 4 & b=$!
gpiomon -F 'MON %o %e' --falling-edge gpiochip0 5 & c=$!
until [ "$(gpioget gpiochip0 7)" = 1 ]; do sleep 0.2; done
kill -INT $a $b $c; wait
echo EDGES-DONE`
	r, cl, ctx := startControlled(t, "--append", quietCmdline, "--gpio", "sim:8", "--cmd", script)
	for _, line := range []int{3, 4, 5} {
		waitState(t, ctx, cl, fmt.Sprintf("gpiomon enables line %d's interrupt", line), 0, line,
			func(l control.Line) bool { return l.IRQType != "NONE" })
	}
	// For each line, the levels to drive and the event each should give
	// (-1: none). An edge that gives none is followed by one that does,
	// which orders it before the next awaited line.
	steps := []struct {
		line   int
		levels []uint8
		events []int
	}{
		{3, []uint8{1, 0, 1, 0}, []int{1, 0, 1, 0}},
		{4, []uint8{1, 0, 1, 0}, []int{1, -1, 1, -1}},
		{5, []uint8{1, 0, 1, 0}, []int{-1, 0, -1, 0}},
	}
	for _, s := range steps {
		for i, v := range s.levels {
			setInput(t, cl, 0, s.line, v)
			if e := s.events[i]; e >= 0 {
				r.waitLine(fmt.Sprintf("edge %d on line %d reaches gpiomon", i+1, s.line), fmt.Sprintf("MON %d %d", s.line, e))
			}
		}
	}
	setInput(t, cl, 0, 7, 1)
	r.waitLine("gpiomon processes end", "EDGES-DONE")
	got := monEvents(r.seen.String())
	for _, s := range steps {
		var want []int
		for _, e := range s.events {
			if e >= 0 {
				want = append(want, e)
			}
		}
		if fmt.Sprint(got[s.line]) != fmt.Sprint(want) {
			t.Errorf("line %d: gpiomon saw events %v, want %v", s.line, got[s.line], want)
		}
	}
}

// TestGPIOBurst injects 1000 edges on a line as fast as the control surface
// takes them and reports how many reached gpiomon. The spec latches at most
// one edge while a line is masked, so a burst may collapse; what it never
// allows is losing the last edge: once the burst is over, the level the
// guest last saw must be the line's final level. gpiomon writes to a file
// (not the slow console) so that it keeps up with the kernel's event FIFO.
func TestGPIOBurst(t *testing.T) {
	needKVM(t)
	const edges = 1000
	script := `gpiomon -b -F 'MON %o %e' gpiochip0 3 >/tmp/mon & m=$!
until [ "$(gpioget gpiochip0 2)" = 1 ]; do sleep 0.2; done
# The burst is over; wait until gpiomon has been quiet for a second.
n=-1; until [ "$n" = "$(wc -l </tmp/mon)" ]; do n=$(wc -l </tmp/mon); sleep 1; done
kill -INT $m; wait
echo BURST-EVENTS $(wc -l </tmp/mon)
tail -n 3 /tmp/mon`
	r, cl, ctx := startControlled(t, "--append", quietCmdline, "--gpio", "sim:4", "--cmd", script)
	waitState(t, ctx, cl, "gpiomon enables line 3's interrupt", 0, 3, func(l control.Line) bool { return l.IRQType != "NONE" })
	begin := time.Now()
	for i := 1; i <= edges; i++ {
		setInput(t, cl, 0, 3, uint8(i&1))
	}
	took := time.Since(begin)
	setInput(t, cl, 0, 2, 1)
	r.waitLine("guest counts the burst", "[gvmm] command exited with status")
	count := -1
	for _, l := range strings.Split(r.seen.String(), "\n") {
		fmt.Sscanf(strings.TrimSpace(l), "BURST-EVENTS %d", &count)
	}
	last := monEvents(r.seen.String())[3]
	t.Logf("burst: %d edges injected in %v, gpiomon saw %d events, the last ones %v", edges, took, count, last)
	if len(last) == 0 || last[len(last)-1] != 0 {
		t.Errorf("the burst ends low but gpiomon's last events are %v: the last edge was lost", last)
	}
	if count < 1 || count > edges {
		t.Fatalf("gpiomon saw %d events for %d edges", count, edges)
	}
}

// guestBin is where `make guest-bins` leaves the static programs that tests
// add to the guest image (see guestInitrd).
const guestBin = "../../bin/guest"

// guestInitrd returns the path of an initramfs made of the default
// image's followed by an archive with the given programs from guestBin,
// installed in the guest's /usr/bin. The kernel unpacks archives that
// follow one another into one root file system.
func guestInitrd(t *testing.T, programs ...string) string {
	t.Helper()
	base, err := os.ReadFile(filepath.Join(imageDir(), "initramfs.cpio.gz"))
	if err != nil {
		t.Fatalf("step 'read the guest image': %v (build it with 'make image')", err)
	}
	var buf bytes.Buffer
	buf.Write(base)
	for buf.Len()%4 != 0 { // the kernel looks for the next archive at a 4-byte boundary
		buf.WriteByte(0)
	}
	w := cpio.NewWriter(&buf)
	for _, p := range programs {
		b, err := os.ReadFile(filepath.Join(guestBin, p))
		if err != nil {
			t.Fatalf("step 'add %s to the guest image': %v (build it with 'make guest-bins')", p, err)
		}
		if err := w.File("usr/bin/"+p, 0o755, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "initramfs")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// keyEvents returns the input events printed by the guest scripts' evdump
// as "EV type code value" lines, in order.
func keyEvents(console string) []string {
	var ev []string
	for _, l := range strings.Split(console, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "EV ") {
			ev = append(ev, l)
		}
	}
	return ev
}

// evdump is shell for the guest: evopen starts recording /dev/input/event0
// into /tmp/ev and returns once the reader holds it open; evwait N waits
// until N events (EV_KEY and EV_SYN alike, 24 bytes each) are recorded and
// says so; evdump prints each as "EV type code value".
const evdump = `evopen() { cat /dev/input/event0 >/tmp/ev & ev=$!
  until ls -l /proc/$ev/fd 2>/dev/null | grep -q event0; do sleep 0.1; done; }
evwait() { until [ $(wc -c </tmp/ev) -ge $(($1*24)) ]; do sleep 0.1; done; echo EVENTS $1; }
evdump() { kill $ev; od -An -v -tu2 -w24 /tmp/ev | awk '{print "EV", $9, $10, $11+65536*$12}'; }
`

// TestGPIOLEDsAndKeys boots with two controllers, each with consumers from
// --led and --key: the guest's leds-gpio drives lines the host sees, and
// host edges reach the guest's gpio-keys as key presses. The keys are on
// the first controller: Linux 6.1's gpio-virtio shares one irq_chip between
// its devices and crashes on any interrupt of a second one (see README).
func TestGPIOLEDsAndKeys(t *testing.T) {
	needKVM(t)
	// The host answers each guest step through bank 1 line 3 (ack).
	script := evdump + `ack() { until [ "$(gpioget gpiochip1 3)" = $1 ]; do sleep 0.1; done; }
echo LEDS $(ls /sys/class/leds)
cd /sys/class/leds
echo 1 >status/brightness; echo 1 >inv/brightness; echo 1 >b1/brightness; echo 0 >on/brightness
echo LEDS-SET; ack 1
echo 0 >status/brightness; echo 0 >inv/brightness; echo 0 >b1/brightness
echo LEDS-CLEARED; ack 0
evopen; echo KEYS-READY
evwait 2; evwait 4; evwait 6; evwait 8
sleep 1; evdump`
	r, cl, ctx := startControlled(t, "--append", quietCmdline,
		"--gpio", "sim:8", "--gpio", "sim:4",
		"--led", "status=0:1", "--led", "inv=0:2,active-low", "--led", "on=0:3,default-on", "--led", "b1=1:0",
		"--key", "28=0:4", "--key", "2=0:5,active-low",
		"--cmd", script)
	setInput(t, cl, 0, 5, 1) // key 2 is active-low: released while high

	level := func(step string, bank, line int, v uint8) {
		t.Helper()
		waitState(t, ctx, cl, step, bank, line, func(l control.Line) bool { return l.Direction == "out" && l.Level == v })
	}
	r.waitLine("the LEDs appear in /sys/class/leds", "LEDS b1 inv on status")
	r.waitLine("the guest lights the LEDs", "LEDS-SET")
	level("status on drives line 1 high", 0, 1, 1)
	level("active-low inv on drives line 2 low", 0, 2, 0)
	level("b1 on drives line 0 of controller 1 high", 1, 0, 1)
	level("default-on LED turned off drives line 3 low", 0, 3, 0)
	setInput(t, cl, 1, 3, 1)
	r.waitLine("the guest clears the LEDs", "LEDS-CLEARED")
	level("status off drives line 1 low", 0, 1, 0)
	level("active-low inv off drives line 2 high", 0, 2, 1)
	level("b1 off drives line 0 of controller 1 low", 1, 0, 0)
	setInput(t, cl, 1, 3, 0)

	r.waitLine("the guest opens its input device", "KEYS-READY")
	for i, line := range []int{4, 4, 5, 5} {
		v := uint8(1 - i%2) // press, then release
		if line == 5 {
			v = 1 - v // active-low
		}
		setInput(t, cl, 0, line, v)
		r.waitLine(fmt.Sprintf("key event %d reaches the guest", i+1), fmt.Sprintf("EVENTS %d", 2*(i+1)))
	}
	r.waitLine("the guest dumps its input events", "[gvmm] command exited with status 0")
	// At poweroff the LED and keys drivers let go of the lines; no request
	// may fail or be left waiting.
	r.waitLine("the guest powers off", "reboot: Power down")
	if st := r.wait(); st != 0 || strings.Contains(r.seen.String(), "gpio_virtio") {
		t.Errorf("exit status %d, console:\n%s", st, r.seen.String())
	}
	want := []string{"EV 1 28 1", "EV 0 0 0", "EV 1 28 0", "EV 0 0 0", "EV 1 2 1", "EV 0 0 0", "EV 1 2 0", "EV 0 0 0"}
	if got := keyEvents(r.seen.String()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("guest input events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestGPIODefaultOn checks that a default-on LED drives its line high from
// boot, before any guest program runs, and that a reboot with LEDs lit
// ends gvmm cleanly.
func TestGPIODefaultOn(t *testing.T) {
	needKVM(t)
	r, cl, _ := startControlled(t, "--append", quietCmdline, "--gpio", "sim:3",
		"--led", "on=0:0,default-on", "--led", "low=0:1,active-low,default-on",
		"--cmd", `echo BOOTED; until [ "$(gpioget gpiochip0 2)" = 1 ]; do sleep 0.1; done; reboot -f`)
	r.waitLine("the guest boots", "BOOTED")
	for _, c := range []struct{ line, want int }{{0, 1}, {1, 0}} {
		resp, err := cl.Do(control.Request{Op: "get", Line: c.line})
		if err != nil {
			t.Fatal(err)
		}
		if l := resp.Line; l.Direction != "out" || int(l.Level) != c.want {
			t.Errorf("line %d right after boot: direction %s level %d, want out %d", c.line, l.Direction, l.Level, c.want)
		}
	}
	// Rebooting with the LEDs on ends gvmm cleanly.
	setInput(t, cl, 0, 2, 1)
	r.waitLine("the guest reboots", "reboot: Restarting system")
	if st := r.wait(); st != 0 || strings.Contains(r.seen.String(), "gpio_virtio") {
		t.Errorf("exit status %d, console:\n%s", st, r.seen.String())
	}
}

// TestGPIOLevelInterrupt uses a level-high interrupt through the guest's
// gpio-keys (an interrupt-only key): while the host holds the line high
// the interrupt fires and re-fires (the device completes each eventq
// buffer as soon as it is queued), the key stays pressed; once the line is
// low the interrupts stop and the key is released.
func TestGPIOLevelInterrupt(t *testing.T) {
	needKVM(t)
	// The key's line (2) is never requested as a GPIO: releasing a GPIO
	// sends SET_DIRECTION(NONE), which discards the line's interrupt.
	script := evdump + `irqs() { awk '/gpio_keys/ {print $2}' /proc/interrupts; }
evopen; echo LEVEL-READY $(irqs)
until [ "$(irqs)" -ge 3 ]; do sleep 0.1; done
echo LEVEL-REFIRED $(irqs)
until [ "$(gpioget gpiochip0 3)" = 1 ]; do sleep 0.1; done
n=-1; until [ "$n" = "$(irqs)" ]; do n=$(irqs); sleep 1; done
echo LEVEL-QUIET $n
evwait 4; sleep 1; evdump`
	r, cl, _ := startControlled(t, "--append", quietCmdline, "--gpio", "sim:4",
		"--key", "30=0:2,level-high,debounce-interval=1000", "--cmd", script)
	r.waitLine("gpio-keys requests its level interrupt", "LEVEL-READY")
	setInput(t, cl, 0, 2, 1)
	r.waitLine("the interrupt fires and re-fires while the line is high", "LEVEL-REFIRED")
	setInput(t, cl, 0, 2, 0)
	setInput(t, cl, 0, 3, 1)
	r.waitLine("the interrupts stop once the line is low", "LEVEL-QUIET")
	r.waitLine("the guest dumps its input events", "[gvmm] command exited with status 0")
	want := []string{"EV 1 30 1", "EV 0 0 0", "EV 1 30 0", "EV 0 0 0"}
	if got := keyEvents(r.seen.String()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("guest input events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range strings.Split(r.seen.String(), "\n") {
		if strings.Contains(l, "LEVEL-") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

// TestGPIORoundTrip times GPIO writes in the guest with gpio-rtt (one
// SET_VALUES ioctl each, one SET_VALUE request through the device) and
// checks that the host saw every write. The figures are logged, not judged.
func TestGPIORoundTrip(t *testing.T) {
	needKVM(t)
	const writes = 2000
	r, cl, ctx := startControlled(t, "--append", quietCmdline, "--gpio", "sim:2",
		"--initrd", guestInitrd(t, "gpio-rtt"),
		"--cmd", fmt.Sprintf(`until [ "$(gpioget gpiochip0 1)" = 1 ]; do sleep 0.1; done; gpio-rtt -n %d`, writes))
	watch := dialControl(t, ctx, r.sock)
	if err := watch.Watch(0); err != nil {
		t.Fatal(err)
	}
	// Count line 0's output changes until line 1's input goes back to 0,
	// which the host does once the guest is done: watch events come in
	// the order of the changes.
	outputs := make(chan int, 1)
	go func() {
		n := 0
		for {
			ev, err := watch.Next()
			if err != nil || ev.Line == 1 && ev.Kind == "input" && ev.Level == 0 {
				outputs <- n
				return
			}
			if ev.Line == 0 && ev.Kind == "output" {
				n++
			}
		}
	}()
	setInput(t, cl, 0, 1, 1) // the watch is on: start
	r.waitLine("gpio-rtt times its writes", "gpio-rtt: ")
	r.waitLine("the guest command ends", "[gvmm] command exited with status 0")
	setInput(t, cl, 0, 1, 0)
	var seen int
	select {
	case seen = <-outputs:
	case <-ctx.Done():
		t.Fatal("step 'count the writes the host saw': timed out")
	}
	for _, l := range strings.Split(r.seen.String(), "\n") {
		if strings.Contains(l, "gpio-rtt: ") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if seen != writes {
		t.Errorf("the host saw %d of the guest's %d writes", seen, writes)
	}
}

// TestCdevInGuest runs the tests of devices/gpio/cdev (the GPIO character
// device uAPI v2 and the host-passthrough backend) inside the guest,
// against real kernel GPIO lines of the guest kernel's gpio-sim.
func TestCdevInGuest(t *testing.T) {
	needKVM(t)
	r := gvmmRun(t, "run the cdev tests in the guest", "run", "--append", quietCmdline,
		"--initrd", guestInitrd(t, "cdev.test"),
		"--cmd", "GVMM_GPIO_SIM=1 cdev.test -test.v -test.timeout 5m")
	if r.status != 0 || !strings.Contains(r.stdout, "\nPASS") {
		t.Fatalf("cdev tests in the guest: exit status %d\nconsole:\n%s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "--- ") {
			t.Log(strings.TrimSpace(l))
		}
	}
}
