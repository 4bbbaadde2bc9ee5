package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/gvmm/gvmm/devices/gpio"
	"github.com/gvmm/gvmm/devices/gpio/control"
	"github.com/gvmm/gvmm/internal/ratelog"
	"github.com/gvmm/gvmm/internal/spec"
	"github.com/gvmm/gvmm/virtio/vhostuser"
)

const backendUsage = `Usage: gvmm gpio-backend --socket PATH --gpio LINES [flags]

Serves one virtio-gpio controller as a vhost-user back end, for guests
that run under QEMU: QEMU's vhost-user-gpio-device connects to the Unix
socket PATH and gives its guest the controller, whose lines are gvmm's:
a simulated bank (sim:N, driven from the host with --control and 'gvmm
gpio') or host lines (chip0:4-7, held until gvmm gpio-backend exits). The
device is the one 'gvmm run --gpio' serves in-process; only the transport
differs (vhost-user instead of virtio-mmio).

One --gpio per back end: QEMU attaches one vhost-user-gpio-device to each
socket, so run one gvmm gpio-backend for each controller. When QEMU goes
away the device is reset (the guest's lines released) and the next QEMU
to connect is served; a simulated bank keeps its pulls and what the host
drives. SIGINT or SIGTERM ends gvmm gpio-backend (exit status 0),
releasing host lines.

Example, with QEMU 7.2 (Debian 12's) and a microvm guest (without KVM, use
-accel tcg and drop -cpu host):

  gvmm gpio-backend --socket /tmp/gpio.sock --gpio sim:8 --control /tmp/gvmm.sock &
  qemu-system-x86_64 -M microvm,acpi=off -accel kvm -cpu host -m 256 -nographic \
      -object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
      -chardev socket,id=gpio0,path=/tmp/gpio.sock \
      -device vhost-user-gpio-device,chardev=gpio0 \
      -kernel bzImage -initrd initramfs.cpio.gz -append 'console=ttyS0'
  gvmm gpio --control /tmp/gvmm.sock set 2 1      (the guest's gpioget 0 2 reads 1)

  * Guest RAM must be shared with the back end: a memory backend with
    share=on (memfd, or memory-backend-file on /dev/shm or hugetlbfs) as
    large as -m, given to the machine (-numa node,memdev=mem, or
    -M microvm,acpi=off,memory-backend=mem).
  * The guest finds the device on virtio-mmio: with -M microvm,acpi=off
    QEMU appends the transport to the kernel command line itself
    (auto-kernel-cmdline, on by default): the first -device goes to the
    last of microvm's 8 transports, "virtio_mmio.device=512@0xfeb00e00:12"
    (0xfeb00000 + 512*7, IO-APIC pin 5+7), the next one 0xfeb00c00:11. Do
    not add it to -append too; with auto-kernel-cmdline=off, add exactly
    that. With ACPI on (microvm's default) the guest finds the transports
    in the ACPI tables instead, and needs CONFIG_ACPI.
  * The guest kernel needs CONFIG_VIRTIO_MMIO, CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES
    and CONFIG_GPIO_VIRTIO (the project's guest image has them).
  * On q35 or pc, use -device vhost-user-gpio-pci,chardev=gpio0 instead,
    with guest RAM shared the same way.
  * QEMU 7.2 (and 8.1: rust-vmm/vhost-device issue 613) does not pass
    VIRTIO_GPIO_F_IRQ on to the guest, whatever the back end offers: the
    guest's lines then have no interrupts (gpiomon fails with "No such
    device"; --key consumers cannot work), while directions and values
    do. The back end serves interrupts to any front end that offers them.

Flags:
`

// backendFlags are the flags of gvmm gpio-backend.
type backendFlags struct {
	socket, control, name, logFile string
	verbose                        bool
	gpios                          []spec.GPIO
}

// parseBackend reads gvmm gpio-backend's flags; -h and --help print the
// usage to stdout and return flag.ErrHelp.
func parseBackend(args []string, stdout io.Writer) (*backendFlags, error) {
	f := &backendFlags{}
	fs := flag.NewFlagSet("gvmm gpio-backend", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by the caller
	fs.Usage = func() {}
	fs.StringVar(&f.socket, "socket", "", "listen for QEMU's vhost-user-gpio-device on the Unix socket `path` (required)")
	fs.Func("gpio", "the controller's `lines` (exactly one --gpio): sim:N[,pull-up=L][,pull-down=L][,names=a,b,...]\n"+
		"or CHIP:LINES[,names=a,b,...], as for 'gvmm run --gpio' (see 'gvmm run --help')", func(s string) error {
		g, err := spec.ParseGPIO(s)
		f.gpios = append(f.gpios, g)
		return err
	})
	fs.StringVar(&f.control, "control", "", "serve the simulated bank on a Unix socket at `path` (see 'gvmm gpio --help')")
	fs.Func("name", "a `name`, 1 to 26 letters, digits or . _ -: host lines held show the consumer\n"+
		"\"gvmm-NAME\" instead of \"gvmm\"", func(s string) error {
		f.name = s
		return spec.CheckVMName(s)
	})
	fs.StringVar(&f.logFile, "log", "", "write diagnostics (messages refused, what the guest's driver did that the\n"+
		"device refused) to `file` instead of standard error")
	fs.BoolVar(&f.verbose, "verbose", false, "also log connections and device starts and stops")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, backendUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0))
	case f.socket == "":
		return nil, errors.New("--socket PATH is required")
	case len(f.gpios) == 0:
		return nil, errors.New("--gpio LINES is required")
	case len(f.gpios) > 1:
		return nil, fmt.Errorf("%d --gpio flags: a back end serves one controller (QEMU attaches one vhost-user-gpio-device per socket); run one gvmm gpio-backend for each", len(f.gpios))
	case f.control != "" && filepath.Clean(f.control) == filepath.Clean(f.socket):
		return nil, fmt.Errorf("--control and --socket are both %s", f.socket)
	}
	return f, nil
}

// backendCmd runs gvmm gpio-backend and returns the exit status.
func backendCmd(args []string, stdout, stderr io.Writer) int {
	f, err := parseBackend(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "gvmm gpio-backend: %v (see 'gvmm gpio-backend --help')\n", err)
		return 2
	}
	logTo, closeLog, err := openLog(f.logFile, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "gvmm gpio-backend: --log: %v\n", err)
		return 1
	}
	defer closeLog()
	logger := ratelog.New(logTo, "gvmm gpio-backend: ")
	defer logger.Close()

	// Signals are caught from here on: a SIGTERM ends the back end
	// through the deferred releases below.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	g := f.gpios[0]
	sim, dev, closeGPIO, err := g.Open(spec.ConsumerName(f.name))
	if err != nil {
		fmt.Fprintf(stderr, "gvmm gpio-backend: --gpio %q: %v\n", g.Value(), err)
		if g.Host() == nil {
			return 2
		}
		return 1
	}
	defer closeGPIO()
	l, err := listenBackend(f.socket)
	if err != nil {
		fmt.Fprintf(stderr, "gvmm gpio-backend: --socket: %v\n", err)
		return 1
	}
	defer os.Remove(f.socket)
	defer l.Close()
	if f.control != "" {
		lc, err := listenControl(f.control)
		if err != nil {
			fmt.Fprintf(stderr, "gvmm gpio-backend: --control: %v\n", err)
			return 1
		}
		defer os.Remove(f.control)
		defer lc.Close()
		go func() {
			srv := &control.Server{Banks: []*gpio.Sim{sim}, Devices: []*gpio.Device{dev}}
			if err := srv.Serve(lc); err != nil {
				logger.Log("control socket: " + err.Error() + "; no longer served")
			}
		}()
	}

	b := &vhostuser.Backend{Device: dev, Log: logger.Log, Verbose: f.verbose}
	stopped, done := make(chan os.Signal, 1), make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sigs:
			stopped <- s
			_ = b.Close()
		case <-done:
		}
	}()
	fmt.Fprintf(stderr, "gvmm gpio-backend: serving --gpio %s (%d lines) on %s for QEMU's vhost-user-gpio-device\n", g.Value(), g.Lines(), absPath(f.socket))
	if f.control != "" {
		fmt.Fprintln(stderr, controlHint(f.control))
	}
	if err := b.Serve(l); err != nil {
		fmt.Fprintf(stderr, "gvmm gpio-backend: %v\n", err)
		return 1
	}
	select {
	case s := <-stopped:
		fmt.Fprintf(stderr, "gvmm gpio-backend: stopped by %v\n", s)
	default:
	}
	return 0
}

// listenBackend listens on the vhost-user socket path. A socket file
// left by a back end that was killed is replaced; one something answers
// on is an error.
func listenBackend(path string) (net.Listener, error) {
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s is in use (something answers on it); give --socket another path", path)
	}
	return listenControl(path)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
