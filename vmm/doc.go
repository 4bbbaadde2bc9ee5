// Package vmm owns a KVM virtual machine: guest RAM and its memory slots,
// the in-kernel interrupt controllers and PIT, vCPUs and their run loops,
// and the bus that hands port and MMIO exits to device models.
//
// The life of a VM: New opens /dev/kvm (refusing kvm_pvm, which cannot run
// an unmodified Linux), creates the VM, its RAM, irqchip, devices and
// vCPUs, and loads the kernel through package boot. Run starts one goroutine
// per vCPU, each locked to its OS thread because KVM ties a vCPU to the
// thread that runs it, and returns when the guest resets, shuts down,
// panics, or a vCPU fails. The guest's reset (the i8042 reset line or a
// triple fault) is how a Linux guest without a power-off device stops.
package vmm
