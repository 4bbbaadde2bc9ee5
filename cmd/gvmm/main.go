// Command gvmm is a small KVM virtual machine monitor for booting a Linux
// guest against virtual GPIO controllers. See README.md.
package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/gvmm/gvmm/boot"
	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/control"
	"github.com/gvmm/gvmm/fdt"
	"github.com/gvmm/gvmm/internal/imagecache"
	"github.com/gvmm/gvmm/internal/ksyms"
	"github.com/gvmm/gvmm/internal/ratelog"
	"github.com/gvmm/gvmm/internal/spec"
	"github.com/gvmm/gvmm/internal/term"
	"github.com/gvmm/gvmm/vmm"
)

const usage = `gvmm - a small KVM virtual machine monitor with virtio-gpio

Usage:
  gvmm run [flags]     boot a Linux guest with its console on this terminal
  gvmm gpio COMMAND    drive and watch the simulated GPIO banks of a running gvmm
  gvmm dtb [flags] -o FILE
                       write the device tree that gvmm run with the same flags
                       gives the guest (-o - for standard output)
  gvmm gpio-backend --socket PATH --gpio LINES
                       serve a virtio-gpio controller to QEMU as a vhost-user
                       back end
  gvmm help            show this help

Run 'gvmm run --help' for the flags of run, 'gvmm dtb --help' for dtb's,
'gvmm gpio-backend --help' for gpio-backend's.

Exit status: the status of the guest command given with --cmd, else 0 when
the guest powers off or reboots; 1 when the guest kernel panics or gvmm
fails; 2 for bad usage; 128+N when stopped by signal N.
`

func main() {
	os.Exit(gvmm(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// gvmm runs the command line args and returns the exit status.
func gvmm(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runCmd(args[1:], stdin, stdout, stderr)
	case "gpio":
		return gpioCmd(args[1:], stdout, stderr)
	case "dtb":
		return dtbCmd(args[1:], stdout, stderr)
	case "gpio-backend":
		return backendCmd(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "gvmm: unknown command %q (try 'gvmm help')\n", args[0])
		return 2
	}
}

// projectKernel is in the version string of every kernel images/build-image.sh
// builds (CONFIG_LOCALVERSION in images/kernel.config): those carry the
// project's gpio-virtio patches (images/patches).
const projectKernel = "-gvmm "

// versionOrUnknown names a kernel by its release ("6.1.172"), the first
// word of its version string.
func versionOrUnknown(v string) string {
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return "version unknown"
}

// defaultCmdline is the kernel command line when --append is not given.
const defaultCmdline = "console=ttyS0 panic=-1"

// runFlags are the flags of gvmm run (which gvmm dtb takes too).
type runFlags struct {
	kernel, initrd, cmdline, cmd string
	control, name, logFile       string
	systemMap                    string
	verbose                      bool
	mem                          uint64
	cpus                         int
	gpios                        []spec.GPIO
	leds                         []spec.LED
	keys                         []spec.Key
	overlays                     []spec.Overlay
	models                       []spec.Model
	modelWarnings                []string
}

// newRunFlags defines the flags of gvmm run on a new flag set called name.
func newRunFlags(name string) (*runFlags, *flag.FlagSet) {
	f := &runFlags{mem: 256 << 20}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by the caller
	fs.Usage = func() {}
	img := imagecache.Dir()
	fs.StringVar(&f.kernel, "kernel", filepath.Join(img, "bzImage"), "guest kernel `bzImage` (x86_64, boot protocol 2.09 or later)")
	fs.StringVar(&f.initrd, "initrd", filepath.Join(img, "initramfs.cpio.gz"), "initramfs `file` to load; empty for none")
	fs.StringVar(&f.systemMap, "system-map", "", "the kernel's System.map `file`, to name the guest functions in the register\n"+
		"dumps (SIGUSR1, a triple fault); default: System.map next to --kernel, if there")
	fs.StringVar(&f.cmdline, "append", defaultCmdline, "the whole kernel command `line`")
	fs.StringVar(&f.cmd, "cmd", "", "shell `script` for the image's init to run instead of a shell; gvmm then\nexits with its status (the default image only: passed as gvmm.run=)")
	fs.Func("mem", "guest RAM `size`: a number of MiB, or with a suffix K, M, G (default 256M)", func(s string) error {
		n, err := parseSize(s)
		f.mem = n
		return err
	})
	fs.StringVar(&f.control, "control", "", "serve the simulated GPIO banks on a Unix socket at `path`\n(see 'gvmm gpio --help')")
	fs.IntVar(&f.cpus, "cpus", 1, "number of vCPUs, 1 to 255 (the host's KVM may allow fewer; the project's guest kernel brings up 64)")
	fs.StringVar(&f.logFile, "log", "", "write gvmm's diagnostics (what the guest's drivers did that a device\n"+
		"refused, a broken queue, ...) to `file` instead of standard error")
	fs.BoolVar(&f.verbose, "verbose", false, "also log how each device is wired (ioeventfd/irqfd or the fallback)")
	fs.Func("name", "a `name` for this VM, 1 to 26 letters, digits or . _ -: host lines it holds\n"+
		"show the consumer \"gvmm-NAME\" instead of \"gvmm\" (gpioinfo on the host)", func(s string) error {
		f.name = s
		return spec.CheckVMName(s)
	})
	fs.Func("gpio", "add a virtio-gpio controller of `lines`; repeat for more controllers:\n"+
		"  sim:N[,pull-up=L][,pull-down=L][,names=a,b,...]\n"+
		"      a simulated bank of N lines (the first ones named); lines L (e.g. 0-1 or\n"+
		"      0,3,5-6) pulled up or down read 1 or 0 while nothing drives them\n"+
		"  CHIP:LINES[,names=a,b,...] host lines: guest line i is the i-th of LINES\n"+
		"      (e.g. chip0:4-7, gpiochip1:0,3,8-9) of CHIP (chipN, /dev/gpiochipN or a\n"+
		"      chip label); gvmm holds them (consumer \"gvmm\", see --name) until it exits and the\n"+
		"      guest can reach no other host line", func(s string) error {
		g, err := spec.ParseGPIO(s)
		f.gpios = append(f.gpios, g)
		return err
	})
	fs.Func("dt-overlay", "apply the device-tree overlay in `file` to the guest's tree; repeatable, applied\n"+
		"in order. A compiled overlay (dtc -@ -I dts -O dtb), or its source (.dtso), which\n"+
		"gvmm compiles with dtc. Fragments target the controllers by label (&gpio0, ...):\n"+
		"see 'Device-tree overlays' in the README", func(s string) error {
		o, err := spec.LoadOverlay(s)
		f.overlays = append(f.overlays, o)
		return err
	})
	fs.Func("model", "attach a device model to lines of a simulated bank before boot; repeatable:\n"+
		"  `at24c02=CTRL:SCL,SDA`[,addr=0xNN][,file=PATH]\n"+
		"      a 24c02 I2C EEPROM (256 bytes; address 0x50 unless addr= says otherwise)\n"+
		"      holding PATH's first bytes (default: erased, 0xff), for the guest's\n"+
		"      i2c-gpio and at24 drivers, which a --dt-overlay describes: see\n"+
		"      examples/i2c-eeprom.dtso. The lines need pull-ups (sim:N,pull-up=...)", func(s string) error {
		m, err := spec.ParseModel(s)
		f.models = append(f.models, m)
		return err
	})
	fs.Func("led", "add an LED on a GPIO line to the guest's gpio-leds device:\n`NAME=CTRL:LINE`[,OPTION...]; repeatable (see GPIO consumers below)", func(s string) error {
		l, err := spec.ParseLED(s)
		f.leds = append(f.leds, l)
		return err
	})
	fs.Func("key", "add a key on a GPIO line to the guest's gpio-keys device:\n`CODE=CTRL:LINE`[,OPTION...]; repeatable (see GPIO consumers below)", func(s string) error {
		k, err := spec.ParseKey(s)
		f.keys = append(f.keys, k)
		return err
	})
	return f, fs
}

// consumersHelp explains --led and --key, for the help of run and dtb.
const consumersHelp = `
GPIO consumers (--led, --key):
  CTRL is a --gpio controller, by its index counting from 0 in the order the
  --gpio flags come (or by its device-tree label: gpio0, gpio1, ...); LINE
  is a line of it, from 0. Each line serves at most one LED or key.

  --led NAME=CTRL:LINE[,active-low][,default-on]
      An LED of a gpio-leds device: the guest's /sys/class/leds/NAME drives
      the line. NAME, unique, is 1 to 31 letters, digits or , . _ + -,
      starting with a letter or digit. active-low: the LED is lit when the
      line is low. default-on: lit when the guest's driver starts (otherwise
      off).
  --key CODE=CTRL:LINE[,active-low][,debounce-interval=MS]
      A key of a gpio-keys device: the guest's input device reports key CODE
      (an input event code, 1 to 767: 28 KEY_ENTER, 0x74 KEY_POWER, ...)
      pressed while the line is active, taking interrupts on both edges.
      active-low: pressed when the line is low. debounce-interval: ms the
      line must be stable (default 5).
  --key CODE=CTRL:LINE,level-high|level-low[,debounce-interval=MS]
      An interrupt-only key: no GPIO, only the line's level interrupt
      (IRQ_TYPE_LEVEL_HIGH or _LOW). The key is pressed at an interrupt and
      released debounce-interval ms (default 5; 0: at once) after the last
      one; the interrupt repeats while the level lasts, so make the interval
      longer than the time a repeat takes.
`

// parse parses args into f and checks them; -h and --help call help and
// return flag.ErrHelp.
func (f *runFlags) parse(fs *flag.FlagSet, args []string, help func()) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	}
	return f.check()
}

// check checks the flags together, so that whatever they ask for can boot.
func (f *runFlags) check() error {
	if f.mem < vmm.MinMemory {
		return fmt.Errorf("--mem %dM is too little: the guest needs at least %dM", f.mem>>20, vmm.MinMemory>>20)
	}
	if f.cpus < 1 || f.cpus > vmm.MaxCPUs {
		return fmt.Errorf("--cpus %d: want 1 to %d vCPUs", f.cpus, vmm.MaxCPUs)
	}
	if len(f.gpios) > vmm.MaxVirtio {
		return fmt.Errorf("%d --gpio controllers: at most %d", len(f.gpios), vmm.MaxVirtio)
	}
	c := f.config()
	var ctrls []*fdt.GPIOController
	for _, d := range c.Virtio {
		ctrls = append(ctrls, d.GPIO)
	}
	if err := spec.CheckConsumers(ctrls, f.leds, f.keys); err != nil {
		return err
	}
	var err error
	if f.modelWarnings, err = spec.CheckModels(f.gpios, f.models); err != nil {
		return err
	}
	// Whatever else the device tree would refuse is a usage error too.
	_, err = vmm.DeviceTree(c)
	return err
}

// config returns the VM the flags describe, short of the guest's files,
// its console and the virtio devices' implementations: all that
// vmm.DeviceTree looks at, so gvmm run and gvmm dtb give the same tree.
func (f *runFlags) config() vmm.Config {
	c := vmm.Config{Cmdline: f.cmdline, MemSize: f.mem, CPUs: f.cpus}
	for i, g := range f.gpios {
		c.Virtio = append(c.Virtio, vmm.VirtioDevice{GPIO: g.Controller(i)})
	}
	for _, l := range f.leds {
		c.LEDs = append(c.LEDs, l.FDT())
	}
	for _, k := range f.keys {
		c.Keys = append(c.Keys, k.FDT())
	}
	for _, o := range f.overlays {
		c.Overlays = append(c.Overlays, vmm.Overlay{Name: o.Path, DTB: o.DTB})
	}
	return c
}

func parseRun(args []string, stdout io.Writer) (*runFlags, error) {
	f, fs := newRunFlags("gvmm run")
	help := func() {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, `Usage: gvmm run [flags]

Boots a Linux guest under KVM with its serial console (a 16550 UART on
0x3f8) on this terminal. With no flags it boots the image that 'make image'
built and cached in %s.

On the console, Ctrl-A x quits gvmm and Ctrl-A Ctrl-A sends a Ctrl-A.

Flags:
`, imagecache.Dir())
		fs.PrintDefaults()
		fmt.Fprint(stdout, consumersHelp)
		fmt.Fprintln(stdout, `
Examples:
  gvmm run                               boot the default image to a shell
  gvmm run --cmd 'gpiodetect; uname -r'  run a command, exit with its status
  gvmm run --kernel bzImage --initrd rootfs.cpio --append 'console=ttyS0'
  gvmm run --gpio sim:8 --led status=0:0,default-on --key 28=0:1,active-low
        an LED named status on line 0, lit at start; Enter on line 1, low
        when pressed
  gvmm run --gpio sim:4 --key 116=0:3,level-high,debounce-interval=100
        KEY_POWER held while line 3 is high (an interrupt-only key)`)
	}
	if err := f.parse(fs, args, help); err != nil {
		return nil, err
	}
	if f.cmd != "" {
		f.cmdline += " gvmm.run=" + base64.StdEncoding.EncodeToString([]byte(f.cmd))
	}
	return f, nil
}

// parseSize reads "512", "512M", "1G", "65536K" as a byte count (plain
// numbers are MiB).
func parseSize(s string) (uint64, error) {
	mult := uint64(1 << 20)
	num := strings.TrimSuffix(strings.ToUpper(s), "B")
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'K':
			mult, num = 1<<10, num[:n-1]
		case 'M':
			mult, num = 1<<20, num[:n-1]
		case 'G':
			mult, num = 1<<30, num[:n-1]
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v == 0 || v > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q: want e.g. 256M or 1G", s)
	}
	return v * mult, nil
}

func readFile(what, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		hint := ""
		if strings.HasPrefix(path, imagecache.Dir()) {
			hint = " (build the default image with 'make image')"
		}
		return nil, fmt.Errorf("%s %s does not exist%s", what, path, hint)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

func runCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, err := parseRun(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gvmm run: %v (see 'gvmm run --help')\n", err)
		return 2
	}
	kernel, err := readFile("kernel", f.kernel)
	if err != nil {
		fmt.Fprintf(stderr, "gvmm: %v\n", err)
		return 1
	}
	var initrd []byte
	if f.initrd != "" {
		if initrd, err = readFile("initrd", f.initrd); err != nil {
			fmt.Fprintf(stderr, "gvmm: %v\n", err)
			return 1
		}
	}
	if v := boot.KernelVersion(kernel); !strings.Contains(v, projectKernel) {
		for _, k := range f.keys {
			if k.Controller() > 0 {
				fmt.Fprintf(stderr, "gvmm: note: --key %q is on controller %d: Linux's gpio-virtio before v6.15 shares one irq_chip between controllers and crashes on interrupts of any but the first; if this kernel (%s) lacks upstream commit 84693df49dac, apply images/patches/0002-gpio-virtio-one-irq-chip-per-device.patch or put the key on controller 0\n", k.Value(), k.Controller(), versionOrUnknown(v))
			}
		}
	}
	var syms *ksyms.Table
	if f.systemMap != "" {
		syms, err = ksyms.Load(f.systemMap)
	} else {
		syms, err = ksyms.LoadBeside(f.kernel)
	}
	switch {
	case err != nil && f.systemMap != "":
		fmt.Fprintf(stderr, "gvmm: --system-map: %v\n", err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "gvmm: warning: %v; register dumps will not name functions (--system-map FILE gives the right one)\n", err)
	}
	// Diagnostics go to --log FILE or to stderr, one line each, at a
	// bounded rate; with "\r\n" while stderr is the raw terminal.
	logTo, closeLog, err := openLog(f.logFile, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "gvmm: --log: %v\n", err)
		return 1
	}
	defer closeLog()
	onTerminal := f.logFile == "" && term.IsTerminal(stderr)
	logger := ratelog.New(logTo, "gvmm: ")
	defer logger.Close()
	cfg := f.config()
	cfg.Kernel, cfg.Initrd, cfg.Console = kernel, initrd, stdout
	cfg.Log, cfg.Verbose = logger.Log, f.verbose
	if syms != nil {
		cfg.Symbolize = syms.Name
	}
	// Host lines are requested here, before the guest starts, and released
	// by the deferred closes on every way out of runCmd (the kernel would
	// release them anyway when gvmm exits, however it does).
	var banks []*gpio.Sim
	var devs []*gpio.Device
	for i, g := range f.gpios {
		sim, dev, closeGPIO, err := g.Open(spec.ConsumerName(f.name))
		if err != nil {
			fmt.Fprintf(stderr, "gvmm: --gpio %q: %v\n", g.Value(), err)
			if g.Host() == nil {
				return 2 // a simulated bank fails only on bad flags
			}
			return 1
		}
		defer closeGPIO()
		cfg.Virtio[i].Device = dev
		banks = append(banks, sim)
		devs = append(devs, dev)
	}
	for _, w := range f.modelWarnings {
		fmt.Fprintf(stderr, "gvmm: warning: %s\n", w)
	}
	for _, m := range f.models {
		if _, _, err := m.Open(banks[m.Controller()]); err != nil {
			fmt.Fprintf(stderr, "gvmm: %v\n", err)
			return 1
		}
	}
	if f.control != "" {
		l, err := listenControl(f.control)
		if err != nil {
			fmt.Fprintf(stderr, "gvmm: --control: %v\n", err)
			return 1
		}
		defer os.Remove(f.control)
		defer l.Close()
		fmt.Fprintln(stderr, controlHint(f.control))
		go func() {
			if err := (&control.Server{Banks: banks, Devices: devs}).Serve(l); err != nil {
				logger.Log("control socket: " + err.Error() + "; no longer served")
			}
		}()
	}
	vm, err := vmm.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "gvmm: %v\n", err)
		return 1
	}
	defer vm.Close()
	// The kernel and initrd are in guest RAM now, and their copies
	// garbage: give that memory back to the host at once rather than when
	// Go's scavenger gets to it (megabytes of RSS).
	debug.FreeOSMemory()

	// The terminal goes raw for the guest's console and is restored on
	// every way out of this function.
	restore := func() {}
	if fd, ok := stdin.(interface{ Fd() uintptr }); ok {
		if r, ok := term.MakeRaw(int(fd.Fd())); ok {
			logger.SetCRLF(onTerminal)
			restore = func() { r(); logger.SetCRLF(false) }
		}
	}
	defer restore()

	quit := make(chan struct{})
	go forwardInput(stdin, vm, quit)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	stopSig := make(chan os.Signal, 1)
	// SIGUSR1 prints where each vCPU is, for a guest that seems to hang.
	dump := make(chan os.Signal, 1)
	signal.Notify(dump, syscall.SIGUSR1)
	defer signal.Stop(dump)
	go func() {
		for {
			select {
			case <-dump:
				for _, l := range vm.DumpState() {
					fmt.Fprintf(stderr, "gvmm: %s\r\n", l)
				}
				continue
			case s := <-sigs:
				stopSig <- s
			case <-quit:
			}
			vm.Stop()
			return
		}
	}()

	exit, err := vm.Run()
	restore()
	var stoppedBy os.Signal
	select {
	case stoppedBy = <-stopSig:
	default:
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "\ngvmm: %v\n", err)
		return 1
	case stoppedBy != nil:
		fmt.Fprintf(stderr, "\ngvmm: stopped by %v\n", stoppedBy)
		return 128 + int(stoppedBy.(syscall.Signal))
	case exit.Reason == vmm.ExitPanic:
		fmt.Fprintf(stderr, "\ngvmm: guest kernel panic: %s\n", exit.Panic)
		return 1
	case exit.HasStatus:
		return exit.Status
	}
	return 0
}

// listenControl listens on the Unix socket path. A socket file left
// there by a gvmm that was killed (nobody answers on it) is replaced; a
// live one, or any other file, is an error.
func listenControl(path string) (net.Listener, error) {
	l, err := net.Listen("unix", path)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return l, err
	}
	if fi, serr := os.Lstat(path); serr != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, err
	}
	if c, derr := net.Dial("unix", path); derr == nil {
		c.Close()
		return nil, fmt.Errorf("%s is in use by another gvmm; give --control another path", path)
	}
	if err := os.Remove(path); err != nil {
		return nil, err
	}
	return net.Listen("unix", path)
}

// controlHint is the line gvmm run prints about its control socket.
func controlHint(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	hint := fmt.Sprintf("gvmm: drive the simulated lines from another terminal: %s gpio --control %s set 2 1 (or get, list, watch, stats; see 'gvmm gpio --help')", os.Args[0], path)
	if os.Getenv("GVMM_IN_L1") != "" {
		hint += "\ngvmm: (this gvmm runs inside the nested test host, images/l1, so its socket is reachable only there: on a host with hardware KVM it is reachable from any terminal)"
	}
	return hint
}

// forwardInput copies the console input to the guest until EOF, closing
// quit when the user types the escape sequence.
func forwardInput(in io.Reader, vm *vmm.VM, quit chan<- struct{}) {
	var esc term.Escape
	buf := make([]byte, 256)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			out, q := esc.Filter(buf[:n])
			vm.Input(out)
			if q {
				close(quit)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// openLog is where --log sends diagnostics: the file at path, appended
// to, or stderr when path is empty. closeLog releases the file.
func openLog(path string, stderr io.Writer) (w io.Writer, closeLog func(), err error) {
	if path == "" {
		return stderr, func() {}, nil
	}
	lf, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return lf, func() { lf.Close() }, nil
}
