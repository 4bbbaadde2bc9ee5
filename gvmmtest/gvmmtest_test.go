package gvmmtest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/cdev"
	"github.com/gvmm/gvmm/gvmmtest"
	"github.com/gvmm/gvmm/internal/gpiosim"
	"github.com/gvmm/gvmm/vmm"
)

// These tests boot the real guest image under KVM. Without usable KVM
// (and outside the nested test host) Start skips them, and the Example,
// which cannot skip, is left out; the tests without a VM still run.
// `make test` runs them all through images/l1/l1-exec.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := vmm.CheckHost(); err != nil && os.Getenv("GVMM_IN_L1") == "" {
		fmt.Printf("gvmmtest: the tests that boot a guest skip: %v\n(go test -exec images/l1/l1-exec runs them)\n", err)
		_ = flag.Set("test.skip", "^Example")
	}
	os.Exit(m.Run())
}

// TestTenLines is the README's example: the guest sets a line, the host
// sees it, the host drives an input, the guest reads it.
func TestTenLines(t *testing.T) {
	vm := gvmmtest.Start(t, gvmmtest.Sim(8))
	vm.MustRun("gpioset gpiochip0 2=1")
	vm.Bank(0).WaitFor(t.Context(), 2, gvmmtest.Output(1))
	vm.Bank(0).Set(3, 1)
	if out := vm.MustRun("gpioget gpiochip0 3"); out != "1\n" {
		t.Errorf("guest read %q, want 1", out)
	}
}

func TestRun(t *testing.T) {
	vm := gvmmtest.Start(t)
	ctx := t.Context()
	t.Run("status and streams", func(t *testing.T) {
		out, err := vm.Run(ctx, "echo out; echo err >&2; exit 3")
		var ee *gvmmtest.ExitError
		if !errors.As(err, &ee) || ee.Status != 3 || ee.Stderr != "err\n" || out != "out\n" {
			t.Fatalf("got %q, %v; want \"out\\n\" and status 3 with stderr \"err\\n\"", out, err)
		}
	})
	t.Run("binary output", func(t *testing.T) {
		const cmd, want = `printf '\000\001\r\n\033\247\377'`, "\x00\x01\r\n\x1b\xa7\xff"
		if out, err := vm.Run(ctx, cmd); err != nil || out != want {
			t.Fatalf("through a pipe: got %q, %v; want %q", out, err, want)
		}
		p := vm.Start(ctx, cmd) // stdout a terminal in raw mode: the same bytes
		if st, err := p.Wait(ctx); st != 0 || err != nil {
			t.Fatalf("status %d, %v", st, err)
		}
		if out, _ := p.Output(); out != want {
			t.Fatalf("through a terminal: got %q, want %q", out, want)
		}
	})
	t.Run("large output", func(t *testing.T) {
		out, err := vm.Run(ctx, "head -c 1500000 /dev/urandom > /tmp/big && sha256sum /tmp/big >&2 && cat /tmp/big")
		if err != nil {
			t.Fatal(err)
		}
		sum, _ := vm.Run(ctx, "sha256sum /tmp/big")
		if got := fmt.Sprintf("%x", sha256.Sum256([]byte(out))); len(out) != 1500000 || !strings.HasPrefix(sum, got) {
			t.Fatalf("got %d bytes with sha256 %s; the guest's file: %s", len(out), got, sum)
		}
	})
	t.Run("commands at once", func(t *testing.T) {
		var ps []*gvmmtest.Proc
		for i := range 4 {
			ps = append(ps, vm.Start(ctx, fmt.Sprintf("sleep 1; echo %d", i)))
		}
		for i, p := range ps {
			if st, err := p.Wait(ctx); st != 0 || err != nil {
				t.Fatalf("command %d: status %d, %v", i, st, err)
			}
			if out, _ := p.Output(); out != fmt.Sprintf("%d\n", i) {
				t.Errorf("command %d printed %q", i, out)
			}
		}
	})
	t.Run("many in a row", func(t *testing.T) {
		start := time.Now()
		for i := range 50 {
			if out, err := vm.Run(ctx, fmt.Sprintf("echo %d", i)); err != nil || out != fmt.Sprintf("%d\n", i) {
				t.Fatalf("command %d: %q, %v", i, out, err)
			}
		}
		t.Logf("50 commands in %v", time.Since(start).Round(time.Millisecond))
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := vm.Run(ctx, "sleep 1000")
		if err == nil || !strings.Contains(err.Error(), `"sleep 1000"`) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want an error naming the command and the deadline", err)
		}
		// The command was killed: the guest goes on.
		if out := vm.MustRun("pgrep -x sleep || echo none"); out != "none\n" {
			t.Errorf("sleep still runs: %q", out)
		}
	})
	t.Run("background child keeps stdout", func(t *testing.T) {
		// The shell exits at once; its child holds stdout for 1000 s.
		out, err := vm.Run(ctx, "sleep 1000 & echo started")
		if err != nil || out != "started\n" {
			t.Fatalf("got %q, %v; want \"started\\n\" and status 0", out, err)
		}
		vm.MustRun("pkill -x sleep; true")
	})
	t.Run("command too long", func(t *testing.T) {
		_, err := vm.Run(ctx, strings.Repeat("x", 70000))
		if err == nil || !strings.Contains(err.Error(), "at most") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("signal", func(t *testing.T) {
		p := vm.Start(ctx, "echo started; sleep 1000")
		if _, err := p.WaitLine(ctx, "started"); err != nil {
			t.Fatal(err)
		}
		_ = p.Signal(15)
		if st, err := p.Wait(ctx); st != 128+15 || err != nil {
			t.Fatalf("status %d, %v; want %d", st, err, 128+15)
		}
	})
	t.Run("wait line of a command that ends", func(t *testing.T) {
		p := vm.Start(ctx, "echo one; printf two")
		if l, err := p.WaitLine(ctx, "two"); l != "two" || err != nil {
			t.Fatalf("got %q, %v", l, err)
		}
		if _, err := vm.Start(ctx, "echo one").WaitLine(ctx, "three"); err == nil || !strings.Contains(err.Error(), "exited with status 0 without") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestFiles(t *testing.T) {
	host := filepath.Join(t.TempDir(), "prog.sh")
	if err := os.WriteFile(host, []byte("#!/bin/sh\necho from the host\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0, 1, 2, 0xff}, 100000)
	vm := gvmmtest.Start(t,
		gvmmtest.HostFile(host, "/opt/test/prog.sh"),
		gvmmtest.File("/data/blob", data, 0o600))
	if out := vm.MustRun("/opt/test/prog.sh"); out != "from the host\n" {
		t.Errorf("prog.sh printed %q", out)
	}
	out := vm.MustRun("stat -c '%a %s' /data/blob; sha256sum /data/blob")
	if want := fmt.Sprintf("600 %d\n%x  /data/blob\n", len(data), sha256.Sum256(data)); out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestBank(t *testing.T) {
	vm := gvmmtest.Start(t, gvmmtest.Sim(4, "btn", "led"))
	ctx := t.Context()
	b := vm.Bank(0)
	t.Run("edge seen by gpiomon", func(t *testing.T) {
		// gpiomon keeps running: its line arrives as it prints it.
		p := vm.Start(ctx, "gpiomon -r gpiochip0 0")
		b.WaitFor(ctx, 0, gvmmtest.IRQ(gpio.IRQTypeEdgeRising))
		b.Set(0, 1)
		if _, err := p.WaitLine(ctx, "RISING EDGE"); err != nil {
			t.Fatal(err)
		}
		_ = p.Signal(syscall.SIGINT)
		if st, err := p.Wait(ctx); st != 0 || err != nil {
			t.Fatalf("gpiomon: status %d, %v", st, err)
		}
	})
	t.Run("pulse in the change log", func(t *testing.T) {
		vm.MustRun("gpioset -m time -u 20000 gpiochip0 1=1 && gpioset gpiochip0 2=1")
		if l := b.WaitFor(ctx, 2, gvmmtest.Output(1)); l.Direction != gpio.DirectionOut || l.Output != 1 {
			t.Errorf("line 2: %+v", l)
		}
		// gpioset has exited: the line is released now.
		if l := b.Line(2); l.Direction != gpio.DirectionNone {
			t.Errorf("line 2 after gpioset: %+v, want released", l)
		}
		var rise, fall time.Time
		for _, c := range b.Changes() {
			switch {
			case c.Line == 1 && c.Kind == gpio.ChangeOutput && c.To == 1:
				rise = c.Time
			case c.Line == 1 && c.Kind == gpio.ChangeDirection && !rise.IsZero():
				fall = c.Time // released: the LED line stops being driven
			}
		}
		if rise.IsZero() || fall.IsZero() || fall.Sub(rise) < 20*time.Millisecond {
			t.Fatalf("line 1 not driven high for 20 ms: rise %v, release %v; log:\n%v", rise, fall, b.Changes())
		}
	})
}

// inverter is the README's model: pin 1 is always the opposite of pin 0.
type inverter struct{}

func (inverter) Attached(w *gpio.Wires) { w.Drive(1, gpio.Drive(1-w.Level(0))) }

func (inverter) Changed(w *gpio.Wires, pin int, level uint8, at time.Time) {
	if pin == 0 {
		w.Drive(1, gpio.Drive(1-level))
	}
}

// TestModel is the README's model example: a model attached before boot
// answers the guest's lines and the host's, and Release hands a line back
// to its pull.
func TestModel(t *testing.T) {
	vm := gvmmtest.Start(t, gvmmtest.GPIO("sim:3,pull-up=2"), gvmmtest.Model(0, "not", inverter{}, 0, 1))
	b := vm.Bank(0)
	for _, tc := range []struct {
		step string
		do   func()
		want string
	}{
		{"line 0 floats low", func() {}, "1\n"},
		{"the host drives line 0 high", func() { b.Set(0, 1) }, "0\n"},
		{"the host releases line 0", func() { b.Release(0) }, "1\n"},
	} {
		tc.do()
		if out := vm.MustRun("gpioget gpiochip0 1"); out != tc.want {
			t.Errorf("%s: the guest read line 1 as %q, want %q", tc.step, out, tc.want)
		}
	}
	if a := b.Attachment("not"); a.Name() != "not" {
		t.Errorf("Attachment: %s", a.Name())
	}
	// Line 2: pulled up, then driven low by the host, then released.
	for _, tc := range []struct {
		do   func()
		want string
	}{{func() {}, "1\n"}, {func() { b.Set(2, 0) }, "0\n"}, {func() { b.Release(2) }, "1\n"}} {
		tc.do()
		if out := vm.MustRun("gpioget gpiochip0 2"); out != tc.want {
			t.Errorf("line 2 (%s): the guest read %q, want %q", b.Line(2).Drivers(), out, tc.want)
		}
	}
}

// TestPanic: a guest that panics ends its commands with the panic line.
func TestPanic(t *testing.T) {
	vm := gvmmtest.Start(t)
	p := vm.Start(t.Context(), "sleep 1000")
	vm.Start(t.Context(), "echo c > /proc/sysrq-trigger")
	exit, err := vm.Wait(t.Context())
	if err != nil || exit.Reason != vmm.ExitPanic || !strings.Contains(exit.Panic, "sysrq triggered crash") {
		t.Fatalf("got %+v, %v; want the sysrq panic", exit, err)
	}
	if _, err := p.Wait(t.Context()); err == nil || !strings.Contains(err.Error(), "sysrq triggered crash") {
		t.Fatalf("pending command: %v; want the panic line", err)
	}
}

// TestParallel boots two VMs at once.
func TestParallel(t *testing.T) {
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			vm := gvmmtest.Start(t, gvmmtest.Sim(2))
			vm.Bank(0).Set(1, 1)
			if out := vm.MustRun("gpioget gpiochip0 1"); out != "1\n" {
				t.Errorf("got %q", out)
			}
		})
	}
}

// TestBootTime logs the time from Start to the first command's result
// with the quiet console every test gets, the kernel's milestones and its
// five longest silences by dmesg's timestamps (the guest's clock: in the
// nested test host it runs slower than the host's, so TestBootPhases
// times the phases by the host's). Logged, not judged.
func TestBootTime(t *testing.T) {
	begin := time.Now()
	vm := gvmmtest.Start(t, gvmmtest.Sim(8), gvmmtest.Append("printk.time=1"))
	ready := time.Since(begin)
	up := vm.MustRun("cat /proc/uptime")
	first := time.Since(begin)
	rtt := time.Now()
	vm.MustRun("true")
	rttd := time.Since(rtt)
	var uptime float64
	fmt.Sscanf(up, "%f", &uptime)
	t.Logf("Start returned after %v (VM created to agent hello: %v); first command's result after %v; guest uptime then %.2f s; one command's round trip %v",
		ready.Round(time.Millisecond), vm.BootTime().Round(time.Millisecond), first.Round(time.Millisecond), uptime, rttd.Round(time.Millisecond))
	dmesg := vm.MustRun("dmesg")
	type line struct {
		ts   float64
		text string
	}
	var lines []line
	for _, l := range strings.Split(dmesg, "\n") {
		var ts float64
		if i := strings.Index(l, "]"); strings.HasPrefix(l, "[") && i > 0 {
			if _, err := fmt.Sscanf(strings.TrimSpace(l[1:i]), "%f", &ts); err == nil {
				lines = append(lines, line{ts, strings.TrimSpace(l[i+1:])})
			}
		}
	}
	if len(lines) == 0 || !strings.Contains(dmesg, "Linux version") {
		t.Fatalf("no boot log: %q", dmesg)
	}
	for _, m := range []string{"Calibrating delay", "smpboot: CPU0", "virtio-mmio", "Freeing unused kernel image", "Run /init"} {
		for _, l := range lines {
			if strings.Contains(l.text, m) {
				t.Logf("  [%8.3f] %s", l.ts, l.text)
				break
			}
		}
	}
	type gap struct {
		d          float64
		before, at line
	}
	var gaps []gap
	for i := 1; i < len(lines); i++ {
		gaps = append(gaps, gap{lines[i].ts - lines[i-1].ts, lines[i-1], lines[i]})
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].d > gaps[j].d })
	for _, g := range gaps[:min(5, len(gaps))] {
		t.Logf("  silence of %.3f s after [%8.3f] %s\n    until [%8.3f] %s", g.d, g.before.ts, g.before.text, g.at.ts, g.at.text)
	}
	for _, l := range lines {
		if strings.Contains(l.text, "Run /init") {
			t.Logf("  /init at %.3f s; from there to the first command's result: %.2f s", l.ts, uptime-l.ts)
		}
	}
}

// TestPassthroughHostLines gives the guest lines 4-7 of a host chip (the
// kernel's gpio-sim: `make test` runs TestPassthrough* in the nested test
// host, which has it) next to a simulated bank: the guest drives a host
// line and reads one the host pulls, the simulated bank still answers, and
// the host lines are free once the VM is closed.
func TestPassthroughHostLines(t *testing.T) {
	if err := gpiosim.Check(); err != nil {
		if os.Getenv("GVMM_IN_L1") != "" {
			t.Fatal(err)
		}
		t.Skipf("needs the kernel's gpio-sim as root (GVMM_FORCE_L1=1 go test -exec images/l1/l1-exec runs it): %v", err)
	}
	chip := gpiosim.New(t, 8, nil, nil)
	vm := gvmmtest.Start(t, gvmmtest.GPIO(chip.Dev()+":4-7"), gvmmtest.Sim(2))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	vm.Start(ctx, "gpioset --mode=signal gpiochip0 1=1")
	for chip.Value(5) != 1 {
		if ctx.Err() != nil {
			t.Fatal("the guest's gpioset never drove host line 5 high")
		}
		time.Sleep(50 * time.Millisecond)
	}
	chip.Pull(6, 1)
	vm.Bank(1).Set(0, 1)
	if out := vm.MustRun("gpioget gpiochip0 2; gpioget gpiochip1 0"); out != "1\n1\n" {
		t.Errorf("the guest read %q, want host line 6 and simulated line 0 high", out)
	}
	vm.Close()
	c, err := cdev.OpenChip(chip.Dev())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 8 {
		if info, err := c.LineInfo(i); err != nil || info.Used() {
			t.Errorf("host line %d after Close: %+v, %v; want it free", i, info, err)
		}
	}
}
