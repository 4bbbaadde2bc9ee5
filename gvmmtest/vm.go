package gvmmtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvmm/gvmm/devices/console"
	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/fdt"
	"github.com/gvmm/gvmm/internal/cpio"
	"github.com/gvmm/gvmm/internal/ratelog"
	"github.com/gvmm/gvmm/internal/spec"
	"github.com/gvmm/gvmm/vmm"
)

// Defaults. They are generous: under the nested test host (images/l1) a
// guest runs tens of times slower than on hardware KVM.
const (
	DefaultMemory      = 256 << 20
	DefaultBootTimeout = 5 * time.Minute // Start to the agent's hello
	// DefaultCmdTimeout bounds MustRun, and every wait (Run, Proc.Wait,
	// Proc.WaitLine, Bank.WaitFor) whose context has no deadline.
	DefaultCmdTimeout = 2 * time.Minute
)

type config struct {
	kernel, initrd string
	mem            uint64
	cpus           int
	cmdline        []string
	gpios          []spec.GPIO
	leds           []spec.LED
	keys           []spec.Key
	files          []file
	models         []model
	overlays       []spec.Overlay
	bootTimeout    time.Duration
	errs           []error
	consoleTee     io.Writer // also gets the console (tests of this package)
}

type file struct {
	guest string
	mode  os.FileMode
	data  []byte
	host  string // read at Start if data is nil
}

// model is one Model option: m attached to lines of bank under name.
type model struct {
	bank  int
	name  string
	m     gpio.Model
	lines []int
}

// Option configures a VM for Start.
type Option func(*config)

// Kernel boots the bzImage at path instead of the project's guest image.
// A custom image needs CONFIG_VIRTIO_CONSOLE and an init that starts
// gvmm-agent on /dev/hvc0 (images/init shows how) for VM.Run to work.
func Kernel(path string) Option { return func(c *config) { c.kernel = path } }

// Initrd loads the initramfs at path instead of the project's.
func Initrd(path string) Option { return func(c *config) { c.initrd = path } }

// Memory sets the guest's RAM in bytes (default DefaultMemory).
func Memory(bytes uint64) Option { return func(c *config) { c.mem = bytes } }

// CPUs sets the number of vCPUs, 1 to vmm.MaxCPUs (default 1). The guest
// brings up the others itself (INIT and SIPI through the in-kernel local
// APIC); the project's guest kernel has CONFIG_NR_CPUS=64.
func CPUs(n int) Option { return func(c *config) { c.cpus = n } }

// Sim adds a simulated GPIO bank of n lines, the first ones named names
// (names without commas). Banks are numbered from 0 in the order given,
// Sim and GPIO alike: VM.Bank(i), gpiochipI in the guest, gpioI in the
// device tree.
func Sim(n int, names ...string) Option {
	s := fmt.Sprintf("sim:%d", n)
	if len(names) > 0 {
		s += ",names=" + strings.Join(names, ",")
	}
	return GPIO(s)
}

// GPIO adds a GPIO bank as gvmm run's --gpio takes it: "sim:N[,names=...]"
// or host lines such as "chip0:4-7" (which the test then holds, as
// consumer "gvmm", until it ends).
func GPIO(value string) Option {
	return func(c *config) {
		g, err := spec.ParseGPIO(value)
		c.gpios = append(c.gpios, g)
		c.errs = append(c.errs, wrap("GPIO", value, err))
	}
}

// LED adds an LED of the guest's gpio-leds device, as gvmm run's --led
// takes it: "NAME=BANK:LINE[,active-low][,default-on]".
func LED(value string) Option {
	return func(c *config) {
		l, err := spec.ParseLED(value)
		c.leds = append(c.leds, l)
		c.errs = append(c.errs, wrap("LED", value, err))
	}
}

// Key adds a key of the guest's gpio-keys device, as gvmm run's --key
// takes it: "CODE=BANK:LINE[,active-low|,level-high|,level-low]
// [,debounce-interval=MS]". Keys work on bank 0 only with the project's
// image (Linux 6.1's gpio-virtio; see the README).
func Key(value string) Option {
	return func(c *config) {
		k, err := spec.ParseKey(value)
		c.keys = append(c.keys, k)
		c.errs = append(c.errs, wrap("Key", value, err))
	}
}

func wrap(opt, spec string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s(%q): %w", opt, spec, err)
}

// Model attaches m, a device model, to lines of simulated bank (pins 0,
// 1, ... in the order given) under name, before the guest boots, so that
// a driver probing at boot finds the device there: see gpio.Model, and
// package devices/gpio/models for the ones gvmm ships. Bank.Attachment
// returns its attachment.
func Model(bank int, name string, m gpio.Model, lines ...int) Option {
	return func(c *config) {
		c.models = append(c.models, model{bank: bank, name: name, m: m, lines: append([]int(nil), lines...)})
	}
}

// Overlay applies a device-tree overlay to the tree the guest boots with,
// as gvmm run's --dt-overlay does: a compiled overlay (.dtbo, from `dtc
// -@ -I dts -O dtb`), or its source (.dtso or .dts), which Start compiles
// with dtc. Its fragments can target the banks by label: &gpio0, &gpio1,
// ... in bank order.
func Overlay(path string) Option {
	return func(c *config) {
		o, err := spec.LoadOverlay(path)
		c.overlays = append(c.overlays, o)
		c.errs = append(c.errs, wrap("Overlay", path, err))
	}
}

// Append adds words to the kernel command line.
func Append(words ...string) Option {
	return func(c *config) { c.cmdline = append(c.cmdline, words...) }
}

// File puts data at guestPath (absolute) in the guest, with mode's
// permission bits; parent directories are created.
func File(guestPath string, data []byte, mode os.FileMode) Option {
	return func(c *config) { c.files = append(c.files, file{guest: guestPath, mode: mode, data: data}) }
}

// HostFile copies the host file hostPath to guestPath in the guest, with
// its permission bits: e.g. a test program built with CGO_ENABLED=0.
func HostFile(hostPath, guestPath string) Option {
	return func(c *config) { c.files = append(c.files, file{guest: guestPath, host: hostPath}) }
}

// BootTimeout bounds the time from Start to the guest agent's hello
// (default DefaultBootTimeout).
func BootTimeout(d time.Duration) Option { return func(c *config) { c.bootTimeout = d } }

// VM is a guest booted by Start, running in the test's process.
type VM struct {
	t       testing.TB
	vm      *vmm.VM
	banks   []*Bank
	console *tail           // the guest's serial console
	log     *tail           // gvmm's own diagnostics
	logger  *ratelog.Logger // into log, at a bounded rate
	sess    *session
	cons    *console.Device

	ended   chan struct{} // closed when the guest has stopped
	exit    vmm.Exit
	runErr  error
	booted  time.Duration // from creating the VM to the agent's hello
	created time.Duration // vmm.New's part of booted

	closing sync.Once
	waited  atomic.Bool // Wait saw the guest end
	fail    func(format string, args ...any)
}

// Start boots a VM for the test and returns once the guest's agent is
// ready for commands. The VM stops when the test ends (t.Cleanup); if the
// test failed, the test log gets the tail of the guest's console and gvmm's
// own messages, and a guest that panicked fails the test. If this host has
// no usable KVM, the test is skipped with a line saying how to run it
// (through the nested test host: go test -exec images/l1/l1-exec), unless
// it already runs there, where that fails it. Any number of VMs may run at
// once, memory allowing.
func Start(t testing.TB, opts ...Option) *VM {
	t.Helper()
	if err := vmm.CheckHost(); err != nil {
		if os.Getenv("GVMM_IN_L1") != "" {
			t.Fatalf("gvmmtest: %v", err)
		}
		t.Skipf("gvmmtest: skipped: %v (go test -exec <gvmm>/images/l1/l1-exec runs it)", err)
	}
	v, err := boot(t.Logf, t.Fatalf, opts)
	if v != nil {
		v.t = t
		t.Cleanup(func() {
			var vcpus string
			if t.Failed() {
				vcpus = v.vcpus() // while the guest still runs
			}
			v.Close()
			if t.Failed() {
				t.Logf("gvmmtest: after the failure:\n%s%s", v.report(), vcpus)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gvmmtest: guest ready in %v", v.booted.Round(time.Millisecond))
	return v
}

// New boots a VM outside a test (in TestMain, to share one VM between
// tests, or in a program) and returns once the guest's agent is ready.
// Close it when done. Bank methods of such a VM panic where those of a
// Start VM would fail the test.
func New(opts ...Option) (*VM, error) {
	if err := vmm.CheckHost(); err != nil {
		return nil, fmt.Errorf("gvmmtest: %w", err)
	}
	fail := func(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
	v, err := boot(func(string, ...any) {}, fail, opts)
	if err != nil && v != nil {
		v.Close()
	}
	return v, err
}

// boot builds and boots the VM. It returns the VM, once created, even
// with an error, so that the caller can show its console and close it.
func boot(logf, fail func(string, ...any), opts []Option) (*VM, error) {
	c := config{mem: DefaultMemory, cpus: 1, bootTimeout: DefaultBootTimeout}
	for _, o := range opts {
		o(&c)
	}
	var ctrls []*fdt.GPIOController
	for i, g := range c.gpios {
		ctrls = append(ctrls, g.Controller(i))
	}
	if err := errors.Join(append(c.errs, spec.CheckConsumers(ctrls, c.leds, c.keys))...); err != nil {
		return nil, fmt.Errorf("gvmmtest: %w", err)
	}
	kernel, initrd, syms, err := guestImage(logf, c)
	if err != nil {
		return nil, fmt.Errorf("gvmmtest: %w", err)
	}
	if initrd, err = addFiles(initrd, c.files); err != nil {
		return nil, fmt.Errorf("gvmmtest: %w", err)
	}

	v := &VM{fail: fail, console: newTail(200), log: newTail(100), ended: make(chan struct{})}
	v.logger = ratelog.New(v.log, "")
	var serial io.Writer = v.console
	if c.consoleTee != nil {
		serial = io.MultiWriter(v.console, c.consoleTee)
	}
	cfg := vmm.Config{
		Kernel: kernel, Initrd: initrd, MemSize: c.mem, CPUs: c.cpus, Console: serial,
		Cmdline: strings.Join(append([]string{"console=ttyS0", "panic=-1", "quiet"}, c.cmdline...), " "),
		Log:     v.logger.Log,
	}
	if syms != nil {
		cfg.Symbolize = syms.Name
	}
	for _, l := range c.leds {
		cfg.LEDs = append(cfg.LEDs, l.FDT())
	}
	for _, k := range c.keys {
		cfg.Keys = append(cfg.Keys, k.FDT())
	}
	for i, g := range c.gpios {
		sim, dev, closeGPIO, err := g.Open(spec.ConsumerName(""))
		if err != nil {
			v.closeBanks()
			v.logger.Close()
			return nil, fmt.Errorf("gvmmtest: bank %d (%s): %w", i, g.Value(), err)
		}
		cfg.Virtio = append(cfg.Virtio, vmm.VirtioDevice{Device: dev, GPIO: ctrls[i]})
		v.banks = append(v.banks, newBank(v, i, g.Value(), sim, dev, closeGPIO))
	}
	for _, m := range c.models {
		if err := v.attach(m); err != nil {
			v.closeBanks()
			v.logger.Close()
			return nil, fmt.Errorf("gvmmtest: %w", err)
		}
	}
	for _, o := range c.overlays {
		cfg.Overlays = append(cfg.Overlays, vmm.Overlay{Name: o.Path, DTB: o.DTB})
	}
	// The agent's channel: a virtio console after the GPIO devices, so
	// that bank i is the guest's gpiochipI.
	pr, pw := io.Pipe()
	v.cons = console.New(pw)
	v.sess = newSession(func(b []byte) { _, _ = v.cons.Write(b) })
	go v.sess.serve(pr)
	cfg.Virtio = append(cfg.Virtio, vmm.VirtioDevice{Device: v.cons})

	began := time.Now()
	if v.vm, err = vmm.New(cfg); err != nil {
		v.closeBanks()
		v.logger.Close()
		_ = pw.Close()
		return nil, fmt.Errorf("gvmmtest: %w", err)
	}
	v.created = time.Since(began)
	go func() {
		v.exit, v.runErr = v.vm.Run()
		close(v.ended)
		v.sess.fail(v.endedErr())
		_ = pw.Close()
	}()
	timer := time.NewTimer(c.bootTimeout)
	defer timer.Stop()
	select {
	case <-v.sess.ready:
	case <-v.sess.broken:
		return v, fmt.Errorf("gvmmtest: the guest did not come up (step: boot to the agent): %v\n%s", v.sess.err, v.report())
	case <-timer.C:
		return v, fmt.Errorf("gvmmtest: the guest's agent did not say hello within %v (step: boot to the agent; an image without gvmm-agent never does)\n%s", c.bootTimeout, v.report())
	}
	v.booted = time.Since(began)
	return v, nil
}

// attach attaches a Model option's model to its bank.
func (v *VM) attach(m model) error {
	if m.bank < 0 || m.bank >= len(v.banks) || v.banks[m.bank].sim == nil {
		return fmt.Errorf("Model(%d, %q): no simulated bank %d (the VM has %d banks)", m.bank, m.name, m.bank, len(v.banks))
	}
	b := v.banks[m.bank]
	if b.attachments[m.name] != nil {
		return fmt.Errorf("Model(%d, %q): bank %d has a model of that name already", m.bank, m.name, m.bank)
	}
	a, err := b.sim.Attach(m.name, m.m, m.lines...)
	if err != nil {
		return fmt.Errorf("Model(%d, %q): %w", m.bank, m.name, err)
	}
	b.attachments[m.name] = a
	return nil
}

func (v *VM) closeBanks() {
	for _, b := range v.banks {
		b.close()
	}
}

// endedErr says how the guest ended, for commands it leaves unanswered.
func (v *VM) endedErr() error {
	switch {
	case v.runErr != nil:
		return fmt.Errorf("the VM failed: %w", v.runErr)
	case v.exit.Reason == vmm.ExitPanic:
		return fmt.Errorf("the guest kernel panicked: %s", v.exit.Panic)
	}
	return errors.New("the guest powered off or rebooted")
}

// Close stops the guest if it still runs and releases the VM. A Start
// VM is closed by the test's cleanup; there, a guest that panicked or a VM
// that failed, unless Wait saw it, fails the test.
func (v *VM) Close() {
	v.closing.Do(func() {
		select {
		case <-v.ended:
			if v.t != nil && !v.waited.Load() && (v.runErr != nil || v.exit.Reason == vmm.ExitPanic) {
				v.t.Errorf("gvmmtest: %v", v.endedErr())
			}
		default:
			v.vm.Stop()
		}
		<-v.ended
		v.vm.Close()
		v.logger.Close()
		v.closeBanks()
	})
}

// Wait waits until the guest stops by itself (powers off, reboots or
// panics) and returns how it ended.
func (v *VM) Wait(ctx context.Context) (vmm.Exit, error) {
	select {
	case <-v.ended:
		v.waited.Store(true)
		return v.exit, v.runErr
	case <-ctx.Done():
		return vmm.Exit{}, fmt.Errorf("gvmmtest: the guest did not stop: %w", context.Cause(ctx))
	}
}

// BootTime is how long Start took from creating the VM to the agent's
// hello.
func (v *VM) BootTime() time.Duration { return v.booted }

// Console returns the last lines the guest printed on its serial console.
func (v *VM) Console() string { return v.console.String() }

// report is what a failure shows: the console's tail and gvmm's messages.
func (v *VM) report() string {
	var b strings.Builder
	b.WriteString("--- guest console (tail) ---\n" + v.console.String())
	if l := v.log.String(); l != "" {
		b.WriteString("--- gvmm's messages ---\n" + l)
	}
	if len(v.banks) > 0 {
		b.WriteString("--- the banks' virtio-gpio devices ---\n")
		for i, bk := range v.banks {
			st := bk.dev.Stats()
			fmt.Fprintf(&b, "bank %d (%s): requests", i, bk.spec)
			for t, n := range st.Requests {
				if n > 0 {
					fmt.Fprintf(&b, " %v=%d", gpio.MsgType(t), n)
				}
			}
			fmt.Fprintf(&b, "; errors %d, malformed chains %d; eventq valid %d, invalid %d\n", st.Errors, st.MalformedChains, st.Valid, st.Invalid)
		}
	}
	return b.String()
}

// vcpus says where each vCPU is, while the guest runs: for a guest that
// hangs.
func (v *VM) vcpus() string {
	select {
	case <-v.ended:
		return ""
	default:
	}
	return "--- vCPUs ---\n" + strings.Join(v.vm.DumpState(), "\n") + "\n"
}

// Bank returns simulated bank i; an index the VM does not have fails the
// test.
func (v *VM) Bank(i int) *Bank {
	if v.t != nil {
		v.t.Helper()
	}
	if i < 0 || i >= len(v.banks) {
		v.fail("gvmmtest: no bank %d: the VM has %d (give them with gvmmtest.Sim)", i, len(v.banks))
		return nil
	}
	if v.banks[i].sim == nil {
		v.fail("gvmmtest: bank %d is host lines (%s), not a simulated bank: drive them on the host", i, v.banks[i].spec)
	}
	return v.banks[i]
}

// Start starts cmd with /bin/sh -c in the guest and returns at once; see
// Proc. Standard input is /dev/null; standard output is a terminal (a pty
// in raw mode, so bytes pass unchanged), so that a program such as
// gpiomon, whose C stdio would hold its output back in a pipe, prints
// each line as it makes it, and Proc.WaitLine sees it; standard error is
// a pipe. ctx bounds the command's life: when it ends the command's
// process group gets SIGKILL.
func (v *VM) Start(ctx context.Context, cmd string) *Proc { return v.start(ctx, cmd, true) }

func (v *VM) start(ctx context.Context, cmd string, terminal bool) *Proc {
	p := v.sess.start(cmd, terminal)
	go func() {
		select {
		case <-p.done:
		case <-ctx.Done():
			_ = p.Signal(9)
		}
	}()
	return p
}

// Run runs cmd with /bin/sh -c in the guest and returns its standard
// output, through a pipe (not a terminal, unlike Start: a program's
// output is what $(cmd) would capture). The error is an *ExitError if it exited with a status other than
// 0; if ctx ends first (without a deadline: after DefaultCmdTimeout), an
// error naming the command with the tail of the guest's console, and the
// command is killed.
func (v *VM) Run(ctx context.Context, cmd string) (string, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	p := v.start(ctx, cmd, false)
	status, err := p.Wait(ctx)
	stdout, stderr := p.Output()
	switch {
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("%w\n%s%s", err, v.report(), v.vcpus())
	case err == nil && status != 0:
		err = &ExitError{Cmd: cmd, Status: status, Stderr: stderr}
	}
	if o, e := p.Dropped(); o > 0 || e > 0 {
		err = errors.Join(err, fmt.Errorf("gvmmtest: guest command %q: output over %d bytes per stream was dropped (%d of stdout, %d of stderr)", cmd, MaxOutput, o, e))
	}
	return stdout, err
}

// MustRun is Run for the test's goroutine: it fails the test (panics,
// for a VM from New) if cmd fails or takes longer than DefaultCmdTimeout.
func (v *VM) MustRun(cmd string) string {
	if v.t != nil {
		v.t.Helper()
	}
	out, err := v.Run(context.Background(), cmd)
	if err != nil {
		v.fail("%v", err)
	}
	return out
}

// withDefaultTimeout bounds a wait whose ctx has no deadline by
// DefaultCmdTimeout.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultCmdTimeout)
}

// addFiles appends an archive of files to initrd (the kernel unpacks
// archives one after another), with their parent directories.
func addFiles(initrd []byte, files []file) ([]byte, error) {
	if len(files) == 0 {
		return initrd, nil
	}
	dirs := map[string]bool{}
	for i := range files {
		f := &files[i]
		if !path.IsAbs(f.guest) || path.Clean(f.guest) == "/" {
			return nil, fmt.Errorf("guest path %q: want an absolute path of a file", f.guest)
		}
		if f.data == nil {
			data, err := os.ReadFile(f.host)
			if err != nil {
				return nil, fmt.Errorf("file for the guest: %w", err)
			}
			fi, err := os.Stat(f.host)
			if err != nil {
				return nil, fmt.Errorf("file for the guest: %w", err)
			}
			f.data, f.mode = data, fi.Mode()
		}
		for d := path.Dir(path.Clean(f.guest)); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	ds := make([]string, 0, len(dirs))
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds) // parents first
	return cpio.Append(initrd, func(w *cpio.Writer) error {
		for _, d := range ds {
			if err := w.Dir(d, 0o755); err != nil {
				return err
			}
		}
		for _, f := range files {
			if err := w.File(f.guest, uint32(f.mode.Perm()), f.data); err != nil {
				return err
			}
		}
		return nil
	})
}
