package gvmmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAddFiles checks the archive File and HostFile append, with cpio(1)
// reading it back.
func TestAddFiles(t *testing.T) {
	host := filepath.Join(t.TempDir(), "prog")
	if err := os.WriteFile(host, []byte("#!/bin/sh\n"), 0o751); err != nil {
		t.Fatal(err)
	}
	base := []byte("07070") // stands for the image's archive; any length
	out, err := addFiles(base, []file{
		{guest: "/usr/local/bin/prog", host: host},
		{guest: "/data/x", data: []byte("hello"), mode: 0o600},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, base) {
		t.Fatalf("the image's archive is not kept in front")
	}
	arch := out[8:] // base padded to 4 bytes
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio(1) not installed")
	}
	cmd := exec.Command("cpio", "-t", "-v", "--quiet")
	cmd.Stdin = bytes.NewReader(arch)
	listing, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	for _, want := range []string{"drwxr-xr-x", "usr/local/bin", "-rwxr-x--x", "usr/local/bin/prog", "-rw-------", "data/x"} {
		if !strings.Contains(string(listing), want) {
			t.Errorf("%q not in the archive:\n%s", want, listing)
		}
	}
}

func TestAddFilesErrors(t *testing.T) {
	for _, tc := range []struct {
		f    file
		want string
	}{
		{file{guest: "relative/path", data: []byte{}}, "want an absolute path"},
		{file{guest: "/", data: []byte{}}, "want an absolute path"},
		{file{guest: "/x", host: "/nonexistent/file"}, "no such file"},
	} {
		if _, err := addFiles(nil, []file{tc.f}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.f, err, tc.want)
		}
	}
}
