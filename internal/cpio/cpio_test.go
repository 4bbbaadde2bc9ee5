package cpio

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestReadByCpio writes an archive and lists it with GNU cpio, the tool
// images/build-image.sh builds the initramfs with.
func TestReadByCpio(t *testing.T) {
	path, err := exec.LookPath("cpio")
	if err != nil {
		t.Fatalf("cpio not found (apt-get install cpio): %v", err)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	steps := []struct {
		add  func() error
		want string
	}{
		{func() error { return w.Dir("bin", 0o755) }, "drwxr-xr-x"},
		{func() error { return w.File("/bin/odd", 0o755, []byte("12345")) }, "-rwxr-xr-x"},
		{func() error { return w.File("bin/even", 0o644, []byte("1234")) }, "-rw-r--r--"},
		{func() error { return w.Symlink("sbin", "bin") }, "lrwxrwxrwx"},
	}
	for _, s := range steps {
		if err := s.add(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	cmd := exec.Command(path, "-itv", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	names := []string{"bin", "bin/odd", "bin/even", "sbin -> bin"}
	if len(lines) != len(names) {
		t.Fatalf("cpio lists %d entries, want %d:\n%s", len(lines), len(names), out)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, steps[i].want) || !strings.HasSuffix(l, names[i]) {
			t.Errorf("entry %d: %q, want mode %s and name %q", i, l, steps[i].want, names[i])
		}
	}
	// The files' contents come back as written.
	cmd = exec.Command(path, "-i", "--quiet", "--to-stdout", "bin/odd")
	var arch bytes.Buffer
	w = NewWriter(&arch)
	_ = w.File("bin/odd", 0o755, []byte("12345"))
	_ = w.Close()
	cmd.Stdin = &arch
	if out, err := cmd.Output(); err != nil || string(out) != "12345" {
		t.Errorf("cpio extracts %q, %v; want 12345", out, err)
	}
}

func TestEmptyName(t *testing.T) {
	for _, name := range []string{"", "/", "."} {
		if err := NewWriter(&bytes.Buffer{}).File(name, 0o644, nil); err == nil {
			t.Errorf("File(%q) succeeded", name)
		}
	}
}

// TestAppend: the new archive starts at the next 4-byte boundary after
// initrd, which is kept as it was, and ends with the trailer.
func TestAppend(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 5} {
		base := bytes.Repeat([]byte{0xee}, n)
		out, err := Append(base, func(w *Writer) error { return w.File("x", 0o644, []byte("hi")) })
		if err != nil {
			t.Fatal(err)
		}
		start := (n + 3) &^ 3
		if !bytes.Equal(out[:n], base) || !bytes.Equal(out[n:start], make([]byte, start-n)) ||
			!bytes.HasPrefix(out[start:], []byte("070701")) || !bytes.Contains(out, []byte("TRAILER!!!")) {
			t.Errorf("base of %d bytes: got %q", n, out)
		}
		if len(base) != n || (n > 0 && base[0] != 0xee) {
			t.Errorf("base of %d bytes modified", n)
		}
	}
	want := errors.New("refused")
	if _, err := Append(nil, func(*Writer) error { return want }); !errors.Is(err, want) {
		t.Errorf("add's error: got %v", err)
	}
}
