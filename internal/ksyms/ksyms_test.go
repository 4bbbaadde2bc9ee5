package ksyms

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A piece of the project's guest image's System.map, out of order as
// nothing requires it to be sorted, with data and absolute symbols mixed
// in.
const sample = `0000000001000000 A phys_startup_64
ffffffff811bc869 T queued_spin_lock_slowpath
ffffffff81000000 T _stext
ffffffff811bc5f8 t native_safe_halt
ffffffff81400110 T _etext
ffffffff81803000 D init_thread_union
ffffffff81200000 W weak_fn
not a symbol line
ffffffff8120zzzz T bad_address
`

func TestName(t *testing.T) {
	tab, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr uint64
		want string
	}{
		{0xffffffff811bc892, "queued_spin_lock_slowpath+0x29"},
		{0xffffffff811bc60b, "native_safe_halt+0x13"},
		{0xffffffff811bc869, "queued_spin_lock_slowpath+0x0"},
		{0xffffffff81200004, "weak_fn+0x4"},
		{0xffffffff81000000, "_stext+0x0"},
		{0xffffffff80ffffff, ""}, // before the text
		{0xffffffff81400110, ""}, // _etext on
		{0xffffffff81803ed8, ""}, // data
		{0xffff888001a00000, ""}, // the direct map
		{0x00007ffc12345678, ""}, // user space
	}
	for _, tt := range tests {
		if got := tab.Name(tt.addr); got != tt.want {
			t.Errorf("Name(%#x) = %q, want %q", tt.addr, got, tt.want)
		}
	}
	var none *Table
	if got := none.Name(0xffffffff81000000); got != "" {
		t.Errorf("nil Table named %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "no text symbols"},
		{"data only", "ffffffff81803000 D init_thread_union\n", "no text symbols"},
		{"not a map", "\x7fELF\x02\x01\x01", "no text symbols"},
		{"long line", "ffffffff81000000 T " + strings.Repeat("x", 5000) + "\n", "a line longer than 4096 bytes: not a System.map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// FuzzParse: any input parses or fails without a panic, and every name a
// table gives is of a symbol it read, at an offset no larger than the
// address.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample), uint64(0xffffffff811bc892))
	f.Add([]byte("0 t a\n1 T b\n"), uint64(1))
	f.Fuzz(func(t *testing.T, in []byte, addr uint64) {
		tab, err := Parse(strings.NewReader(string(in)))
		if err != nil {
			return
		}
		if len(tab.syms) == 0 || len(tab.syms) > MaxSymbols {
			t.Fatalf("%d symbols", len(tab.syms))
		}
		if n := tab.Name(addr); n != "" && !strings.Contains(n, "+0x") {
			t.Fatalf("Name(%#x) = %q", addr, n)
		}
	})
}

func TestLoadBeside(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "bzImage")
	if tab, err := LoadBeside(kernel); tab != nil || err != nil {
		t.Fatalf("no System.map: got %v, %v; want nil, nil", tab, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "System.map"), []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, err := LoadBeside(kernel)
	if err != nil {
		t.Fatal(err)
	}
	if got := tab.Name(0xffffffff811bc60b); got != "native_safe_halt+0x13" {
		t.Errorf("Name = %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "System.map"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBeside(kernel); err == nil || !strings.Contains(err.Error(), "no text symbols") {
		t.Errorf("a broken map: error %v", err)
	}
}
