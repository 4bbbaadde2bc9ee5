package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/gvmm/gvmm/internal/dtctest"
)

func TestWriterMatchesDTC(t *testing.T) {
	w := NewWriter()
	w.BeginNode("")
	w.PropertyU32("#address-cells", 1)
	w.PropertyU32("#size-cells", 1)
	w.PropertyString("compatible", "vendor,board", "vendor,soc")
	w.BeginNode("node@1000")
	w.PropertyU32("reg", 0x1000, 0x10)
	w.PropertyEmpty("flag")
	w.PropertyU32("size-cells", 2) // shares "#size-cells"'s tail in the strings block, as dtc does
	w.Property("bytes", []byte{1, 2, 3})
	w.PropertyString("empty", "")
	w.EndNode()
	w.BeginNode("other")
	w.EndNode()
	w.EndNode()
	got, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	want := dtctest.CompileDTS(t, []byte(`/dts-v1/;
/ {
	#address-cells = <1>;
	#size-cells = <1>;
	compatible = "vendor,board", "vendor,soc";
	node@1000 {
		reg = <0x1000 0x10>;
		flag;
		size-cells = <2>;
		bytes = [01 02 03];
		empty = "";
	};
	other {
	};
};
`))
	if !bytes.Equal(got, want) {
		t.Errorf("Writer and dtc disagree:\nWriter %x\ndtc    %x", got, want)
	}
	dtctest.CheckDTB(t, got)

	be := binary.BigEndian
	for _, f := range []struct {
		name      string
		off, want uint32
	}{
		{"magic", 0, Magic},
		{"totalsize", 4, uint32(len(got))},
		{"off_mem_rsvmap", 16, 40},
		{"version", 20, 17},
		{"last_comp_version", 24, 16},
	} {
		if v := be.Uint32(got[f.off:]); v != f.want {
			t.Errorf("header %s = %#x, want %#x", f.name, v, f.want)
		}
	}
	// "size-cells" is the tail of "#size-cells": one copy in the strings block.
	strs := got[be.Uint32(got[12:]):]
	if n := bytes.Count(strs, []byte("size-cells\x00")); n != 1 {
		t.Errorf("strings block holds size-cells %d times, want 1: %q", n, strs)
	}
}

func TestWriterErrors(t *testing.T) {
	long := strings.Repeat("a", 32)
	for _, tc := range []struct {
		name  string
		build func(w *Writer)
	}{
		{"no root", func(w *Writer) {}},
		{"root with a name", func(w *Writer) { w.BeginNode("root"); w.EndNode() }},
		{"unclosed root", func(w *Writer) { w.BeginNode("") }},
		{"two roots", func(w *Writer) { w.BeginNode(""); w.EndNode(); w.BeginNode(""); w.EndNode() }},
		{"extra EndNode", func(w *Writer) { w.BeginNode(""); w.EndNode(); w.EndNode() }},
		{"property outside a node", func(w *Writer) { w.PropertyEmpty("x"); w.BeginNode(""); w.EndNode() }},
		{"property after a child", func(w *Writer) {
			w.BeginNode("")
			w.BeginNode("a")
			w.EndNode()
			w.PropertyEmpty("late")
			w.EndNode()
		}},
		{"space in node name", func(w *Writer) { w.BeginNode(""); w.BeginNode("a b"); w.EndNode(); w.EndNode() }},
		{"empty node name", func(w *Writer) { w.BeginNode(""); w.BeginNode(""); w.EndNode(); w.EndNode() }},
		{"empty unit address", func(w *Writer) { w.BeginNode(""); w.BeginNode("a@"); w.EndNode(); w.EndNode() }},
		{"two @", func(w *Writer) { w.BeginNode(""); w.BeginNode("a@1@2"); w.EndNode(); w.EndNode() }},
		{"long node name", func(w *Writer) { w.BeginNode(""); w.BeginNode(long); w.EndNode(); w.EndNode() }},
		{"bad property name", func(w *Writer) { w.BeginNode(""); w.PropertyEmpty("a/b"); w.EndNode() }},
		{"long property name", func(w *Writer) { w.BeginNode(""); w.PropertyEmpty(long); w.EndNode() }},
		{"NUL in string", func(w *Writer) { w.BeginNode(""); w.PropertyString("s", "a\x00b"); w.EndNode() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter()
			tc.build(w)
			b, err := w.Finish()
			if !errors.Is(err, ErrName) || b != nil {
				t.Errorf("Finish() = %d bytes, %v; want nil, ErrName", len(b), err)
			}
		})
	}
}

func TestWriterKeepsFirstError(t *testing.T) {
	w := NewWriter()
	w.BeginNode("")
	w.BeginNode("bad name")
	w.PropertyEmpty("bad/prop")
	w.EndNode()
	w.EndNode()
	_, err := w.Finish()
	if err == nil || !strings.Contains(err.Error(), `"bad name"`) {
		t.Errorf("Finish() = %v, want the error about the first bad name", err)
	}
}

func TestValidNames(t *testing.T) {
	for _, tc := range []struct {
		s                 string
		node, prop, label bool
	}{
		{"gpio", true, true, true},
		{"virtio@d0000000", true, false, false},
		{"cpu@0", true, false, false},
		{"__symbols__", true, true, true},
		{"#gpio-cells", false, true, false},
		{"linux,code", true, true, false},
		{"gpio0", true, true, true},
		{"0gpio", true, true, false},
		{"", false, false, false},
		{"a b", false, false, false},
		{"a@", false, false, false},
		{"é", false, false, false},
		{strings.Repeat("x", 31), true, true, true},
		{strings.Repeat("x", 32), false, false, false},
	} {
		if got := ValidNodeName(tc.s); got != tc.node {
			t.Errorf("ValidNodeName(%q) = %v", tc.s, got)
		}
		if got := ValidPropertyName(tc.s); got != tc.prop {
			t.Errorf("ValidPropertyName(%q) = %v", tc.s, got)
		}
		if got := ValidLabel(tc.s); got != tc.label {
			t.Errorf("ValidLabel(%q) = %v", tc.s, got)
		}
	}
}
