// Command gpio-rtt runs in the guest and measures the round trip of one
// GPIO write: it requests a line as an output through the GPIO character
// device (uAPI v2) and times n GPIO_V2_LINE_SET_VALUES_IOCTL calls, each
// toggling the line, then prints the median and spread. Through gvmm each
// ioctl is one virtio-gpio SET_VALUE request: the driver queues it, kicks
// the device and sleeps until the device's answer interrupts it.
//
//	gpio-rtt [-chip /dev/gpiochip0] [-line 0] [-n 2000]
//
// The tests put it into the guest image (see cmd/gvmm's guestInitrd);
// `make guest-bins` builds it as a static binary.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/gvmm/gvmm/devices/gpio/cdev"
)

func main() {
	chip := flag.String("chip", "/dev/gpiochip0", "GPIO chip `path`")
	line := flag.Int("line", 0, "line `offset` to toggle")
	n := flag.Int("n", 2000, "number of ioctls to time")
	flag.Parse()
	if err := run(*chip, *line, *n); err != nil {
		fmt.Fprintf(os.Stderr, "gpio-rtt: %v\n", err)
		os.Exit(1)
	}
}

func run(path string, line, n int) error {
	if n < 1 {
		return fmt.Errorf("-n %d: want at least 1", n)
	}
	c, err := cdev.OpenChip(path)
	if err != nil {
		return err
	}
	defer c.Close()
	req, err := c.RequestLines("gpio-rtt", []int{line}, []cdev.LineConfig{{Flags: cdev.LineFlagOutput}})
	if err != nil {
		return err
	}
	defer req.Close()
	rtt := make([]time.Duration, n)
	for i := range rtt {
		v := uint64(1 - i%2) // 1, 0, 1, ...: every write changes the line
		t0 := time.Now()
		if err := req.SetValues(v, 1); err != nil {
			return fmt.Errorf("write %d: %w", i+1, err)
		}
		rtt[i] = time.Since(t0)
	}
	slices.Sort(rtt)
	q := func(p int) time.Duration { return rtt[(len(rtt)-1)*p/100] }
	fmt.Printf("gpio-rtt: %d writes on %s line %d: median %v, p10 %v, p90 %v, min %v, max %v\n",
		n, path, line, q(50), q(10), q(90), rtt[0], rtt[len(rtt)-1])
	return nil
}
