// Package boot loads a Linux x86_64 kernel into guest memory following the
// x86 boot protocol (Documentation/x86/boot.rst in the kernel sources).
//
// The guest starts directly at the kernel's 64-bit entry point, so there is
// no firmware and no real-mode code: the VMM does what a boot loader would.
//
//   - The bzImage's protected-mode part is copied to 1 MiB; its 64-bit entry
//     point is 0x200 bytes further (the header's xloadflags must say
//     XLF_KERNEL_64).
//   - The "zero page" (struct boot_params) gets a copy of the image's setup
//     header, the command line pointer, the initrd, an e820 memory map and a
//     chain of setup_data entries (a device tree travels as SETUP_DTB).
//   - Identity-mapped page tables for the low 4 GiB, a GDT with flat 64-bit
//     segments, and the initial registers: RIP at the entry point, RSI at the
//     zero page, long mode enabled.
//
// Everything is written into a plain byte slice that stands for guest RAM
// from address 0, so the whole layout is unit-tested without KVM.
package boot
