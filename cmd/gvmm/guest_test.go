package main

// Tests of the virtio-gpio device through the guest kernel's drivers and
// libgpiod's tools, written with gvmmtest: the VM runs in this process,
// the banks are Go values and guest commands go through the agent.
// main_test.go keeps the tests of the gvmm command itself.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/gvmmtest"
	"github.com/gvmm/gvmm/vmm"
)

// guestBin is where `make guest-bins` leaves the static programs that tests
// add to the guest.
const guestBin = "../../bin/guest"

// guestProgram puts the program name from guestBin into the guest's
// /usr/bin.
func guestProgram(t *testing.T, name string) gvmmtest.Option {
	t.Helper()
	p := filepath.Join(guestBin, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("step 'add %s to the guest': %v (build it with 'make guest-bins')", name, err)
	}
	return gvmmtest.HostFile(p, "/usr/bin/"+name)
}

// irqOn is a WaitFor condition: the guest enabled the line's interrupt.
func irqOn(l gvmmtest.Line) bool { return l.IRQType != gpio.IRQTypeNone }

// TestGPIOEdges injects edges on three lines monitored by gpiomon for
// both, rising and falling edges, each awaited in the guest before the
// next that should be reported, and checks gpiomon saw exactly the edges
// its trigger type selects, in order.
func TestGPIOEdges(t *testing.T) {
	vm := gvmmtest.Start(t, gvmmtest.Sim(8))
	ctx, b := t.Context(), vm.Bank(0)
	for _, s := range []struct {
		line   int
		flags  string
		events []string // per level 1, 0, 1, 0: gpiomon's %e (1 rising, 0 falling), "" for none
	}{
		{3, "", []string{"1", "0", "1", "0"}},
		{4, "--rising-edge", []string{"1", "", "1", ""}},
		{5, "--falling-edge", []string{"", "0", "", "0"}},
	} {
		p := vm.Start(ctx, fmt.Sprintf("gpiomon -F '%%o %%e' %s gpiochip0 %d", s.flags, s.line))
		b.WaitFor(ctx, s.line, irqOn)
		var want []string
		for i, e := range s.events {
			b.Set(s.line, 1-i%2)
			if e != "" {
				want = append(want, fmt.Sprintf("%d %s", s.line, e))
				if _, err := p.WaitLine(ctx, want[len(want)-1]); err != nil {
					t.Fatalf("edge %d on line %d: %v", i+1, s.line, err)
				}
			}
		}
		_ = p.Signal(syscall.SIGINT)
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if out, _ := p.Output(); strings.Fields(out) == nil || strings.Join(strings.Split(strings.TrimSpace(out), "\n"), ",") != strings.Join(want, ",") {
			t.Errorf("line %d (%s): gpiomon printed %q, want %q", s.line, s.flags, out, want)
		}
	}
}

// TestGPIOBurst injects 1000 edges on a line as fast as the bank takes
// them and reports how many reached gpiomon. The spec latches at most one
// edge while a line is masked, so a burst may collapse; what it never
// allows is losing the last edge: once the burst is over, the level the
// guest last saw must be the line's final level. gpiomon writes to a file
// so that it keeps up with the kernel's event FIFO.
func TestGPIOBurst(t *testing.T) {
	const edges = 1000
	vm := gvmmtest.Start(t, gvmmtest.Sim(4))
	ctx, b := t.Context(), vm.Bank(0)
	p := vm.Start(ctx, "gpiomon -b -F '%o %e' gpiochip0 3 >/tmp/mon")
	b.WaitFor(ctx, 3, irqOn)
	begin := time.Now()
	for i := 1; i <= edges; i++ {
		b.Set(3, i&1) // ends low
	}
	took := time.Since(begin)
	// Once gpiomon has been quiet for a second, the burst is in.
	vm.MustRun(`n=-1; until [ "$n" = "$(wc -l </tmp/mon)" ]; do n=$(wc -l </tmp/mon); sleep 1; done`)
	_ = p.Signal(syscall.SIGINT)
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var count int
	var last string
	fmt.Sscanf(vm.MustRun("wc -l </tmp/mon; tail -n 1 /tmp/mon"), "%d\n3 %s", &count, &last)
	t.Logf("burst: %d edges injected in %v, gpiomon saw %d events, the last %q", edges, took, count, last)
	if last != "0" {
		t.Errorf("the burst ends low but gpiomon's last event is %q: the last edge was lost", last)
	}
	if count < 1 || count > edges {
		t.Errorf("gpiomon saw %d events for %d edges", count, edges)
	}
}

// TestGPIOEdgeReconciliation injects N edges on a line whose interrupt
// the guest enabled for both edges and reconciles three counts: the edges
// the host made, what the device decided for each (Bank.Stats: fired a
// held buffer, latched on a masked line, collapsed into a latch, or folded
// by the bounded event queue) and the events the guest's kernel delivered
// (gpio-events). The spec's latch rule makes them add up exactly:
//
//	N = fired + latched + collapsed + folded
//	latched = latches delivered + discarded + pending
//	VALID completions = fired + latches delivered = guest events (+ kernel drops)
//
// and the guest's last event is the line's final level.
func TestGPIOEdgeReconciliation(t *testing.T) {
	const edges = 2000
	vm := gvmmtest.Start(t, gvmmtest.Sim(4), guestProgram(t, "gpio-events"))
	ctx, b := t.Context(), vm.Bank(0)
	p := vm.Start(ctx, "gpio-events -line 3 -done 2")
	// gpio-events prints this once its line request has returned: the
	// guest's driver has then sent SET_IRQ_TYPE and queued the line's
	// eventq buffer. (Waiting for the trigger type alone let the burst
	// race the driver's enabling: it sends SET_IRQ_TYPE first.)
	if _, err := p.WaitLine(ctx, "counting the edges"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= edges; i++ {
		b.Set(3, i&1) // ends low
	}
	b.Set(2, 1)
	line, err := p.WaitLine(ctx, "EVENTS ")
	if err != nil {
		t.Fatal(err)
	}
	var n, gaps int
	var last string
	fmt.Sscanf(line, "EVENTS n=%d gaps=%d last=%s", &n, &gaps, &last)
	s := b.Stats()
	t.Logf("%d edges: fired %d, latched %d, collapsed %d, folded %d; latches delivered %d, discarded %d, pending %d; VALID %d, INVALID %d; guest events %d, kernel drops %d, last %s",
		edges, s.EdgesFired, s.EdgesLatched, s.EdgesCollapsed, s.EventsFolded, s.LatchesDelivered, s.LatchesDiscarded, s.LatchesPending,
		s.Valid, s.Invalid, n, gaps, last)
	check := func(what string, got, want uint64) bool {
		t.Helper()
		if got != want {
			t.Errorf("%s: %d, want %d (stats %+v)", what, got, want, s)
		}
		return got == want
	}
	check("fired + latched + collapsed + folded = edges", s.EdgesFired+s.EdgesLatched+s.EdgesCollapsed+s.EventsFolded, edges)
	check("latches delivered + discarded + pending = latched", s.LatchesDelivered+s.LatchesDiscarded+s.LatchesPending, s.EdgesLatched)
	check("fired + latches delivered = VALID", s.EdgesFired+s.LatchesDelivered+s.LevelsFired, s.Valid)
	if !check("guest events + kernel drops = VALID", uint64(n+gaps), s.Valid) {
		t.Logf("the guest kernel's log:\n%s", vm.MustRun("dmesg | tail -n 30"))
	}
	check("stale events", s.StaleEvents, 0)
	if n < 1 || last != "falling" {
		t.Errorf("the guest saw %d events, the last %q; the line ended low", n, last)
	}
	if s.Valid > edges || s.Errors != 0 || s.MalformedChains != 0 {
		t.Errorf("stats %+v", s)
	}
}

// evdump is shell for the guest: evopen starts recording
// /dev/input/event0 into /tmp/ev in the background and returns once the
// reader holds it open; evwait N waits until N events (EV_KEY and EV_SYN
// alike, 24 bytes each) are recorded; evdump prints each as "EV type code
// value".
const evdump = `evopen() { cat /dev/input/event0 >/tmp/ev & ev=$!
  until ls -l /proc/$ev/fd 2>/dev/null | grep -q event0; do sleep 0.1; done; echo $ev >/tmp/ev.pid; }
evwait() { until [ $(wc -c </tmp/ev) -ge $(($1*24)) ]; do sleep 0.1; done; }
evdump() { kill $(cat /tmp/ev.pid); od -An -v -tu2 -w24 /tmp/ev | awk '{print "EV", $9, $10, $11+65536*$12}'; }
`

// keyEvents runs evdump in the guest and returns its lines.
func keyEvents(vm *gvmmtest.VM) []string {
	return strings.Split(strings.TrimSpace(vm.MustRun(evdump+"evdump")), "\n")
}

// TestGPIOLEDsAndKeys boots with two controllers, each with consumers from
// LED and Key specifications (gvmm run's --led and --key): the guest's
// leds-gpio drives lines the host sees, and host edges reach the guest's
// gpio-keys as key presses, on both controllers (Linux 6.1's gpio-virtio
// crashed on any interrupt of a second one; the image's kernel carries the
// fix, images/patches/0002-...). At power-off no request may fail or be
// left waiting.
func TestGPIOLEDsAndKeys(t *testing.T) {
	vm := gvmmtest.Start(t, gvmmtest.Sim(8), gvmmtest.Sim(4),
		gvmmtest.LED("status=0:1"), gvmmtest.LED("inv=0:2,active-low"), gvmmtest.LED("on=0:3,default-on"), gvmmtest.LED("b1=1:0"),
		gvmmtest.Key("28=0:4"), gvmmtest.Key("2=0:5,active-low"), gvmmtest.Key("3=1:1"))
	ctx, b0, b1 := t.Context(), vm.Bank(0), vm.Bank(1)
	b0.Set(5, 1) // key 2 is active-low: released while high
	if out := vm.MustRun("ls /sys/class/leds | xargs"); out != "b1 inv on status\n" {
		t.Fatalf("LEDs in /sys/class/leds: %q", out)
	}
	vm.MustRun("cd /sys/class/leds; echo 1 >status/brightness; echo 1 >inv/brightness; echo 1 >b1/brightness; echo 0 >on/brightness")
	b0.WaitFor(ctx, 1, gvmmtest.Output(1)) // status on
	b0.WaitFor(ctx, 2, gvmmtest.Output(0)) // active-low inv on
	b1.WaitFor(ctx, 0, gvmmtest.Output(1)) // b1 on, on controller 1
	b0.WaitFor(ctx, 3, gvmmtest.Output(0)) // default-on LED turned off
	vm.MustRun("cd /sys/class/leds; echo 0 >status/brightness; echo 0 >inv/brightness; echo 0 >b1/brightness")
	b0.WaitFor(ctx, 1, gvmmtest.Output(0))
	b0.WaitFor(ctx, 2, gvmmtest.Output(1))
	b1.WaitFor(ctx, 0, gvmmtest.Output(0))

	vm.MustRun(evdump + "evopen")
	for i, k := range []struct {
		b    *gvmmtest.Bank
		line int
	}{{b0, 4}, {b0, 4}, {b0, 5}, {b0, 5}, {b1, 1}, {b1, 1}} {
		v := 1 - i%2 // press, then release
		if k.line == 5 {
			v = 1 - v // active-low
		}
		k.b.Set(k.line, v)
		vm.MustRun(evdump + fmt.Sprintf("evwait %d", 2*(i+1)))
	}
	want := []string{"EV 1 28 1", "EV 0 0 0", "EV 1 28 0", "EV 0 0 0", "EV 1 2 1", "EV 0 0 0", "EV 1 2 0", "EV 0 0 0",
		"EV 1 3 1", "EV 0 0 0", "EV 1 3 0", "EV 0 0 0"}
	if got := keyEvents(vm); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("guest input events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	vm.Start(ctx, "poweroff -f")
	if exit, err := vm.Wait(ctx); err != nil || exit.Reason != vmm.ExitReset || strings.Contains(vm.Console(), "gpio_virtio") {
		t.Errorf("power-off: %+v, %v; console:\n%s", exit, err, vm.Console())
	}
}

// TestGPIODefaultOn checks that a default-on LED drives its line from
// boot, before any guest program runs, and that a reboot with LEDs lit
// ends the VM cleanly.
func TestGPIODefaultOn(t *testing.T) {
	vm := gvmmtest.Start(t, gvmmtest.Sim(3), gvmmtest.LED("on=0:0,default-on"), gvmmtest.LED("low=0:1,active-low,default-on"))
	for line, want := range []int{1, 0} {
		if l := vm.Bank(0).Line(line); l.Direction != gpio.DirectionOut || int(l.Output) != want {
			t.Errorf("line %d right after boot: %+v, want an output at %d", line, l, want)
		}
	}
	vm.Start(t.Context(), "reboot -f")
	if exit, err := vm.Wait(t.Context()); err != nil || exit.Reason != vmm.ExitReset || strings.Contains(vm.Console(), "gpio_virtio") {
		t.Errorf("reboot: %+v, %v; console:\n%s", exit, err, vm.Console())
	}
}

// TestGPIOLevelInterrupt uses a level-high interrupt through the guest's
// gpio-keys (an interrupt-only key): while the host holds the line high
// the interrupt fires and re-fires (the device completes each eventq
// buffer as soon as it is queued), the key stays pressed; once the line is
// low the interrupts stop and the key is released. The key's line is
// never requested as a GPIO: releasing a GPIO sends SET_DIRECTION(NONE),
// which discards the line's interrupt.
func TestGPIOLevelInterrupt(t *testing.T) {
	vm := gvmmtest.Start(t, gvmmtest.Sim(4), gvmmtest.Key("30=0:2,level-high,debounce-interval=1000"))
	b := vm.Bank(0)
	const irqs = `irqs() { awk '/gpio_keys/ {print $2}' /proc/interrupts; }; `
	vm.MustRun(evdump + "evopen")
	b.Set(2, 1)
	// Hold the line high until the device has fired it three times, no
	// longer: each level interrupt the guest takes asks for the next at
	// once, so a line left high is an interrupt storm (hundreds a second;
	// in the one-CPU nested test host each one a chance to wedge it).
	deadline := time.Now().Add(5 * time.Minute)
	for b.Stats().LevelsFired < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("step 'the device fires the high line 3 times': %d times in 5 min", b.Stats().LevelsFired)
		}
		time.Sleep(time.Millisecond)
	}
	b.Set(2, 0)
	t.Log(vm.MustRun(irqs + `n=$(irqs); [ "$n" -ge 3 ] || { echo "only $n interrupts while the line was high"; exit 1; }; echo re-fired: $n interrupts`))
	t.Log(vm.MustRun(irqs + `n=-1; until [ "$n" = "$(irqs)" ]; do n=$(irqs); sleep 1; done; echo quiet at $n interrupts`))
	vm.MustRun(evdump + "evwait 4; sleep 1")
	want := []string{"EV 1 30 1", "EV 0 0 0", "EV 1 30 0", "EV 0 0 0"}
	if got := keyEvents(vm); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("guest input events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestGPIORoundTrip times GPIO writes in the guest with gpio-rtt (one
// SET_VALUES ioctl each, one SET_VALUE request through the device) and
// checks that the host saw every write. The figures are logged, not judged.
func TestGPIORoundTrip(t *testing.T) {
	const writes = 2000
	vm := gvmmtest.Start(t, gvmmtest.Sim(2), guestProgram(t, "gpio-rtt"))
	t.Log(strings.TrimSpace(vm.MustRun(fmt.Sprintf("gpio-rtt -n %d", writes))))
	seen := 0
	for _, c := range vm.Bank(0).Changes() {
		if c.Line == 0 && c.Kind == gpio.ChangeOutput {
			seen++
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
	vm := gvmmtest.Start(t, guestProgram(t, "cdev.test"))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	out, err := vm.Run(ctx, "GVMM_GPIO_SIM=1 cdev.test -test.v -test.timeout 5m 2>&1")
	if err != nil || !strings.Contains(out, "\nPASS") {
		t.Fatalf("cdev tests in the guest: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "--- ") {
			t.Log(strings.TrimSpace(l))
		}
	}
}
