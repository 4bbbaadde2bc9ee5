// Package ksyms names guest kernel addresses from a kernel build's
// System.map, for the register dumps of a guest that hangs.
package ksyms

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Bounds on what Parse reads and holds: a whole x86_64 Linux build's map
// has about 150 k symbols in 6 MiB, the project's image's 30 k in 800 KiB.
const (
	MaxBytes   = 64 << 20
	MaxSymbols = 1 << 20
	maxLine    = 4096
)

type symbol struct {
	addr uint64
	name string
}

// Table is the text symbols of one kernel, sorted by address.
type Table struct {
	syms []symbol
	end  uint64 // _etext, or 0 if the map does not have it
}

// Parse reads a System.map ("ffffffff81000000 T _stext" per line) and
// keeps its text symbols (types t, T, w, W). Lines of other forms are
// skipped. A line longer than 4 KiB, more than MaxBytes or more than
// MaxSymbols symbols is an error, as is a map with no text symbol at all.
func Parse(r io.Reader) (*Table, error) {
	sc := bufio.NewScanner(io.LimitReader(r, MaxBytes+1))
	sc.Buffer(make([]byte, 0, 256), maxLine)
	t := &Table{}
	read := 0
	for n := 1; sc.Scan(); n++ {
		if read += len(sc.Bytes()) + 1; read > MaxBytes {
			return nil, fmt.Errorf("more than %d MiB: not a System.map", MaxBytes>>20)
		}
		f := strings.Fields(sc.Text())
		if len(f) != 3 || len(f[1]) != 1 {
			continue
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			continue
		}
		if f[2] == "_etext" {
			t.end = addr
		}
		switch f[1][0] {
		case 't', 'T', 'w', 'W':
		default:
			continue
		}
		if len(t.syms) == MaxSymbols {
			return nil, fmt.Errorf("line %d: more than %d text symbols", n, MaxSymbols)
		}
		t.syms = append(t.syms, symbol{addr, f[2]})
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("a line longer than %d bytes: not a System.map", maxLine)
	} else if err != nil {
		return nil, err
	}
	if len(t.syms) == 0 {
		return nil, fmt.Errorf("no text symbols: not a System.map")
	}
	sort.SliceStable(t.syms, func(i, j int) bool { return t.syms[i].addr < t.syms[j].addr })
	return t, nil
}

// Name returns "function+0xoffset" for an address in the kernel's text,
// and "" for any other address (data, user space, past _etext).
func (t *Table) Name(addr uint64) string {
	if t == nil || (t.end != 0 && addr >= t.end) {
		return ""
	}
	i := sort.Search(len(t.syms), func(i int) bool { return t.syms[i].addr > addr }) - 1
	if i < 0 {
		return ""
	}
	return fmt.Sprintf("%s+%#x", t.syms[i].name, addr-t.syms[i].addr)
}

// Load parses the System.map at path.
func Load(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// LoadBeside parses the System.map in the directory of the kernel at
// kernelPath, where a kernel build (and the project's image) leaves it. It
// returns nil and no error if there is none.
func LoadBeside(kernelPath string) (*Table, error) {
	path := filepath.Join(filepath.Dir(kernelPath), "System.map")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return Load(path)
}
