package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Constants of the flattened device tree format (Devicetree Specification
// v0.4, chapter 5; scripts/dtc/libfdt/fdt.h in the kernel sources).
const (
	Magic           = 0xd00dfeed // fdt_header.magic
	Version         = 17         // fdt_header.version written
	LastCompVersion = 16         // fdt_header.last_comp_version written

	tokenBeginNode = 0x1 // FDT_BEGIN_NODE
	tokenEndNode   = 0x2 // FDT_END_NODE
	tokenProp      = 0x3 // FDT_PROP
	tokenEnd       = 0x9 // FDT_END

	headerSize   = 40 // struct fdt_header, ten big-endian u32
	reserveEntry = 16 // struct fdt_reserve_entry, two big-endian u64
	maxNameLen   = 31 // node and property names, not counting "@unit"
	// maxReadNameLen bounds names in trees Parse reads: dtc only warns
	// about names longer than the spec's 31 characters, and real
	// bindings have them ("snps,dis-u2-freeclk-exists-quirk").
	maxReadNameLen = 255
)

// ErrName reports a node or property name that the Devicetree
// Specification does not allow, or a tree that is not well formed.
var ErrName = errors.New("invalid device tree name or structure")

// Writer emits a flattened device tree (DTB, version 17) in one pass, in
// the manner of libfdt's sequential-write mode: BeginNode, that node's
// properties, its child nodes, EndNode; the first node is the root (named
// "") and Finish returns the blob.
//
// The blob has an empty memory reservation block and the same layout dtc
// writes (header, reservation block at offset 40, structure block, strings
// block, no padding), and property names are shared in the strings block
// the way dtc shares them, so a tree decompiled with `dtc -I dtb -O dts`
// and compiled again gives back the same bytes.
//
// The first mistake (an invalid name, a property after a child node,
// unbalanced nodes) is kept and returned by Finish; later calls do
// nothing. Writer never panics.
type Writer struct {
	structure []byte
	strs      []byte
	offsets   map[string]uint32
	// hasChild[i] tells whether the open node at depth i has had a child,
	// after which it may take no more properties.
	hasChild []bool
	roots    int
	err      error
	maxName  int // longest name allowed: maxNameLen, or maxReadNameLen for a read Tree
}

// NewWriter returns a Writer for an empty tree.
func NewWriter() *Writer {
	return &Writer{offsets: make(map[string]uint32), maxName: maxNameLen}
}

func (w *Writer) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("fdt: "+format+": %w", append(args, ErrName)...)
	}
}

func (w *Writer) u32(v uint32) {
	w.structure = binary.BigEndian.AppendUint32(w.structure, v)
}

func (w *Writer) pad() {
	for len(w.structure)%4 != 0 {
		w.structure = append(w.structure, 0)
	}
}

// BeginNode opens a node. The first node must be the root, named ""; every
// other name is node-name[@unit-address] as the Devicetree Specification
// (section 2.2.1) allows.
func (w *Writer) BeginNode(name string) {
	if w.err != nil {
		return
	}
	switch {
	case len(w.hasChild) == 0 && w.roots > 0:
		w.fail("node %q after the root node was closed", name)
		return
	case len(w.hasChild) == 0 && name != "":
		w.fail("root node named %q, want \"\"", name)
		return
	case len(w.hasChild) > 0 && !validNodeName(name, w.maxName):
		w.fail("node name %q", name)
		return
	}
	if len(w.hasChild) == 0 {
		w.roots++
	} else {
		w.hasChild[len(w.hasChild)-1] = true
	}
	w.hasChild = append(w.hasChild, false)
	w.u32(tokenBeginNode)
	w.structure = append(w.structure, name...)
	w.structure = append(w.structure, 0)
	w.pad()
}

// EndNode closes the node opened last.
func (w *Writer) EndNode() {
	if w.err != nil {
		return
	}
	if len(w.hasChild) == 0 {
		w.fail("EndNode without an open node")
		return
	}
	w.hasChild = w.hasChild[:len(w.hasChild)-1]
	w.u32(tokenEndNode)
}

// Property adds a property with a raw value to the open node. Properties
// must come before the node's children.
func (w *Writer) Property(name string, value []byte) {
	if w.err != nil {
		return
	}
	switch {
	case len(w.hasChild) == 0:
		w.fail("property %q outside a node", name)
		return
	case w.hasChild[len(w.hasChild)-1]:
		w.fail("property %q after a child node", name)
		return
	case !validPropertyName(name, w.maxName):
		w.fail("property name %q", name)
		return
	case uint64(len(value)) > math.MaxUint32:
		w.fail("property %q of %d bytes", name, len(value))
		return
	}
	w.u32(tokenProp)
	w.u32(uint32(len(value)))
	w.u32(w.stringOffset(name))
	w.structure = append(w.structure, value...)
	w.pad()
}

// stringOffset returns name's offset in the strings block, adding it if
// needed. Like dtc, it reuses any earlier occurrence of name followed by
// NUL, including the tail of a longer name.
func (w *Writer) stringOffset(name string) uint32 {
	if off, ok := w.offsets[name]; ok {
		return off
	}
	key := append([]byte(name), 0)
	off := bytes.Index(w.strs, key)
	if off < 0 {
		off = len(w.strs)
		w.strs = append(w.strs, key...)
	}
	w.offsets[name] = uint32(off)
	return uint32(off)
}

// PropertyEmpty adds a property without a value (a boolean such as
// "gpio-controller").
func (w *Writer) PropertyEmpty(name string) {
	w.Property(name, nil)
}

// PropertyU32 adds a property of big-endian 32-bit cells, e.g. `reg = <base
// size>` or a phandle reference `gpios = <phandle line flags>`.
func (w *Writer) PropertyU32(name string, cells ...uint32) {
	v := make([]byte, 0, 4*len(cells))
	for _, c := range cells {
		v = binary.BigEndian.AppendUint32(v, c)
	}
	w.Property(name, v)
}

// PropertyString adds a string, or with several values a string list
// (`compatible = "a", "b"`): each NUL-terminated. A value containing NUL
// is an error.
func (w *Writer) PropertyString(name string, values ...string) {
	if w.err != nil {
		return
	}
	n := 0
	for _, s := range values {
		if strings.IndexByte(s, 0) >= 0 {
			w.fail("property %q: string %q contains NUL", name, s)
			return
		}
		n += len(s) + 1
	}
	v := make([]byte, 0, n)
	for _, s := range values {
		v = append(v, s...)
		v = append(v, 0)
	}
	w.Property(name, v)
}

// Finish checks that the root node was written and closed and returns the
// DTB, or the first error met.
func (w *Writer) Finish() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.roots == 0 || len(w.hasChild) != 0 {
		return nil, fmt.Errorf("fdt: %d nodes left open or no root node: %w", len(w.hasChild), ErrName)
	}
	structSize := len(w.structure) + 4 // + FDT_END
	offStruct := headerSize + reserveEntry
	offStrings := offStruct + structSize
	total := offStrings + len(w.strs)
	if uint64(total) > math.MaxUint32 {
		return nil, fmt.Errorf("fdt: tree of %d bytes: %w", total, ErrName)
	}
	b := make([]byte, 0, total)
	for _, v := range [...]uint32{
		Magic,
		uint32(total),
		uint32(offStruct),
		uint32(offStrings),
		headerSize, // off_mem_rsvmap
		Version,
		LastCompVersion,
		0, // boot_cpuid_phys
		uint32(len(w.strs)),
		uint32(structSize),
	} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = append(b, make([]byte, reserveEntry)...) // the terminating {0, 0}
	b = append(b, w.structure...)
	b = binary.BigEndian.AppendUint32(b, tokenEnd)
	b = append(b, w.strs...)
	return b, nil
}

// ValidNodeName reports whether s is a node name the Devicetree
// Specification allows (section 2.2.1): 1 to 31 characters from
// [0-9a-zA-Z,._+-], optionally followed by "@" and a non-empty unit
// address of the same characters.
func ValidNodeName(s string) bool { return validNodeName(s, maxNameLen) }

func validNodeName(s string, max int) bool {
	base, unit, hasUnit := strings.Cut(s, "@")
	if hasUnit && (unit == "" || !allIn(unit, nodeChars)) {
		return false
	}
	return base != "" && len(base) <= max && allIn(base, nodeChars)
}

// ValidPropertyName reports whether s is a property name the Devicetree
// Specification allows (section 2.2.4): 1 to 31 characters from
// [0-9a-zA-Z,._+?#-].
func ValidPropertyName(s string) bool { return validPropertyName(s, maxNameLen) }

func validPropertyName(s string, max int) bool {
	return s != "" && len(s) <= max && allIn(s, propChars)
}

// ValidLabel reports whether s can be a label in dts source (section
// 6.2): a letter or underscore, then letters, digits or underscores, at
// most 31 characters.
func ValidLabel(s string) bool {
	if s == "" || len(s) > maxNameLen || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	return allIn(s, labelChars)
}

const (
	alnum      = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	nodeChars  = alnum + ",._+-"
	propChars  = alnum + ",._+?#-"
	labelChars = alnum + "_"
)

func allIn(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}
