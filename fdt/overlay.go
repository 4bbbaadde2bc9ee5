package fdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors returned by Apply and ApplyOverlays. Every error Apply returns
// wraps ErrOverlay, and the more specific ones below too; test them with
// errors.Is.
var (
	// ErrOverlay: the overlay cannot be applied; alone, it means the
	// overlay is malformed (no fragments, a fragment without target or
	// target-path, a bad __fixups__ or __local_fixups__ entry, a fixup
	// offset outside its property, memory reservations, a result nested
	// deeper than MaxDepth).
	ErrOverlay = errors.New("cannot apply device tree overlay")
	// ErrNoSymbols: the overlay refers to labels (__fixups__) but the
	// base tree has no __symbols__ node.
	ErrNoSymbols = errors.New("base tree has no __symbols__")
	// ErrUnknownLabel: a label in the overlay's __fixups__ is not in the
	// base tree's __symbols__, or its path there leads nowhere.
	ErrUnknownLabel = errors.New("unknown label")
	// ErrTarget: a fragment's target or target-path names no node of the
	// base tree.
	ErrTarget = errors.New("overlay target not found")
	// ErrPhandle: a phandle property that is not one cell, is 0 or
	// 0xffffffff, overflows when renumbered, or two nodes of the result
	// sharing a phandle.
	ErrPhandle = errors.New("invalid or clashing phandle")
)

// overlayError is an Apply error: its message, and the sentinels it
// matches.
type overlayError struct {
	msg  string
	kind error
}

func (e *overlayError) Error() string { return e.msg }

func (e *overlayError) Unwrap() []error {
	if e.kind == ErrOverlay {
		return []error{ErrOverlay}
	}
	return []error{e.kind, ErrOverlay}
}

func ovErr(kind error, format string, args ...any) error {
	msg := "fdt: overlay: " + fmt.Sprintf(format, args...)
	if kind != ErrOverlay { // ErrOverlay's text would only repeat "overlay"
		msg += ": " + kind.Error()
	}
	return &overlayError{msg: msg, kind: kind}
}

// labels lists the labels of a __symbols__ node, for messages: "gpio0,
// gpio1, ioapic", at most 10 of them.
func labels(syms *Node) string {
	var l []string
	for _, p := range syms.Props {
		l = append(l, p.Name)
	}
	if len(l) > 10 {
		l = append(l[:10], "...")
	}
	return strings.Join(l, ", ")
}

// Names of the nodes and properties of an overlay (dtc's -@ output; see
// Documentation/devicetree/overlay-notes.rst and dtc's
// Documentation/dt-object-internal.txt).
const (
	overlayNode     = "__overlay__"
	symbolsNode     = "__symbols__"
	fixupsNode      = "__fixups__"
	localFixupsNode = "__local_fixups__"
	phandleProp     = "phandle"
	linuxPhandle    = "linux,phandle"
	noPhandle       = 0xffffffff // an unresolved reference; also never a valid phandle
)

// Apply applies a compiled device tree overlay (dtc -@ -I dts -O dtb
// x.dtso) to base, the way libfdt's fdt_overlay_apply does (dtc 1.7's,
// which keeps a base node's phandle when an overlay node merges into it):
//
//  1. Every phandle of the overlay (phandle and linux,phandle
//     properties, and each cell listed in __local_fixups__) is increased
//     by the base's largest phandle, so the overlay's nodes get new ones.
//  2. Each __fixups__ entry, label = "path:property:offset", ..., writes
//     the phandle of the base node that __symbols__ gives for label at
//     each place listed. A base node without a phandle gets the next free
//     one first (libfdt fails instead).
//  3. Where an overlay node with a phandle merges into a base node with
//     one, the overlay node and its references take the base's phandle.
//  4. Each child of the overlay's root with an __overlay__ node is a
//     fragment: its target (target = <phandle>, or target-path = "/path",
//     which may start with an alias or a label) receives __overlay__'s
//     properties (replacing those of the same name) and children (merged
//     recursively by name, created when absent), in order.
//  5. The overlay's __symbols__ join the base's, paths into a fragment
//     (/fragment@N/__overlay__/rest) rewritten to the target's path + rest;
//     other symbols are dropped.
//
// Unlike libfdt, properties and nodes the overlay adds go after the
// target's existing ones (libfdt puts them first), so the guest probes
// the base's devices in the same order with or without overlays; names
// match exactly (libfdt lets "node" match "node@unit"); an overlay with no
// fragment, or with memory reservations, is refused (libfdt ignores both).
//
// On success base.Root is replaced by the merged tree (the old nodes are
// not modified); on error base is unchanged. The overlay tree is never
// modified. Errors wrap ErrOverlay and, where one fits, ErrNoSymbols,
// ErrUnknownLabel, ErrTarget or ErrPhandle.
func Apply(base, overlay *Tree) error {
	if base == nil || base.Root == nil {
		return ovErr(ErrOverlay, "base tree has no root node")
	}
	if overlay == nil || overlay.Root == nil {
		return ovErr(ErrOverlay, "overlay has no root node")
	}
	for _, in := range []struct {
		what string
		t    *Tree
	}{{"base tree", base}, {"overlay", overlay}} {
		if err := check(in.t.Root, "", 1); err != nil {
			return ovErr(ErrOverlay, "%s: %s", in.what, strings.TrimPrefix(strings.TrimSuffix(err.Error(), ": "+ErrName.Error()), "fdt: "))
		}
	}
	if n := len(overlay.Reserved); n > 0 {
		return ovErr(ErrOverlay, "overlay has %d memory reservations (/memreserve/), which fdt_overlay_apply would drop", n)
	}
	a := &applier{b: base.Clone(), o: overlay.Clone()}
	if err := a.apply(); err != nil {
		return err
	}
	base.Root = a.b.Root
	return nil
}

// ApplyOverlays parses base and each overlay, applies the overlays in
// order with Apply and returns the resulting blob (Tree.DTB: dtc's
// layout). An error about overlays[i] is an *OverlayError with Index i.
func ApplyOverlays(base []byte, overlays ...[]byte) ([]byte, error) {
	t, err := Parse(base)
	if err != nil {
		return nil, &wrapped{"fdt: base tree: " + strings.TrimPrefix(err.Error(), "fdt: "), err}
	}
	for i, ob := range overlays {
		o, err := Parse(ob)
		if err == nil {
			err = Apply(t, o)
		}
		if err != nil {
			return nil, &OverlayError{Index: i, Count: len(overlays), Err: err}
		}
	}
	return t.DTB()
}

// wrapped is err with another message.
type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }

// OverlayError is ApplyOverlays' error about one overlay.
type OverlayError struct {
	Index int   // of the overlay in ApplyOverlays' arguments, from 0
	Count int   // of overlays given
	Err   error // from Parse or Apply
}

// Error reads "fdt: overlay 2 of 3: cause", counting from 1, or with a
// single overlay "fdt: overlay: cause".
func (e *OverlayError) Error() string {
	msg := e.Err.Error()
	for _, prefix := range []string{"fdt: overlay: ", "fdt: "} {
		if s, ok := strings.CutPrefix(msg, prefix); ok {
			msg = s
			break
		}
	}
	if e.Count == 1 {
		return "fdt: overlay: " + msg
	}
	return fmt.Sprintf("fdt: overlay %d of %d: %s", e.Index+1, e.Count, msg)
}

// Unwrap returns Err.
func (e *OverlayError) Unwrap() error { return e.Err }

// applier applies overlay o to base b, both private copies.
type applier struct {
	b, o      *Tree
	fragments []*Node
	// byPhandle indexes b's nodes by phandle; entries may be stale (see
	// node).
	byPhandle map[uint32]*Node
}

func (a *applier) apply() error {
	for _, f := range a.o.Root.Children {
		if f.Child(overlayNode) != nil {
			a.fragments = append(a.fragments, f)
		}
	}
	if len(a.fragments) == 0 {
		return ovErr(ErrOverlay, "no fragments (no child of / has an %s node): not an overlay", overlayNode)
	}
	baseDups := duplicatePhandles(a.b.Root)

	fixups, err := a.resolveLabels()
	if err != nil {
		return err
	}
	delta := maxPhandle(a.b.Root)
	if err := adjustPhandles(a.o.Root, "", delta); err != nil {
		return err
	}
	local := a.o.Root.Child(localFixupsNode)
	if local != nil {
		err := walkLocalFixups(a.o.Root, local, "", func(v []byte) { addU32(v, delta) })
		if err != nil {
			return err
		}
	}
	if err := a.applyFixups(fixups); err != nil {
		return err
	}
	a.indexPhandles()
	for _, f := range a.fragments {
		t, _, err := a.target(f)
		if errors.Is(err, ErrTarget) {
			continue // the merge reports it
		}
		if err != nil {
			return err
		}
		if err := a.keepPhandles(t, f.Child(overlayNode), local); err != nil {
			return err
		}
	}
	for _, f := range a.fragments {
		t, _, err := a.target(f)
		if err != nil {
			return err
		}
		a.merge(t, f.Child(overlayNode))
	}
	if err := a.updateSymbols(); err != nil {
		return err
	}
	if err := check(a.b.Root, "", 1); err != nil {
		return ovErr(ErrOverlay, "result: %s", strings.TrimPrefix(strings.TrimSuffix(err.Error(), ": "+ErrName.Error()), "fdt: "))
	}
	return checkPhandles(a.b.Root, baseDups)
}

// fixup is one resolved __fixups__ property: label's phandle goes at each
// place.
type fixup struct {
	label   string
	phandle uint32
	places  []string // "path:property:offset"
}

// resolveLabels finds the base node of each __fixups__ label and its
// phandle, giving one to nodes without.
func (a *applier) resolveLabels() ([]fixup, error) {
	fn := a.o.Root.Child(fixupsNode)
	if fn == nil || len(fn.Props) == 0 {
		return nil, nil
	}
	syms := a.b.Root.Child(symbolsNode)
	if syms == nil {
		return nil, ovErr(ErrNoSymbols, "__fixups__ refers to label %q but the base tree has no /%s (compile it with dtc -@)",
			fn.Props[0].Name, symbolsNode)
	}
	var out []fixup
	var next uint32 // the last phandle given to a base node, once needed
	for _, p := range fn.Props {
		places, ok := p.Strings()
		if !ok {
			return nil, ovErr(ErrOverlay, "__fixups__ %q is not a list of strings", p.Name)
		}
		sp := syms.Prop(p.Name)
		if sp == nil {
			return nil, ovErr(ErrUnknownLabel, "label %q (__fixups__) is not in the base tree's /%s (it has %s)", p.Name, symbolsNode, labels(syms))
		}
		path, ok := sp.Text()
		if !ok || !strings.HasPrefix(path, "/") {
			return nil, ovErr(ErrUnknownLabel, "label %q: the base tree's /%s gives %s, not a path", p.Name, symbolsNode, showValue(sp.Value))
		}
		n := a.b.Lookup(path)
		if n == nil {
			return nil, ovErr(ErrUnknownLabel, "label %q: its path %q is not in the base tree", p.Name, path)
		}
		ph, err := phandleOf(n, path)
		if err != nil {
			return nil, err
		}
		if ph == 0 {
			if next == 0 {
				next = maxPhandle(a.b.Root)
			}
			if next >= noPhandle-1 {
				return nil, ovErr(ErrPhandle, "label %q: no phandle left to give %s", p.Name, path)
			}
			next++
			ph = next
			n.SetProp(phandleProp, binary.BigEndian.AppendUint32(nil, ph))
		}
		out = append(out, fixup{label: p.Name, phandle: ph, places: places})
	}
	return out, nil
}

// applyFixups writes each label's phandle at its places in the overlay.
func (a *applier) applyFixups(fixups []fixup) error {
	cache := map[string]*Node{}
	for _, f := range fixups {
		for _, place := range f.places {
			path, rest, ok1 := strings.Cut(place, ":")
			prop, offs, ok2 := strings.Cut(rest, ":")
			off, err := strconv.ParseUint(offs, 10, 31)
			if !ok1 || !ok2 || path == "" || prop == "" || err != nil || strings.Trim(offs, "0123456789") != "" {
				return ovErr(ErrOverlay, "__fixups__ %q: entry %q, want path:property:offset", f.label, place)
			}
			n, ok := cache[path]
			if !ok {
				n = a.o.Lookup(path)
				cache[path] = n
			}
			if n == nil {
				return ovErr(ErrOverlay, "__fixups__ %q: entry %q: no node %s in the overlay", f.label, place, path)
			}
			p := n.Prop(prop)
			if p == nil {
				return ovErr(ErrOverlay, "__fixups__ %q: entry %q: %s has no property %q", f.label, place, path, prop)
			}
			if off+4 > uint64(len(p.Value)) {
				return ovErr(ErrOverlay, "__fixups__ %q: entry %q: offset %d outside the %d-byte property", f.label, place, off, len(p.Value))
			}
			binary.BigEndian.PutUint32(p.Value[off:], f.phandle)
		}
	}
	return nil
}

// phandleOf returns n's phandle as libfdt's fdt_get_phandle does (phandle,
// else linux,phandle), 0 for none, or an error for a malformed one.
func phandleOf(n *Node, path string) (uint32, error) {
	for _, name := range []string{phandleProp, linuxPhandle} {
		if p := n.Prop(name); p != nil {
			v, ok := p.U32()
			if !ok || v == 0 || v == noPhandle {
				return 0, ovErr(ErrPhandle, "%s: %s = %s, want one cell other than 0 and 0xffffffff", path, name, showValue(p.Value))
			}
			return v, nil
		}
	}
	return 0, nil
}

// getPhandle is libfdt's fdt_get_phandle: the first one-cell phandle or
// linux,phandle, or 0.
func getPhandle(n *Node) uint32 {
	for _, name := range []string{phandleProp, linuxPhandle} {
		if p := n.Prop(name); p != nil {
			if v, ok := p.U32(); ok {
				return v
			}
		}
	}
	return 0
}

// maxPhandle returns the largest one-cell phandle or linux,phandle in the
// tree (libfdt's fdt_find_max_phandle looks at linux,phandle only when
// there is no phandle).
func maxPhandle(n *Node) uint32 {
	var m uint32
	for _, name := range []string{phandleProp, linuxPhandle} {
		if p := n.Prop(name); p != nil {
			if v, ok := p.U32(); ok && v > m {
				m = v
			}
		}
	}
	for _, c := range n.Children {
		m = max(m, maxPhandle(c))
	}
	return m
}

// adjustPhandles adds delta to every phandle and linux,phandle under n
// (overlay_adjust_local_phandles).
func adjustPhandles(n *Node, path string, delta uint32) error {
	for _, name := range []string{phandleProp, linuxPhandle} {
		p := n.Prop(name)
		if p == nil {
			continue
		}
		v, ok := p.U32()
		if !ok || v == 0 || v == noPhandle {
			return ovErr(ErrPhandle, "%s: %s = %s, want one cell other than 0 and 0xffffffff", shown(path), name, showValue(p.Value))
		}
		if v+delta < v || v+delta == noPhandle {
			return ovErr(ErrPhandle, "%s: %s %#x + %#x (the base's largest) overflows", shown(path), name, v, delta)
		}
		binary.BigEndian.PutUint32(p.Value, v+delta)
	}
	for _, c := range n.Children {
		if err := adjustPhandles(c, path+"/"+c.Name, delta); err != nil {
			return err
		}
	}
	return nil
}

func shown(path string) string {
	if path == "" {
		return "/"
	}
	return path
}

func addU32(v []byte, d uint32) {
	binary.BigEndian.PutUint32(v, binary.BigEndian.Uint32(v)+d)
}

// walkLocalFixups calls f with the 4 bytes of each phandle cell that
// __local_fixups__ (fix, mirroring the overlay from its root) lists in
// tree node n, at path.
func walkLocalFixups(n, fix *Node, path string, f func(cell []byte)) error {
	for _, fp := range fix.Props {
		offs, ok := fp.U32s()
		if !ok {
			return ovErr(ErrOverlay, "%s %s: %q is %d bytes, not a list of offsets", localFixupsNode, shown(path), fp.Name, len(fp.Value))
		}
		p := n.Prop(fp.Name)
		if p == nil {
			return ovErr(ErrOverlay, "%s %s: the overlay has no property %s:%s", localFixupsNode, shown(path), shown(path), fp.Name)
		}
		for _, off := range offs {
			if uint64(off)+4 > uint64(len(p.Value)) {
				return ovErr(ErrOverlay, "%s %s: offset %d outside the %d-byte property %q", localFixupsNode, shown(path), off, len(p.Value), fp.Name)
			}
			f(p.Value[off : off+4])
		}
	}
	for _, fc := range fix.Children {
		c := n.Child(fc.Name)
		if c == nil {
			return ovErr(ErrOverlay, "%s: the overlay has no node %s/%s", localFixupsNode, path, fc.Name)
		}
		if err := walkLocalFixups(c, fc, path+"/"+fc.Name, f); err != nil {
			return err
		}
	}
	return nil
}

// target returns fragment f's target in the base and the path to record
// in __symbols__ for it (fdt_overlay_target_offset).
func (a *applier) target(f *Node) (*Node, string, error) {
	if p := f.Prop("target"); p != nil {
		ph, ok := p.U32()
		switch {
		case !ok:
			return nil, "", ovErr(ErrOverlay, "/%s: target = %s, want one phandle cell", f.Name, showValue(p.Value))
		case ph == noPhandle:
			return nil, "", ovErr(ErrOverlay, "/%s: target = <0xffffffff>, a reference no __fixups__ entry resolved", f.Name)
		case ph != 0: // libfdt takes target = <0> for no target
			n := a.node(ph)
			if n == nil {
				return nil, "", ovErr(ErrTarget, "/%s: target = <%#x>: no base node has that phandle", f.Name, ph)
			}
			return n, "", nil
		}
	}
	p := f.Prop("target-path")
	if p == nil {
		return nil, "", ovErr(ErrOverlay, "/%s has an %s node but neither target nor target-path", f.Name, overlayNode)
	}
	path, ok := p.Text()
	if !ok {
		return nil, "", ovErr(ErrOverlay, "/%s: target-path = %s, not a string", f.Name, showValue(p.Value))
	}
	n, viaLabel := a.b.lookup(path)
	if n == nil {
		return nil, "", ovErr(ErrTarget, "/%s: target-path %q is not in the base tree", f.Name, path)
	}
	if viaLabel {
		return n, "", nil // libfdt would have failed: record the node's path
	}
	return n, path, nil // as libfdt does, even an alias
}

// indexPhandles (re)builds byPhandle.
func (a *applier) indexPhandles() {
	a.byPhandle = map[uint32]*Node{}
	var walk func(n *Node)
	walk = func(n *Node) {
		if ph := getPhandle(n); ph != 0 {
			if _, dup := a.byPhandle[ph]; !dup {
				a.byPhandle[ph] = n
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(a.b.Root)
}

// node returns the base node with phandle ph (fdt_node_offset_by_phandle).
func (a *applier) node(ph uint32) *Node {
	if n := a.byPhandle[ph]; n != nil && getPhandle(n) == ph {
		return n
	}
	a.indexPhandles() // a merge changed phandles
	return a.byPhandle[ph]
}

// keepPhandles makes overlay node on, to be merged into base node bn, and
// its children take the phandles of the base nodes they merge into, and
// changes the overlay's references to match
// (overlay_prevent_phandle_overwrite, dtc 1.7).
func (a *applier) keepPhandles(bn, on, local *Node) error {
	bph, oph := getPhandle(bn), getPhandle(on)
	if bph != 0 && oph != 0 && bph != oph {
		for _, name := range []string{phandleProp, linuxPhandle} {
			if p := on.Prop(name); p != nil && len(p.Value) == 4 {
				binary.BigEndian.PutUint32(p.Value, bph)
			}
		}
		if local != nil {
			err := walkLocalFixups(a.o.Root, local, "", func(v []byte) {
				if binary.BigEndian.Uint32(v) == oph {
					binary.BigEndian.PutUint32(v, bph)
				}
			})
			if err != nil {
				return err
			}
		}
	}
	for _, oc := range on.Children {
		if bc := bn.Child(oc.Name); bc != nil {
			if err := a.keepPhandles(bc, oc, local); err != nil {
				return err
			}
		}
	}
	return nil
}

// merge merges overlay node on into base node bn (overlay_apply_node):
// properties replace or are appended, children merge or are appended.
func (a *applier) merge(bn, on *Node) {
	props := make(map[string]int, len(bn.Props))
	for i, p := range bn.Props {
		props[p.Name] = i
	}
	for _, p := range on.Props {
		if i, ok := props[p.Name]; ok {
			bn.Props[i].Value = p.Value
		} else {
			props[p.Name] = len(bn.Props)
			bn.Props = append(bn.Props, p)
		}
	}
	for _, oc := range on.Children {
		bc := subnode(bn, oc.Name)
		if bc == nil {
			bc = &Node{Name: oc.Name}
			bn.Children = append(bn.Children, bc)
		}
		a.merge(bc, oc)
	}
}

// subnode returns n's first child that name names as libfdt's
// fdt_subnode_offset does (fdt_nodename_eq_): the same name, or, for a
// name without a unit address, a child with that name and any unit
// address ("virtio" finds "virtio@d0000000").
func subnode(n *Node, name string) *Node {
	for _, c := range n.Children {
		if c.Name == name || !strings.Contains(name, "@") && strings.HasPrefix(c.Name, name+"@") {
			return c
		}
	}
	return nil
}

// updateSymbols adds the overlay's __symbols__ to the base's
// (overlay_symbol_update).
func (a *applier) updateSymbols() error {
	osyms := a.o.Root.Child(symbolsNode)
	if osyms == nil {
		return nil
	}
	bsyms := a.b.Root.Child(symbolsNode)
	if bsyms == nil { // libfdt adds it even if no symbol goes in
		bsyms = &Node{Name: symbolsNode}
		a.b.Root.Children = append(a.b.Root.Children, bsyms)
	}
	var paths map[*Node]string
	for _, p := range osyms.Props {
		path, ok := p.Text()
		if !ok || !strings.HasPrefix(path, "/") {
			return ovErr(ErrOverlay, "/%s: %s = %s, want a path", symbolsNode, p.Name, showValue(p.Value))
		}
		frag, rest, ok := strings.Cut(path[1:], "/")
		if !ok {
			continue // not in a fragment: not in the result
		}
		var rel string
		if r, ok := strings.CutPrefix(rest, overlayNode+"/"); ok {
			rel = r
		} else if rest != overlayNode {
			continue
		}
		f := a.o.Root.Child(frag)
		if f == nil || f.Child(overlayNode) == nil {
			return ovErr(ErrOverlay, "/%s: %s = %q: no fragment /%s", symbolsNode, p.Name, path, frag)
		}
		t, tpath, err := a.target(f)
		if err != nil {
			return err
		}
		if tpath == "" {
			if paths == nil {
				paths = pathsOf(a.b.Root)
			}
			tpath = paths[t]
		}
		var v string
		if len(tpath) > 1 {
			v = tpath + "/" + rel
		} else {
			v = "/" + rel
		}
		bsyms.SetProp(p.Name, append([]byte(v), 0))
	}
	return nil
}

// pathsOf returns the path of every node under root.
func pathsOf(root *Node) map[*Node]string {
	m := map[*Node]string{root: "/"}
	var walk func(n *Node, path string)
	walk = func(n *Node, path string) {
		for _, c := range n.Children {
			p := path + "/" + c.Name
			m[c] = p
			walk(c, p)
		}
	}
	walk(root, "")
	return m
}

// duplicatePhandles returns the phandles that more than one node of the
// tree has.
func duplicatePhandles(root *Node) map[uint32]bool {
	seen := map[uint32]bool{}
	dups := map[uint32]bool{}
	var walk func(n *Node)
	walk = func(n *Node) {
		if ph := getPhandle(n); ph != 0 {
			if seen[ph] {
				dups[ph] = true
			}
			seen[ph] = true
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(root)
	return dups
}

// checkPhandles fails if two nodes of the result share a phandle, unless
// the base already had that duplicate.
func checkPhandles(root *Node, baseDups map[uint32]bool) error {
	seen := map[uint32]string{}
	var walk func(n *Node, path string) error
	walk = func(n *Node, path string) error {
		if ph := getPhandle(n); ph != 0 && !baseDups[ph] {
			if other, ok := seen[ph]; ok {
				return ovErr(ErrPhandle, "the result gives phandle %#x to both %s and %s", ph, other, shown(path))
			}
			seen[ph] = shown(path)
		}
		for _, c := range n.Children {
			if err := walk(c, path+"/"+c.Name); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, "")
}

// showValue formats a property value for a message as dts would: a
// string, cells or bytes.
func showValue(v []byte) string {
	p := Property{Value: v}
	if s, ok := p.Text(); ok && strings.IndexFunc(s, func(r rune) bool { return r < ' ' || r > '~' }) < 0 {
		return strconv.Quote(s)
	}
	if cells, ok := p.U32s(); ok && len(cells) > 0 {
		var sb strings.Builder
		for i, c := range cells {
			if i > 0 {
				sb.WriteByte(' ')
			}
			fmt.Fprintf(&sb, "%#x", c)
		}
		return "<" + sb.String() + ">"
	}
	return fmt.Sprintf("[% x]", v)
}
