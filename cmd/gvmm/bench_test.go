package main

// make bench: gvmm's figures side by side with QEMU's (issue 14). See
// TestBench.

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/gpio/control"
	"github.com/gvmm/gvmm/internal/imagecache"
	"github.com/gvmm/gvmm/internal/qemuboot"
	"github.com/gvmm/gvmm/vmm"
)

// What the bench reads on the consoles and gvmm's standard error.
const (
	initMarker      = "gvmm-init: started" // images/init's first line
	benchPause      = "BENCH-PAUSE"        // the guest waits for a console line
	gvmmSetupMarker = "(first KVM_RUN)"    // gvmm run --verbose, as the vCPUs start
	echoReady       = "gpio-rtt: echo ready"
)

// benchCmdlineBase is the kernel command line of every bench guest,
// before gvmm.run=: reboot=t makes the script's `reboot -f` a triple
// fault, which ends gvmm, and QEMU through -no-reboot.
const benchCmdlineBase = "console=ttyS0 panic=-1 quiet reboot=t"

// benchCmdline is the kernel command line that has the image's /init run
// script (as gvmm run --cmd would pass it).
func benchCmdline(script string) string {
	return benchCmdlineBase + " gvmm.run=" + base64.StdEncoding.EncodeToString([]byte(script))
}

// bootScript is the boot runs' guest command: say so, wait for a line on
// the console (the bench reads the VMM's memory meanwhile), reboot.
const bootScript = "echo " + benchPause + "; read x; reboot -f"

// benchMode is how much the bench does.
type benchMode struct {
	full           bool
	runs           int           // of each VMM, per figure
	gpioN, echoN   int           // gpio-rtt requests per mode; echoed edges
	densityMax     int           // VMs at most
	densityBudget  time.Duration // for adding VMs
	densityBoot    time.Duration // a VM that takes longer to boot is one too many
	densityReserve uint64        // bytes of MemAvailable the density run leaves
}

// benchModeFromEnv: GVMM_BENCH=1 is make bench's full mode (with
// GVMM_BENCH_RUNS); otherwise the smoke mode of make test, one run of
// each. GVMM_BENCH_DENSITY_MAX bounds the density run in either (20 and
// 2 VMs by default: in the nested test host, 20 VMs of 64 MiB in its 4 GiB
// are the target of 100 in 24 GiB scaled down, and its one emulated CPU,
// not its memory, is what more VMs run out of; past 20 boots take
// minutes and the host wedges more often).
func benchModeFromEnv(t *testing.T) benchMode {
	if os.Getenv("GVMM_BENCH") != "1" {
		return benchMode{runs: 1, gpioN: 100, echoN: 10, densityMax: envCount(t, "GVMM_BENCH_DENSITY_MAX", 2),
			densityBudget: 15 * time.Minute, densityBoot: bootTimeout, densityReserve: 256 << 20}
	}
	return benchMode{full: true, runs: envCount(t, "GVMM_BENCH_RUNS", 10), gpioN: 1000, echoN: 300,
		densityMax: envCount(t, "GVMM_BENCH_DENSITY_MAX", 20), densityBudget: 30 * time.Minute,
		densityBoot: 3 * time.Minute, densityReserve: 256 << 20}
}

// TestBench is make bench (GVMM_BENCH=1): gvmm against Debian's QEMU
// (-M microvm and -M pc), both with KVM, booting the same bzImage,
// initramfs and kernel command line, in the same nested test host when
// this host's KVM cannot run Linux. Runs alternate (gvmm, microvm, pc,
// gvmm, ...), GVMM_BENCH_RUNS (10) of each after one warm-up of each
// that is not counted; each figure is the median of the runs, with
// their min and max. It prints a table of the figures, the ratios and
// how far each is from its target, between BENCH-REPORT-BEGIN and
// BENCH-REPORT-END lines (make bench writes it to bench/results/).
// TestBenchGPIO and TestBenchDensity add theirs: three tests, so that
// when the nested test host wedges (GPIO runs, every request a few
// nested exits, and many VMs at once make it likelier), l1-exec's next
// attempt runs only those not done.
//
// Without GVMM_BENCH it is the smoke mode that make test runs: one run
// of each figure (and two VMs in TestBenchDensity), so that the bench
// cannot rot. It checks that every figure was measured (a number parsed,
// a marker seen, a VM that answered), never how good a figure is.
func TestBench(t *testing.T) {
	needKVM(t)
	b := newBench(t, benchModeFromEnv(t))
	began := time.Now()
	// Process start → first KVM_RUN → /init, and → the guest rebooting,
	// with the VMM's memory read while the guest waits.
	vmms := b.bootVMMs()
	boots := make(map[string][]bootSample)
	b.runs(func(what string, counted bool) {
		for _, v := range vmms {
			s, err := b.boot(v)
			if err != nil {
				t.Fatalf("boot %s, %s: %v", v.name, what, err)
			}
			t.Logf("%s, %s: set-up %v, /init %v, poweroff %v, RSS beyond guest RAM %.1f MiB", v.name, what,
				s.setup.Round(time.Millisecond), s.toInit.Round(time.Millisecond), s.poweroff.Round(time.Millisecond), mib(s.mem.BeyondGuestRAM()))
			if counted {
				boots[v.name] = append(boots[v.name], s)
			}
		}
	})
	b.print(b.bootReport(vmms, boots, time.Since(began)))

	// Every figure was measured: the smoke mode's point.
	for _, v := range vmms {
		for _, s := range boots[v.name] {
			if err := s.check(); err != nil {
				t.Errorf("%s boot: %v", v.name, err)
			}
		}
		if len(boots[v.name]) != b.mode.runs {
			t.Errorf("%s: %d boot runs, want %d", v.name, len(boots[v.name]), b.mode.runs)
		}
	}
}

// TestBenchGPIO is make bench's GPIO figures (see TestBench): gvmm's
// device in-process, then QEMU with the same device code behind
// vhost-user (gvmm gpio-backend), alternating.
func TestBenchGPIO(t *testing.T) {
	needKVM(t)
	b := newBench(t, benchModeFromEnv(t))
	began := time.Now()
	gpios := map[string][]gpioSample{}
	var backendNA string
	b.runs(func(what string, counted bool) {
		g, err := b.gpioGVMM()
		if err != nil {
			t.Fatalf("GPIO round trips in gvmm, %s: %v", what, err)
		}
		t.Logf("gvmm GPIO, %s: set %v, get %v, mmio %v, echo %v (medians); RSS beyond guest RAM %.1f MiB",
			what, g.set.median, g.get.median, g.mmio.median, median(g.echoDevice), mib(g.mem.BeyondGuestRAM()))
		if counted {
			gpios["gvmm"] = append(gpios["gvmm"], g)
		}
		var q gpioSample
		if q, backendNA, err = b.gpioQEMUVhostUser(); err != nil {
			t.Fatalf("GPIO round trips in QEMU + gvmm gpio-backend, %s: %v", what, err)
		}
		if backendNA == "" {
			t.Logf("QEMU + gvmm gpio-backend GPIO, %s: set %v, get %v (medians); RSS beyond guest RAM %.1f MiB",
				what, q.set.median, q.get.median, mib(q.mem.BeyondGuestRAM()))
			if counted {
				gpios["qemu"] = append(gpios["qemu"], q)
			}
		}
	})
	b.print(b.gpioReport(gpios, backendNA, time.Since(began)))

	for _, g := range gpios["gvmm"] {
		if err := g.check(b.mode.echoN, true); err != nil {
			t.Errorf("gvmm GPIO run: %v", err)
		}
	}
	if len(gpios["gvmm"]) != b.mode.runs {
		t.Errorf("gvmm: %d GPIO runs, want %d", len(gpios["gvmm"]), b.mode.runs)
	}
	if backendNA == "" && len(gpios["qemu"]) != b.mode.runs {
		t.Errorf("QEMU + gvmm gpio-backend: %d GPIO runs, want %d", len(gpios["qemu"]), b.mode.runs)
	}
	for _, g := range gpios["qemu"] {
		if err := g.check(0, false); err != nil {
			t.Errorf("QEMU + gvmm gpio-backend GPIO run: %v", err)
		}
	}
}

// runs calls run for each run of the mode: first a warm-up whose figures
// are not counted (in full mode), then the counted ones; what names the
// run for messages.
func (b *bench) runs(run func(what string, counted bool)) {
	if b.mode.full {
		run("warm-up run", false)
	}
	for i := range b.mode.runs {
		run(fmt.Sprintf("run %d of %d", i+1, b.mode.runs), true)
	}
}

// TestBenchDensity is make bench's density figure (see TestBench): how
// many VMs of 64 MiB, each with a simulated bank and a guest echoing a
// line, run at once with every one answering, and their memory.
func TestBenchDensity(t *testing.T) {
	needKVM(t)
	b := newBench(t, benchModeFromEnv(t))
	began := time.Now()
	d := b.density()
	b.print(b.densityReport(d, time.Since(began)))
	if err := d.check(b.mode); err != nil {
		t.Errorf("density: %v", err)
	}
}

// print prints a part of the report: for make bench between
// BENCH-REPORT-BEGIN and BENCH-REPORT-END lines on standard output (which
// bench/write-results.sh copies to bench/results/), in smoke mode to the
// test's log.
func (b *bench) print(r string) {
	if b.mode.full {
		fmt.Printf("BENCH-REPORT-BEGIN\n%sBENCH-REPORT-END\n", r)
	} else {
		b.t.Logf("smoke mode (one run of each; GVMM_BENCH=1 for the bench):\n%s", r)
	}
}

// bench is one bench run's set-up.
type bench struct {
	t    *testing.T
	mode benchMode
	// gvmmBin is the gvmm measured: GVMM_BIN (make bench builds bin/gvmm),
	// else this test binary acting as gvmm (TestMain).
	gvmmBin        string
	kernel, initrd string
	gpioInitrd     string // initrd with gpio-rtt
	qemu           string // qemu-system-x86_64's path; "" if there is none
	dir            string // scratch: control sockets
	mu             sync.Mutex
	cmdlines       []string // command lines for the report, in first-use order
	seenCmd        map[string]bool
	scripts        map[string]string // guest scripts by name, for the report
	l1, qemuVer    string
}

func newBench(t *testing.T, mode benchMode) *bench {
	img := imagecache.Dir()
	b := &bench{t: t, mode: mode, gvmmBin: os.Getenv("GVMM_BIN"),
		kernel: filepath.Join(img, "bzImage"), initrd: filepath.Join(img, "initramfs.cpio.gz"),
		gpioInitrd: guestInitrd(t, "gpio-rtt"), dir: t.TempDir(), seenCmd: map[string]bool{},
		scripts: map[string]string{}}
	if b.gvmmBin != "" {
		if _, err := os.Stat(b.gvmmBin); err != nil {
			t.Fatalf("step 'find the gvmm to measure': GVMM_BIN: %v (make bench builds bin/gvmm)", err)
		}
	}
	if p, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		b.qemu = p
		if out, err := exec.Command(p, "--version").Output(); err == nil {
			b.qemuVer, _, _ = strings.Cut(string(out), "\n")
		}
	} else {
		t.Logf("no qemu-system-x86_64 (%v): QEMU's columns stay empty", err)
	}
	b.l1 = describeHere()
	return b
}

// gvmmCommand is gvmm with args (the measured binary), killed when ctx
// ends.
func (b *bench) gvmmCommand(ctx context.Context, args ...string) *exec.Cmd {
	if b.gvmmBin == "" {
		return command(ctx, args...)
	}
	return exec.CommandContext(ctx, b.gvmmBin, args...)
}

// gvmmName is how the report names the measured gvmm.
func (b *bench) gvmmName() string {
	if b.gvmmBin == "" {
		return "gvmm" // this test binary, as TestMain runs it
	}
	return b.gvmmBin
}

// note records a command line for the report, once; guest scripts
// (gvmm.run=) are shown by name.
func (b *bench) note(what string, args []string) {
	line := qemuboot.ShellQuote(args)
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, s := range b.scripts {
		line = strings.ReplaceAll(line, base64.StdEncoding.EncodeToString([]byte(s)), "<"+name+">")
	}
	if !b.seenCmd[what] {
		b.seenCmd[what] = true
		b.cmdlines = append(b.cmdlines, fmt.Sprintf("%s:\n\n    %s\n", what, line))
	}
}

// script names a guest script for the report and returns the kernel
// command line that runs it.
func (b *bench) script(name, s string) string {
	b.mu.Lock()
	b.scripts[name] = s
	b.mu.Unlock()
	return benchCmdline(s)
}

// bootVMM is one of the VMMs booted for the boot figures.
type bootVMM struct {
	name        string
	setupMarker string // on its stderr once set-up is over
	guestRAM    uint64
	start       func(ctx context.Context, cmdline string) (*qemuboot.Proc, error)
}

// bootVMMs are gvmm, QEMU microvm and QEMU pc, in the order each run
// boots them; without QEMU, gvmm alone.
func (b *bench) bootVMMs() []bootVMM {
	vs := []bootVMM{{name: "gvmm", setupMarker: gvmmSetupMarker, guestRAM: 256 << 20,
		start: func(ctx context.Context, cmdline string) (*qemuboot.Proc, error) {
			args := []string{"run", "--verbose", "--mem", "256M", "--kernel", b.kernel, "--initrd", b.initrd, "--append", cmdline}
			b.note("gvmm (boot runs)", append([]string{b.gvmmName()}, args...))
			return qemuboot.Start(b.gvmmCommand(ctx, args...))
		}}}
	if b.qemu == "" {
		return vs
	}
	for _, m := range []struct{ name, machine string }{{"QEMU microvm", qemuboot.MachineMicrovm}, {"QEMU pc", qemuboot.MachinePC}} {
		vs = append(vs, bootVMM{name: m.name, setupMarker: qemuboot.RunningMarker, guestRAM: 256 << 20,
			start: func(ctx context.Context, cmdline string) (*qemuboot.Proc, error) {
				c := qemuboot.Config{Binary: b.qemu, Machine: m.machine, Kernel: b.kernel, Initrd: b.initrd,
					Append: cmdline, MemMiB: 256, TraceRunState: true}
				b.note(m.name+" (boot runs)", append([]string{c.Binary}, c.Args()...))
				return qemuboot.Start(c.Command(ctx))
			}})
	}
	return vs
}

// bootSample is one boot run: times from process start, and memory.
type bootSample struct {
	setup    time.Duration // to the first KVM_RUN
	toInit   time.Duration // to images/init's first line on the console
	poweroff time.Duration // to the VMM's exit, less the pause
	mem      qemuboot.Memory
}

func (s bootSample) check() error {
	switch {
	case s.setup <= 0 || s.toInit <= s.setup || s.poweroff <= s.toInit:
		return fmt.Errorf("times out of order: set-up %v, /init %v, poweroff %v", s.setup, s.toInit, s.poweroff)
	case s.mem.GuestRAM == 0 || s.mem.RSS <= s.mem.GuestRAM:
		return fmt.Errorf("memory not measured: %+v", s.mem)
	}
	return nil
}

// boot boots v once with bootScript.
func (b *bench) boot(v bootVMM) (bootSample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	p, err := v.start(ctx, b.script("boot script", bootScript))
	if err != nil {
		return bootSample{}, err
	}
	defer p.Kill()
	setup, err := p.WaitFor(ctx, "set-up to the first KVM_RUN", qemuboot.Stderr, v.setupMarker)
	if err != nil {
		return bootSample{}, err
	}
	init, err := p.WaitFor(ctx, "boot to /init", qemuboot.Console, initMarker)
	if err != nil {
		return bootSample{}, err
	}
	pause, err := p.WaitFor(ctx, "the guest's script starts and waits", qemuboot.Console, benchPause)
	if err != nil {
		return bootSample{}, err
	}
	mem, err := qemuboot.ReadMemory(p.Cmd.Process.Pid, v.guestRAM)
	if err != nil {
		return bootSample{}, fmt.Errorf("step 'read the VMM's memory': %w", err)
	}
	typed := time.Now()
	if err := p.Type("go\n"); err != nil {
		return bootSample{}, fmt.Errorf("step 'let the guest reboot': %w", err)
	}
	exited, err := p.Wait(ctx, "the guest reboots and the VMM exits")
	if err != nil {
		return bootSample{}, err
	}
	return bootSample{setup: setup.Time.Sub(p.Started), toInit: init.Time.Sub(p.Started),
		poweroff: pause.Time.Sub(p.Started) + exited.Sub(typed), mem: mem}, nil
}

// rtt is a median and a 99th percentile of round trips.
type rtt struct{ median, p99 time.Duration }

// gpioSample is one GPIO run: the guest's gpio-rtt figures, the echoes
// as gvmm timestamped them (input set → output set) and as the bench saw
// them (set sent → output change received), and the VMM's memory.
type gpioSample struct {
	set, get, mmio         rtt
	echoDevice, echoClient []time.Duration
	mem                    qemuboot.Memory
}

func (g gpioSample) check(echoes int, mmio bool) error {
	if g.set.median <= 0 || g.set.p99 < g.set.median || g.get.median <= 0 || g.get.p99 < g.get.median {
		return fmt.Errorf("set or get not measured: %+v %+v", g.set, g.get)
	}
	if mmio && (g.mmio.median <= 0 || g.mmio.p99 < g.mmio.median) {
		return fmt.Errorf("mmio not measured: %+v", g.mmio)
	}
	if len(g.echoDevice) != echoes || len(g.echoClient) != echoes {
		return fmt.Errorf("%d and %d echoes timed, want %d", len(g.echoDevice), len(g.echoClient), echoes)
	}
	for _, d := range g.echoDevice {
		if d <= 0 {
			return fmt.Errorf("an echo took %v", d)
		}
	}
	if g.mem.GuestRAM == 0 || g.mem.RSS <= g.mem.GuestRAM {
		return fmt.Errorf("memory not measured: %+v", g.mem)
	}
	return nil
}

// gpioScript is the GPIO runs' guest command: gpio-rtt's set and get on
// gpiochip0, its MMIO floor if mmio, its echo of line 3's edges to line 2
// if echo, then a pause for the bench to read memory.
func gpioScript(n, echoes int, mmio bool) string {
	s := fmt.Sprintf("set -e\ngpio-rtt -op set -line 0 -n %d\ngpio-rtt -op get -line 1 -n %d\n", n, n)
	if mmio {
		s += fmt.Sprintf("gpio-rtt -op mmio -addr %#x -n %d\n", vmm.NullMMIOBase, n)
	}
	if echoes > 0 {
		s += fmt.Sprintf("gpio-rtt -op echo -line 2 -in 3 -n %d\n", echoes)
	}
	return s + bootScript
}

// gpioGVMM is a GPIO run in gvmm: one simulated bank of 8 lines served
// in-process, driven for the echo through --control.
func (b *bench) gpioGVMM() (gpioSample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	sock := filepath.Join(b.dir, "gpio.sock")
	args := []string{"run", "--verbose", "--mem", "256M", "--gpio", "sim:8", "--control", sock,
		"--kernel", b.kernel, "--initrd", b.gpioInitrd,
		"--append", b.script("GPIO script", gpioScript(b.mode.gpioN, b.mode.echoN, true))}
	b.note("gvmm (GPIO runs; the initrd is the image's plus bin/guest/gpio-rtt)", append([]string{b.gvmmName()}, args...))
	p, err := qemuboot.Start(b.gvmmCommand(ctx, args...))
	if err != nil {
		return gpioSample{}, err
	}
	defer p.Kill()
	return b.gpioRun(ctx, p, sock, 256<<20, true)
}

// gpioRun reads a GPIO run's figures from p's console (the MMIO floor's
// if mmio), echoes edges through the control socket ctl (if not ""), reads
// p's memory at the pause (adding what processes also hold beyond guest
// RAM) and lets the guest reboot.
func (b *bench) gpioRun(ctx context.Context, p *qemuboot.Proc, ctl string, guestRAM uint64, mmio bool, also ...int) (gpioSample, error) {
	var g gpioSample
	for _, m := range []struct {
		op string
		r  *rtt
	}{{"set", &g.set}, {"get", &g.get}, {"mmio", &g.mmio}} {
		if m.op == "mmio" && !mmio {
			continue
		}
		l, err := p.WaitFor(ctx, "gpio-rtt -op "+m.op, qemuboot.Console, "gpio-rtt: "+m.op+" ")
		if err != nil {
			return g, err
		}
		if *m.r, err = parseRTT(l.Text); err != nil {
			return g, fmt.Errorf("step 'read gpio-rtt -op %s': %w", m.op, err)
		}
	}
	if ctl != "" {
		if _, err := p.WaitFor(ctx, "gpio-rtt -op echo starts", qemuboot.Console, echoReady); err != nil {
			return g, err
		}
		var err error
		if g.echoDevice, g.echoClient, err = echoEdges(ctx, ctl, b.mode.echoN); err != nil {
			return g, err
		}
	}
	if _, err := p.WaitFor(ctx, "the guest's script pauses", qemuboot.Console, benchPause); err != nil {
		return g, err
	}
	var err error
	if g.mem, err = qemuboot.ReadMemory(p.Cmd.Process.Pid, guestRAM); err != nil {
		return g, fmt.Errorf("step 'read the VMM's memory': %w", err)
	}
	for _, pid := range also {
		m, err := qemuboot.ReadMemory(pid, guestRAM)
		if err != nil {
			return g, fmt.Errorf("step 'read the back end's memory': %w", err)
		}
		g.mem.RSS += m.BeyondGuestRAM()
	}
	if err := p.Type("go\n"); err != nil {
		return g, fmt.Errorf("step 'let the guest reboot': %w", err)
	}
	_, err = p.Wait(ctx, "the guest reboots and the VMM exits")
	return g, err
}

// echoEdges makes n edges on line 3 of bank 0 through the control socket
// ctl, one at a time, each awaited as the guest's copy on line 2: device
// is each round trip as the device timestamped it (the host's input
// change to the guest's output change), client as the bench saw it (from
// sending the set to receiving the output change from watch).
func echoEdges(ctx context.Context, ctl string, n int) (device, client []time.Duration, err error) {
	cl, err := control.Dial(ctl)
	if err != nil {
		return nil, nil, fmt.Errorf("step 'connect to the control socket': %w", err)
	}
	defer cl.Close()
	w, err := control.Dial(ctl)
	if err != nil {
		return nil, nil, fmt.Errorf("step 'connect to the control socket': %w", err)
	}
	if err := w.Watch(0); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("step 'watch bank 0': %w", err)
	}
	type received struct {
		e  control.Event
		at time.Time
	}
	events := make(chan received, 64)
	go func() {
		defer close(events)
		for {
			e, err := w.Next()
			if err != nil {
				return
			}
			events <- received{e, time.Now()}
		}
	}()
	defer func() {
		w.Close()
		for range events {
		}
	}()
	for i := 1; i <= n; i++ {
		v := uint8(i % 2)
		sent := time.Now()
		if _, err := cl.Do(control.Request{Op: "set", Bank: 0, Line: 3, Value: v}); err != nil {
			return nil, nil, fmt.Errorf("step 'echo edge %d: set line 3 to %d': %w", i, v, err)
		}
		var in time.Time
	wait:
		for {
			select {
			case r, ok := <-events:
				if !ok {
					return nil, nil, fmt.Errorf("step 'echo edge %d': the watch stream ended", i)
				}
				switch {
				case r.e.Kind == "lost":
					return nil, nil, fmt.Errorf("step 'echo edge %d': the watch stream lost %d changes", i, r.e.Lost)
				case r.e.Line == 3 && r.e.Kind == "input":
					in = r.e.Time
				case r.e.Line == 2 && r.e.Kind == "output" && r.e.To == strconv.Itoa(int(v)):
					if in.IsZero() {
						return nil, nil, fmt.Errorf("step 'echo edge %d': line 2 followed before line 3 changed", i)
					}
					device = append(device, r.e.Time.Sub(in))
					client = append(client, r.at.Sub(sent))
					break wait
				}
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("step 'echo edge %d: wait for the guest to copy line 3 (%d) to line 2': timed out", i, v)
			}
		}
	}
	return device, client, nil
}

// gpioQEMUVhostUser is the other GPIO column: QEMU -M microvm with `gvmm
// gpio-backend` serving the same device code over vhost-user, one
// simulated bank of 8 lines, the same gpio-rtt set and get (no MMIO
// floor: that page is gvmm's; no echo: QEMU 7.2 offers the guest no GPIO
// interrupts through vhost-user). Its memory is QEMU's and the back end's
// beyond guest RAM (which they share). It returns the run, or why there
// is none (the column then says so).
func (b *bench) gpioQEMUVhostUser() (g gpioSample, na string, err error) {
	if b.qemu == "" {
		return g, "n/a (no qemu-system-x86_64)", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := b.gvmmCommand(ctx, "gpio-backend", "--help").Run(); err != nil {
		return g, "n/a (no gvmm gpio-backend yet)", nil
	}
	sock := filepath.Join(b.dir, "vhost-gpio.sock")
	args := []string{"gpio-backend", "--socket", sock, "--gpio", "sim:8"}
	b.note("gvmm gpio-backend (GPIO runs under QEMU)", append([]string{b.gvmmName()}, args...))
	be, err := qemuboot.Start(b.gvmmCommand(ctx, args...))
	if err != nil {
		return g, "", err
	}
	defer be.Kill()
	if _, err := be.WaitFor(ctx, "gvmm gpio-backend listens", qemuboot.Stderr, "gvmm gpio-backend: serving"); err != nil {
		return g, "", err
	}
	c := qemuboot.Config{Binary: b.qemu, Machine: qemuboot.MachineMicrovm, Kernel: b.kernel, Initrd: b.gpioInitrd,
		MemMiB: 256, VhostUserGPIO: sock, Append: b.script("GPIO script under QEMU", gpioScript(b.mode.gpioN, 0, false))}
	b.note("QEMU microvm (GPIO runs, with gvmm gpio-backend; the initrd is the image's plus bin/guest/gpio-rtt)", append([]string{c.Binary}, c.Args()...))
	p, err := qemuboot.Start(c.Command(ctx))
	if err != nil {
		return g, "", err
	}
	defer p.Kill()
	if g, err = b.gpioRun(ctx, p, "", c.GuestRAM(), false, be.Cmd.Process.Pid); err != nil {
		return g, "", fmt.Errorf("%w\ngvmm gpio-backend: %s", err, be.Tail(20))
	}
	return g, "", nil
}

// densityResult is what the density run found.
type densityResult struct {
	sustained          int    // VMs that all answered at once
	stopped            string // why no more were added
	availBefore, avail uint64 // the host's MemAvailable before and with them all
	beyond, guestRAM   []float64
	lastBoot, lastEcho time.Duration
	busyBefore, busy   float64 // the host's CPU use before and with them all idle, 0 to 1
	cpus               int
}

func (d densityResult) check(mode benchMode) error {
	if d.sustained < 1 || !mode.full && d.sustained < mode.densityMax {
		return fmt.Errorf("%d VMs answered, want %d (stopped: %s)", d.sustained, mode.densityMax, d.stopped)
	}
	if len(d.beyond) != d.sustained || d.availBefore == 0 {
		return fmt.Errorf("memory of %d of %d VMs measured", len(d.beyond), d.sustained)
	}
	return nil
}

// densityVM is one VM of the density run.
type densityVM struct {
	p  *qemuboot.Proc
	cl *control.Client
	v  uint8 // the level its input was last set to
}

// density starts VMs of 64 MiB, each with a simulated bank whose line 1
// the guest copies to line 0 (gpio-rtt -op echo), one after the other;
// after each, every VM must copy a new level within a minute. It stops
// at the mode's VM count or time budget, when MemAvailable falls below
// the reserve, or at the first VM that does not boot or answer.
func (b *bench) density() densityResult {
	t := b.t
	ctx, cancel := context.WithTimeout(context.Background(), b.mode.densityBudget+2*bootTimeout)
	defer cancel()
	cmdline := b.script("density script", "set -e\nexec gpio-rtt -op echo -line 0 -in 1 -n 1000000000")
	d := densityResult{availBefore: memAvailable(t), cpus: runtime.NumCPU(), busyBefore: cpuBusy(t, 5*time.Second)}
	var vms []*densityVM
	defer func() {
		for _, v := range vms {
			v.cl.Close()
			v.p.Kill()
		}
	}()
	deadline := time.Now().Add(b.mode.densityBudget)
	for {
		avail := memAvailable(t)
		switch {
		case len(vms) >= b.mode.densityMax:
			d.stopped = fmt.Sprintf("the bench's limit of %d VMs", b.mode.densityMax)
		case avail < b.mode.densityReserve:
			d.stopped = fmt.Sprintf("memory: MemAvailable %.0f MiB, under the %.0f MiB the bench leaves", mib(avail), mib(b.mode.densityReserve))
		case time.Now().After(deadline):
			d.stopped = fmt.Sprintf("the bench's time budget (%v) for adding VMs", b.mode.densityBudget)
		}
		if d.stopped != "" {
			break
		}
		i := len(vms)
		sock := filepath.Join(b.dir, fmt.Sprintf("density%d.sock", i))
		args := []string{"run", "--mem", "64M", "--gpio", "sim:4", "--control", sock,
			"--kernel", b.kernel, "--initrd", b.gpioInitrd, "--append", cmdline}
		b.note("gvmm (density VMs)", append([]string{b.gvmmName()}, args...))
		began := time.Now()
		p, err := qemuboot.Start(b.gvmmCommand(ctx, args...))
		if err != nil {
			t.Fatalf("step 'density: start VM %d': %v", i+1, err)
		}
		bctx, bcancel := context.WithTimeout(ctx, b.mode.densityBoot)
		_, err = p.WaitFor(bctx, fmt.Sprintf("density: VM %d boots to its echo loop", i+1), qemuboot.Console, echoReady)
		late := bctx.Err() != nil && ctx.Err() == nil
		bcancel()
		if err != nil {
			p.Kill()
			d.stopped = fmt.Sprintf("VM %d did not boot: %v", i+1, err)
			if late {
				d.stopped = fmt.Sprintf("VM %d did not boot within %v (the host's CPUs busy with the others)", i+1, b.mode.densityBoot)
			}
			break
		}
		d.lastBoot = time.Since(began)
		cl, err := control.Dial(sock)
		if err != nil {
			p.Kill()
			t.Fatalf("step 'density: connect to VM %d's control socket': %v", i+1, err)
		}
		vms = append(vms, &densityVM{p: p, cl: cl})
		began = time.Now()
		if err := densityRound(ctx, vms); err != nil {
			d.stopped = fmt.Sprintf("with %d VMs: %v", len(vms), err)
			break
		}
		d.lastEcho, d.sustained = time.Since(began), len(vms)
		t.Logf("density: %d VMs answer (the last booted in %v; every VM echoed within %v); MemAvailable %.0f MiB",
			len(vms), d.lastBoot.Round(time.Millisecond), d.lastEcho.Round(time.Millisecond), mib(memAvailable(t)))
	}
	t.Logf("density: stopped adding VMs: %s", d.stopped)
	d.avail = memAvailable(t)
	d.busy = cpuBusy(t, 5*time.Second)
	for _, v := range vms[:d.sustained] {
		m, err := qemuboot.ReadMemory(v.p.Cmd.Process.Pid, 64<<20)
		if err != nil {
			t.Fatalf("step 'density: read a VM's memory': %v", err)
		}
		d.beyond = append(d.beyond, mib(m.BeyondGuestRAM()))
		d.guestRAM = append(d.guestRAM, mib(m.GuestRAM))
	}
	return d
}

// densityRound has every VM copy a new level of its line 1 to line 0, all
// at once, each within a minute.
func densityRound(ctx context.Context, vms []*densityVM) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	errs := make([]error, len(vms))
	var wg sync.WaitGroup
	for i, v := range vms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.v ^= 1
			if _, err := v.cl.Do(control.Request{Op: "set", Bank: 0, Line: 1, Value: v.v}); err != nil {
				errs[i] = fmt.Errorf("VM %d: set line 1: %w", i+1, err)
				return
			}
			for {
				r, err := v.cl.Do(control.Request{Op: "get", Bank: 0, Line: 0})
				if err != nil {
					errs[i] = fmt.Errorf("VM %d: get line 0: %w", i+1, err)
					return
				}
				if r.Line.Direction == "out" && r.Line.Output == v.v {
					return
				}
				select {
				case <-ctx.Done():
					errs[i] = fmt.Errorf("VM %d did not copy line 1 (%d) to line 0 within a minute", i+1, v.v)
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// cpuBusy is the share of the host's CPU time that was not idle during
// the next d (from /proc/stat).
func cpuBusy(t *testing.T, d time.Duration) float64 {
	t.Helper()
	read := func() (idle, total uint64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			t.Fatalf("step 'read /proc/stat': %v", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		// cpu user nice system idle iowait irq softirq steal guest
		// guest_nice; guest time is in user already.
		for i, f := range strings.Fields(line)[1:] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				t.Fatalf("step 'read /proc/stat': %q: %v", line, err)
			}
			if i < 8 {
				total += v
			}
			if i == 3 || i == 4 {
				idle += v
			}
		}
		return idle, total
	}
	i0, t0 := read()
	time.Sleep(d)
	i1, t1 := read()
	if t1 == t0 {
		return 0
	}
	return 1 - float64(i1-i0)/float64(t1-t0)
}

// memAvailable is /proc/meminfo's MemAvailable in bytes.
func memAvailable(t *testing.T) uint64 {
	t.Helper()
	v, err := meminfo("MemAvailable")
	if err != nil {
		t.Fatalf("step 'read MemAvailable': %v", err)
	}
	return v
}

// meminfo returns field of /proc/meminfo in bytes.
func meminfo(field string) (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/meminfo", field)
}

// describeHere says where the VMMs ran: in the nested test host or not,
// its CPUs, memory, kernel and CPU model.
func describeHere() string {
	where := "directly on this host (hardware KVM)"
	if os.Getenv("GVMM_IN_L1") != "" {
		where = "inside the nested test host (images/l1: an L1 Linux under QEMU TCG with nested KVM; l1-exec boots one for the whole bench, and another only if one wedges)"
	}
	total, _ := meminfo("MemTotal")
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("The VMMs ran %s: %d CPU(s) (%s), %.0f MiB of memory, Linux %s.",
		where, runtime.NumCPU(), model, mib(total), strings.TrimSpace(string(rel)))
}

func mib(bytes uint64) float64 { return float64(bytes) / (1 << 20) }

// parseRTT reads the median and p99 of a gpio-rtt line ("gpio-rtt: set
// 2000 on /dev/gpiochip0 line 0: median 1.2ms, p99 3.1ms, ...").
func parseRTT(line string) (rtt, error) {
	_, figures, ok := strings.Cut(line, ": median ")
	if !ok {
		return rtt{}, fmt.Errorf("no median in %q", line)
	}
	got := map[string]time.Duration{}
	for _, f := range strings.Split("median "+figures, ", ") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), " ")
		if !ok {
			return rtt{}, fmt.Errorf("%q in %q: want NAME DURATION", f, line)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return rtt{}, fmt.Errorf("%q: %v", line, err)
		}
		got[k] = d
	}
	r := rtt{got["median"], got["p99"]}
	if _, ok := got["p99"]; !ok {
		return rtt{}, fmt.Errorf("no p99 in %q", line)
	}
	return r, nil
}

// median of ds (0 for none).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// percentile p (0-100) of ds, as gpio-rtt takes it.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
