package main

import (
	"strings"
	"testing"
)

// TestVerboseWiring: --verbose says how each virtio device is wired to
// KVM, one line each on stderr, and the guest runs as without it.
func TestVerboseWiring(t *testing.T) {
	needKVM(t)
	r := gvmmRun(t, "boot with --verbose", "run", "--verbose", "--append", quietCmdline,
		"--gpio", "sim:2", "--gpio", "sim:1", "--cmd", "gpiodetect")
	if r.status != 0 || !strings.Contains(r.stdout, "gpiochip1") {
		t.Fatalf("exit status %d; console:\n%s\nstderr: %s", r.status, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"gvmm: virtio-mmio@0xd0000000 (gpio0): IO-APIC pin 16; notifications: ioeventfd for its 2 queues; interrupts: irqfd",
		"gvmm: virtio-mmio@0xd0001000 (gpio1): IO-APIC pin 17; notifications: ioeventfd for its 2 queues; interrupts: irqfd",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}
