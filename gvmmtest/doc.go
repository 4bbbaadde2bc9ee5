// Package gvmmtest boots a Linux guest with simulated GPIO banks inside a
// Go test, in the test's own process, the way net/http/httptest starts a
// server: the test drives and watches the lines as Go values and runs
// commands in the guest.
//
//	func TestButton(t *testing.T) {
//		vm := gvmmtest.Start(t, gvmmtest.Sim(8))
//		vm.MustRun("gpioset gpiochip0 2=1")
//		vm.Bank(0).WaitFor(t.Context(), 2, gvmmtest.Output(1))
//		vm.Bank(0).Set(3, 1)
//		if out := vm.MustRun("gpioget gpiochip0 3"); out != "1\n" {
//			t.Errorf("guest read %q, want 1", out)
//		}
//	}
//
// Start boots the project's guest image (images/build-image.sh, built on
// first use) under KVM, with each Sim as a virtio-gpio controller
// (gpiochip0, gpiochip1, ... in the guest) and a virtio console (device
// ID 3, /dev/hvc0 in the guest) on which the image's gvmm-agent runs
// commands: any number, at once if need be, each with its own output and
// exit status, binary-safe and without a size limit on the way (see
// internal/agentwire). VM.Run runs a command to its end; VM.Start starts
// one in the background, whose output a test can wait for line by line.
// VM.Bank gives a simulated bank: Set and Release drive a line from the
// host's side or let go of it, Line reads a
// line's state now, WaitFor waits for a line to pass through a state (in
// order, like an expect script, so a pulse that is already over counts),
// Changes returns the timestamped log of everything the guest and the
// host did to the lines.
//
// # Where tests can run
//
// On a host with hardware KVM, go test runs them. Elsewhere (no /dev/kvm,
// or the kvm_pvm module, which cannot run Linux) run them through the
// project's nested test host, which boots once per test binary:
//
//	go test -exec /path/to/gvmm/images/l1/l1-exec ./...
//
// Without usable KVM and without that wrapper, Start skips the test with a
// line saying so. Timeouts are generous (DefaultBootTimeout,
// DefaultCmdTimeout, the latter for every wait whose context has no
// deadline) because a guest in the nested host runs tens of times slower;
// every timeout names the step it hit and shows the tail of the guest's
// console or the line's changes.
package gvmmtest
