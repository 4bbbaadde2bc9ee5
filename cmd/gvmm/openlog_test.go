package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenLog: --log's destination for gvmm run and gvmm gpio-backend:
// stderr without a path, the file appended to with one, an error for a
// file that cannot be opened.
func TestOpenLog(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gvmm.log")
	if err := os.WriteFile(file, []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, want string
		fails            bool
	}{
		{name: "stderr", path: "", want: "line\n"},
		{name: "file, appended", path: file, want: "before\nline\n"},
		{name: "no such directory", path: filepath.Join(dir, "no", "gvmm.log"), fails: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			w, closeLog, err := openLog(c.path, &stderr)
			if c.fails {
				if err == nil {
					t.Fatal("openLog succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte("line\n")); err != nil {
				t.Fatal(err)
			}
			closeLog()
			got := stderr.String()
			if c.path != "" {
				b, err := os.ReadFile(c.path)
				if err != nil {
					t.Fatal(err)
				}
				got = string(b)
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
