package vmm

import (
	"runtime"
	"strings"
	"testing"
)

// TestNewRefuses: a configuration New cannot boot is refused before any
// KVM work, in a message naming the bound.
func TestNewRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Config
		want string
	}{
		{"no vCPU", Config{CPUs: 0, MemSize: MinMemory}, "0 vCPUs: want 1 to 255"},
		{"more vCPUs than APIC IDs", Config{CPUs: MaxCPUs + 1, MemSize: MinMemory}, "256 vCPUs: want 1 to 255"},
		{"too little RAM", Config{CPUs: 1, MemSize: MinMemory - 1}, "too little"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := New(tt.c)
			if err == nil {
				vm.Close()
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRebootsByTripleFault(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    bool
	}{
		{"console=ttyS0 quiet", false},
		{"console=ttyS0 reboot=t", true},
		{"reboot=triple panic=-1", true},
		{"reboot=w,t", true},
		{"reboot=t,k", false},
		{"reboot=k", false},
		{"reboot=t reboot=a", false},
		{"noreboot=t", false},
	} {
		if got := rebootsByTripleFault(tc.cmdline); got != tc.want {
			t.Errorf("rebootsByTripleFault(%q) = %v, want %v", tc.cmdline, got, tc.want)
		}
	}
}

// TestSpareP: GOMAXPROCS ends at least one above the vCPU count, and is
// never lowered.
func TestSpareP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct{ before, vcpus, want int }{
		{1, 1, 2},
		{1, 4, 5},
		{2, 1, 2},
		{8, 2, 8},
	} {
		runtime.GOMAXPROCS(c.before)
		if got := spareP(c.vcpus); got != c.want || runtime.GOMAXPROCS(0) != c.want {
			t.Errorf("GOMAXPROCS %d, %d vCPUs: spareP = %d, GOMAXPROCS %d; want %d", c.before, c.vcpus, got, runtime.GOMAXPROCS(0), c.want)
		}
	}
}
