package vhostuser

import (
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// PollInterval is how often a ring whose kick was set without a
// descriptor (SET_VRING_KICK with the no-fd flag: "polling should be used
// instead of waiting for the kick") is looked at.
const PollInterval = time.Millisecond

// ring is the back end's state of one vring, as the front end set it up.
// Only the session's goroutine touches it, except notify, which the
// kicker reads.
type ring struct {
	size    uint16    // SET_VRING_NUM; the device's maximum until set
	addr    VringAddr // SET_VRING_ADDR, user addresses
	hasAddr bool
	base    uint16  // SET_VRING_BASE, or where the device stopped
	kick    *kicker // SET_VRING_KICK; nil: not started
	enabled bool    // SET_VRING_ENABLE, or SET_FEATURES without protocol features

	// notify is set while the device is active with this ring as one of
	// its queues: kicks reach Device.Notify only then.
	notify atomic.Bool
}

// started reports whether the ring has been started: a kick descriptor
// (or polling) set and no GET_VRING_BASE since.
func (r *ring) started() bool { return r.kick != nil }

// kicker turns a ring's kick eventfd into calls of notify, from a
// goroutine of its own: each read of the eventfd (however many kicks it
// counted) is one call. Without a descriptor it calls notify every
// PollInterval instead.
type kicker struct {
	f    *os.File // nil: polling
	stop chan struct{}
	done sync.WaitGroup
}

// startKicker starts the goroutine; f is the kick eventfd, nil to poll.
// The descriptor must be non-blocking, so that close interrupts the read.
func startKicker(f *os.File, notify func()) *kicker {
	k := &kicker{f: f, stop: make(chan struct{})}
	k.done.Add(1)
	go func() {
		defer k.done.Done()
		if f == nil {
			t := time.NewTicker(PollInterval)
			defer t.Stop()
			for {
				select {
				case <-k.stop:
					return
				case <-t.C:
					notify()
				}
			}
		}
		buf := make([]byte, 8)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			notify()
		}
	}()
	return k
}

// close stops the goroutine, closes the descriptor and waits until no
// more notify can come from this kicker.
func (k *kicker) close() {
	close(k.stop)
	if k.f != nil {
		_ = k.f.Close()
	}
	k.done.Wait()
}
