package vmm

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// struct kvm_irqfd (include/uapi/linux/kvm.h).
type kvmIRQFD struct {
	FD         uint32
	GSI        uint32
	Flags      uint32
	ResampleFD uint32
	_          [16]uint8
}

// struct kvm_ioeventfd.
type kvmIOEventFD struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]uint8
}

const (
	kvmIRQFDNr         = 0x76
	kvmIOEventFDNr     = 0x79
	ioeventfdDatamatch = 1 << 0
	sizeofKVMIRQFD     = 32
	sizeofKVMIOEventFD = 64
)

// newEventFD returns a non-blocking eventfd, so that reads park on Go's
// poller instead of a thread.
func newEventFD(name string) (*os.File, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// IRQFD returns an eventfd that injects an edge on interrupt line gsi
// (an IO-APIC pin) each time it is written, without a trip through a vCPU.
func (vm *VM) IRQFD(gsi uint32) (*os.File, error) {
	f, err := newEventFD(fmt.Sprintf("irqfd-%d", gsi))
	if err != nil {
		return nil, err
	}
	arg := kvmIRQFD{FD: uint32(f.Fd()), GSI: gsi}
	if _, err := kvm.Ioctl(vm.vmFd.Fd(), kvm.IIOW(kvmIRQFDNr, sizeofKVMIRQFD), uintptr(unsafe.Pointer(&arg))); err != nil {
		f.Close()
		return nil, fmt.Errorf("KVM_IRQFD gsi %d: %w", gsi, err)
	}
	return f, nil
}

// IOEventFD returns an eventfd that KVM signals when the guest writes
// the 4-byte value datamatch to MMIO address addr; the write then never
// leaves the kernel.
func (vm *VM) IOEventFD(addr uint64, datamatch uint32) (*os.File, error) {
	f, err := newEventFD(fmt.Sprintf("ioeventfd-%#x-%d", addr, datamatch))
	if err != nil {
		return nil, err
	}
	arg := kvmIOEventFD{Datamatch: uint64(datamatch), Addr: addr, Len: 4, FD: int32(f.Fd()), Flags: ioeventfdDatamatch}
	if _, err := kvm.Ioctl(vm.vmFd.Fd(), kvm.IIOW(kvmIOEventFDNr, sizeofKVMIOEventFD), uintptr(unsafe.Pointer(&arg))); err != nil {
		f.Close()
		return nil, fmt.Errorf("KVM_IOEVENTFD %#x: %w", addr, err)
	}
	return f, nil
}
