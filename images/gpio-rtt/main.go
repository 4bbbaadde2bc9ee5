// Command gpio-rtt runs in the guest and times GPIO requests one at a
// time, then prints the median and spread. It has four modes (-op):
//
//   - set: toggle an output line with GPIO_V2_LINE_SET_VALUES_IOCTL. Through
//     gvmm each ioctl is one virtio-gpio SET_VALUE request: the driver
//     queues it, kicks the device and sleeps until the device's answer
//     interrupts it.
//   - get: read an input line with GPIO_V2_LINE_GET_VALUES_IOCTL (one
//     GET_VALUE request each).
//   - mmio: write 32 bits to the MMIO page at -addr through /dev/mem: with
//     no device there, the write is one exit to the VMM and back, the floor
//     under any virtio request (make bench maps such a page, vmm.NullMMIOBase).
//   - echo: wait for edges on input line -in and copy each edge's level to
//     output line -line, until -n edges; the host times the round trip (make
//     bench's "host edge → guest").
//
// It prints one line, e.g.
//
//	gpio-rtt: set 2000 on /dev/gpiochip0 line 0: median 1.2ms, p99 3.1ms, p10 1.1ms, p90 1.5ms, min 1ms, max 4ms
//
// The tests put it into the guest image (see cmd/gvmm's guestInitrd);
// `make guest-bins` builds it as a static binary.
//
//	gpio-rtt [-op set|get|mmio|echo] [-chip /dev/gpiochip0] [-line 0] [-in 1] [-addr 0xd00fe000] [-n 2000]
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
	op := flag.String("op", "set", "what to time: `set`, get, mmio or echo")
	chip := flag.String("chip", "/dev/gpiochip0", "GPIO chip `path`")
	line := flag.Int("line", 0, "line `offset` to set, get, or echo to")
	in := flag.Int("in", 1, "line `offset` whose edges echo copies")
	addr := flag.Uint64("addr", 0, "guest-physical `address` of the page mmio writes")
	n := flag.Int("n", 2000, "number of requests (echo: edges) to time")
	flag.Parse()
	if err := run(*op, *chip, *line, *in, *addr, *n); err != nil {
		fmt.Fprintf(os.Stderr, "gpio-rtt: %v\n", err)
		os.Exit(1)
	}
}

func run(op, path string, line, in int, addr uint64, n int) error {
	if n < 1 {
		return fmt.Errorf("-n %d: want at least 1", n)
	}
	if op == "mmio" {
		if addr == 0 {
			return fmt.Errorf("-op mmio needs -addr")
		}
		rtt, err := timeMMIO(addr, n)
		if err != nil {
			return err
		}
		report(fmt.Sprintf("mmio %d at %#x", n, addr), rtt)
		return nil
	}
	c, err := cdev.OpenChip(path)
	if err != nil {
		return err
	}
	defer c.Close()
	switch op {
	case "set", "get":
		flags := cdev.LineFlagOutput
		if op == "get" {
			flags = cdev.LineFlagInput
		}
		req, err := c.RequestLines("gpio-rtt", []int{line}, []cdev.LineConfig{{Flags: flags}})
		if err != nil {
			return err
		}
		defer req.Close()
		rtt := make([]time.Duration, n)
		for i := range rtt {
			t0 := time.Now()
			if op == "set" {
				err = req.SetValues(uint64(1-i%2), 1) // 1, 0, 1, ...: every write changes the line
			} else {
				_, err = req.Values(1)
			}
			rtt[i] = time.Since(t0)
			if err != nil {
				return fmt.Errorf("%s %d: %w", op, i+1, err)
			}
		}
		report(fmt.Sprintf("%s %d on %s line %d", op, n, path, line), rtt)
		return nil
	case "echo":
		return echo(c, line, in, n)
	}
	return fmt.Errorf("-op %q: want set, get, mmio or echo", op)
}

// echo copies the level of each edge on line in to line out, n times. It
// says "gpio-rtt: echo ready" once both lines are requested, for the host
// to start.
func echo(c *cdev.Chip, out, in, n int) error {
	req, err := c.RequestLines("gpio-rtt", []int{out, in}, []cdev.LineConfig{
		{Flags: cdev.LineFlagOutput},
		{Flags: cdev.LineFlagInput | cdev.LineFlagEdgeRising | cdev.LineFlagEdgeFalling},
	})
	if err != nil {
		return err
	}
	defer req.Close()
	fmt.Println("gpio-rtt: echo ready")
	buf := make([]cdev.LineEvent, 16)
	for done := 0; done < n; {
		k, err := req.ReadEvents(buf)
		if err != nil {
			return err
		}
		for _, e := range buf[:k] {
			v := uint64(0)
			if e.ID == cdev.EventRisingEdge {
				v = 1
			}
			if err := req.SetValues(v, 1); err != nil {
				return err
			}
		}
		done += k
	}
	fmt.Printf("gpio-rtt: echo %d edges\n", n)
	return nil
}

// report prints what, then the median and spread of rtt.
func report(what string, rtt []time.Duration) {
	slices.Sort(rtt)
	q := func(p int) time.Duration { return rtt[(len(rtt)-1)*p/100] }
	fmt.Printf("gpio-rtt: %s: median %v, p99 %v, p10 %v, p90 %v, min %v, max %v\n",
		what, q(50), q(99), q(10), q(90), rtt[0], rtt[len(rtt)-1])
}
