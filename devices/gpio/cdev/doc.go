// Package cdev passes host GPIO lines through to a guest: a small
// implementation of the Linux GPIO character device uAPI v2
// (include/uapi/linux/gpio.h, Linux 6.1; the kernel side is
// drivers/gpio/gpiolib-cdev.c) and a gpio.Backend over some lines of a
// host chip.
//
//   - uapi.go: the uAPI's structures, laid out like the C ones, its flags,
//     ids and ioctl numbers, and the ioctl call.
//   - chip.go, request.go: Chip (chip and line information, line info
//     watches) and Request (lines held through one line request: values,
//     reconfiguration, edge events).
//   - spec.go: Spec and ParseSpec, the CHIP:LINES[,names=...] syntax.
//   - backend.go: Backend, the gpio.Backend.
//
// Files are opened non-blocking so that the Go runtime poller waits for
// their events: Close interrupts a blocked read, and SetReadDeadline bounds
// it. The ioctl encoding is the generic one (x86, arm64).
//
// # Tests
//
// uapi_test.go checks the layout and ioctl numbers against the C header;
// the other unit tests need no GPIO hardware. gpiosim_test.go drives the
// kernel's gpio-sim (Documentation/admin-guide/gpio/gpio-sim.rst) through
// configfs; it needs root and CONFIG_GPIO_SIM, so it runs in the guest and
// skips unless GVMM_GPIO_SIM=1:
//
//	CGO_ENABLED=0 go test -c -o cdev.test ./devices/gpio/cdev
//	# in the guest, as root:
//	GVMM_GPIO_SIM=1 ./cdev.test -test.v
package cdev
