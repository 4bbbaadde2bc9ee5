package fdt

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dtc returns the path of dtc, which these tests need.
func dtc(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("dtc")
	if err != nil {
		t.Fatalf("dtc not found: install device-tree-compiler (apt-get install device-tree-compiler): %v", err)
	}
	return path
}

// ignoredWarning is the one dtc check these trees fail on purpose. dtc
// 1.6.1 (Debian 12) wants #address-cells in every interrupt provider; the
// dtc in the kernel tree (scripts/dtc/checks.c) no longer does, the
// kernel's own dtbs build passes -Wno-interrupt_provider
// (scripts/Makefile.lib), and gpio-virtio.yaml forbids properties it does
// not list (unevaluatedProperties: false).
const ignoredWarning = "Missing #address-cells in interrupt provider"

// runDTC runs dtc with args and returns its standard output. Any line on
// standard error other than ignoredWarning fails the test.
func runDTC(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(dtc(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var complaints []string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.Contains(line, ignoredWarning) {
			complaints = append(complaints, line)
		}
	}
	if err != nil || len(complaints) > 0 {
		t.Fatalf("dtc %s (exit status: %v):\n%s", strings.Join(args, " "), err, strings.Join(complaints, "\n"))
	}
	return stdout.Bytes()
}

// dtcVersion returns dtc's version line, for failure messages.
func dtcVersion(t *testing.T) string {
	out, err := exec.Command(dtc(t), "--version").Output()
	if err != nil {
		return "unknown dtc version"
	}
	return strings.TrimSpace(string(out))
}

// checkDTB decompiles dtb with dtc and returns the dts text, failing on any
// dtc complaint. It also checks that dtc re-encodes the blob to the same
// bytes (its checks run on the way).
func checkDTB(t *testing.T, dtb []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.dtb")
	if err := os.WriteFile(in, dtb, 0o644); err != nil {
		t.Fatal(err)
	}
	dts := runDTC(t, "-I", "dtb", "-O", "dts", in)
	again := runDTC(t, "-I", "dtb", "-O", "dtb", in)
	if !bytes.Equal(again, dtb) {
		t.Errorf("dtc -I dtb -O dtb changed the blob:\nours %x\ndtc's %x", dtb, again)
	}
	return dts
}

// compileDTS compiles dts source text with dtc. Warnings are not checked
// (-q): a decompiled tree has phandles as plain numbers, which dtc's
// gpios check dislikes in source.
func compileDTS(t *testing.T, dts []byte) []byte {
	t.Helper()
	in := filepath.Join(t.TempDir(), "in.dts")
	if err := os.WriteFile(in, dts, 0o644); err != nil {
		t.Fatal(err)
	}
	return runDTC(t, "-q", "-I", "dts", "-O", "dtb", in)
}
