// Command gpio-soak runs in the guest and soaks a GPIO chip with line
// operations through the GPIO character device (uAPI v2): it starts
// -workers processes (itself again, with -worker), which share -ops
// operations between them. Worker i holds two lines of its own: line 2i,
// an output that it writes, reads and turns into an input and back, and
// line 2i+1, an input whose edge detection (an interrupt in the kernel) it
// turns on and off. Each operation is one ioctl, in this cycle:
//
//	set 1, get, set 0, get, dir-in, dir-out, irq-on, irq-off
//
// set and get are GPIO_V2_LINE_SET_VALUES_IOCTL and
// GPIO_V2_LINE_GET_VALUES_IOCTL on the output line (a get must read what
// the last set drove); dir-in and dir-out are GPIO_V2_LINE_SET_CONFIG_IOCTL
// making it an input, then an output again driving 0; irq-on and irq-off
// reconfigure the input line with both edges, then with none.
//
// Each worker counts what it did by kind (the operations above;
// request-out and request-in for its GPIO_V2_GET_LINE_IOCTL calls; release
// and release-irq for closing a request without and with edge detection
// on; errors for failed calls and wrong values read) and the parent prints
// one line per worker and a total:
//
//	gpio-soak: total ops=1000000 set=250000 get=250000 ... errors=0
//
// plus "gpio-soak: started ..." and "gpio-soak: progress N% ..." at each
// tenth. It exits 1 if any operation failed. Through gvmm the Linux driver
// waits for every device answer without a timeout, so finishing at all
// means that every request was answered.
//
//	gpio-soak [-chip /dev/gpiochip0] [-ops 1000000] [-workers 4] [-pin]
//
// With -pin, worker i runs under taskset -c on CPU i (modulo the CPUs
// there are), and its line says which CPUs it was allowed.
//
// The soak test (cmd/gvmm TestSoak, `make soak`) puts it into the guest
// image; `make guest-bins` builds it as a static binary.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/gvmm/gvmm/devices/gpio/cdev"
	"golang.org/x/sys/unix"
)

// kind is what a worker counts.
type kind int

const (
	set        kind = iota // SET_VALUES on the output line
	get                    // GET_VALUES on the output line
	dirIn                  // SET_CONFIG: the output line becomes an input
	dirOut                 // SET_CONFIG: it becomes an output again
	irqOn                  // SET_CONFIG: the input line with both edges
	irqOff                 // SET_CONFIG: the input line without edges
	requestOut             // GET_LINE: request the output line
	requestIn              // GET_LINE: request the input line
	release                // close a request without edge detection
	releaseIRQ             // close a request with edge detection on
	errs                   // failed calls and wrong values read
	nkinds
)

var kindNames = [nkinds]string{"set", "get", "dir-in", "dir-out", "irq-on", "irq-off",
	"request-out", "request-in", "release", "release-irq", "errors"}

// cycle is the operations a worker makes, over and over.
var cycle = [...]kind{set, get, set, get, dirIn, dirOut, irqOn, irqOff}

// counts are a worker's counts, or their sum.
type counts [nkinds]uint64

// ops is the number of operations counted.
func (c counts) ops() uint64 { return c[set] + c[get] + c[dirIn] + c[dirOut] + c[irqOn] + c[irqOff] }

// String gives the counts as "ops=N set=N get=N ... errors=N".
func (c counts) String() string {
	s := fmt.Sprintf("ops=%d", c.ops())
	for k, n := range c {
		s += fmt.Sprintf(" %s=%d", kindNames[k], n)
	}
	return s
}

// parseCounts reads what String wrote.
func parseCounts(s string) (counts, error) {
	var c counts
	seen := 0
	for _, f := range strings.Fields(s) {
		name, v, _ := strings.Cut(f, "=")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("counts %q: %v", s, err)
		}
		for k := range c {
			if kindNames[k] == name {
				c[k] = n
				seen++
			}
		}
	}
	if seen != int(nkinds) {
		return c, fmt.Errorf("counts %q: want every one of %v", s, kindNames)
	}
	return c, nil
}

func main() {
	chip := flag.String("chip", "/dev/gpiochip0", "GPIO chip `path`")
	ops := flag.Int("ops", 1000000, "total number of operations")
	workers := flag.Int("workers", 4, "number of worker processes")
	w := flag.Int("worker", -1, "run as worker `i` (lines 2i and 2i+1) making -ops operations")
	pin := flag.Bool("pin", false, "pin worker i to CPU i modulo the CPUs there are (taskset -c)")
	flag.Parse()
	var err error
	if *w >= 0 {
		err = worker(*chip, *w, *ops)
	} else {
		err = soak(*chip, *ops, *workers, *pin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gpio-soak: %v\n", err)
		os.Exit(1)
	}
}

// soak runs the workers, relays their progress and sums their counts.
func soak(chip string, ops, workers int, pin bool) error {
	c, err := cdev.OpenChip(chip)
	if err != nil {
		return err
	}
	lines := c.Info().Lines
	c.Close()
	if workers < 1 || 2*workers > lines {
		return fmt.Errorf("-workers %d: want 1 to %d (two lines each; %s has %d)", workers, lines/2, chip, lines)
	}
	if ops < 1 {
		return fmt.Errorf("-ops %d: want at least 1", ops)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	type report struct {
		worker int
		done   int     // operations done so far
		final  *counts // the worker's counts, once it has ended
		cpus   string  // the CPUs it was allowed, as it said at its end
		err    error
	}
	reports := make(chan report)
	for i := range workers {
		n := ops / workers
		if i < ops%workers {
			n++
		}
		args := []string{self, "-chip", chip, "-worker", strconv.Itoa(i), "-ops", strconv.Itoa(n)}
		if pin {
			// taskset sets the affinity before the exec, so that every
			// thread of the Go program inherits it.
			args = append([]string{"taskset", "-c", strconv.Itoa(i % runtime.NumCPU())}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("worker %d: %v", i, err)
		}
		go func() {
			var final *counts
			var cpus string
			var ferr error
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				l := sc.Text()
				if p, ok := strings.CutPrefix(l, "progress "); ok {
					if d, err := strconv.Atoi(p); err == nil {
						reports <- report{worker: i, done: d}
					}
				} else if s, ok := strings.CutPrefix(l, "cpus "); ok {
					cpus = s
				} else if s, ok := strings.CutPrefix(l, "counts "); ok {
					c, err := parseCounts(s)
					final, ferr = &c, err
				}
			}
			err := cmd.Wait()
			if ferr != nil {
				err = ferr
			} else if err == nil && final == nil {
				err = fmt.Errorf("ended without its counts")
			}
			if err != nil {
				err = fmt.Errorf("worker %d: %v", i, err)
			}
			reports <- report{worker: i, final: final, cpus: cpus, err: err}
		}()
	}
	fmt.Printf("gpio-soak: started %d workers for %d operations on %s\n", workers, ops, chip)
	done := make([]int, workers)
	next := 1 // the next tenth to report
	var total counts
	var failed error
	for ended := 0; ended < workers; {
		r := <-reports
		if r.final == nil && r.err == nil {
			done[r.worker] = r.done
		} else {
			ended++
			if r.err != nil {
				failed = r.err
				fmt.Fprintf(os.Stderr, "gpio-soak: %v\n", r.err)
			}
			if r.final != nil {
				fmt.Printf("gpio-soak: worker %d (lines %d,%d; CPUs %s): %v\n", r.worker, 2*r.worker, 2*r.worker+1, r.cpus, *r.final)
				for k, n := range r.final {
					total[k] += n
				}
			}
		}
		sum := 0
		for _, d := range done {
			sum += d
		}
		for ; next <= 10 && sum >= ops*next/10; next++ {
			fmt.Printf("gpio-soak: progress %d%% (%d of %d operations)\n", 10*next, sum, ops)
		}
	}
	fmt.Printf("gpio-soak: total %v\n", total)
	if failed != nil {
		return failed
	}
	if total[errs] != 0 {
		return fmt.Errorf("%d operations failed", total[errs])
	}
	return nil
}

// worker makes n operations on lines 2i (output) and 2i+1 (input), writing
// "progress N" lines and at the end "cpus LIST" (the CPUs it may run on)
// and "counts ..." to its standard output.
func worker(chip string, i, n int) error {
	c, err := cdev.OpenChip(chip)
	if err != nil {
		return err
	}
	defer c.Close()
	consumer := fmt.Sprintf("gpio-soak-%d", i)
	out, err := c.RequestLines(consumer, []int{2 * i}, []cdev.LineConfig{{Flags: cdev.LineFlagOutput}})
	if err != nil {
		return err
	}
	in, err := c.RequestLines(consumer, []int{2*i + 1}, []cdev.LineConfig{{Flags: cdev.LineFlagInput}})
	if err != nil {
		out.Close()
		return err
	}
	cnt := counts{requestOut: 1, requestIn: 1}
	every := max(1, min(1000, n/20)) // operations between progress lines
	var level uint64                 // what the output line drives
	edges := false                   // whether the input line has edge detection on
	for j := range n {
		k := cycle[j%len(cycle)]
		var err error
		switch k {
		case set:
			level = 1 - level
			err = out.SetValues(level, 1)
		case get:
			var v uint64
			if v, err = out.Values(1); err == nil && v != level {
				err = fmt.Errorf("read %d, but the line drives %d", v, level)
			}
		case dirIn:
			err = out.Reconfigure([]cdev.LineConfig{{Flags: cdev.LineFlagInput}})
		case dirOut:
			level = 0
			err = out.Reconfigure([]cdev.LineConfig{{Flags: cdev.LineFlagOutput, Value: 0}})
		case irqOn:
			err = in.Reconfigure([]cdev.LineConfig{{Flags: cdev.LineFlagInput | cdev.LineFlagEdgeRising | cdev.LineFlagEdgeFalling}})
			edges = edges || err == nil
		case irqOff:
			err = in.Reconfigure([]cdev.LineConfig{{Flags: cdev.LineFlagInput}})
			edges = edges && err != nil
		}
		cnt[k]++
		if err != nil {
			cnt[errs]++
			if cnt[errs] <= 10 {
				fmt.Fprintf(os.Stderr, "gpio-soak: worker %d: operation %d (%s): %v\n", i, j+1, kindNames[k], err)
			}
		}
		if (j+1)%every == 0 || j+1 == n {
			fmt.Printf("progress %d\n", j+1)
		}
	}
	for _, r := range []struct {
		req   *cdev.Request
		edges bool
	}{{out, false}, {in, edges}} {
		if r.edges {
			cnt[releaseIRQ]++
		} else {
			cnt[release]++
		}
		if err := r.req.Close(); err != nil {
			cnt[errs]++
			fmt.Fprintf(os.Stderr, "gpio-soak: worker %d: release: %v\n", i, err)
		}
	}
	fmt.Printf("cpus %s\ncounts %v\n", allowedCPUs(), cnt)
	if cnt[errs] != 0 {
		return fmt.Errorf("worker %d: %d operations failed", i, cnt[errs])
	}
	return nil
}

// allowedCPUs lists the CPUs this process may run on ("0", "0,2"), from
// sched_getaffinity.
func allowedCPUs() string {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return "unknown"
	}
	var l []string
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			l = append(l, strconv.Itoa(c))
		}
	}
	return strings.Join(l, ",")
}
