package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvmm/gvmm/gvmmtest"
)

// TestSMPBoot boots 16 vCPUs (the least --cpus must reach) and one, and
// checks that the guest brought up every CPU the device tree gave it.
func TestSMPBoot(t *testing.T) {
	needKVM(t)
	for _, n := range []int{16, 1} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			r := gvmmRun(t, fmt.Sprintf("boot %d vCPUs and count them", n), "run", "--append", quietCmdline,
				"--cpus", strconv.Itoa(n), "--cmd", "echo NPROC=$(nproc) ONLINE=$(cat /sys/devices/system/cpu/online)")
			want := fmt.Sprintf("NPROC=%d ONLINE=0", n)
			if n > 1 {
				want += fmt.Sprintf("-%d", n-1)
			}
			if !strings.Contains(r.stdout, want) || r.status != 0 {
				t.Errorf("want %q on the console and status 0; got status %d, console:\n%s\nstderr: %s", want, r.status, r.stdout, r.stderr)
			}
		})
	}
}

// TestSMPTraffic has gpio-soak's four workers, each pinned to its own CPU
// of four, make GPIO requests at once: every request is answered (the
// driver waits without a timeout, so the soak ending is the proof), each
// worker ran where it was pinned, and the device's per-type counts are
// what the guest's calls make (soak checks all of it).
func TestSMPTraffic(t *testing.T) {
	needKVM(t)
	soak(t, 2000, 4, 4)
}

// TestSMPInterrupts routes the GPIO device's interrupt to CPU 1 while
// busy loops keep both CPUs of the guest loaded, and has gpiomon, pinned
// to CPU 1 too, report edges the host injects one at a time: each must
// arrive, and CPU 1 must be the one that took the interrupts.
func TestSMPInterrupts(t *testing.T) {
	const edges = 20
	vm := gvmmtest.Start(t, gvmmtest.CPUs(2), gvmmtest.Sim(4))
	ctx, b := t.Context(), vm.Bank(0)
	irq := strings.TrimSpace(vm.MustRun(`grep -m1 virtio0 /proc/interrupts | cut -d: -f1`))
	if _, err := strconv.Atoi(irq); err != nil {
		t.Fatalf("virtio0's interrupt in /proc/interrupts: %q", irq)
	}
	vm.MustRun(fmt.Sprintf("echo 2 >/proc/irq/%s/smp_affinity", irq)) // CPU 1
	// cpu1 prints how many of the interrupt CPU 1 has taken.
	cpu1 := func() int {
		n, err := strconv.Atoi(strings.TrimSpace(vm.MustRun(`grep -m1 virtio0 /proc/interrupts | awk '{print $3}'`)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for c := range 2 {
		vm.Start(ctx, fmt.Sprintf("taskset -c %d sh -c 'while :; do :; done'", c))
	}
	before := cpu1()
	p := vm.Start(ctx, "taskset -c 1 gpiomon -F '%o %e' gpiochip0 2")
	b.WaitFor(ctx, 2, irqOn)
	for i := range edges {
		b.Set(2, 1-i%2)
		if _, err := p.WaitLine(ctx, fmt.Sprintf("2 %d", 1-i%2)); err != nil {
			t.Fatalf("edge %d with both CPUs busy: %v", i+1, err)
		}
	}
	_ = p.Signal(syscall.SIGINT)
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if out, _ := p.Output(); len(strings.Fields(out)) != 2*edges {
		t.Errorf("gpiomon printed %q, want %d events", out, edges)
	}
	// Each event is an eventq completion, each an interrupt on CPU 1 (its
	// requestq answers share the interrupt and add to the count).
	if got := cpu1() - before; got < edges {
		t.Errorf("CPU 1 took %d of virtio0's interrupts during %d edges, want at least %d", got, edges, edges)
	}
}

// TestEveryControllerInterrupts runs gpiomon on controllers 1 and 2 at
// once and injects edges on both, interleaved: Linux 6.1's gpio-virtio
// shared one irq_chip between its devices and crashed the guest on the
// first interrupt requested on any controller but the first, which the
// image's kernel fixes (images/patches/0002-...). Each controller's edges
// must all arrive, counted per line, and the device's own counts agree.
func TestEveryControllerInterrupts(t *testing.T) {
	const edges = 10
	vm := gvmmtest.Start(t, gvmmtest.Sim(4), gvmmtest.Sim(4), gvmmtest.Sim(4))
	ctx := t.Context()
	var mons []*gvmmtest.Proc
	for c := 1; c <= 2; c++ {
		mons = append(mons, vm.Start(ctx, fmt.Sprintf("gpiomon -F '%%o %%e' gpiochip%d 3", c)))
		vm.Bank(c).WaitFor(ctx, 3, irqOn)
	}
	for i := range edges {
		for c := 1; c <= 2; c++ {
			vm.Bank(c).Set(3, 1-i%2)
		}
		for c, p := range mons {
			if _, err := p.WaitLine(ctx, fmt.Sprintf("3 %d", 1-i%2)); err != nil {
				t.Fatalf("edge %d on controller %d: %v", i+1, c+1, err)
			}
		}
	}
	for c, p := range mons {
		_ = p.Signal(syscall.SIGINT)
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		out, _ := p.Output()
		if n := strings.Count(out, "\n"); n != edges {
			t.Errorf("controller %d: gpiomon printed %d events, want %d:\n%s", c+1, n, edges, out)
		}
		if s := vm.Bank(c + 1).Stats(); s.Valid < edges {
			t.Errorf("controller %d: the device returned %d eventq buffers VALID, want at least %d", c+1, s.Valid, edges)
		}
	}
	if strings.Contains(vm.Console(), "BUG:") || strings.Contains(vm.Console(), "shared with multiple gpiochips") {
		t.Errorf("guest console:\n%s", vm.Console())
	}
}

// TestDumpEveryVCPU sends gvmm SIGUSR1 while a guest with two vCPUs runs:
// stderr must say where each one is, with its registers and the words on
// its stack (read through its page tables), and name kernel functions.
func TestDumpEveryVCPU(t *testing.T) {
	needKVM(t)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	r := start(t, ctx, "run", "--append", quietCmdline, "--cpus", "2", "--cmd", "echo GUEST-UP; taskset -c 1 sh -c 'while :; do :; done'")
	r.waitLine("wait for the guest to start its command", "GUEST-UP")
	if err := r.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	// The image's System.map sits next to its bzImage, so gvmm names the
	// kernel functions: vCPU 0, idle, is in one and has return addresses
	// into others on its stack.
	want := []string{"gvmm: vCPU 0: RIP", "gvmm: vCPU 1: RIP", "gvmm: vCPU 1: RFLAGS", "gvmm: vCPU 1: stack at RSP: 0x", "+0x"}
	has := func() bool {
		for _, w := range want {
			if !strings.Contains(r.stderr.String(), w) {
				return false
			}
		}
		return true
	}
	for !has() {
		if time.Now().After(deadline) {
			t.Fatalf("step 'dump the vCPUs': stderr after SIGUSR1 lacks one of %q:\n%s", want, r.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	r.wait()
}
