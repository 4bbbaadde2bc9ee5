package vmm

import (
	"bytes"
	"testing"
)

func TestConsoleWatch(t *testing.T) {
	tests := []struct {
		name       string
		chunks     []string
		wantPanic  string
		wantStatus int
		wantOK     bool
		wantEnd    bool
	}{
		{"plain", []string{"hello\r\n", "world\n"}, "", 0, false, false},
		{"status", []string{"[gvmm] command exited with status 3\r\n"}, "", 3, true, false},
		{"status split across writes", []string{"[gvmm] command exi", "ted with status 42\r", "\n"}, "", 42, true, false},
		{"status must start the line", []string{"echo [gvmm] command exited with status 3\n"}, "", 0, false, false},
		{"panic", []string{"[    1.0] Kernel panic - not syncing: sysrq triggered crash\r\n",
			"stack\n", "[    1.1] ---[ end Kernel panic - not syncing: sysrq ]---\r\n"},
			"Kernel panic - not syncing: sysrq triggered crash", 0, false, true},
		{"unterminated line ignored", []string{"[gvmm] command exited with status 3"}, "", 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			ended := make(chan struct{}, 1)
			c := &consoleWatch{w: &out, onPanic: func() { ended <- struct{}{} }}
			var all string
			for _, s := range tt.chunks {
				if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				all += s
			}
			if out.String() != all {
				t.Errorf("passed through %q, want %q", out.String(), all)
			}
			p, st, ok := c.result()
			if p != tt.wantPanic || st != tt.wantStatus || ok != tt.wantOK {
				t.Errorf("result = %q, %d, %v", p, st, ok)
			}
			if tt.wantEnd {
				<-ended
			}
		})
	}
}
