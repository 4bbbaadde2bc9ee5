package main

// Tests of gvmm dtb, run in this process: they need dtc but no KVM.

import (
	"bytes"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvmm/gvmm/internal/dtctest"
	"github.com/gvmm/gvmm/vmm"
)

var update = flag.Bool("update", false, "rewrite testdata/*.dts from dtc's decompilation of gvmm dtb's trees")

// dtbGoldens are the command lines whose trees are checked in as
// testdata/NAME.dts (see testdata/README.md).
var dtbGoldens = []struct {
	name string
	args []string
}{
	{"one-bank", []string{"--gpio", "sim:8"}},
	{"two-banks", []string{"--gpio", "sim:8,names=led0,led1,btn0", "--gpio", "sim:4,names=reset,ready"}},
	{"leds", []string{"--gpio", "sim:8", "--gpio", "sim:4",
		"--led", "status=0:0", "--led", "power=0:7,default-on", "--led", "fault=gpio1:2,active-low,default-on"}},
	{"keys", []string{"--gpio", "sim:8",
		"--key", "28=0:1", "--key", "0x74=0:2,active-low,debounce-interval=20",
		"--key", "1=0:3,level-high,debounce-interval=100", "--key", "2=0:4,level-low"}},
	{"leds-keys", []string{"--gpio", "sim:2", "--gpio", "sim:8,names=led,button,irq",
		"--led", "led=1:0,default-on", "--key", "28=1:1,active-low", "--key", "116=gpio1:2,level-high,debounce-interval=50",
		"--mem", "512M", "--append", "quiet", "--cmd", "true", "--kernel", "/nonexistent", "--control", "/nonexistent/sock"}},
	// An overlay: the bit-banged I2C bus and EEPROM of examples/, on
	// lines with pull-ups and the EEPROM model (neither changes the tree).
	{"i2c-eeprom", []string{"--gpio", "sim:2,pull-up=0-1,names=scl,sda", "--model", "at24c02=0:0,1",
		"--dt-overlay", "../../examples/i2c-eeprom.dtso"}},
	// Host lines: the tree needs no host chip (the guest learns the host's
	// line names through GET_NAMES), so this runs anywhere.
	{"passthrough", []string{"--gpio", "chip0:4-7", "--gpio", "gpiochip1:0,3,names=reset,ready", "--gpio", "sim:2",
		"--led", "status=0:1", "--key", "28=0:2,active-low", "--led", "ready=1:1,default-on"}},
}

// dtb runs gvmm dtb with args and -o -, returning the blob.
func dtb(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if status := gvmm(append(append([]string{"dtb"}, args...), "-o", "-"), nil, &stdout, &stderr); status != 0 || stderr.Len() > 0 {
		t.Fatalf("gvmm dtb %q: status %d, stderr %q", args, status, stderr.String())
	}
	return stdout.Bytes()
}

// TestDTBGolden compares dtc's decompilation of the tree gvmm dtb writes
// for each of dtbGoldens with testdata/NAME.dts, and checks that dtc
// compiles that file back to the same bytes. go test ./cmd/gvmm -run
// TestDTBGolden -update rewrites the files.
func TestDTBGolden(t *testing.T) {
	for _, g := range dtbGoldens {
		t.Run(g.name, func(t *testing.T) {
			dtctest.Golden(t, dtb(t, g.args...), filepath.Join("testdata", g.name+".dts"), *update,
				"go test ./cmd/gvmm -run TestDTBGolden -update; see testdata/README.md")
		})
	}
}

// TestDTBIsRunsTree checks that gvmm dtb writes the tree gvmm run with the
// same flags would give the guest: the one vmm.New builds from the
// configuration runCmd passes it.
func TestDTBIsRunsTree(t *testing.T) {
	for _, g := range dtbGoldens {
		f, err := parseRun(g.args, nil)
		if err != nil {
			t.Fatalf("%s: gvmm run %q: %v", g.name, g.args, err)
		}
		want, err := vmm.DeviceTree(f.config())
		if err != nil {
			t.Fatal(err)
		}
		if got := dtb(t, g.args...); !bytes.Equal(got, want) {
			t.Errorf("%s: gvmm dtb and gvmm run's trees differ", g.name)
		}
	}
}

func TestDTBOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.dtb")
	var stdout, stderr bytes.Buffer
	if status := gvmm([]string{"dtb", "--gpio", "sim:8", "-o", path}, nil, &stdout, &stderr); status != 0 {
		t.Fatalf("status %d, stderr %q", status, stderr.String())
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := dtb(t, "--gpio", "sim:8"); !bytes.Equal(got, want) || stdout.Len() > 0 {
		t.Errorf("-o %s: wrote %d bytes and %d to stdout; -o - writes %d", path, len(got), stdout.Len(), len(want))
	}
	if !bytes.HasPrefix(got, []byte{0xd0, 0x0d, 0xfe, 0xed}) {
		t.Errorf("no FDT magic: %x", got[:4])
	}
}

func TestDTBErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		want   string
	}{
		{"no -o", []string{"--gpio", "sim:8"}, 2, "gvmm dtb: -o FILE is required (- for standard output) (see 'gvmm dtb --help')"},
		{"stray argument", []string{"-o", "-", "x"}, 2, `gvmm dtb: unexpected argument "x"`},
		{"run's checks", []string{"--cpus", "256", "-o", "-"}, 2, "gvmm dtb: --cpus 256"},
		{"too many banks", append(strings.Fields(strings.Repeat("--gpio sim:1 ", 9)), "-o", "-"), 2, "9 --gpio controllers: at most 8"},
		{"unwritable", []string{"-o", "/nonexistent/dir/x.dtb"}, 1, "gvmm dtb: open /nonexistent/dir/x.dtb"},
		{"no overlay file", []string{"--dt-overlay", "/nonexistent.dtbo", "-o", "-"}, 2, "open /nonexistent.dtbo"},
		{"overlay not a DTB", []string{"--dt-overlay", "dtb_test.go", "-o", "-"}, 2, "not a compiled device-tree overlay (no FDT magic)"},
		{"overlay source that dtc refuses", []string{"--dt-overlay", writeTemp(t, "bad.dtso", "/dts-v1/; /plugin/; / { x"), "-o", "-"}, 2, "dtc:"},
		{"overlay with an unknown label", []string{"--gpio", "sim:2", "--dt-overlay",
			writeTemp(t, "label.dtso", "/dts-v1/; /plugin/; &gpio3 { x = <1>; };"), "-o", "-"}, 2, `label "gpio3"`},
		{"a plain tree as overlay", []string{"--dt-overlay", writeTemp(t, "plain.dts", "/dts-v1/; / { x = <1>; };"), "-o", "-"}, 2, "no fragments"},
		{"model on a missing bank", []string{"--model", "at24c02=0:0,1", "-o", "-"}, 2, "no GPIO controller 0"},
		{"model with bad flags", []string{"--model", "at24c02=0:0", "-o", "-"}, 2, "want CTRL:SCL,SDA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := gvmm(append([]string{"dtb"}, tc.args...), nil, &stdout, &stderr)
			msg := stderr.String()
			if status != tc.status || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 {
				t.Errorf("status %d, stderr %q; want status %d and one line containing %q", status, msg, tc.status, tc.want)
			}
		})
	}
}

// writeTemp writes text to a file name in a new temporary directory and
// returns its path.
func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDTBHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if status := gvmm([]string{"dtb", "--help"}, nil, &stdout, &stderr); status != 0 {
		t.Errorf("status %d", status)
	}
	for _, want := range []string{"Usage: gvmm dtb", "-o FILE", "-gpio", "-led", "-key", "level-high", "CTRL is a --gpio controller",
		"-dt-overlay", "-model", "pull-up"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("gvmm dtb --help does not mention %q", want)
		}
	}
	stdout.Reset()
	gvmm([]string{"help"}, nil, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "gvmm dtb [flags] -o FILE") {
		t.Errorf("gvmm help does not mention dtb:\n%s", stdout.String())
	}
}

// TestListenControl: a socket file left by a killed gvmm is replaced; a
// live socket and a file that is no socket are refused.
func TestListenControl(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody answers
	if l, err = listenControl(stale); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer l.Close()
	if _, err := listenControl(stale); err == nil || !strings.Contains(err.Error(), "in use by another gvmm") {
		t.Errorf("live socket: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := listenControl(file); err == nil {
		t.Error("a plain file was replaced")
	}
}
