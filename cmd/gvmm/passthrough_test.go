package main

// Host GPIO passthrough (--gpio CHIP:LINES) against real kernel GPIO lines:
// chips of the host kernel's gpio-sim. The nested test host has gpio-sim
// (images/l1); `make test` runs these tests there (GVMM_FORCE_L1=1) even
// on a host with hardware KVM.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/cdev"
	"github.com/gvmm/gvmm/devices/gpio/control"
	"github.com/gvmm/gvmm/internal/gpiosim"
)

// needGPIOSim fails the test unless gpio-sim chips can be made here.
func needGPIOSim(t *testing.T) {
	t.Helper()
	needKVM(t)
	if err := gpiosim.Check(); err != nil {
		t.Fatalf("this test needs the kernel's gpio-sim as root (make test runs it in the nested test host, which has it: GVMM_FORCE_L1=1 images/l1/l1-exec): %v", err)
	}
}

// holders returns the consumer of each of the chip's lines ("" if free).
func holders(t *testing.T, chip *gpiosim.Chip, n int) []string {
	t.Helper()
	c, err := cdev.OpenChip(chip.Dev())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var h []string
	for i := 0; i < n; i++ {
		info, err := c.LineInfo(i)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Used() {
			h = append(h, "")
			continue
		}
		h = append(h, info.Consumer)
	}
	return h
}

// waitFor polls cond until it holds; step names it for the timeout.
func waitFor(t *testing.T, ctx context.Context, step string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("step %q: timed out", step)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPassthrough gives the guest lines 4-7 of a host chip next to a
// simulated bank: the guest sees them as lines 0-3 with the host's names,
// drives a host line, reads one the host drives, and gets the host's edges
// as interrupts; gvmm holds exactly those four lines while it runs, under
// the consumer name --name gives, and none after.
func TestPassthrough(t *testing.T) {
	needGPIOSim(t)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	names := []string{"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7"}
	chip := gpiosim.New(t, 8, names, map[int]string{1: "someone-else"})
	sock := filepath.Join(t.TempDir(), "gvmm.sock")
	script := `gpiodetect; gpioinfo gpiochip0
gpioset --mode=signal gpiochip0 1=1 &
until [ "$(gpioget gpiochip0 2)" = 1 ]; do sleep 0.1; done; echo SAW-HOST-HIGH
gpiomon -F 'MON %o %e' -n 2 gpiochip0 3; echo MON-DONE`
	r := start(t, ctx, "run", "--append", quietCmdline, "--control", sock, "--name", "pt-1",
		"--gpio", chip.Dev()+":4-7", "--gpio", "sim:4", "--cmd", script)
	defer func() { _ = r.cmd.Process.Kill(); r.wait() }()

	r.waitLine("gpiodetect lists the host lines", "gpiochip0 [virtio0] (4 lines)")
	r.waitLine("gpiodetect lists the simulated bank", "gpiochip1 [virtio1] (4 lines)")
	for i := 0; i < 4; i++ {
		r.waitLine("gpioinfo names the host lines", fmt.Sprintf(`line   %d:         "h%d"`, i, i+4))
	}
	want := []string{"", "someone-else", "", "", "gvmm-pt-1", "gvmm-pt-1", "gvmm-pt-1", "gvmm-pt-1"}
	if got := holders(t, chip, 8); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("while gvmm runs, the host lines are held by %q, want %q", got, want)
	}
	waitFor(t, ctx, "the guest's gpioset drives host line 5 high", func() bool { return chip.Value(5) == 1 })
	chip.Pull(6, 1)
	r.waitLine("the guest reads host line 6 high", "SAW-HOST-HIGH")

	c, err := cdev.OpenChip(chip.Dev())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The line's flags show the edges before the kernel has set up their
	// detection (the flags come first in GPIO_V2_LINE_SET_CONFIG_IOCTL):
	// an edge made then is lost. The device counts SET_IRQ_TYPE once the
	// backend's ioctl has returned.
	cl := dialControl(t, ctx, sock)
	waitFor(t, ctx, "gpiomon in the guest enables edge detection on host line 7", func() bool {
		info, err := c.LineInfo(7)
		resp, serr := cl.Do(control.Request{Op: "stats", Bank: 0})
		return err == nil && info.Flags&cdev.LineFlagEdgeRising != 0 &&
			serr == nil && resp.Stats.Requests[gpio.MsgTypeSetIRQType] > 0
	})
	chip.Pull(7, 1)
	r.waitLine("a rising edge on host line 7 reaches gpiomon", "MON 3 1")
	chip.Pull(7, 0)
	r.waitLine("a falling edge on host line 7 reaches gpiomon", "MON 3 0")
	r.waitLine("gpiomon ends", "MON-DONE")
	if st := r.wait(); st != 0 {
		t.Errorf("exit status %d; stderr: %s", st, r.stderr.String())
	}
	want = []string{"", "someone-else", "", "", "", "", "", ""}
	if got := holders(t, chip, 8); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after gvmm, the host lines are held by %q, want %q", got, want)
	}
}

// TestPassthroughReleases ends gvmm every way it can end while it holds
// host lines and checks that the lines are free afterwards. The guests have
// two vCPUs, and reboot and panic come from the second.
func TestPassthroughReleases(t *testing.T) {
	needGPIOSim(t)
	chip := gpiosim.New(t, 4, nil, nil)
	spec := chip.Dev() + ":1-2"
	tests := []struct {
		name   string
		args   []string
		signal syscall.Signal // sent once the guest runs its command
		status int
		stderr string
	}{
		{"guest poweroff", []string{"--cmd", "echo GUEST-UP"}, 0, 0, ""},
		{"guest reboot", []string{"--cmd", "echo GUEST-UP; taskset -c 1 reboot -f"}, 0, 0, ""},
		{"guest panic", []string{"--cmd", "echo GUEST-UP; taskset -c 1 sh -c 'echo c > /proc/sysrq-trigger'"}, 0, 1, "guest kernel panic"},
		{"SIGINT", []string{"--cmd", "echo GUEST-UP; sleep 1000"}, syscall.SIGINT, 130, "stopped by interrupt"},
		{"SIGTERM", []string{"--cmd", "echo GUEST-UP; sleep 1000"}, syscall.SIGTERM, 143, "stopped by terminated"},
		{"VMM error", []string{"--kernel", "/proc/self/exe"}, 0, 1, "not a bzImage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
			defer cancel()
			args := append([]string{"run", "--append", quietCmdline, "--cpus", "2", "--gpio", spec}, tt.args...)
			r := start(t, ctx, args...)
			if tt.name != "VMM error" {
				r.waitLine("the guest runs its command", "GUEST-UP")
				if h := holders(t, chip, 4); h[1] != "gvmm" || h[2] != "gvmm" || h[0] != "" || h[3] != "" {
					t.Errorf("while gvmm runs, lines held by %q, want gvmm on 1 and 2 only", h)
				}
			}
			if tt.signal != 0 {
				if err := r.cmd.Process.Signal(tt.signal); err != nil {
					t.Fatal(err)
				}
			}
			st := r.wait()
			if ctx.Err() != nil {
				t.Fatalf("step %q: timed out", tt.name)
			}
			if st != tt.status || !strings.Contains(r.stderr.String(), tt.stderr) {
				t.Errorf("exit status %d, stderr %q; want %d and %q", st, r.stderr.String(), tt.status, tt.stderr)
			}
			if h := holders(t, chip, 4); strings.Join(h, "") != "" {
				t.Errorf("after gvmm ended, lines still held: %q", h)
			}
		})
	}
}

// TestPassthroughRefused: lines gvmm cannot have are refused before the
// guest starts, in one line naming the problem, and nothing is held after.
func TestPassthroughRefused(t *testing.T) {
	needGPIOSim(t)
	chip := gpiosim.New(t, 4, nil, map[int]string{2: "someone-else"})
	tests := []struct {
		name, spec, want string
	}{
		{"busy line", chip.Dev() + ":1-3", `line 2 is busy (held by "someone-else")`},
		{"line out of range", chip.Dev() + ":3-4", "has 4 lines (0-3): no line 4"},
		{"by label, busy", chip.Label() + ":2", "someone-else"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gvmmRun(t, tt.name, "run", "--gpio", tt.spec)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.status != 1 || len(lines) != 1 || !strings.Contains(lines[0], tt.want) || r.stdout != "" {
				t.Errorf("status %d, stdout %q, stderr %q; want status 1 and one line with %q", r.status, r.stdout, r.stderr, tt.want)
			}
			if h := holders(t, chip, 4); fmt.Sprint(h) != fmt.Sprint([]string{"", "", "someone-else", ""}) {
				t.Errorf("after the refusal, lines held by %q", h)
			}
		})
	}
}
