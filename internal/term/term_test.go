package term

import (
	"os"
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
		quit   bool
	}{
		{"plain", []string{"ls\r"}, "ls\r", false},
		{"quit", []string{"ab\x01xcd"}, "ab", true},
		{"quit upper", []string{"\x01X"}, "", true},
		{"quit split", []string{"a\x01", "x"}, "a", true},
		{"literal ctrl-a", []string{"\x01\x01b"}, "\x01b", false},
		{"other key", []string{"\x01c"}, "\x01c", false},
		{"ctrl-c passes", []string{"\x03"}, "\x03", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Escape
			var got []byte
			quit := false
			for _, c := range tt.chunks {
				out, q := e.Filter([]byte(c))
				got = append(got, out...)
				if q {
					quit = true
					break
				}
			}
			if string(got) != tt.want || quit != tt.quit {
				t.Errorf("got %q quit=%v, want %q quit=%v", got, quit, tt.want, tt.quit)
			}
		})
	}
}

func TestMakeRawNotATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	restore, ok := MakeRaw(int(f.Fd()))
	if ok {
		t.Error("a regular file was taken for a terminal")
	}
	restore()
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) || IsTerminal(&strings.Builder{}) {
		t.Error("a file or a buffer is taken for a terminal")
	}
}
