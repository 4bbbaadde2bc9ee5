package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/control"
)

// soakMessages is how many requestq messages of each type one counted
// guest action (a kind gpio-soak counts) makes, through Linux 6.1's
// drivers/gpio/gpiolib-cdev.c, gpiolib.c and gpio-virtio.c. The driver has
// no .get_multiple, .set_multiple, .set_config or .request, and sets
// gc.can_sleep, which decides most of it:
var soakMessages = map[string]map[gpio.MsgType]uint64{
	// linereq_set_values → gpiod_set_array_value_complex →
	// gpio_chip_set_multiple: no .set_multiple, so .set per line:
	// virtio_gpio_set.
	"set": {gpio.MsgTypeSetValue: 1},
	// linereq_get_values → gpiod_get_array_value_complex →
	// gpio_chip_get_multiple: .get per line, virtio_gpio_get.
	"get": {gpio.MsgTypeGetValue: 1},
	// linereq_set_config_unlocked, input: gpiod_direction_input →
	// virtio_gpio_direction_input; gpio_set_bias sends nothing (no bias
	// flags, no .set_config); edge_detector_update returns at once (no
	// edge flags before or after).
	"dir-in": {gpio.MsgTypeSetDirection: 1},
	// linereq_set_config_unlocked, output: edge_detector_stop (no irq),
	// gpiod_direction_output → gpiod_direction_output_raw_commit →
	// virtio_gpio_direction_output: SET_VALUE, then SET_DIRECTION(OUT).
	"dir-out": {gpio.MsgTypeSetValue: 1, gpio.MsgTypeSetDirection: 1},
	// Input with both edges: gpiod_direction_input (SET_DIRECTION(IN),
	// sent although the line is an input already), then
	// edge_detector_update → edge_detector_setup → request_threaded_irq
	// → __setup_irq: irq_set_type and irq_startup → irq_enable mark the
	// line, and chip_bus_sync_unlock → virtio_gpio_irq_bus_sync_unlock
	// sends one SET_IRQ_TYPE(EDGE_BOTH) (and queues the eventq buffer).
	// gpiochip_irq_reqres → gpiochip_lock_as_irq sends nothing: it asks
	// .get_direction only of chips that cannot sleep. Mapping the irq the
	// first time (gpiochip_irq_map) takes the bus lock with nothing
	// pending, so sends nothing.
	"irq-on": {gpio.MsgTypeSetDirection: 1, gpio.MsgTypeSetIRQType: 1},
	// Input without edges: SET_DIRECTION(IN) as above, then
	// edge_detector_update → edge_detector_stop → free_irq → __free_irq:
	// irq_shutdown → irq_disable marks the line, the first
	// chip_bus_sync_unlock sends SET_IRQ_TYPE(NONE); the second one
	// (irq_release_resources) has nothing pending.
	"irq-off": {gpio.MsgTypeSetDirection: 1, gpio.MsgTypeSetIRQType: 1},
	// linereq_create: gpiod_request_user → gpiod_request_commit →
	// gpiod_get_direction (GET_DIRECTION; there is no .request);
	// gpiod_set_transitory sends nothing (no .set_config); then as
	// dir-out.
	"request-out": {gpio.MsgTypeGetDirection: 1, gpio.MsgTypeSetValue: 1, gpio.MsgTypeSetDirection: 1},
	// linereq_create, input without edges: GET_DIRECTION, then
	// gpiod_direction_input; edge_detector_setup has no edges to set up.
	"request-in": {gpio.MsgTypeGetDirection: 1, gpio.MsgTypeSetDirection: 1},
	// linereq_free: edge_detector_stop (no irq), gpiod_free →
	// gpiod_free_commit → virtio_gpio_free: SET_DIRECTION(NONE).
	"release": {gpio.MsgTypeSetDirection: 1},
	// linereq_free with edges on: free_irq as in irq-off, then as
	// release.
	"release-irq": {gpio.MsgTypeSetIRQType: 1, gpio.MsgTypeSetDirection: 1},
}

// soakOps are the kinds gpio-soak counts as operations.
var soakOps = []string{"set", "get", "dir-in", "dir-out", "irq-on", "irq-off"}

// TestSoak is the soak campaign (make soak): gpio-soak makes GVMM_SOAK_OPS
// (default 1,000,000) GPIO operations from 4 guest processes in one boot,
// on GVMM_SOAK_CPUS vCPUs (default 1; with more, each process is pinned to
// one, and the nested host needs as many: GVMM_L1_CPUS).
// Every one must be answered (the driver waits without a timeout: the
// soak ending is the proof), none may fail, and the device's count of
// requestq messages of each type must be what soakMessages predicts from
// the guest's counts. gvmm's RSS is sampled as the soak starts, half-way
// and at the end; it and the rate are logged, not judged.
func TestSoak(t *testing.T) {
	if os.Getenv("GVMM_SOAK") != "1" {
		t.Skip("the soak takes hours through the nested test host: run it with `make soak` (GVMM_SOAK=1; GVMM_SOAK_OPS sets the number of operations)")
	}
	needKVM(t)
	soak(t, envCount(t, "GVMM_SOAK_OPS", 1000000), 4, envCount(t, "GVMM_SOAK_CPUS", 1))
}

// envCount is the positive number in environment variable name, or def
// if it is unset.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// soak boots a guest with cpus vCPUs and has gpio-soak make ops operations
// from workers processes (pinned to a CPU each when cpus > 1), then checks
// every count against the device's; it logs gvmm's RSS and the rate.
func soak(t *testing.T, ops, workers, cpus int) {
	// The whole soak gets what the test binary's -timeout leaves, less a
	// minute to report a stuck step by name.
	timeout := 3 * time.Hour
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) - time.Minute
	}
	pin := ""
	if cpus > 1 {
		pin = " -pin"
	}
	// The guest waits for a line on its console before and after the soak,
	// so that the stats taken then count the soak and nothing else.
	script := fmt.Sprintf(`echo SOAK-READY; read go
gpio-soak -ops %d -workers %d%s; echo SOAK-EXIT $?
echo SOAK-WARNINGS $(dmesg | grep -c 'WARNING:') $(dmesg | grep -m1 'WARNING:')
read done`, ops, workers, pin)
	r, cl, _ := startControlledFor(t, timeout, "--append", quietCmdline, "--cpus", strconv.Itoa(cpus),
		"--gpio", fmt.Sprintf("sim:%d", 2*workers), "--initrd", guestInitrd(t, "gpio-soak"), "--cmd", script)
	pid := r.cmd.Process.Pid
	stats := func(step string) gpio.Stats {
		t.Helper()
		resp, err := cl.Do(control.Request{Op: "stats", Bank: 0})
		if err != nil {
			t.Fatalf("step %q: %v", step, err)
		}
		return *resp.Stats
	}
	rss := func(step string) int {
		t.Helper()
		kib, err := vmRSS(pid)
		if err != nil {
			t.Fatalf("step %q: %v", step, err)
		}
		return kib
	}
	typeLine := func(step, s string) {
		t.Helper()
		if _, err := r.input.Write([]byte(s + "\n")); err != nil {
			t.Fatalf("step %q: %v", step, err)
		}
	}

	r.waitLine("boot the guest", "SOAK-READY")
	before := stats("read the device's stats before the soak")
	typeLine("start the soak", "go")
	r.waitLine("the workers start", "gpio-soak: started")
	begin, rssStart := time.Now(), rss("sample RSS at the start")
	t.Logf("soak started: gvmm RSS %d KiB", rssStart) // with -v, shown as it happens
	stop := watchSoak(t, r)
	defer stop()
	// gpio-soak's lines until its total: a progress line each tenth (RSS
	// sampled at each, the middle one kept), worker lines, errors.
	rssMiddle := -1
	for {
		r.waitLine("the soak runs to its total", "gpio-soak: ")
		s := strings.TrimSuffix(r.seen.String(), "\n")
		l := s[strings.LastIndexByte(s, '\n')+1:]
		if strings.Contains(l, "gpio-soak: total ") {
			break
		}
		var pc int
		if _, err := fmt.Sscanf(l[strings.Index(l, "gpio-soak: "):], "gpio-soak: progress %d%%", &pc); err == nil {
			kib := rss(fmt.Sprintf("sample RSS at %d%%", pc))
			if pc == 50 {
				rssMiddle = kib
			}
			t.Logf("%d%% after %v: gvmm RSS %d KiB", pc, time.Since(begin).Round(time.Second), kib)
		}
	}
	took, rssEnd := time.Since(begin), rss("sample RSS at the end")
	r.waitLine("gpio-soak exits", "SOAK-WARNINGS")
	after := stats("read the device's stats after the soak")
	typeLine("let the guest power off", "done")
	r.waitLine("the guest command ends", "[gvmm] command exited with status 0")

	var total, exit string
	reported := 0 // worker lines
	for _, l := range strings.Split(r.seen.String(), "\n") {
		l = strings.TrimSpace(l)
		if w, ok := strings.CutPrefix(l, "gpio-soak: worker "); ok {
			t.Log(l)
			reported++
			var i int
			var cpu string
			if _, err := fmt.Sscanf(w, "%d (lines", &i); err == nil && cpus > 1 {
				_, after, _ := strings.Cut(w, "CPUs ")
				cpu, _, _ = strings.Cut(after, ")")
				if want := strconv.Itoa(i % cpus); cpu != want {
					t.Errorf("step 'check the workers' CPUs': worker %d ran on CPUs %q, want only %s", i, cpu, want)
				}
			}
		}
		if s, ok := strings.CutPrefix(l, "gpio-soak: total "); ok {
			total = s
		}
		if s, ok := strings.CutPrefix(l, "SOAK-EXIT "); ok {
			exit = s
		}
		if strings.HasPrefix(l, "SOAK-WARNINGS ") {
			t.Logf("guest kernel warnings (dmesg): %s", l)
		}
	}
	t.Logf("soak: %d operations in %v, %.0f ops/s", ops, took.Round(time.Second), float64(ops)/took.Seconds())
	slope := func(from, to, n int) float64 { return float64(to-from) * 100000 / float64(n) }
	t.Logf("gvmm RSS: start %d KiB, middle %d KiB, end %d KiB; slope %+.1f KiB per 100k operations (first half %+.1f, second half %+.1f)",
		rssStart, rssMiddle, rssEnd, slope(rssStart, rssEnd, ops), slope(rssStart, rssMiddle, ops/2), slope(rssMiddle, rssEnd, ops-ops/2))

	if reported != workers {
		t.Errorf("step 'check the workers': %d of %d workers reported their counts", reported, workers)
	}
	counts, err := parseSoakCounts(total)
	if err != nil {
		t.Fatalf("step 'read gpio-soak's total': %v", err)
	}
	if exit != "0" || counts["errors"] != 0 {
		t.Errorf("step 'check the guest's counts': gpio-soak exited %s with %d errors (console above; stderr of the workers is on it too)", exit, counts["errors"])
	}
	var n uint64
	for _, k := range soakOps {
		n += counts[k]
	}
	if n != uint64(ops) {
		t.Errorf("step 'check the guest's counts': %d operations counted, want %d", n, ops)
	}

	// The device's counts: before + the model applied to the guest's
	// counts, type by type; every request answered OK.
	var want [len(before.Requests)]uint64
	copy(want[:], before.Requests[:])
	for k, n := range counts {
		for typ, m := range soakMessages[k] {
			want[typ] += n * m
		}
	}
	for typ := range want {
		name := gpio.MsgType(typ).String()
		if typ == 0 {
			name = "no valid type"
		}
		t.Logf("requestq %s: %d before, %d during the soak (model: %d)", name, before.Requests[typ],
			after.Requests[typ]-before.Requests[typ], want[typ]-before.Requests[typ])
		if after.Requests[typ] != want[typ] {
			t.Errorf("step 'check the device's counts': %s: the device counted %d messages, the model of the guest's calls says %d",
				name, after.Requests[typ]-before.Requests[typ], want[typ]-before.Requests[typ])
		}
	}
	if after.Errors != before.Errors {
		t.Errorf("step 'check the device's counts': %d requests answered ERR during the soak", after.Errors-before.Errors)
	}
	// Nothing drives the inputs, so no interrupt fires: eventq buffers
	// come back only INVALID, when an interrupt is turned off, at most one
	// per irq-off and release-irq. Not exactly one: the buffer queued at
	// irq-on may reach the device only after the irq-off's
	// SET_IRQ_TYPE(NONE) (requestq and eventq are served by separate
	// goroutines, in no set order); then the device holds it for the
	// disabled line and returns nothing, and the next irq-on finds it
	// still queued (virtio_gpio_irq_prepare's WARN_ON, in dmesg) and
	// uses it.
	valid, invalid := after.Valid-before.Valid, after.Invalid-before.Invalid
	t.Logf("eventq: %d VALID, %d INVALID during the soak (%d irq-off, %d release-irq)", valid, invalid, counts["irq-off"], counts["release-irq"])
	if valid != 0 {
		t.Errorf("step 'check the device's counts': %d eventq buffers returned VALID, but no input changed", valid)
	}
	if bound := counts["irq-off"] + counts["release-irq"]; invalid > bound {
		t.Errorf("step 'check the device's counts': %d eventq buffers returned INVALID, more than the %d interrupts turned off", invalid, bound)
	}
}

// parseSoakCounts reads gpio-soak's "key=N ..." counts into a map; every
// kind of soakMessages must be there.
func parseSoakCounts(s string) (map[string]uint64, error) {
	c := map[string]uint64{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("counts %q: %v", s, err)
		}
		c[k] = n
	}
	for k := range soakMessages {
		if _, ok := c[k]; !ok {
			return nil, fmt.Errorf("counts %q: no %s", s, k)
		}
	}
	return c, nil
}

// vmRSS returns the resident set size of process pid in KiB (VmRSS in
// /proc/PID/status).
func vmRSS(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// soakStall is how long the device may see no request during the soak
// before watchSoak calls it stuck. The driver waits for every answer
// without a timeout, so a request gvmm never answers stops the soak for
// good; the slowest soak seen did some 50 operations a second.
const soakStall = 5 * time.Minute

// watchSoak polls the device's request count while the soak runs. If it
// stands still for soakStall, it logs the device's stats, has gvmm dump
// its vCPUs (SIGUSR1, to the stderr the failed test logs) and kills it,
// so that the soak fails at once naming where it stopped, not at the
// test binary's timeout hours later. stop ends the watch. It watches bank
// 0 through a control connection of its own.
func watchSoak(t *testing.T, r *running) (stop func()) {
	cl := dialControl(t, r.ctx, r.sock) // a connection of its own: Client is not shared
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		var last uint64
		since := time.Now()
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			resp, err := cl.Do(control.Request{Op: "stats", Bank: 0})
			if err != nil || resp.Stats == nil {
				continue // gvmm ending: the soak's own steps say why
			}
			var n uint64
			for _, c := range resp.Stats.Requests {
				n += c
			}
			if n != last {
				last, since = n, time.Now()
				continue
			}
			if time.Since(since) < soakStall {
				continue
			}
			t.Errorf("step 'the soak runs': no GPIO request for %v after %d requests (the guest waits for an answer, or its vCPU is stuck); device stats: %+v; gvmm's vCPUs follow in its stderr",
				soakStall, n, *resp.Stats)
			_ = r.cmd.Process.Signal(syscall.SIGUSR1)
			time.Sleep(3 * time.Second)
			_ = r.cmd.Process.Kill()
			return
		}
	}()
	return func() { close(done); <-ended }
}
