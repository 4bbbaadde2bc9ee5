package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvmm/gvmm/internal/dtctest"
)

// TestParseRoundTrip checks that Parse then DTB gives back the very bytes
// of each golden machine's tree.
func TestParseRoundTrip(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			dtb, err := g.m.DTB()
			if err != nil {
				t.Fatal(err)
			}
			tr, err := Parse(dtb)
			if err != nil {
				t.Fatal(err)
			}
			again, err := tr.DTB()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, dtb) {
				t.Errorf("Parse(DTB()).DTB() differs:\ngot  %x\nwant %x", again, dtb)
			}
		})
	}
}

// TestParseDTC parses what dtc writes: a reservation, boot_cpuid_phys,
// version 16 and 17, and checks that DTB gives dtc's bytes back.
func TestParseDTC(t *testing.T) {
	src := filepath.Join("testdata", "overlay", "base.dts")
	v17 := dtctest.Run(t, "-q", "-@", "-b", "3", "-I", "dts", "-O", "dtb", src)
	v16 := dtctest.Run(t, "-q", "-@", "-b", "3", "-V", "16", "-I", "dts", "-O", "dtb", src)
	tr, err := Parse(v17)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Reservation{{0x10000000, 0x1000}}; fmt.Sprint(tr.Reserved) != fmt.Sprint(want) || tr.BootCPU != 3 {
		t.Errorf("Reserved %v, BootCPU %d; want %v, 3", tr.Reserved, tr.BootCPU, want)
	}
	out, err := tr.DTB()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, v17) {
		t.Errorf("DTB() differs from dtc's blob:\ngot  %x\nwant %x", out, v17)
	}
	if binary.BigEndian.Uint32(v16[20:]) != 16 {
		t.Fatalf("dtc -V 16 wrote version %d", binary.BigEndian.Uint32(v16[20:]))
	}
	tr16, err := Parse(v16)
	if err != nil {
		t.Fatal(err)
	}
	if !equalTrees(tr, tr16) {
		t.Error("version 16 and 17 blobs parse to different trees")
	}

	// Accessors, on the same tree.
	if n := tr.Lookup("/soc/gpio@2000"); n == nil || n.Name != "gpio@2000" {
		t.Errorf("Lookup(/soc/gpio@2000) = %v", n)
	}
	for path, want := range map[string]string{
		"/soc/gpio":          "gpio@2000", // no unit address: libfdt's match
		"//soc//uart@1000/":  "uart@1000",
		"serial0":            "uart@1000", // alias
		"gpio0":              "gpio@2000", // label
		"/":                  "",
		"/soc/gpio@2001":     "-",
		"nosuch/x":           "-",
		"/leds/led-0/absent": "-",
	} {
		got := "-"
		if n := tr.Lookup(path); n != nil {
			got = n.Name
		}
		if got != want {
			t.Errorf("Lookup(%q) = %q, want %q", path, got, want)
		}
	}
	soc := tr.Root.Child("soc")
	if soc == nil || soc.Child("gpio") != nil || soc.Child("gpio@2000") == nil {
		t.Fatal("Child: want exact names")
	}
	if v, ok := soc.Child("gpio@2000").Prop("#gpio-cells").U32(); !ok || v != 2 {
		t.Errorf("#gpio-cells = %d, %v", v, ok)
	}
	if v, ok := soc.Child("uart@1000").Prop("reg").U32s(); !ok || fmt.Sprint(v) != "[4096 256]" {
		t.Errorf("reg = %v, %v", v, ok)
	}
	if s, ok := soc.Prop("compatible").Text(); !ok || s != "simple-bus" {
		t.Errorf("compatible = %q, %v", s, ok)
	}
	if s, ok := tr.Root.Prop("compatible").Strings(); !ok || fmt.Sprint(s) != "[test,base]" {
		t.Errorf("compatible = %q, %v", s, ok)
	}
	if _, ok := soc.Prop("ranges").Text(); ok {
		t.Error("an empty property is a string")
	}
	if soc.Prop("nosuch") != nil {
		t.Error("Prop(nosuch) != nil")
	}
}

// TestParseNOP checks that FDT_NOP tokens, which libfdt leaves where it
// deletes things, are skipped.
func TestParseNOP(t *testing.T) {
	var s tokens
	s.nop().begin("").nop().prop(0, 1, 2, 3, 4).nop().begin("a").nop().end().nop().end().nop().u32(tokenEnd)
	tr, err := Parse(blob(s.b, []byte("x\x00")))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Root.Props) != 1 || tr.Root.Props[0].Name != "x" || len(tr.Root.Children) != 1 {
		t.Errorf("got %+v", tr.Root)
	}
}

// tokens builds a structure block.
type tokens struct{ b []byte }

func (s *tokens) u32(v ...uint32) *tokens {
	for _, x := range v {
		s.b = binary.BigEndian.AppendUint32(s.b, x)
	}
	return s
}
func (s *tokens) nop() *tokens { return s.u32(tokenNop) }
func (s *tokens) end() *tokens { return s.u32(tokenEndNode) }
func (s *tokens) begin(name string) *tokens {
	s.u32(tokenBeginNode)
	s.b = append(s.b, name...)
	s.b = append(s.b, 0)
	for len(s.b)%4 != 0 {
		s.b = append(s.b, 0)
	}
	return s
}

// prop adds a property whose name is at nameOff in the strings block.
func (s *tokens) prop(nameOff uint32, value ...byte) *tokens {
	s.u32(tokenProp, uint32(len(value)), nameOff)
	s.b = append(s.b, value...)
	for len(s.b)%4 != 0 {
		s.b = append(s.b, 0)
	}
	return s
}

// blob wraps a structure block and a strings block in a version 17 header,
// in dtc's layout.
func blob(structure, strs []byte) []byte {
	offStruct := headerSize + reserveEntry
	offStrings := offStruct + len(structure)
	total := offStrings + len(strs)
	var b []byte
	for _, v := range []int{Magic, total, offStruct, offStrings, headerSize, 17, 16, 0, len(strs), len(structure)} {
		b = binary.BigEndian.AppendUint32(b, uint32(v))
	}
	b = append(b, make([]byte, reserveEntry)...)
	b = append(b, structure...)
	return append(b, strs...)
}

// parseError is a blob Parse must refuse, with the sentinel and part of
// the message.
type parseError struct {
	name string
	b    []byte
	want error
	msg  string
}

// parseErrors returns the cases of TestParseErrors (also FuzzParse
// seeds) and the valid blob they are variations of.
func parseErrors() (valid []byte, cases []parseError) {
	good := func() *tokens { return new(tokens).begin("").prop(0, 1) }
	strs := []byte("x\x00y\x00")
	ok := blob(good().end().u32(tokenEnd).b, strs)
	header := func(field int, v uint32) []byte {
		b := bytes.Clone(ok)
		binary.BigEndian.PutUint32(b[4*field:], v)
		return b
	}
	deep := new(tokens).begin("")
	for i := 1; i <= MaxDepth; i++ {
		deep.begin("n")
	}
	for i := 0; i <= MaxDepth; i++ {
		deep.end()
	}
	deep.u32(tokenEnd)
	return ok, []parseError{
		{"empty", nil, ErrNotDTB, "0 bytes, no magic"},
		{"text", []byte("/dts-v1/; / { };"), ErrNotDTB, "magic 0x2f647473"},
		{"short header", ok[:20], ErrTruncated, "less than a header"},
		{"truncated", ok[:len(ok)-1], ErrTruncated, "totalsize"},
		{"version 3", header(5, 3), ErrNotDTB, "version 3"},
		{"last compatible 18", header(6, 18), ErrNotDTB, "last compatible version 18"},
		{"totalsize below header", header(1, 8), ErrMalformed, "less than the 40-byte header"},
		{"struct outside", header(9, 0x1000), ErrTruncated, "structure block"},
		{"struct in header", header(2, 4), ErrTruncated, "structure block"},
		{"struct misaligned", header(2, headerSize+reserveEntry+2), ErrMalformed, "not 4-byte aligned"},
		{"strings outside", header(8, 0x1000), ErrTruncated, "strings block"},
		{"rsvmap misaligned", header(4, 44), ErrMalformed, "memory reservation block at 0x2c, not 8-byte aligned"},
		{"rsvmap unterminated", func() []byte {
			b := bytes.Clone(ok)
			binary.BigEndian.PutUint32(b[16:], uint32(len(b)-8)&^7)
			return b
		}(), ErrTruncated, "without its {0, 0} entry"},
		{"no FDT_END", blob(good().end().b, strs), ErrMalformed, "without FDT_END"},
		{"unknown token", blob(good().u32(7).end().u32(tokenEnd).b, strs), ErrMalformed, "unknown token 0x7"},
		{"open node at FDT_END", blob(good().u32(tokenEnd).b, strs), ErrMalformed, "FDT_END with 1 nodes open"},
		{"FDT_END first", blob(new(tokens).u32(tokenEnd).b, strs), ErrMalformed, "FDT_END before the root node"},
		{"extra FDT_END_NODE", blob(good().end().end().u32(tokenEnd).b, strs), ErrMalformed, "FDT_END_NODE outside a node"},
		{"property outside", blob(new(tokens).prop(0).b, strs), ErrMalformed, "property outside a node"},
		{"two roots", blob(good().end().begin("").end().u32(tokenEnd).b, strs), ErrMalformed, "second root node"},
		{"named root", blob(new(tokens).begin("root").end().u32(tokenEnd).b, strs), ErrMalformed, `root node named "root"`},
		{"name offset outside", blob(good().prop(9).end().u32(tokenEnd).b, strs), ErrMalformed, "name offset 0x9 outside"},
		{"name not terminated", blob(good().prop(0).end().u32(tokenEnd).b, []byte("xyz")), ErrMalformed, "not NUL-terminated"},
		{"bad property name", blob(good().prop(0).end().u32(tokenEnd).b, []byte("a b\x00")), ErrMalformed, `property name "a b"`},
		{"empty property name", blob(good().prop(1).end().u32(tokenEnd).b, strs), ErrMalformed, `property name ""`},
		{"duplicate property", blob(good().prop(0).end().u32(tokenEnd).b, strs), ErrMalformed, `second property named "x"`},
		{"property after child", blob(good().begin("a").end().prop(2).end().u32(tokenEnd).b, strs), ErrMalformed, `property "y" after a child node`},
		{"value past end", blob(new(tokens).begin("").u32(tokenProp, 100, 0).b, strs), ErrMalformed, "value of 100 bytes runs past"},
		{"property header past end", blob(new(tokens).begin("").u32(tokenProp, 0).b, strs), ErrMalformed, "property header runs past"},
		{"node name not terminated", blob(append(new(tokens).begin("").u32(tokenBeginNode).b, 'a', 'b', 'c', 'd'), strs), ErrMalformed, "node name not NUL-terminated"},
		{"bad node name", blob(good().begin("a b").end().end().u32(tokenEnd).b, strs), ErrMalformed, `node name "a b"`},
		{"empty node name", blob(good().begin("").end().end().u32(tokenEnd).b, strs), ErrMalformed, `node name ""`},
		{"long node name", blob(good().begin(strings.Repeat("n", 256)).end().end().u32(tokenEnd).b, strs), ErrMalformed, "node name"},
		{"duplicate node", blob(good().begin("a").end().begin("a").end().end().u32(tokenEnd).b, strs), ErrMalformed, `second node named "a"`},
		{"too deep", blob(deep.b, strs), ErrMalformed, "nested deeper than 64"},
	}
}

func TestParseErrors(t *testing.T) {
	ok, cases := parseErrors()
	if _, err := Parse(ok); err != nil {
		t.Fatalf("the valid blob: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Parse(tc.b)
			if !errors.Is(err, tc.want) || tr != nil {
				t.Fatalf("Parse() = %v, %v; want %v", tr, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line containing %q", err, tc.msg)
			}
		})
	}
}

func TestDTBErrors(t *testing.T) {
	deep := &Node{}
	n := deep
	for i := 1; i <= MaxDepth; i++ {
		c := &Node{Name: "n"}
		n.Children = []*Node{c}
		n = c
	}
	for _, tc := range []struct {
		name string
		t    *Tree
		msg  string
	}{
		{"nil tree", nil, "without a root"},
		{"no root", &Tree{}, "without a root"},
		{"named root", &Tree{Root: &Node{Name: "r"}}, `root node named "r"`},
		{"duplicate property", &Tree{Root: &Node{Props: []Property{{Name: "a"}, {Name: "a"}}}}, `two properties named "a"`},
		{"duplicate node", &Tree{Root: &Node{Children: []*Node{{Name: "a"}, {Name: "a"}}}}, `two nodes named "a"`},
		{"nil node", &Tree{Root: &Node{Children: []*Node{nil}}}, "nil child"},
		{"bad name", &Tree{Root: &Node{Children: []*Node{{Name: "a/b"}}}}, `node name "a/b"`},
		{"too deep", &Tree{Root: deep}, "nested deeper than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.t.DTB()
			if !errors.Is(err, ErrName) || b != nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("DTB() = %d bytes, %v; want ErrName containing %q", len(b), err, tc.msg)
			}
		})
	}
	// One level less is fine.
	deep.Children[0] = deep.Children[0].Children[0]
	if _, err := (&Tree{Root: deep}).DTB(); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
}

// equalTrees compares trees, order included.
func equalTrees(a, b *Tree) bool {
	if fmt.Sprint(a.Reserved) != fmt.Sprint(b.Reserved) || a.BootCPU != b.BootCPU {
		return false
	}
	return equalNodes(a.Root, b.Root)
}

func equalNodes(a, b *Node) bool {
	if a.Name != b.Name || len(a.Props) != len(b.Props) || len(a.Children) != len(b.Children) {
		return false
	}
	for i, p := range a.Props {
		if p.Name != b.Props[i].Name || !bytes.Equal(p.Value, b.Props[i].Value) {
			return false
		}
	}
	for i, c := range a.Children {
		if !equalNodes(c, b.Children[i]) {
			return false
		}
	}
	return true
}

// FuzzParse: Parse never panics, and whatever it accepts DTB writes and
// Parse reads back as the same tree, DTB then giving the same bytes.
func FuzzParse(f *testing.F) {
	for _, g := range goldens {
		dtb, err := g.m.DTB()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(dtb)
	}
	for _, b := range compiledTestdata(f, false) {
		f.Add(b)
	}
	ok, cases := parseErrors()
	f.Add(ok)
	for _, tc := range cases {
		f.Add(tc.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := Parse(b)
		if err != nil {
			if tr != nil {
				t.Fatal("a tree and an error")
			}
			return
		}
		out, err := tr.DTB()
		if err != nil {
			t.Fatalf("DTB() of a parsed tree: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(DTB()): %v", err)
		}
		if !equalTrees(tr, again) {
			t.Fatal("Parse(DTB()) differs from the tree")
		}
		if out2, err := again.DTB(); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("second DTB() differs (%v)", err)
		}
	})
}

// Names longer than the spec's 31 characters, which dtc only warns about
// and real bindings use, parse and round-trip; an overlay with one
// applies.
func TestLongNames(t *testing.T) {
	const prop = "snps,dis-u2-freeclk-exists-quirk" // 32 characters, a dwc3 binding
	base, err := (&Machine{CPUs: 1, Virtio: []VirtioMMIO{{Base: 0xd0000000, Pin: 16, GPIO: &GPIOController{Lines: 8}}}}).DTB()
	if err != nil {
		t.Fatal(err)
	}
	ov := dtctest.CompileDTS(t, []byte("/dts-v1/; /plugin/; &gpio0 { "+prop+"; };"))
	out, err := ApplyOverlays(base, ov)
	if err != nil {
		t.Fatalf("ApplyOverlays: %v", err)
	}
	tr, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Lookup("/virtio@d0000000/gpio").Prop(prop) == nil {
		t.Errorf("no %s in the result", prop)
	}
	dtctest.CheckDTB(t, out)
}
