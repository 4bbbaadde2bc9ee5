package vmm

import (
	"fmt"
	"unsafe"

	"github.com/bobuhiro11/gokvm/kvm"
	"golang.org/x/sys/unix"
)

// mapRun maps a vCPU's struct kvm_run.
func mapRun(vcpuFd uintptr, size int) (*kvm.RunData, []byte, error) {
	b, err := unix.Mmap(int(vcpuFd), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap kvm_run: %w", err)
	}
	return (*kvm.RunData)(unsafe.Pointer(&b[0])), b, nil
}

// addRAM maps size bytes of anonymous memory as guest RAM at gpa in slot.
func addRAM(vmFd uintptr, slot uint32, gpa, size uint64) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d MiB of guest RAM: %w", size>>20, err)
	}
	err = kvm.SetUserMemoryRegion(vmFd, &kvm.UserspaceMemoryRegion{
		Slot: slot, GuestPhysAddr: gpa, MemorySize: size,
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&b[0]))),
	})
	if err != nil {
		_ = unix.Munmap(b)
		return nil, fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	return b, nil
}
