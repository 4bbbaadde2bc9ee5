package vmm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/gvmm/gvmm/boot"
	"github.com/gvmm/gvmm/devices/serial"
	"github.com/gvmm/gvmm/fdt"
	"github.com/gvmm/gvmm/virtio"
	"golang.org/x/sys/unix"
)

// Guest physical layout: RAM from 0 up to at most lowMemLimit, the rest of
// RAM from 4 GiB; the hole between holds the IO-APIC, the local APIC and
// device MMIO windows.
const (
	lowMemLimit = 3 << 30
	highMemBase = 4 << 30
	tssAddr     = 0xfffbd000
	identityMap = 0xfffbc000
	// MinMemory is the least RAM New accepts.
	MinMemory = 32 << 20
	// MaxCPUs is the most vCPUs New accepts: the device tree gives vCPU n
	// the local APIC ID n, and an xAPIC ID is 8 bits with 0xff meaning
	// broadcast. The host's KVM may allow fewer (KVM_CAP_MAX_VCPUS), and
	// the project's guest kernel brings up at most 64 (CONFIG_NR_CPUS).
	MaxCPUs = 255
	// capMaxVCPUs is KVM_CAP_MAX_VCPUS, which gokvm does not name.
	capMaxVCPUs kvm.Capability = 66
)

// Config describes a VM.
type Config struct {
	Kernel    []byte // bzImage
	Initrd    []byte // initramfs, optional
	Cmdline   string
	MemSize   uint64           // bytes of RAM
	CPUs      int              // vCPUs, 1 to MaxCPUs
	Console   io.Writer        // the UART's output
	SetupData []boot.SetupData // extra setup_data entries
	Virtio    []VirtioDevice   // on virtio-mmio, in the device tree
	LEDs      []fdt.LED        // gpio-leds consumers in the device tree
	Keys      []fdt.Key        // gpio-keys consumers in the device tree
	// Overlays are applied to the device tree, in order, before boot.
	Overlays []Overlay
	// Log, if set, receives the VMM's diagnostics, one line each without
	// a newline: what a virtio transport or device refused or could not
	// use, and how each device was wired. It may be called from any
	// goroutine, also at once; rate-limit it (internal/ratelog).
	Log func(line string)
	// Verbose also logs the wiring that went as planned.
	Verbose bool
	// Symbolize, if set, names a guest kernel address ("func+0x1a"), or
	// returns "" for one it cannot name; DumpState and the triple-fault
	// error use it for RIP and the words on the stack. cmd/gvmm builds it
	// from the kernel's System.map (internal/ksyms).
	Symbolize func(addr uint64) string
}

// ExitReason says how the guest ended.
type ExitReason int

// Ways a guest ends.
const (
	ExitReset ExitReason = iota // reset, reboot or power-off: a normal end
	ExitPanic                   // the guest kernel panicked
)

// Exit describes how a run ended.
type Exit struct {
	Reason ExitReason
	// Status is the exit status the image's init reported for the command
	// it ran (gvmm.run=), if HasStatus.
	Status    int
	HasStatus bool
	// Panic is the kernel's panic line, for ExitPanic.
	Panic string
}

// VM is a KVM virtual machine with its devices.
type VM struct {
	kvmFd, vmFd *os.File
	mem         Memory
	vcpus       []*vcpu
	pio, mmio   Bus
	transports  []*virtio.MMIO
	files       []*os.File // irqfds and ioeventfds
	uart        *serial.UART
	console     *consoleWatch
	log         func(string)
	verbose     bool
	// tripleReboot: the command line asks Linux to reboot by triple
	// fault (reboot=t), so one is the guest's reset, not a crash.
	tripleReboot bool
	symbolize    func(uint64) string

	stopOnce sync.Once
	done     chan struct{}
	err      error // first vCPU error, set before done is closed
}

// New creates a VM from c and loads the guest into it.
func New(c Config) (_ *VM, err error) {
	if c.CPUs < 1 || c.CPUs > MaxCPUs {
		return nil, fmt.Errorf("%d vCPUs: want 1 to %d", c.CPUs, MaxCPUs)
	}
	if c.MemSize < MinMemory {
		return nil, fmt.Errorf("%d MiB of RAM is too little: at least %d MiB", c.MemSize>>20, MinMemory>>20)
	}
	// The device tree first: a mistake in it is the caller's, found
	// before any KVM work.
	dtb, err := DeviceTree(c)
	if err != nil {
		return nil, err
	}
	if err := CheckHost(); err != nil {
		return nil, err
	}
	vm := &VM{done: make(chan struct{})}
	defer func() {
		if err != nil {
			vm.Close()
		}
	}()
	if vm.kvmFd, err = os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		return nil, err
	}
	kfd := vm.kvmFd.Fd()
	if v, err := kvm.GetAPIVersion(kfd); err != nil || v != 12 {
		return nil, fmt.Errorf("KVM_GET_API_VERSION = %d, %v: want 12", v, err)
	}
	for _, cp := range []kvm.Capability{kvm.CapIRQChip, kvm.CapUserMemory, kvm.CapSetTSSAddr} {
		if ok, _ := kvm.CheckExtension(kfd, cp); ok == 0 {
			return nil, fmt.Errorf("%w: KVM lacks %v", ErrNoKVM, cp)
		}
	}
	if max := maxVCPUs(kfd); c.CPUs > max {
		return nil, fmt.Errorf("%d vCPUs: this host's KVM allows at most %d a VM (KVM_CAP_MAX_VCPUS)", c.CPUs, max)
	}
	fd, err := retryEINTR(func() (uintptr, error) { return kvm.CreateVM(kfd) })
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	vm.vmFd = os.NewFile(fd, "kvm-vm")
	if err := kvm.SetTSSAddr(fd, tssAddr); err != nil {
		return nil, fmt.Errorf("KVM_SET_TSS_ADDR: %w", err)
	}
	if err := kvm.SetIdentityMapAddr(fd, identityMap); err != nil {
		return nil, fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR: %w", err)
	}
	if err := kvm.CreateIRQChip(fd); err != nil {
		return nil, fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	if err := kvm.CreatePIT2(fd); err != nil {
		return nil, fmt.Errorf("KVM_CREATE_PIT2: %w", err)
	}

	// RAM.
	low := min(c.MemSize, lowMemLimit)
	var ram []boot.Region
	for slot, r := range []boot.Region{{Addr: 0, Size: low}, {Addr: highMemBase, Size: c.MemSize - low}} {
		if r.Size == 0 {
			continue
		}
		host, err := addRAM(fd, uint32(slot), r.Addr, r.Size)
		if err != nil {
			return nil, err
		}
		vm.mem.Regions = append(vm.mem.Regions, Region{GPA: r.Addr, Host: host})
		ram = append(ram, r)
	}

	// Devices.
	vm.console = &consoleWatch{w: c.Console, onPanic: func() { vm.stop(nil) }}
	vm.uart = serial.New(vm.console, func(level bool) { vm.setIRQ(serial.COM1IRQ, level) })
	vm.pio.Add(serial.COM1Base, serial.NumPorts, uartPorts(vm.uart))
	// i8042: the status port reads as "nothing to do"; 0xfe on the command
	// port pulses the reset line, which is how Linux reboots here.
	vm.pio.Add(0x60, 5, portFunc{write: func(off uint64, d []byte) {
		if off == 4 && d[0] == 0xfe {
			vm.stop(nil)
		}
	}})
	// CMOS/RTC: reads as zero so that "update in progress" is never seen.
	vm.pio.Add(0x70, 2, portFunc{})
	// POST diagnostic port: written during boot, nothing to do.
	vm.pio.Add(0x80, 1, portFunc{})

	vm.log, vm.verbose = c.Log, c.Verbose
	vm.tripleReboot = rebootsByTripleFault(c.Cmdline)
	vm.symbolize = c.Symbolize
	if err := vm.attachVirtio(c.Virtio); err != nil {
		return nil, err
	}

	// Kernel, with the device tree.
	st, err := boot.Load(vm.mem.Regions[0].Host, boot.Config{
		Kernel: c.Kernel, Initrd: c.Initrd, Cmdline: c.Cmdline, RAM: ram,
		SetupData: append([]boot.SetupData{{Type: boot.SetupDTB, Data: dtb}}, c.SetupData...),
	})
	if err != nil {
		return nil, err
	}

	// vCPUs.
	var supported kvm.CPUID
	supported.Nent = 256
	supported.Entries = make([]kvm.CPUIDEntry2, supported.Nent)
	if err := kvm.GetSupportedCPUID(kfd, &supported); err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	deadline, _ := kvm.CheckExtension(kfd, kvm.CapTSCDeadlineTimer)
	runSize, err := kvm.GetVCPUMMmapSize(kfd)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	for id := 0; id < c.CPUs; id++ {
		entries := AdjustCPUID(supported.Entries[:supported.Nent], id, c.CPUs, deadline != 0)
		v, err := newVCPU(vm, id, int(runSize), entries)
		if err != nil {
			return nil, fmt.Errorf("vCPU %d: %w", id, err)
		}
		vm.vcpus = append(vm.vcpus, v)
	}
	if err := vm.vcpus[0].setBootState(st); err != nil {
		return nil, fmt.Errorf("vCPU 0: %w", err)
	}
	return vm, nil
}

// uartPorts is u as the port bus sees it: one byte at offset off of its
// eight ports. It is its own function so that the bus tests put the UART
// on a Bus exactly as New does.
func uartPorts(u *serial.UART) portFunc {
	return portFunc{
		read:  func(off uint64, d []byte) { d[0] = u.Read(off) },
		write: func(off uint64, d []byte) { u.Write(off, d[0]) },
	}
}

// maxVCPUs is how many vCPUs the host's KVM allows a VM: KVM_CAP_MAX_VCPUS,
// else KVM_CAP_NR_VCPUS, else 4, as Documentation/virt/kvm/api.rst says
// for KVM_CREATE_VCPU.
func maxVCPUs(kfd uintptr) int {
	for _, c := range []kvm.Capability{capMaxVCPUs, kvm.CapNRVCPUS} {
		if n, err := kvm.CheckExtension(kfd, c); err == nil && n > 0 {
			return int(n)
		}
	}
	return 4
}

// rebootsByTripleFault reports whether cmdline has Linux reboot by triple
// fault: a reboot= option (a comma-separated list, read by
// arch/x86/kernel/reboot.c's reboot_setup) with an entry starting with t.
func rebootsByTripleFault(cmdline string) bool {
	triple := false
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "reboot="); ok {
			for _, o := range strings.Split(v, ",") {
				switch {
				case strings.HasPrefix(o, "t"):
					triple = true
				case strings.HasPrefix(o, "a"), strings.HasPrefix(o, "k"), strings.HasPrefix(o, "b"),
					strings.HasPrefix(o, "e"), strings.HasPrefix(o, "p"):
					triple = false // a later reboot= method wins
				}
			}
		}
	}
	return triple
}

// logf writes a diagnostic line to Config.Log, if set.
func (vm *VM) logf(format string, args ...any) {
	if vm.log != nil {
		vm.log(fmt.Sprintf(format, args...))
	}
}

// Memory returns guest RAM.
func (vm *VM) Memory() *Memory { return &vm.mem }

// Input feeds bytes to the guest's console.
func (vm *VM) Input(p []byte) { vm.uart.Receive(p) }

// Run runs the guest until it ends. A guest that resets or panics is not
// an error; a vCPU that fails (an exit KVM could not handle) is.
func (vm *VM) Run() (Exit, error) {
	if vm.verbose {
		// make bench splits the VMM's set-up from the guest's boot here.
		vm.logf("set-up done: %d vCPU(s) enter the guest (first KVM_RUN)", len(vm.vcpus))
	}
	spareP(len(vm.vcpus))
	for _, v := range vm.vcpus {
		go func(v *vcpu) { vm.stop(v.run()) }(v)
	}
	<-vm.done
	if vm.err != nil {
		return Exit{}, vm.err
	}
	var e Exit
	e.Panic, e.Status, e.HasStatus = vm.console.result()
	if e.Panic != "" {
		e.Reason = ExitPanic
	}
	return e, nil
}

// DumpState returns three lines per vCPU saying where it is, for
// diagnosing a guest that hangs: RIP, RSP and the control registers; the
// general registers and RFLAGS; the 16 words at RSP. It interrupts each
// running vCPU briefly.
func (vm *VM) DumpState() []string {
	var out []string
	for _, v := range vm.vcpus {
		ch := make(chan string, 1)
		v.dump.Store(&ch)
		v.kick()
		select {
		case s := <-ch:
			out = append(out, strings.Split(s, "\n")...)
		case <-time.After(2 * time.Second):
			out = append(out, fmt.Sprintf("vCPU %d: did not answer", v.id))
		}
	}
	return out
}

// Stop ends Run as if the guest had reset.
func (vm *VM) Stop() { vm.stop(nil) }

func (vm *VM) stop(err error) {
	vm.stopOnce.Do(func() {
		vm.err = err
		close(vm.done)
	})
}

func (vm *VM) stopped() bool {
	select {
	case <-vm.done:
		return true
	default:
		return false
	}
}

func (vm *VM) setIRQ(irq uint32, level bool) {
	l := uint32(0)
	if level {
		l = 1
	}
	if err := kvm.IRQLineStatus(vm.vmFd.Fd(), irq, l); err != nil {
		vm.stop(fmt.Errorf("KVM_IRQ_LINE %d: %w", irq, err))
	}
}

// Close releases the VM's file descriptors and memory. Call it only after
// Run has returned or when Run was never called.
func (vm *VM) Close() {
	for _, v := range vm.vcpus {
		v.close()
	}
	// Devices release what they hold (a GPIO backend its lines).
	for _, t := range vm.transports {
		t.Reset()
	}
	for _, f := range vm.files {
		_ = f.Close()
	}
	for _, r := range vm.mem.Regions {
		_ = unix.Munmap(r.Host)
	}
	vm.mem.Regions = nil
	for _, f := range []*os.File{vm.vmFd, vm.kvmFd} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// retryEINTR calls f until it is not interrupted by a signal: Go's runtime
// signals its threads (SIGURG), and slow ioctls such as KVM_CREATE_VM
// return EINTR then.
func retryEINTR(f func() (uintptr, error)) (uintptr, error) {
	for {
		v, err := f()
		if !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
}

// spareP makes GOMAXPROCS at least vcpus+1. A vCPU goroutine spends most
// of its time in KVM_RUN, a system call, and keeps its P (the Go
// scheduler's processor) meanwhile until sysmon takes it back, 20 µs to
// 10 ms later. With no P to spare (one vCPU on a one-CPU host), the
// device goroutine that a guest's ioeventfd or a backend event wakes
// waited for that: make bench measured a GPIO round trip of 2.45 ms
// in-process against 1.22 ms through QEMU and gvmm gpio-backend, whose
// process has no goroutine in a long system call. With a P to spare, an
// idle thread waits in the network poller and runs the goroutine at once
// (TestGPIORoundTrip's median: 3.0 ms with GOMAXPROCS=1, 1.0 ms with 2,
// in the nested test host). It returns the GOMAXPROCS it leaves.
func spareP(vcpus int) int {
	if n := vcpus + 1; runtime.GOMAXPROCS(0) < n {
		runtime.GOMAXPROCS(n)
	}
	return runtime.GOMAXPROCS(0)
}
