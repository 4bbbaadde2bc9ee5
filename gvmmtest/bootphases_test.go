package gvmmtest

import (
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// stamper notes when each console line arrives, by the host's clock (the
// guest's clock runs slow in the nested test host, so dmesg's timestamps
// do not add up to wall time there).
type stamper struct {
	mu    sync.Mutex
	t0    time.Time
	first time.Duration // the first byte
	line  []byte
	lines []stamped
}

type stamped struct {
	at   time.Duration
	text string
}

func (s *stamper) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == 0 {
		s.first = time.Since(s.t0)
	}
	for _, b := range p {
		if b != '\n' {
			s.line = append(s.line, b)
			continue
		}
		s.lines = append(s.lines, stamped{time.Since(s.t0), strings.TrimSpace(string(s.line))})
		s.line = s.line[:0]
	}
	return len(p), nil
}

func consoleTee(w io.Writer) Option { return func(c *config) { c.consoleTee = w } }

// TestBootPhases boots with the kernel's messages on the console and logs
// where the time from Start to the first command's result goes, by the
// host's clock: creating the VM, the bzImage's decompressor and the
// kernel's earliest set-up (to its first line), the kernel's boot to
// /init, then /init and the agent. The console slows the boot a little
// (each byte is a UART exit); TestBootTime has the quiet figure. Logged,
// not judged.
func TestBootPhases(t *testing.T) {
	s := &stamper{t0: time.Now()}
	vm := Start(t, Sim(8), Append("loglevel=7", "printk.time=1"), consoleTee(s))
	hello := time.Since(s.t0)
	vm.MustRun("true")
	first := time.Since(s.t0)
	s.mu.Lock()
	defer s.mu.Unlock()
	at := func(substr string) time.Duration {
		for _, l := range s.lines {
			if strings.Contains(l.text, substr) {
				return l.at
			}
		}
		t.Errorf("no console line with %q", substr)
		return 0
	}
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	create := hello - vm.booted + vm.created
	linux, paravirt, initrd, init := at("Linux version"), at("Booting paravirtualized kernel"), at("Freeing initrd memory"), at("Run /init")
	t.Logf("by the host's clock, from Start:")
	t.Logf("  %8s  image read, VM created (vmm.New %s)", ms(create), ms(vm.created))
	t.Logf("  %8s  first console byte: the bzImage's decompressor and early set-up", ms(s.first))
	t.Logf("  %8s  Linux version", ms(linux))
	t.Logf("  %8s  Booting paravirtualized kernel on KVM (memory map, page tables)", ms(paravirt))
	t.Logf("  %8s  Freeing initrd memory (drivers probed, initramfs unpacked)", ms(initrd))
	t.Logf("  %8s  Run /init", ms(init))
	t.Logf("  %8s  the agent's hello", ms(hello))
	t.Logf("  %8s  the first command's result", ms(first))
	if !(create <= s.first && s.first <= linux && linux <= init && init <= hello) {
		t.Errorf("phases out of order: %v %v %v %v %v", create, s.first, linux, init, hello)
	}
}
