package qemuboot

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	base := Config{Machine: MachineMicrovm, Kernel: "/k", Initrd: "/i", Append: "console=ttyS0 reboot=t"}
	tests := []struct {
		name    string
		c       Config
		want    []string // in this order, each a run of adjacent arguments
		notWant []string
	}{
		{"microvm", base, []string{"-M microvm,acpi=off", "-accel kvm -cpu host -m 256 -smp 1",
			"-nodefaults", "-serial stdio -no-reboot", "-kernel /k -initrd /i -append console=ttyS0 reboot=t"},
			[]string{"-trace", "-numa"}},
		{"pc, more memory, no initrd", Config{Machine: MachinePC, Kernel: "/k", Append: "x", MemMiB: 64, CPUs: 2},
			[]string{"-M pc", "-m 64 -smp 2", "-kernel /k -append x"}, []string{"-initrd"}},
		{"trace", func() Config { c := base; c.TraceRunState = true; return c }(),
			[]string{"-trace vm_state_notify"}, nil},
		{"vhost-user on microvm", func() Config { c := base; c.VhostUserGPIO = "/s.sock"; c.MemMiB = 128; return c }(),
			[]string{"-object memory-backend-memfd,id=mem,size=128M,share=on", "-numa node,memdev=mem",
				"-chardev socket,id=gpio0,path=/s.sock", "-device vhost-user-gpio-device,chardev=gpio0"}, nil},
		{"vhost-user on pc", Config{Machine: MachinePC, Kernel: "/k", VhostUserGPIO: "/s"},
			[]string{"-device vhost-user-gpio-pci,chardev=gpio0"}, nil},
		{"extra", Config{Machine: MachinePC, Kernel: "/k", Extra: []string{"-S"}}, []string{"-append  -S"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.c.Args()
			line := strings.Join(a, " ")
			at := 0
			for _, w := range tt.want {
				i := strings.Index(line[at:], w)
				if i < 0 {
					t.Fatalf("arguments %q lack %q after offset %d", line, w, at)
				}
				at += i + len(w)
			}
			for _, w := range tt.notWant {
				if slices.Contains(a, w) {
					t.Errorf("arguments %q have %q", line, w)
				}
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"qemu", "-m", "256"}, "qemu -m 256"},
		{[]string{"-append", "console=ttyS0 quiet"}, "-append 'console=ttyS0 quiet'"},
		{[]string{"it's", ""}, `'it'\''s' ''`},
	}
	for _, tt := range tests {
		if got := ShellQuote(tt.args); got != tt.want {
			t.Errorf("ShellQuote(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}

const smapsGVMM = `00400000-00a00000 r-xp 00000000 08:01 123   /usr/bin/gvmm
Size:               6144 kB
KernelPageSize:        4 kB
Rss:                3000 kB
Pss:                3000 kB
VmFlags: rd ex mr mw me
7f0000000000-7f0010000000 rw-p 00000000 00:00 0
Size:             262144 kB
Rss:               30720 kB
VmFlags: rd wr mr mw me nr
7f0010000000-7f0010400000 rw-p 00000000 00:00 0
Size:               4096 kB
Rss:                4000 kB
`

func TestParseSmaps(t *testing.T) {
	tests := []struct {
		name     string
		smaps    string
		guestRAM uint64
		rss, ram uint64 // KiB
		mapping  string // a prefix
		err      string
	}{
		{"gvmm", smapsGVMM, 256 << 20, 3000 + 30720 + 4000, 30720, "7f0000000000-", ""},
		{"the larger of two candidates", smapsGVMM + `7f0020000000-7f0030001000 rw-s 00000000 00:01 9 /memfd:mem (deleted)
Size:             262148 kB
Rss:               40000 kB
`, 256 << 20, 3000 + 30720 + 4000 + 40000, 40000, "7f0020000000-", ""},
		{"QEMU's memfd: its mappings, whatever their size", smapsGVMM + `7f0020000000-7f0030000000 rw-s 00000000 00:01 3 /memfd:memory-backend-memfd (deleted)
Size:             261120 kB
Rss:                 192 kB
7f0040000000-7f00400f0000 rw-s 00000000 00:01 3 /memfd:memory-backend-memfd (deleted)
Size:                960 kB
Rss:                   8 kB
`, 256 << 20, 3000 + 30720 + 4000 + 200, 200, "7f0020000000-", ""},
		{"no mapping of that size", smapsGVMM, 64 << 20, 0, 0, "", "no mapping of guest RAM's size 64 MiB"},
		{"garbage", "hello world\n", 64 << 20, 0, 0, "", "unexpected line"},
		{"bad number", "0-1 rw-p 0 0:0 0\nRss: x kB\n", 64 << 20, 0, 0, "", "invalid syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseSmaps(strings.NewReader(tt.smaps), tt.guestRAM)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.RSS != tt.rss<<10 || m.GuestRAM != tt.ram<<10 || !strings.HasPrefix(m.GuestRAMMapping, tt.mapping) {
				t.Errorf("got %+v, want RSS %d KiB, guest RAM %d KiB in %s...", m, tt.rss, tt.ram, tt.mapping)
			}
			if m.BeyondGuestRAM() != (tt.rss-tt.ram)<<10 {
				t.Errorf("BeyondGuestRAM %d", m.BeyondGuestRAM())
			}
		})
	}
}

// TestReadMemory reads this process's smaps: a real file parses (up to
// the guest RAM it does not have), and a missing process is an error.
func TestReadMemory(t *testing.T) {
	if _, err := ReadMemory(os.Getpid(), 1<<40); err == nil || !strings.Contains(err.Error(), "no mapping of guest RAM's size") {
		t.Errorf("this process: %v, want no guest RAM found", err)
	}
	if _, err := ReadMemory(1<<30, 1<<20); err == nil {
		t.Error("no error for a missing process")
	}
}

func TestProc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		name   string
		script string
		steps  func(t *testing.T, p *Proc)
		err    string // of Wait
	}{
		{"markers in order, input, exit", `echo one; echo ERR-one >&2; echo two; read x; echo got $x; printf partial`, func(t *testing.T, p *Proc) {
			l1, err := p.WaitFor(ctx, "one", Console, "o")
			if err != nil || l1.Text != "one" {
				t.Fatalf("first match %q, %v", l1.Text, err)
			}
			// The next match of the same text is past the first.
			l2, err := p.WaitFor(ctx, "two", Console, "o")
			if err != nil || l2.Text != "two" || l2.Time.Before(l1.Time) || l1.Time.Before(p.Started) {
				t.Fatalf("second match %+v, %v", l2, err)
			}
			if _, err := p.WaitFor(ctx, "stderr", Stderr, "ERR-one"); err != nil {
				t.Fatal(err)
			}
			if err := p.Type("X\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitFor(ctx, "got", Console, "got X"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.WaitFor(ctx, "an unfinished last line", Console, "partial"); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"exits before the marker", `echo bye; exit 3`, func(t *testing.T, p *Proc) {
			_, err := p.WaitFor(ctx, "wait for hello", Console, "hello")
			if err == nil || !strings.Contains(err.Error(), `step "wait for hello"`) || !strings.Contains(err.Error(), "console| bye") {
				t.Fatalf("error %v", err)
			}
		}, "exit status 3"},
		{"timeout names the step", `exec sleep 30`, func(t *testing.T, p *Proc) {
			short, c := context.WithTimeout(ctx, 100*time.Millisecond)
			defer c()
			_, err := p.WaitFor(short, "the marker that never comes", Console, "x")
			if err == nil || !strings.Contains(err.Error(), `step "the marker that never comes": timed out`) {
				t.Fatalf("error %v", err)
			}
			p.Kill()
		}, "killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(exec.Command("sh", "-c", tt.script))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Kill()
			tt.steps(t, p)
			exited, err := p.Wait(ctx, "exit")
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("Wait: %v, want %q", err, tt.err)
			}
			if exited.Before(p.Started) {
				t.Errorf("exited %v before it started %v", exited, p.Started)
			}
		})
	}
}
