package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"github.com/gvmm/gvmm/devices/gpio/control"
)

const gpioUsage = `Usage: gvmm gpio [--control PATH] [--bank N] COMMAND

Drives and observes the simulated GPIO banks of a running 'gvmm run
--control PATH'. Banks are numbered from 0 in --gpio order.

Commands:
  get LINE          print the line's state as JSON: the direction and
                    output the guest set, what the host's side gives it
                    (input: its drivers, else its pull), the level, the irq
                    type, the pull, who drives it (drivers: the host and
                    any models) and whether drivers disagree (conflict)
  set LINE 0|1      make the host drive the line (an edge for the guest's
                    gpiomon)
  release LINE      stop driving the line from the host: it reads what
                    other drivers or its pull give it
  list              print every line of every bank as JSON
  watch             print every change of the bank as a JSON line, with a
                    timestamp, until interrupted; a watcher that falls
                    16384 changes behind (suspended, or piped into a pager)
                    is told on stderr how many it missed, and goes on
  stats             print what the bank's virtio-gpio device has done as
                    JSON: requests by type, errors, interrupts fired,
                    latched and collapsed, malformed chains (host banks too)

Examples:
  gvmm run --gpio sim:8 --control /tmp/gvmm.sock     (in one terminal)
  gvmm gpio --control /tmp/gvmm.sock set 2 1          (in another)
  gvmm gpio --control /tmp/gvmm.sock release 2
  gvmm gpio --control /tmp/gvmm.sock watch

Flags:
`

func gpioCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gvmm gpio", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("control", "gvmm.sock", "control socket `path` given to gvmm run --control")
	bank := fs.Int("bank", 0, "bank `number`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, gpioUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "gvmm gpio: %v (see 'gvmm gpio --help')\n", err)
		return 2
	}
	a := fs.Args()
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "gvmm gpio: %s (see 'gvmm gpio --help')\n", msg)
		return 2
	}
	if len(a) == 0 {
		return usage("missing command: get, set, release, list, watch or stats")
	}
	req := control.Request{Op: a[0], Bank: *bank}
	want := map[string]int{"get": 2, "set": 3, "release": 2, "list": 1, "watch": 1, "stats": 1}[a[0]]
	if want == 0 {
		return usage(fmt.Sprintf("unknown command %q", a[0]))
	}
	if len(a) != want {
		return usage(fmt.Sprintf("%s takes %d argument(s)", a[0], want-1))
	}
	if want >= 2 {
		n, err := strconv.Atoi(a[1])
		if err != nil || n < 0 {
			return usage(fmt.Sprintf("line %q is not a number", a[1]))
		}
		req.Line = n
	}
	if want == 3 {
		if a[2] != "0" && a[2] != "1" {
			return usage(fmt.Sprintf("value %q: want 0 or 1", a[2]))
		}
		req.Value = uint8(a[2][0] - '0')
	}
	cl, err := control.Dial(*path)
	if err != nil {
		fmt.Fprintf(stderr, "gvmm gpio: %v\n", err)
		return 1
	}
	defer cl.Close()
	enc := json.NewEncoder(stdout)
	if req.Op == "watch" {
		if err := cl.Watch(req.Bank); err != nil {
			fmt.Fprintf(stderr, "gvmm gpio: %v\n", err)
			return 1
		}
		for {
			ev, err := cl.Next()
			if err != nil {
				fmt.Fprintf(stderr, "gvmm gpio: %v\n", err)
				return 1
			}
			if ev.Kind == "lost" {
				fmt.Fprintf(stderr, "gvmm gpio: watch fell behind: %d changes lost\n", ev.Lost)
			}
			_ = enc.Encode(ev)
		}
	}
	resp, err := cl.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "gvmm gpio: %v\n", err)
		return 1
	}
	switch {
	case resp.Line != nil:
		_ = enc.Encode(resp.Line)
	case resp.Banks != nil:
		_ = enc.Encode(resp.Banks)
	case resp.Stats != nil:
		_ = enc.Encode(resp.Stats)
	}
	return 0
}
