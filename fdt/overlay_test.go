package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvmm/gvmm/internal/dtctest"
)

// machineBase is the machine whose tree is the base of machine.dtso and
// of FuzzApply: labels gpio0, expander, ioapic and poweroff_syscon.
var machineBase = Machine{
	CPUs: 2,
	Virtio: []VirtioMMIO{
		bank(0xd0000000, 16, GPIOController{Lines: 8}),
		bank(0xd0001000, 17, GPIOController{Label: "expander", Lines: 32, NoIRQ: true}),
	},
	LEDs:     []LED{{Label: "status", GPIO: GPIORef{Controller: "gpio0", Line: 0}}},
	PowerOff: &PowerOff{Base: 0xd0100000, Size: 8, Value: 1},
}

func overlayFile(name string) string { return filepath.Join("testdata", "overlay", name) }

// baseDTB returns testdata/overlay/NAME.dts compiled with dtc -@, or for
// "machine" machineBase's tree.
func baseDTB(t testing.TB, name string) []byte {
	t.Helper()
	if name == "machine" {
		b, err := machineBase.DTB()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return dtctest.CompileFile(t, overlayFile(name+".dts"))
}

// overlayCases apply overlays to a base with Apply and with fdtoverlay;
// the trees must be the same but for the order of nodes and properties.
var overlayCases = []struct {
	name     string
	base     string   // for baseDTB
	overlays []string // testdata/overlay/NAME.dtso, applied in order
	// allocate lists the base nodes the first overlay makes Apply give a
	// phandle, in order; fdtoverlay, which fails instead, gets a base
	// where they have them.
	allocate []string
}{
	{"label-target", "base", []string{"label-target"}, nil},
	{"target-path", "base", []string{"target-path"}, nil},
	{"consumer", "base", []string{"consumer"}, nil},
	{"local-fixups", "base", []string{"local-fixups"}, nil},
	{"root-node", "base", []string{"root-node"}, nil},
	{"no-phandle", "base", []string{"no-phandle"}, []string{"/soc/bare@3000"}},
	{"sequence", "base", []string{"first", "second"}, nil},
	// no-phandle first: the reference base has the phandle from the start.
	{"all", "base", []string{"no-phandle", "label-target", "target-path", "consumer", "local-fixups", "root-node", "first", "second"},
		[]string{"/soc/bare@3000"}},
	{"machine", "machine", []string{"machine"}, nil},
	{"machine-twice", "machine", []string{"machine", "machine"}, nil},
	{"unit-name", "machine", []string{"unit-name"}, nil},
}

// TestOverlayMatchesFDTOverlay compares Apply with libfdt's
// fdt_overlay_apply, through fdtoverlay, by dtc's sorted decompilation of
// both results.
func TestOverlayMatchesFDTOverlay(t *testing.T) {
	for _, tc := range overlayCases {
		t.Run(tc.name, func(t *testing.T) {
			base := baseDTB(t, tc.base)
			var ovs [][]byte
			for _, o := range tc.overlays {
				ovs = append(ovs, dtctest.CompileFile(t, overlayFile(o+".dtso")))
			}
			got, err := ApplyOverlays(base, ovs...)
			if err != nil {
				t.Fatal(err)
			}
			ref := base
			if len(tc.allocate) > 0 {
				tr, err := Parse(base)
				if err != nil {
					t.Fatal(err)
				}
				next := maxPhandle(tr.Root)
				for _, path := range tc.allocate {
					next++
					tr.Lookup(path).SetProp("phandle", binary.BigEndian.AppendUint32(nil, next))
				}
				if ref, err = tr.DTB(); err != nil {
					t.Fatal(err)
				}
			}
			want := dtctest.ApplyOverlays(t, ref, ovs...)
			if g, w := dtctest.Sorted(t, got), dtctest.Sorted(t, want); !bytes.Equal(g, w) {
				t.Errorf("Apply and fdtoverlay (%s) disagree.\nApply:\n%s\nfdtoverlay:\n%s", dtctest.Version(t), g, w)
			}

			// Writer's layout: dtc re-encodes the blob to the same bytes.
			in := filepath.Join(t.TempDir(), "got.dtb")
			if err := os.WriteFile(in, got, 0o644); err != nil {
				t.Fatal(err)
			}
			if again := dtctest.Run(t, "-q", "-I", "dtb", "-O", "dtb", in); !bytes.Equal(again, got) {
				t.Error("dtc -I dtb -O dtb changes the result")
			}

			// The base's nodes keep their order, new ones come after.
			bt, _ := Parse(base)
			rt, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range bt.Root.Children {
				if rt.Root.Children[i].Name != c.Name {
					t.Errorf("top-level node %d is %s, was %s", i, rt.Root.Children[i].Name, c.Name)
				}
			}
		})
	}
}

// TestOverlayAllocatesPhandle checks the phandle Apply gives a labelled
// base node without one, and the references to it.
func TestOverlayAllocatesPhandle(t *testing.T) {
	bt, err := Parse(baseDTB(t, "base"))
	if err != nil {
		t.Fatal(err)
	}
	max := maxPhandle(bt.Root)
	ot, err := Parse(dtctest.CompileFile(t, overlayFile("no-phandle.dtso")))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(bt, ot); err != nil {
		t.Fatal(err)
	}
	ph, ok := bt.Lookup("/soc/bare@3000").Prop("phandle").U32()
	if !ok || ph != max+1 {
		t.Errorf("bare@3000 has phandle %d, %v; want %d", ph, ok, max+1)
	}
	if dev, _ := bt.Lookup("/bare-user").Prop("device").U32(); dev != ph {
		t.Errorf("device = <%d>, want <%d>", dev, ph)
	}
}

// TestOverlayKeepsBasePhandle: an overlay node with a phandle (it has a
// label) merging into a base node with one takes the base's, and the
// overlay's references follow, as in dtc 1.7's libfdt
// (overlay_prevent_phandle_overwrite). fdtoverlay 1.6.1 instead
// overwrites the base's phandle, leaving the base's references dangling.
func TestOverlayKeepsBasePhandle(t *testing.T) {
	bt, err := Parse(baseDTB(t, "base"))
	if err != nil {
		t.Fatal(err)
	}
	gpioPH := getPhandle(bt.Lookup("gpio0"))
	ov := compileOverlay(t, `/dts-v1/;
/plugin/;
&{/soc} {
	lbl: gpio@2000 {
		extra;
		sub: sub {
			back = <&lbl>;
		};
	};
};
&{/} {
	ref {
		r = <&lbl 1>, <&sub>;
	};
};
`)
	ot, err := Parse(ov)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(bt, ot); err != nil {
		t.Fatal(err)
	}
	g := bt.Lookup("/soc/gpio@2000")
	if ph := getPhandle(g); ph != gpioPH || g.Prop("extra") == nil {
		t.Errorf("gpio@2000: phandle %d, want %d (extra %v)", ph, gpioPH, g.Prop("extra"))
	}
	subPH := getPhandle(g.Child("sub"))
	if subPH == 0 || subPH == gpioPH {
		t.Errorf("sub's phandle %d", subPH)
	}
	if cells, _ := bt.Lookup("/ref").Prop("r").U32s(); len(cells) != 3 || cells[0] != gpioPH || cells[2] != subPH {
		t.Errorf("r = %v, want [%d 1 %d]", cells, gpioPH, subPH)
	}
	if back, _ := g.Child("sub").Prop("back").U32(); back != gpioPH {
		t.Errorf("back = <%d>, want <%d>", back, gpioPH)
	}
	if led, _ := bt.Lookup("/leds/led-0").Prop("gpios").U32s(); led[0] != gpioPH {
		t.Errorf("led-0 gpios = %v", led)
	}
	if s, _ := bt.Lookup("/__symbols__").Prop("lbl").Text(); s != "/soc/gpio@2000" {
		t.Errorf("symbol lbl = %q", s)
	}
}

// TestApplyLeavesInputs checks that Apply never changes the overlay and
// changes the base only on success.
func TestApplyLeavesInputs(t *testing.T) {
	bt, err := Parse(baseDTB(t, "base"))
	if err != nil {
		t.Fatal(err)
	}
	ot, err := Parse(dtctest.CompileFile(t, overlayFile("local-fixups.dtso")))
	if err != nil {
		t.Fatal(err)
	}
	b0, o0 := bt.Clone(), ot.Clone()
	bad, err := Parse(dtctest.CompileFile(t, overlayFile("machine.dtso"))) // labels the base lacks
	if err != nil {
		t.Fatal(err)
	}
	bad0 := bad.Clone()
	if err := Apply(bt, bad); !errors.Is(err, ErrUnknownLabel) {
		t.Fatalf("Apply(machine.dtso) = %v, want ErrUnknownLabel", err)
	}
	if !equalTrees(bt, b0) || !equalTrees(bad, bad0) {
		t.Error("a failed Apply changed its arguments")
	}
	oldRoot := bt.Root
	if err := Apply(bt, ot); err != nil {
		t.Fatal(err)
	}
	if !equalTrees(ot, o0) {
		t.Error("Apply changed the overlay")
	}
	if equalTrees(bt, b0) || !equalNodes(oldRoot, b0.Root) {
		t.Error("Apply did not replace base.Root, or changed the old nodes")
	}
}

// compileOverlay compiles overlay source with dtc -@.
func compileOverlay(t testing.TB, src string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.dtso")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dtctest.CompileFile(t, path)
}

// frag is a hand-written overlay: fragment@0 targeting / with body in
// __overlay__, then extra (more nodes of the overlay's root).
func frag(body, extra string) string {
	return "/dts-v1/;\n/ {\n\tfragment@0 {\n\t\ttarget-path = \"/\";\n\t\t__overlay__ {\n" + body +
		"\n\t\t};\n\t};\n" + extra + "\n};\n"
}

// badOverlays are hand-written overlays (dts source, compiled without
// -@) that Apply must refuse when applied to base.dts.
var badOverlays = []struct {
	name string
	src  string
	// patch, if set, changes the compiled overlay: dtc refuses to write
	// some bad trees.
	patch func(*Tree)
	want  error
	msg   string
}{
	{"fixup offset outside", frag("n { x = <0>; };", `__fixups__ { gpio0 = "/fragment@0/__overlay__/n:x:4"; };`),
		nil, ErrOverlay, `__fixups__ "gpio0": entry "/fragment@0/__overlay__/n:x:4": offset 4 outside the 4-byte property`},
	{"fixup syntax", frag("n { x = <0>; };", `__fixups__ { gpio0 = "/fragment@0/__overlay__/n:x"; };`),
		nil, ErrOverlay, "want path:property:offset"},
	{"fixup offset not a number", frag("n { x = <0>; };", `__fixups__ { gpio0 = "/fragment@0/__overlay__/n:x:+0"; };`),
		nil, ErrOverlay, "want path:property:offset"},
	{"fixup node missing", frag("n { x = <0>; };", `__fixups__ { gpio0 = "/fragment@0/__overlay__/m:x:0"; };`),
		nil, ErrOverlay, "no node /fragment@0/__overlay__/m in the overlay"},
	{"fixup property missing", frag("n { x = <0>; };", `__fixups__ { gpio0 = "/fragment@0/__overlay__/n:y:0"; };`),
		nil, ErrOverlay, `has no property "y"`},
	{"fixup not strings", frag("n { x = <0>; };", `__fixups__ { gpio0 = <1>; };`),
		nil, ErrOverlay, `__fixups__ "gpio0" is not a list of strings`},
	{"unknown label", frag("n { x = <0>; };", `__fixups__ { nosuch = "/fragment@0/__overlay__/n:x:0"; };`),
		nil, ErrUnknownLabel, `label "nosuch" (__fixups__) is not in the base tree's /__symbols__`},
	{"local fixup outside", frag("n { x = <0>; };", `__local_fixups__ { fragment@0 { __overlay__ { n { x = <2>; }; }; }; };`),
		nil, ErrOverlay, `offset 2 outside the 4-byte property "x"`},
	{"local fixup node missing", frag("n { x = <0>; };", `__local_fixups__ { fragment@0 { __overlay__ { m { x = <0>; }; }; }; };`),
		nil, ErrOverlay, "the overlay has no node /fragment@0/__overlay__/m"},
	{"local fixup property missing", frag("n { x = <0>; };", `__local_fixups__ { fragment@0 { __overlay__ { n { y = <0>; }; }; }; };`),
		nil, ErrOverlay, "the overlay has no property /fragment@0/__overlay__/n:y"},
	{"local fixup odd", frag("n { x = <0>; };", `__local_fixups__ { fragment@0 { __overlay__ { n { x = [00]; }; }; }; };`),
		nil, ErrOverlay, "not a list of offsets"},
	{"no target", "/dts-v1/;\n/ { fragment@0 { __overlay__ { x; }; }; };",
		nil, ErrOverlay, "/fragment@0 has an __overlay__ node but neither target nor target-path"},
	{"target-path not found", "/dts-v1/;\n/ { fragment@0 { target-path = \"/soc/nosuch\"; __overlay__ { x; }; }; };",
		nil, ErrTarget, `/fragment@0: target-path "/soc/nosuch" is not in the base tree`},
	{"target-path unknown alias", "/dts-v1/;\n/ { fragment@0 { target-path = \"serial9\"; __overlay__ { x; }; }; };",
		nil, ErrTarget, `target-path "serial9" is not in the base tree`},
	{"target phandle not found", "/dts-v1/;\n/ { fragment@0 { target = <0x99>; __overlay__ { x; }; }; };",
		nil, ErrTarget, "/fragment@0: target = <0x99>: no base node has that phandle"},
	{"target unresolved", "/dts-v1/;\n/ { fragment@0 { target = <0xffffffff>; __overlay__ { x; }; }; };",
		nil, ErrOverlay, "a reference no __fixups__ entry resolved"},
	{"target two cells", "/dts-v1/;\n/ { fragment@0 { target = <1 2>; __overlay__ { x; }; }; };",
		nil, ErrOverlay, "want one phandle cell"},
	{"target-path not a string", "/dts-v1/;\n/ { fragment@0 { target-path = <1>; __overlay__ { x; }; }; };",
		nil, ErrOverlay, "not a string"},
	{"phandle clash", frag("n { phandle = <1>; };", `__fixups__ { gpio0 = "/fragment@0/__overlay__/n:phandle:0"; };`),
		nil, ErrPhandle, "the result gives phandle 0x1 to both /soc/gpio@2000 and /n"},
	{"phandle of two cells", frag("n { phandle = <1>; };", ""),
		func(t *Tree) {
			t.Lookup("/fragment@0/__overlay__/n").SetProp("phandle", []byte{0, 0, 0, 1, 0, 0, 0, 2})
		},
		ErrPhandle, "/fragment@0/__overlay__/n: phandle = <0x1 0x2>, want one cell"},
	{"phandle 0", frag("n { linux,phandle = <1>; };", ""),
		func(t *Tree) { t.Lookup("/fragment@0/__overlay__/n").SetProp("linux,phandle", []byte{0, 0, 0, 0}) },
		ErrPhandle, "linux,phandle = <0x0>"},
	{"no fragments", "/dts-v1/;\n/ { compatible = \"x\"; node { }; };",
		nil, ErrOverlay, "no fragments (no child of / has an __overlay__ node): not an overlay"},
	{"reservations", "/dts-v1/;\n/memreserve/ 0x1000 0x1000;\n" + frag("", "")[len("/dts-v1/;\n"):],
		nil, ErrOverlay, "overlay has 1 memory reservations"},
	{"symbol not a path", frag("", `__symbols__ { s = "fragment@0/__overlay__"; };`),
		nil, ErrOverlay, `/__symbols__: s = "fragment@0/__overlay__", want a path`},
	{"symbol not a string", frag("", `__symbols__ { s = <1>; };`),
		nil, ErrOverlay, `/__symbols__: s = <0x1>, want a path`},
	{"symbol in no fragment", frag("", `__symbols__ { s = "/fragment@9/__overlay__/x"; };`),
		nil, ErrOverlay, "no fragment /fragment@9"},
}

// compileBad compiles a badOverlays source and applies its patch.
func compileBad(t testing.TB, src string, patch func(*Tree)) []byte {
	t.Helper()
	b := dtctest.CompileDTS(t, []byte(src))
	if patch == nil {
		return b
	}
	tr, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	patch(tr)
	if b, err = tr.DTB(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestApplyErrors checks each error, through ApplyOverlays: sentinel,
// one-line message, index.
func TestApplyErrors(t *testing.T) {
	base := baseDTB(t, "base")
	good := dtctest.CompileFile(t, overlayFile("consumer.dtso"))
	check := func(t *testing.T, base []byte, ovs [][]byte, want error, msg string) {
		t.Helper()
		out, err := ApplyOverlays(base, ovs...)
		if !errors.Is(err, want) || out != nil {
			t.Fatalf("ApplyOverlays() = %d bytes, %v; want %v", len(out), err, want)
		}
		var oe *OverlayError
		if !errors.As(err, &oe) || oe.Index != len(ovs)-1 || oe.Count != len(ovs) {
			t.Fatalf("error %v: want an *OverlayError for overlay %d", err, len(ovs)-1)
		}
		if !strings.Contains(err.Error(), msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q, want one line containing %q", err, msg)
		}
	}
	for _, tc := range badOverlays {
		t.Run(tc.name, func(t *testing.T) {
			ov := compileBad(t, tc.src, tc.patch)
			check(t, base, [][]byte{good, ov}, tc.want, tc.msg)
		})
	}
	plugin := func(src string) []byte { return compileOverlay(t, "/dts-v1/;\n/plugin/;\n"+src) }
	noSymbols := dtctest.CompileDTS(t, []byte("/dts-v1/;\n/ { gpio { }; };"))
	ghost := dtctest.CompileDTS(t, []byte(`/dts-v1/; / { __symbols__ { gpio0 = "/nothing"; }; };`))
	badPH := compileBad(t, `/dts-v1/; / { g { phandle = <1>; }; __symbols__ { gpio0 = "/g"; }; };`,
		func(t *Tree) { t.Lookup("/g").SetProp("phandle", []byte{0, 0, 0, 1, 0, 0, 0, 2}) })
	full := dtctest.CompileDTS(t, []byte(`/dts-v1/; / { g { phandle = <0xfffffffe>; }; __symbols__ { gpio0 = "/g"; s = "/s"; }; s { }; };`))
	for _, tc := range []struct {
		name string
		base []byte
		ovs  [][]byte
		want error
		msg  string
	}{
		{"not a DTB", base, [][]byte{[]byte("/dts-v1/;")}, ErrNotDTB, "fdt: overlay: magic 0x2f647473"},
		{"truncated", base, [][]byte{good, good[:100]}, ErrTruncated, "fdt: overlay 2 of 2: totalsize"},
		{"no __symbols__", noSymbols, [][]byte{plugin("&gpio0 { x; };")}, ErrNoSymbols,
			`__fixups__ refers to label "gpio0" but the base tree has no /__symbols__ (compile it with dtc -@)`},
		{"unknown label", base, [][]byte{plugin("&{/} { n { g = <&gpio0 1 0>, <&nosuch 2>; }; };")}, ErrUnknownLabel,
			`fdt: overlay: label "nosuch" (__fixups__) is not in the base tree's /__symbols__ (it has bare, uart0, gpio0): unknown label`},
		{"label path missing", ghost, [][]byte{plugin("&gpio0 { x; };")}, ErrUnknownLabel,
			`label "gpio0": its path "/nothing" is not in the base tree`},
		{"base phandle malformed", badPH, [][]byte{plugin("&gpio0 { x; };")}, ErrPhandle,
			"/g: phandle = <0x1 0x2>, want one cell"},
		{"phandle overflow", full, [][]byte{plugin("&{/} { a: n { }; m { r = <&a>; }; };")}, ErrPhandle,
			"phandle 0x1 + 0xfffffffe (the base's largest) overflows"},
		{"no phandle left", full, [][]byte{plugin("&s { x; };")}, ErrPhandle, `label "s": no phandle left to give /s`},
		{"base not a DTB", nil, [][]byte{good}, ErrNotDTB, "fdt: base tree: 0 bytes, no magic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.base == nil {
				_, err := ApplyOverlays(nil, good)
				if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), tc.msg) {
					t.Errorf("ApplyOverlays(nil) = %v", err)
				}
				return
			}
			check(t, tc.base, tc.ovs, tc.want, tc.msg)
		})
	}
}

// TestApplyDepth: a result nested deeper than MaxDepth is refused.
func TestApplyDepth(t *testing.T) {
	chain := func(n int) *Node {
		root := &Node{Name: "c"}
		for last := root; n > 1; n-- {
			c := &Node{Name: "c"}
			last.Children = []*Node{c}
			last = c
		}
		return root
	}
	base := &Tree{Root: &Node{Children: []*Node{chain(40)}}}
	ov := &Tree{Root: &Node{Children: []*Node{{Name: "fragment@0",
		Props:    []Property{{Name: "target-path", Value: []byte(strings.Repeat("/c", 40) + "\x00")}},
		Children: []*Node{{Name: "__overlay__", Children: []*Node{chain(30)}}},
	}}}}
	err := Apply(base, ov)
	if !errors.Is(err, ErrOverlay) || !strings.Contains(err.Error(), "result: /c/c/") || !strings.Contains(err.Error(), "nested deeper than 64") {
		t.Errorf("Apply() = %v", err)
	}

	// A node that is its own child is no tree.
	loop := &Node{Name: "loop"}
	loop.Children = []*Node{loop}
	err = Apply(&Tree{Root: &Node{Children: []*Node{loop}}}, ov)
	if !errors.Is(err, ErrOverlay) || !strings.Contains(err.Error(), "base tree: /loop/loop/") {
		t.Errorf("Apply(cycle) = %v", err)
	}
}

// compiledTestdata compiles every .dts and .dtso under testdata/overlay
// (overlays only if overlaysOnly), for fuzz seeds.
func compiledTestdata(t testing.TB, overlaysOnly bool) [][]byte {
	var out [][]byte
	files, err := filepath.Glob(overlayFile("*.dts*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/overlay files (%v)", err)
	}
	for _, f := range files {
		if !overlaysOnly || strings.HasSuffix(f, ".dtso") {
			out = append(out, dtctest.CompileFile(t, f))
		}
	}
	for _, tc := range badOverlays {
		out = append(out, compileBad(t, tc.src, tc.patch))
	}
	return out
}

// FuzzApply applies fuzzed overlays to machineBase's tree: no panic; a
// failure leaves the base unchanged, a success gives a tree that DTB
// writes and Parse reads back; the overlay never changes.
func FuzzApply(f *testing.F) {
	base, err := machineBase.DTB()
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range compiledTestdata(f, true) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ot, err := Parse(b)
		if err != nil {
			return
		}
		bt, err := Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		b0, o0 := bt.Clone(), ot.Clone()
		err = Apply(bt, ot)
		if !equalTrees(ot, o0) {
			t.Fatal("Apply changed the overlay")
		}
		if err != nil {
			if !errors.Is(err, ErrOverlay) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: not ErrOverlay or not one line", err)
			}
			if !equalTrees(bt, b0) {
				t.Fatal("a failed Apply changed the base")
			}
			return
		}
		out, err := bt.DTB()
		if err != nil {
			t.Fatalf("DTB() of the result: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(DTB()) of the result: %v", err)
		}
		if !equalTrees(again, bt) {
			t.Fatal("the result does not read back")
		}
	})
}
