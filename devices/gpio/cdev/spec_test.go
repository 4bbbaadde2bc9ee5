package cdev

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    Spec
		wantErr string // substring of the error; "" for success
	}{
		{in: "chip0:4-7", want: Spec{Chip: "chip0", Lines: []int{4, 5, 6, 7}}},
		{in: "chip0:1,4-6", want: Spec{Chip: "chip0", Lines: []int{1, 4, 5, 6}}},
		{in: "gpiochip12:9,3,0", want: Spec{Chip: "gpiochip12", Lines: []int{9, 3, 0}}},
		{in: "/dev/gpiochip2:5", want: Spec{Chip: "/dev/gpiochip2", Lines: []int{5}}},
		{in: "chip0:3-3", want: Spec{Chip: "chip0", Lines: []int{3}}},
		{in: "pinctrl-bcm2711:17,27", want: Spec{Chip: "pinctrl-bcm2711", Lines: []int{17, 27}}},
		{in: "INT34C5:00:2-3", want: Spec{Chip: "INT34C5:00", Lines: []int{2, 3}}},
		{in: "chip0:0-3,names=led0,,btn0", want: Spec{Chip: "chip0", Lines: []int{0, 1, 2, 3}, Names: []string{"led0", "", "btn0"}}},
		{in: "chip0:0,names=a:b", want: Spec{Chip: "chip0", Lines: []int{0}, Names: []string{"a:b"}}},
		{in: "chip0:0-63", want: Spec{Chip: "chip0", Lines: seq(0, 63)}},

		{in: "chip0", wantErr: "want CHIP:LINES"},
		{in: "", wantErr: "want CHIP:LINES"},
		{in: ":1", wantErr: "no chip"},
		{in: "chip0:", wantErr: "empty line list"},
		{in: "chip0:,names=a", wantErr: "empty line list"},
		{in: "chip0:1,,2", wantErr: "empty entry"},
		{in: "chip0:1,", wantErr: "empty entry"},
		{in: "chip0:x", wantErr: `"x" is not a line number`},
		{in: "chip0:-1", wantErr: `entry "-1": want N or A-B`},
		{in: "chip0:1-", wantErr: `entry "1-": want N or A-B`},
		{in: "chip0:1-2-3", wantErr: `"2-3" is not a line number`},
		{in: "chip0:+1", wantErr: "not a line number"},
		{in: "chip0:99999999999", wantErr: "not a line number"},
		{in: "chip0:7-4", wantErr: `line range "7-4" runs backwards (7 > 4)`},
		{in: "chip0:1,2,1", wantErr: "line 1 given twice"},
		{in: "chip0:1-4,3", wantErr: "line 3 given twice"},
		{in: "chip0:0-64", wantErr: "more than 64 lines"},
		{in: "chip0:0-4294967295", wantErr: "more than 64 lines"},
		{in: "chip0:0-65535", wantErr: "more than 64 lines"},
		{in: "chip0:1,names=a,b", wantErr: "2 names for 1 lines"},
		{in: "chip0:1-2,names=a,a", wantErr: `both named "a"`},
		{in: "chip0:1,names=\xff", wantErr: "not 7-bit ASCII"},
		{in: "chip0:names=a", wantErr: "not a line number"},
		{in: "chip0:1,names=a,2", wantErr: "2 names for 1 lines"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSpec(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSpec(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", tt.in, err)
			}
			if got.Chip != tt.want.Chip || !slices.Equal(got.Lines, tt.want.Lines) || !slices.Equal(got.Names, tt.want.Names) {
				t.Fatalf("ParseSpec(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func seq(a, b int) []int {
	var s []int
	for i := a; i <= b; i++ {
		s = append(s, i)
	}
	return s
}

func TestSpecString(t *testing.T) {
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{Chip: "chip0", Lines: []int{4, 5, 6, 7}}, "chip0:4-7"},
		{Spec{Chip: "chip0", Lines: []int{1, 4, 5, 6, 9, 8}}, "chip0:1,4-6,9,8"},
		{Spec{Chip: "x", Lines: []int{0}, Names: []string{"a", ""}}, "x:0,names=a,"},
		{Spec{Chip: "x", Lines: []int{0}, Names: []string{""}}, "x:0,names="},
	}
	for _, tt := range tests {
		if got := tt.spec.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

func TestChipPath(t *testing.T) {
	tests := []struct{ chip, want string }{
		{"chip0", "/dev/gpiochip0"},
		{"chip12", "/dev/gpiochip12"},
		{"gpiochip3", "/dev/gpiochip3"},
		{"/dev/gpiochip4", "/dev/gpiochip4"},
		{"/tmp/x", "/tmp/x"},
		{"chip", ""},
		{"gpiochip", ""},
		{"chipx", ""},
		{"chip1a", ""},
		{"chip/../../etc", ""},
		{"pinctrl-bcm2711", ""},
		{"INT34C5:00", ""},
	}
	for _, tt := range tests {
		if got := chipPath(tt.chip); got != tt.want {
			t.Errorf("chipPath(%q) = %q, want %q", tt.chip, got, tt.want)
		}
	}
}

// FuzzParseSpec checks that ParseSpec never panics, that what it accepts
// has 1 to LinesMax distinct offsets in the order given, no more names
// than lines, and survives a round trip through String.
//
//	go test -run '^$' -fuzz FuzzParseSpec -fuzztime 60s ./devices/gpio/cdev
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"chip0:4-7", "chip0:1,4-6", "/dev/gpiochip2:5", "lbl:0-3,names=a,,b",
		"a:b:1", "chip0:7-4", "chip0:1,,2", "chip0:0-64", ":", ",names=", "chip0:1,names=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseSpec(%q): error of more than one line: %q", s, err)
			}
			return
		}
		if spec.Chip == "" || len(spec.Lines) == 0 || len(spec.Lines) > LinesMax || len(spec.Names) > len(spec.Lines) {
			t.Fatalf("ParseSpec(%q) = %+v", s, spec)
		}
		seen := map[int]bool{}
		for _, o := range spec.Lines {
			if o < 0 || seen[o] {
				t.Fatalf("ParseSpec(%q): offsets %v", s, spec.Lines)
			}
			seen[o] = true
		}
		// The offsets keep the order of the list: the first offset of
		// each entry comes after those of the entries before it.
		body, _, _ := strings.Cut(s, ",names=")
		list := body[strings.LastIndexByte(body, ':')+1:]
		at := -1
		for item := range strings.SplitSeq(list, ",") {
			first, _, _ := strings.Cut(item, "-")
			i := slices.Index(spec.Lines, atoi(first))
			if i <= at {
				t.Fatalf("ParseSpec(%q): offsets %v out of the list's order at %q", s, spec.Lines, item)
			}
			at = i
		}
		again, err := ParseSpec(spec.String())
		if err != nil {
			t.Fatalf("ParseSpec(%q) = %+v; its String %q: %v", s, spec, spec.String(), err)
		}
		if again.Chip != spec.Chip || !slices.Equal(again.Lines, spec.Lines) || !slices.Equal(again.Names, spec.Names) {
			t.Fatalf("ParseSpec(%q) = %+v; round trip through %q gives %+v", s, spec, spec.String(), again)
		}
	})
}
