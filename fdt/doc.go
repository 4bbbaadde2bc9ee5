// Package fdt builds the flattened device tree (DTB) that tells an x86_64
// Linux guest about gvmm's devices, chiefly virtio-gpio controllers and
// their consumers. The boot package passes it to the guest as a SETUP_DTB
// setup_data entry.
//
// Writer encodes any tree (format version 17, as dtc writes it); Machine
// describes a VM and Machine.DTB turns it into a tree, deterministically,
// after validating it.
//
// Parse reads a blob (version 16 or 17) into a Tree, which Tree.DTB
// writes back through Writer; Parse never panics, whatever the input.
// Apply merges a compiled overlay (`dtc -@ -I dts -O dtb x.dtso`, for
// gvmm's --dt-overlay) into a tree as libfdt's fdt_overlay_apply does
// (fdtoverlay is its command): the overlay's phandles are renumbered past
// the base's, its references to base labels (__fixups__) resolved
// through the base's __symbols__ node, its fragments merged into their
// targets and its own labels added to __symbols__, so a later overlay
// can use them. ApplyOverlays does all of it on blobs. Where Apply
// differs from libfdt (mostly where libfdt fails or silently does
// nothing) its documentation says so. Memory reservations
// (/memreserve/) of a base are kept; an overlay with any is refused.
//
// # Why each node is there on x86
//
// arch/x86/kernel/devicetree.c (6.1) unflattens the tree after ACPI, then
// reads only the interrupt controllers and CPUs from it; everything else is
// reached by the generic of_platform_default_populate(), which makes a
// platform device of every child of / that has a compatible.
//
//   - / has #address-cells = <1> and #size-cells = <1>: every address is
//     below 4 GiB. No /memory (RAM comes from the e820 map in boot_params;
//     early_init_dt_add_memory_arch is a BUG() on x86) and no /chosen (the
//     command line comes from boot_params; x86 never scans /chosen).
//   - /cpus/cpu@N, reg = APIC ID: dtb_cpu_setup() registers one CPU per
//     node (the APIC version is read from the local APIC, not the tree).
//   - intel,ce4100-lapic: dtb_lapic_setup() takes the local APIC address
//     from it and sets smp_found_config, as an MP table would.
//   - intel,ce4100-ioapic: dtb_ioapic_setup() registers each such node
//     with mp_register_ioapic() and an IRQ domain whose specifier is
//     <pin type>. The domain has no xlate, so the pin is the hardware IRQ
//     (and the GSI: the first IO-APIC starts at GSI 0). The type indexes
//     of_ioapic_type[]: 0 edge falling, 1 level high, 2 level low, 3 edge
//     rising, the reverse of what intel,ce4100-ioapic.txt says; the code
//     is what counts. The IO-APIC is registered with ID 1 although KVM's
//     reports 0, which does not matter on x86_64.
//   - virtio@base, compatible "virtio,mmio": populated as a platform
//     device, bound by virtio_mmio, which maps its interrupts through
//     interrupt-parent (the IO-APIC). Pins 16-23 keep off the 8259's 0-15;
//     edge rising matches a KVM irqfd without a resample fd.
//   - gpio under a virtio node, compatible "virtio,device29" (41, the
//     virtio GPIO device ID, in hex): not a platform device. When the
//     transport registers the virtio device, virtio_device_of_init() in
//     drivers/virtio/virtio.c takes the transport's only available child
//     and, if it is compatible with "virtio,device<id>", makes it the
//     virtio device's of_node. gpio-virtio's chip has that device as its
//     parent, so gpiolib gives the chip the node: a phandle to it in a
//     consumer's gpios property then finds the chip (of_gpio_simple_xlate,
//     two cells <line flags>). gpio-line-names, if present, overrides
//     the names the device reports, except where a name is "".
//   - leds (gpio-leds) and keys (gpio-keys): platform devices whose
//     drivers defer until the chip exists. gpio-keys asks gpiod_to_irq()
//     for each key's interrupt, which works only when the device offers
//     VIRTIO_GPIO_F_IRQ; gpio-leds sets its lines during probe and waits
//     for the device's answer, so the device must be serving by then.
//     An interrupt-only key has interrupt-parent (the gpio node) and
//     interrupts = <line IRQ_TYPE_*> instead of gpios:
//     irq_of_parse_and_map() maps it through gpiolib's irq domain
//     (irq_domain_xlate_twocell), which sets the trigger, and gpio-keys
//     requests it without trigger flags. Such a key does not defer by
//     itself (no GPIO lookup); fw_devlink's link from the interrupts
//     property to the gpio node keeps gpio-keys waiting for the chip.
//   - syscon@base and poweroff (syscon-poweroff): the power-off driver
//     looks up the syscon's regmap by the regmap phandle and installs
//     pm_power_off, which does regmap_update_bits(offset, ~0, value): it
//     reads the register and writes value only if the read differs.
//   - __symbols__: label = path, for the IO-APIC, each GPIO controller and
//     the syscon. dtc does not restore labels when decompiling, and a
//     guest can read /proc/device-tree/__symbols__/gpio0 to find a bank.
//     Overlays refer to these nodes by these labels (&gpio0, &ioapic,
//     &poweroff_syscon); each has a phandle already.
package fdt
