// Command gpio-events runs in the guest and counts the edge events of one
// GPIO line until the host says it is done: it requests -line with
// detection of both edges (one interrupt per eventq buffer the device
// returns VALID), reads every event, and once the -done line reads high
// and no event has come for a second, prints
//
//	EVENTS n=<events read> gaps=<events the kernel dropped> last=<rising|falling|none>
//
// gaps counts holes in the events' line sequence numbers: events the
// kernel generated but dropped because its buffer was full. n+gaps is the
// number of interrupts the guest kernel handled for the line.
//
//	gpio-events [-chip /dev/gpiochip0] [-line 3] [-done 2]
//
// The tests put it into the guest image (see cmd/gvmm's guestInitrd);
// `make guest-bins` builds it as a static binary.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gvmm/gvmm/devices/gpio/cdev"
)

func main() {
	chip := flag.String("chip", "/dev/gpiochip0", "GPIO chip `path`")
	line := flag.Int("line", 3, "line `offset` whose edges to count")
	done := flag.Int("done", 2, "line `offset` the host drives high when it is done")
	flag.Parse()
	if err := run(*chip, *line, *done); err != nil {
		fmt.Fprintf(os.Stderr, "gpio-events: %v\n", err)
		os.Exit(1)
	}
}

func run(path string, line, doneLine int) error {
	c, err := cdev.OpenChip(path)
	if err != nil {
		return err
	}
	defer c.Close()
	edges, err := c.RequestLines("gpio-events", []int{line},
		[]cdev.LineConfig{{Flags: cdev.LineFlagInput | cdev.LineFlagEdgeRising | cdev.LineFlagEdgeFalling}})
	if err != nil {
		return err
	}
	defer edges.Close()
	done, err := c.RequestLines("gpio-events-done", []int{doneLine}, []cdev.LineConfig{{Flags: cdev.LineFlagInput}})
	if err != nil {
		return err
	}
	defer done.Close()
	fmt.Printf("gpio-events: counting the edges of line %d until line %d is high\n", line, doneLine)

	n, gaps := 0, 0
	var seq uint32
	last := "none"
	lastEvent := time.Now()
	buf := make([]cdev.LineEvent, 256)
	for {
		if err := edges.SetReadDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
			return err
		}
		k, err := edges.ReadEvents(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			v, err := done.Values(1)
			if err != nil {
				return err
			}
			if v == 1 && time.Since(lastEvent) >= time.Second {
				break
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range buf[:k] {
			if e.LineSeqno > seq+1 {
				gaps += int(e.LineSeqno - seq - 1)
			}
			seq = e.LineSeqno
			n++
			last = map[cdev.EventID]string{cdev.EventRisingEdge: "rising", cdev.EventFallingEdge: "falling"}[e.ID]
		}
		lastEvent = time.Now()
	}
	fmt.Printf("EVENTS n=%d gaps=%d last=%s\n", n, gaps, last)
	return nil
}
