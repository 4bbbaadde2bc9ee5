package main

// Tests of --led and --key that boot nothing: the one-line errors gvmm
// run and gvmm dtb print for them. The parsers and checks are tested in
// internal/spec.

import (
	"bytes"
	"strings"
	"testing"
)

// TestConsumerRunErrors runs gvmm run and gvmm dtb in this process with
// bad --led and --key flags: each is refused before anything boots, with
// exit status 2 and one line on stderr naming the problem.
func TestConsumerRunErrors(t *testing.T) {
	bank := []string{"--gpio", "sim:8", "--gpio", "sim:2"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown controller", []string{"--led", "a=2:0"}, `--led "a=2:0": no GPIO controller 2`},
		{"line out of range", []string{"--key", "28=1:2"}, `--key "28=1:2": no line 2 on controller 1: its last line is 1`},
		{"line used twice", []string{"--led", "a=0:1", "--key", "28=0:1"}, `line 1 of controller 0 is already used by --led "a=0:1"`},
		{"line used twice, key first", []string{"--key", "28=0:1,level-high", "--led", "a=0:1"}, `--key "28=0:1,level-high": line 1 of controller 0 is already used by --led "a=0:1"`},
		{"key code 0", []string{"--key", "0=0:1"}, `invalid value "0=0:1" for flag -key: key code "0": want an input event code from 1 to 767`},
		{"key code past KEY_MAX", []string{"--key", "768=0:1"}, `key code "768"`},
		{"bad name", []string{"--led", "a:b=0:1"}, `LED name "a:b": want 1 to 31 letters, digits or , . _ + -, starting with a letter or digit`},
		{"unknown LED option", []string{"--led", "a=0:1,on"}, `unknown option "on" (want active-low or default-on)`},
		{"unknown key option", []string{"--key", "28=0:1,edge"}, `unknown option "edge"`},
		{"duplicate LED names", []string{"--led", "a=0:1", "--led", "a=1:1"}, `LED name "a" is already used`},
		{"LED before its --gpio", []string{"--led", "a=2:0", "--gpio", "sim:1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range []string{"run", "dtb"} {
				args := append(append([]string{cmd}, bank...), tc.args...)
				if cmd == "dtb" {
					args = append(args, "-o", "-")
				} else {
					// Should a check let the flags through, run stops here
					// rather than booting.
					args = append(args, "--kernel", "/nonexistent/bzImage")
				}
				var stdout, stderr bytes.Buffer
				status := gvmm(args, nil, &stdout, &stderr)
				if tc.want == "" { // valid: only dtb can show it without booting
					if cmd == "dtb" && (status != 0 || stderr.Len() > 0) {
						t.Errorf("gvmm %q: status %d, stderr %q", args, status, stderr.String())
					}
					continue
				}
				msg := stderr.String()
				if status != 2 || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 || stdout.Len() > 0 {
					t.Errorf("gvmm %q: status %d, stdout %d bytes, stderr %q; want status 2 and one line containing %q",
						args, status, stdout.Len(), msg, tc.want)
				}
				if prefix := "gvmm " + cmd + ": "; !strings.HasPrefix(msg, prefix) {
					t.Errorf("stderr %q does not start with %q", msg, prefix)
				}
			}
		})
	}
}
