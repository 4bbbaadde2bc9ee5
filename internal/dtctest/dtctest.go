// Package dtctest checks generated device-tree blobs with dtc, the
// reference device-tree compiler, for tests: decompiling, re-encoding and
// comparing against checked-in golden .dts files; and applies overlays
// with fdtoverlay, libfdt's reference overlay applier. Both come from
// Debian's device-tree-compiler package; without it the tests fail and
// say so.
package dtctest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// DTC returns the path of dtc, failing the test if it is not installed.
func DTC(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("dtc")
	if err != nil {
		t.Fatalf("dtc not found: install device-tree-compiler (apt-get install device-tree-compiler): %v", err)
	}
	return path
}

// IgnoredWarning is the one dtc check gvmm's trees fail on purpose. dtc
// 1.6.1 (Debian 12) wants #address-cells in every interrupt provider; the
// dtc in the kernel tree (scripts/dtc/checks.c) no longer does, the
// kernel's own dtbs build passes -Wno-interrupt_provider
// (scripts/Makefile.lib), and gpio-virtio.yaml forbids properties it does
// not list (unevaluatedProperties: false).
const IgnoredWarning = "Missing #address-cells in interrupt provider"

// Run runs dtc with args and returns its standard output. A failure, or
// any line on standard error other than IgnoredWarning, fails the test.
func Run(t testing.TB, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(DTC(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var complaints []string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.Contains(line, IgnoredWarning) {
			complaints = append(complaints, line)
		}
	}
	if err != nil || len(complaints) > 0 {
		t.Fatalf("dtc %s (exit status: %v):\n%s", strings.Join(args, " "), err, strings.Join(complaints, "\n"))
	}
	return stdout.Bytes()
}

// Version returns dtc's version line, for failure messages.
func Version(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(DTC(t), "--version").Output()
	if err != nil {
		return "unknown dtc version"
	}
	return strings.TrimSpace(string(out))
}

// CheckDTB decompiles dtb with dtc and returns the dts text, failing on any
// dtc complaint. It also checks that dtc re-encodes the blob to the same
// bytes (its checks run on the way).
func CheckDTB(t testing.TB, dtb []byte) []byte {
	t.Helper()
	in := filepath.Join(t.TempDir(), "in.dtb")
	if err := os.WriteFile(in, dtb, 0o644); err != nil {
		t.Fatal(err)
	}
	dts := Run(t, "-I", "dtb", "-O", "dts", in)
	again := Run(t, "-I", "dtb", "-O", "dtb", in)
	if !bytes.Equal(again, dtb) {
		t.Errorf("dtc -I dtb -O dtb changed the blob:\nours %x\ndtc's %x", dtb, again)
	}
	return dts
}

// CompileDTS compiles dts source text with dtc. Warnings are not checked
// (-q): a decompiled tree has phandles as plain numbers, which dtc's
// gpios check dislikes in source.
func CompileDTS(t testing.TB, dts []byte) []byte {
	t.Helper()
	in := filepath.Join(t.TempDir(), "in.dts")
	if err := os.WriteFile(in, dts, 0o644); err != nil {
		t.Fatal(err)
	}
	return Run(t, "-q", "-I", "dts", "-O", "dtb", in)
}

// Golden compares dtc's decompilation of dtb with the golden file at path
// and checks that dtc compiles that file back to exactly dtb. With update
// set it first rewrites the file from the decompilation. regen is the
// command that does that, for the failure messages (e.g. "go test ./fdt
// -update").
func Golden(t testing.TB, dtb []byte, path string, update bool, regen string) {
	t.Helper()
	dts := CheckDTB(t, dtb)
	if update {
		if err := os.WriteFile(path, dts, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (%s creates it)", err, regen)
	}
	if !bytes.Equal(dts, want) {
		t.Errorf("%s differs from dtc's decompilation (%s; if the change is intended: %s).\ngot:\n%s",
			path, Version(t), regen, dts)
	}
	if back := CompileDTS(t, want); !bytes.Equal(back, dtb) {
		t.Errorf("dtc compiles %s to bytes that differ from the generated tree's", path)
	}
}

// FDTOverlay returns the path of fdtoverlay, libfdt's overlay applier,
// failing the test if it is not installed.
func FDTOverlay(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("fdtoverlay")
	if err != nil {
		t.Fatalf("fdtoverlay not found: install device-tree-compiler (apt-get install device-tree-compiler): %v", err)
	}
	return path
}

// ApplyOverlays runs `fdtoverlay -i base -o out overlays...` and returns
// out. A failure, or anything on standard error, fails the test.
func ApplyOverlays(t testing.TB, base []byte, overlays ...[]byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "base.dtb"), filepath.Join(dir, "out.dtb")
	if err := os.WriteFile(in, base, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-i", in, "-o", out}
	for i, o := range overlays {
		name := filepath.Join(dir, fmt.Sprintf("overlay%d.dtbo", i))
		if err := os.WriteFile(name, o, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, name)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(FDTOverlay(t), args...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("fdtoverlay %s (exit status: %v):\n%s", strings.Join(args, " "), err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CompileFile compiles the dts (or dtso) file at path with dtc -@, so the
// blob has __symbols__ and, for an overlay, __fixups__ and
// __local_fixups__. Warnings are not checked (-q).
func CompileFile(t testing.TB, path string) []byte {
	t.Helper()
	return Run(t, "-q", "-@", "-I", "dts", "-O", "dtb", path)
}

// Sorted decompiles dtb with `dtc -s`, nodes and properties sorted by
// name, so that trees differing only in order give the same text.
// Warnings are not checked (-q).
func Sorted(t testing.TB, dtb []byte) []byte {
	t.Helper()
	in := filepath.Join(t.TempDir(), "in.dtb")
	if err := os.WriteFile(in, dtb, 0o644); err != nil {
		t.Fatal(err)
	}
	return Run(t, "-q", "-s", "-I", "dtb", "-O", "dts", in)
}
