package main

import (
	"strings"
	"testing"

	"github.com/gvmm/gvmm/internal/spec"
)

// FuzzRunFlags feeds any string to the parsers of gvmm run's flag values
// (--gpio, --led, --key, --mem, --name). None may panic; a refusal is one
// line (gvmm prints it as "gvmm run: ..."); what --gpio accepts has 1 to
// 65535 lines, with no more names than lines.
//
//	go test -run '^$' -fuzz FuzzRunFlags -fuzztime 60s ./cmd/gvmm
func FuzzRunFlags(f *testing.F) {
	for _, s := range []string{
		"sim:8", "sim:8,names=a,b,c", "sim:0", "sim:65536", "chip0:4-7", "gpiochip1:0,3,8-9,names=x,y",
		"status=0:0,default-on", "led=gpio1:3,active-low", "28=0:1,active-low", "116=0:3,level-high,debounce-interval=100",
		"256M", "1G", "65536K", "0", "vm-1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		oneLine := func(what string, err error) {
			if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("%s %q: error of more than one line: %q", what, s, err)
			}
		}
		g, err := spec.ParseGPIO(s)
		oneLine("--gpio", err)
		if err == nil && g.Host() == nil && (g.Lines() < 1 || g.Lines() > 65535 || len(g.Names()) > g.Lines()) {
			t.Fatalf("--gpio %q accepted as %d lines, %d names", s, g.Lines(), len(g.Names()))
		}
		_, err = spec.ParseLED(s)
		oneLine("--led", err)
		_, err = spec.ParseKey(s)
		oneLine("--key", err)
		n, err := parseSize(s)
		oneLine("--mem", err)
		if err == nil && (n == 0 || n > 1<<40) {
			t.Fatalf("--mem %q accepted as %d bytes", s, n)
		}
		oneLine("--name", spec.CheckVMName(s))
	})
}
