package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Errors returned by Parse, wrapped with the cause; test them with
// errors.Is.
var (
	// ErrNotDTB: the bytes do not start with the FDT magic, or the
	// header's version cannot be read as 16 or 17.
	ErrNotDTB = errors.New("not a device tree blob")
	// ErrTruncated: the header or a block it points to lies beyond the
	// end of the input.
	ErrTruncated = errors.New("truncated device tree blob")
	// ErrMalformed: a misaligned block, an unknown token, a name that is
	// not NUL-terminated or not one the Devicetree Specification allows,
	// a duplicate name, nodes nested deeper than MaxDepth, no FDT_END.
	ErrMalformed = errors.New("malformed device tree blob")
)

const (
	tokenNop = 0x4 // FDT_NOP

	v16HeaderSize = 36 // struct fdt_header up to size_dt_strings

	// MaxDepth is the deepest nesting of nodes Parse accepts and
	// Tree.DTB writes, the root counting as 1. dtc, libfdt and the kernel
	// have no fixed limit; gvmm's own trees are 3 deep.
	MaxDepth = 64
)

// Tree is a device tree in memory, as Parse reads it and Tree.DTB writes
// it.
type Tree struct {
	// Root is the root node, named "".
	Root *Node
	// Reserved lists the memory reservation block's entries
	// (/memreserve/ in dts), in order, without the terminating {0, 0}.
	// gvmm's trees have none.
	Reserved []Reservation
	// BootCPU is the header's boot_cpuid_phys.
	BootCPU uint32
}

// Reservation is one entry of the memory reservation block.
type Reservation struct {
	Address, Size uint64
}

// Node is a device tree node. Props and Children keep the order of the
// blob; names are unique among a node's properties and among its
// children.
type Node struct {
	// Name is node-name[@unit-address]; "" for the root.
	Name     string
	Props    []Property
	Children []*Node
}

// Property is a property of a node: a name and a raw value (big-endian
// cells, NUL-terminated strings, bytes, or nothing for a boolean).
type Property struct {
	Name  string
	Value []byte
}

// Parse reads a flattened device tree blob of format version 16 or 17
// (any later version whose last_comp_version is 16 or 17 too). It checks
// the header (magic, totalsize no more than len(b), every block inside
// totalsize and aligned), each token, every name (NUL-terminated, of the
// characters ValidNodeName or ValidPropertyName accepts, and at most 255
// long: dtc only warns about names past the spec's 31, and real bindings
// have them),
// that property names lie in the strings block, that properties come
// before a node's children and that no name repeats in a node, nesting
// depth (at most MaxDepth) and the final FDT_END. FDT_NOP tokens are
// skipped. Bytes past totalsize are ignored.
//
// The Tree does not share memory with b. Parse never panics, and the
// memory it allocates is proportional to len(b).
func Parse(b []byte) (*Tree, error) {
	be := binary.BigEndian
	if len(b) < 4 {
		return nil, fmt.Errorf("fdt: %d bytes, no magic: %w", len(b), ErrNotDTB)
	}
	if m := be.Uint32(b); m != Magic {
		return nil, fmt.Errorf("fdt: magic %#x, want %#x: %w", m, uint32(Magic), ErrNotDTB)
	}
	if len(b) < v16HeaderSize {
		return nil, fmt.Errorf("fdt: %d bytes, less than a header: %w", len(b), ErrTruncated)
	}
	hdr := func(i int) uint32 { return be.Uint32(b[4*i:]) }
	total, offStruct, offStrings, offRsv := hdr(1), hdr(2), hdr(3), hdr(4)
	version, lastComp, bootCPU, sizeStrings := hdr(5), hdr(6), hdr(7), hdr(8)
	if version < LastCompVersion || lastComp > Version || lastComp > version {
		return nil, fmt.Errorf("fdt: version %d, last compatible version %d; want a tree readable as version 16 or 17: %w",
			version, lastComp, ErrNotDTB)
	}
	hsize := uint32(v16HeaderSize)
	if version >= 17 {
		hsize = headerSize
		if len(b) < headerSize {
			return nil, fmt.Errorf("fdt: %d bytes, less than a version %d header: %w", len(b), version, ErrTruncated)
		}
	}
	if total < hsize {
		return nil, fmt.Errorf("fdt: totalsize %d, less than the %d-byte header: %w", total, hsize, ErrMalformed)
	}
	if uint64(total) > uint64(len(b)) {
		return nil, fmt.Errorf("fdt: totalsize %d, but only %d bytes: %w", total, len(b), ErrTruncated)
	}
	b = b[:total]
	var sizeStruct uint32
	if version >= 17 {
		sizeStruct = hdr(9)
	} else if offStruct <= total {
		sizeStruct = total - offStruct // version 16 does not say
	}
	block := func(what string, off, size, align uint32) error {
		if off < hsize || uint64(off)+uint64(size) > uint64(total) {
			return fmt.Errorf("fdt: %s block [%#x, +%#x) not inside [%#x, %#x): %w", what, off, size, hsize, total, ErrTruncated)
		}
		if off%align != 0 {
			return fmt.Errorf("fdt: %s block at %#x, not %d-byte aligned: %w", what, off, align, ErrMalformed)
		}
		return nil
	}
	if err := block("memory reservation", offRsv, 0, 8); err != nil {
		return nil, err
	}
	if err := block("structure", offStruct, sizeStruct, 4); err != nil {
		return nil, err
	}
	if err := block("strings", offStrings, sizeStrings, 1); err != nil {
		return nil, err
	}
	t := &Tree{BootCPU: bootCPU}
	for off := uint64(offRsv); ; off += reserveEntry {
		if off+reserveEntry > uint64(total) {
			return nil, fmt.Errorf("fdt: memory reservation block at %#x runs past totalsize %#x without its {0, 0} entry: %w",
				offRsv, total, ErrTruncated)
		}
		r := Reservation{be.Uint64(b[off:]), be.Uint64(b[off+8:])}
		if r == (Reservation{}) {
			break
		}
		t.Reserved = append(t.Reserved, r)
	}
	p := parser{
		s:     b[offStruct : offStruct+sizeStruct],
		strs:  b[offStrings : offStrings+sizeStrings],
		names: map[uint32]string{},
		dups:  map[dupKey]bool{},
	}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	t.Root = root
	return t, nil
}

// parser reads the structure block s, whose property names are in strs.
type parser struct {
	s, strs []byte
	names   map[uint32]string // property names by strings-block offset
	dups    map[dupKey]bool
	stack   []*Node
}

// dupKey is a name in a node: a child's (child set) or a property's.
type dupKey struct {
	n     *Node
	name  string
	child bool
}

func (p *parser) path() string {
	if len(p.stack) <= 1 {
		return "/"
	}
	var sb strings.Builder
	for _, n := range p.stack[1:] {
		sb.WriteByte('/')
		sb.WriteString(n.Name)
	}
	return sb.String()
}

func (p *parser) fail(at int, format string, args ...any) error {
	return fmt.Errorf("fdt: structure block offset %#x (in %s): "+format+": %w",
		append(append([]any{at, p.path()}, args...), ErrMalformed)...)
}

// cstring returns the NUL-terminated string at the start of b.
func cstring(b []byte) (string, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", false
	}
	return string(b[:i]), true
}

func align4(n int) int { return (n + 3) &^ 3 }

func (p *parser) parse() (*Node, error) {
	be := binary.BigEndian
	var root *Node
	for off := 0; ; {
		if off+4 > len(p.s) {
			return nil, p.fail(off, "structure block ends without FDT_END")
		}
		at := off
		tok := be.Uint32(p.s[off:])
		off += 4
		switch tok {
		case tokenNop:
		case tokenBeginNode:
			name, ok := cstring(p.s[off:])
			if !ok {
				return nil, p.fail(at, "node name not NUL-terminated")
			}
			off = align4(off + len(name) + 1)
			if off > len(p.s) {
				return nil, p.fail(at, "node name %q runs past the structure block", name)
			}
			n := &Node{Name: name}
			if len(p.stack) == 0 {
				if root != nil {
					return nil, p.fail(at, "second root node %q", name)
				}
				if name != "" {
					return nil, p.fail(at, "root node named %q, want \"\"", name)
				}
				root = n
			} else {
				parent := p.stack[len(p.stack)-1]
				if !validNodeName(name, maxReadNameLen) {
					return nil, p.fail(at, "node name %q: want 1-255 of [0-9a-zA-Z,._+-], optionally @unit-address", name)
				}
				k := dupKey{parent, name, true}
				if p.dups[k] {
					return nil, p.fail(at, "second node named %q", name)
				}
				p.dups[k] = true
				parent.Children = append(parent.Children, n)
			}
			if len(p.stack) == MaxDepth {
				return nil, p.fail(at, "nodes nested deeper than %d", MaxDepth)
			}
			p.stack = append(p.stack, n)
		case tokenEndNode:
			if len(p.stack) == 0 {
				return nil, p.fail(at, "FDT_END_NODE outside a node")
			}
			p.stack = p.stack[:len(p.stack)-1]
		case tokenProp:
			if len(p.stack) == 0 {
				return nil, p.fail(at, "property outside a node")
			}
			if off+8 > len(p.s) {
				return nil, p.fail(at, "property header runs past the structure block")
			}
			size, nameOff := be.Uint32(p.s[off:]), be.Uint32(p.s[off+4:])
			off += 8
			if uint64(size) > uint64(len(p.s)-off) {
				return nil, p.fail(at, "property value of %d bytes runs past the structure block", size)
			}
			name, err := p.name(at, nameOff)
			if err != nil {
				return nil, err
			}
			n := p.stack[len(p.stack)-1]
			if len(n.Children) > 0 {
				return nil, p.fail(at, "property %q after a child node", name)
			}
			k := dupKey{n, name, false}
			if p.dups[k] {
				return nil, p.fail(at, "second property named %q", name)
			}
			p.dups[k] = true
			var v []byte
			if size > 0 {
				v = bytes.Clone(p.s[off : off+int(size)])
			}
			n.Props = append(n.Props, Property{Name: name, Value: v})
			off = align4(off + int(size))
			if off > len(p.s) {
				return nil, p.fail(at, "property %q's padding runs past the structure block", name)
			}
		case tokenEnd:
			if root == nil {
				return nil, p.fail(at, "FDT_END before the root node")
			}
			if len(p.stack) != 0 {
				return nil, p.fail(at, "FDT_END with %d nodes open", len(p.stack))
			}
			return root, nil
		default:
			return nil, p.fail(at, "unknown token %#x", tok)
		}
	}
}

// name returns the property name at off in the strings block.
func (p *parser) name(at int, off uint32) (string, error) {
	if name, ok := p.names[off]; ok {
		return name, nil
	}
	if uint64(off) >= uint64(len(p.strs)) {
		return "", p.fail(at, "property name offset %#x outside the %#x-byte strings block", off, len(p.strs))
	}
	name, ok := cstring(p.strs[off:])
	if !ok {
		return "", p.fail(at, "property name at strings offset %#x not NUL-terminated", off)
	}
	if !validPropertyName(name, maxReadNameLen) {
		return "", p.fail(at, "property name %q: want 1-255 of [0-9a-zA-Z,._+?#-]", name)
	}
	p.names[off] = name
	return name, nil
}

// DTB encodes the tree with Writer, so the blob has dtc's layout (with the
// memory reservation entries, if any, between the header and the
// structure block, as dtc puts them). It fails, wrapping ErrName, on a
// tree Parse would not accept: no root, invalid or duplicate names, nil
// nodes, nesting deeper than MaxDepth.
func (t *Tree) DTB() ([]byte, error) {
	if t == nil || t.Root == nil {
		return nil, fmt.Errorf("fdt: tree without a root node: %w", ErrName)
	}
	if err := check(t.Root, "", 1); err != nil {
		return nil, err
	}
	w := NewWriter()
	w.maxName = maxReadNameLen
	write(w, t.Root)
	b, err := w.Finish()
	if err != nil {
		return nil, err
	}
	if len(t.Reserved) == 0 && t.BootCPU == 0 {
		return b, nil
	}
	be := binary.BigEndian
	rsv := make([]byte, 0, reserveEntry*len(t.Reserved))
	for _, r := range t.Reserved {
		rsv = be.AppendUint64(rsv, r.Address)
		rsv = be.AppendUint64(rsv, r.Size)
	}
	if uint64(len(b))+uint64(len(rsv)) > 1<<32-1 {
		return nil, fmt.Errorf("fdt: tree of %d bytes: %w", len(b)+len(rsv), ErrName)
	}
	out := make([]byte, 0, len(b)+len(rsv))
	out = append(out, b[:headerSize]...)
	out = append(out, rsv...)
	out = append(out, b[headerSize:]...)
	grow := uint32(len(rsv))
	for _, field := range []int{4, 8, 12} { // totalsize, off_dt_struct, off_dt_strings
		be.PutUint32(out[field:], be.Uint32(out[field:])+grow)
	}
	be.PutUint32(out[28:], t.BootCPU)
	return out, nil
}

// check verifies what Writer does not: no nil node, no duplicate name,
// depth. path names n in messages.
func check(n *Node, path string, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("fdt: %s: nodes nested deeper than %d: %w", path, MaxDepth, ErrName)
	}
	shown := path
	if shown == "" {
		shown = "/"
	}
	seen := make(map[string]bool, len(n.Props))
	for _, p := range n.Props {
		if seen[p.Name] {
			return fmt.Errorf("fdt: %s: two properties named %q: %w", shown, p.Name, ErrName)
		}
		seen[p.Name] = true
	}
	clear(seen)
	for _, c := range n.Children {
		if c == nil {
			return fmt.Errorf("fdt: %s: nil child node: %w", shown, ErrName)
		}
		if seen[c.Name] {
			return fmt.Errorf("fdt: %s: two nodes named %q: %w", shown, c.Name, ErrName)
		}
		seen[c.Name] = true
		if err := check(c, path+"/"+c.Name, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func write(w *Writer, n *Node) {
	w.BeginNode(n.Name)
	for _, p := range n.Props {
		w.Property(p.Name, p.Value)
	}
	for _, c := range n.Children {
		write(w, c)
	}
	w.EndNode()
}

// Clone returns a deep copy of the tree: no node or value is shared.
func (t *Tree) Clone() *Tree {
	c := &Tree{Reserved: append([]Reservation(nil), t.Reserved...), BootCPU: t.BootCPU}
	if t.Root != nil {
		c.Root = t.Root.clone()
	}
	return c
}

func (n *Node) clone() *Node {
	if n == nil {
		return nil
	}
	c := &Node{Name: n.Name}
	if n.Props != nil {
		c.Props = make([]Property, len(n.Props))
		for i, p := range n.Props {
			c.Props[i] = Property{Name: p.Name, Value: bytes.Clone(p.Value)}
		}
	}
	if n.Children != nil {
		c.Children = make([]*Node, len(n.Children))
		for i, ch := range n.Children {
			c.Children[i] = ch.clone()
		}
	}
	return c
}

// Child returns n's child named exactly name (with its unit address, if
// any), or nil.
func (n *Node) Child(name string) *Node {
	for _, c := range n.Children {
		if c != nil && c.Name == name {
			return c
		}
	}
	return nil
}

// Prop returns n's property named name, or nil. The pointer is into
// n.Props: valid until the properties change.
func (n *Node) Prop(name string) *Property {
	for i := range n.Props {
		if n.Props[i].Name == name {
			return &n.Props[i]
		}
	}
	return nil
}

// SetProp sets property name to value, in place if n has it, else
// appended to n's properties.
func (n *Node) SetProp(name string, value []byte) {
	if p := n.Prop(name); p != nil {
		p.Value = value
		return
	}
	n.Props = append(n.Props, Property{Name: name, Value: value})
}

// U32 returns the value of a one-cell property.
func (p *Property) U32() (uint32, bool) {
	if len(p.Value) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(p.Value), true
}

// U32s returns the value as big-endian 32-bit cells; false if its length
// is not a multiple of 4.
func (p *Property) U32s() ([]uint32, bool) {
	if len(p.Value)%4 != 0 {
		return nil, false
	}
	cells := make([]uint32, len(p.Value)/4)
	for i := range cells {
		cells[i] = binary.BigEndian.Uint32(p.Value[4*i:])
	}
	return cells, true
}

// Text returns the value of a string property: one NUL-terminated string
// without other NULs.
func (p *Property) Text() (string, bool) {
	v := p.Value
	if len(v) == 0 || bytes.IndexByte(v, 0) != len(v)-1 {
		return "", false
	}
	return string(v[:len(v)-1]), true
}

// Strings returns the value of a string-list property (`compatible =
// "a", "b"`): NUL-terminated strings, one after the other. An empty value
// is no list.
func (p *Property) Strings() ([]string, bool) {
	v := p.Value
	if len(v) == 0 || v[len(v)-1] != 0 {
		return nil, false
	}
	return strings.Split(string(v[:len(v)-1]), "\x00"), true
}

// Lookup returns the node at path, or nil, resolving it the way libfdt's
// fdt_path_offset does: components separated by one or more "/"; a
// component without "@" also finds a node with that name and a unit
// address (here only when no node has exactly that name). A path not
// starting with "/" starts with an alias, a property of /aliases holding
// an absolute path, or, failing that, a label of /__symbols__ (libfdt
// knows only aliases).
func (t *Tree) Lookup(path string) *Node {
	n, _ := t.lookup(path)
	return n
}

// lookup is Lookup, also telling whether the path starts with a label.
func (t *Tree) lookup(path string) (n *Node, viaLabel bool) {
	if t == nil || t.Root == nil {
		return nil, false
	}
	if strings.HasPrefix(path, "/") {
		return lookupFrom(t.Root, path), false
	}
	first, rest, _ := strings.Cut(path, "/")
	for _, table := range []string{"aliases", "__symbols__"} {
		tn := t.Root.Child(table)
		if tn == nil {
			continue
		}
		if p := tn.Prop(first); p != nil {
			if s, ok := p.Text(); ok && strings.HasPrefix(s, "/") {
				if n := lookupFrom(t.Root, s); n != nil {
					return lookupFrom(n, rest), table == "__symbols__"
				}
				return nil, false
			}
		}
	}
	return nil, false
}

func lookupFrom(n *Node, path string) *Node {
	for _, comp := range strings.Split(path, "/") {
		if comp == "" {
			continue
		}
		next := n.Child(comp)
		if next == nil && !strings.Contains(comp, "@") {
			for _, c := range n.Children {
				if c != nil && strings.HasPrefix(c.Name, comp+"@") {
					next = c
					break
				}
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}
