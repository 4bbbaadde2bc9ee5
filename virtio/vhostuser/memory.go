package vhostuser

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gvmm/gvmm/vmm"
)

var (
	// errNoMemory is the error of every access before SET_MEM_TABLE.
	errNoMemory = errors.New("vhost-user: no memory table")
	// errFault is the error of an access that faulted (SIGBUS).
	errFault = errors.New("vhost-user: fault in guest memory")
)

// memTable is the guest RAM of one SET_MEM_TABLE: each region mapped
// MAP_SHARED from its descriptor, as a vmm.Memory the device reads and
// writes through, and the front end's user addresses of the regions to
// translate ring addresses with.
type memTable struct {
	regions  []MemoryRegion
	mappings [][]byte // what mmap returned, to munmap
	mem      vmm.Memory
}

// mapTable checks the regions and maps each from its descriptor
// (fds[i] for regions[i]), taking the descriptors: they are closed
// whatever happens (a mapping outlives its descriptor). Regions must have
// a size, must not wrap around the 64-bit space in guest, user or file
// offset terms, must not overlap one another in guest or user addresses,
// and must lie within their files: only regular files (memfd, shared
// memory, hugetlbfs) are accepted, and their size is checked, as a page
// past the end of its file faults (SIGBUS; guestMemory.access makes that
// an error should the front end shrink the file later).
func mapTable(regions []MemoryRegion, fds []int) (t *memTable, err error) {
	defer func() {
		for _, fd := range fds {
			if fd >= 0 {
				_ = unix.Close(fd)
			}
		}
	}()
	if len(regions) != len(fds) {
		return nil, fmt.Errorf("%w: %d regions, %d descriptors", ErrFDs, len(regions), len(fds))
	}
	if err := checkRegions(regions); err != nil {
		return nil, err
	}
	table := &memTable{regions: regions}
	defer func() {
		if err != nil {
			table.unmap()
		}
	}()
	page := uint64(os.Getpagesize())
	for i, r := range regions {
		var st unix.Stat_t
		if err := unix.Fstat(fds[i], &st); err != nil {
			return nil, fmt.Errorf("region %d: fstat: %v", i, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil, fmt.Errorf("%w: region %d: descriptor is not a regular file (mode %#o)", ErrFDs, i, st.Mode)
		}
		if st.Size < 0 || r.MmapOffset+r.Size > uint64(st.Size) {
			return nil, fmt.Errorf("%w: region %d: offset %#x size %#x past the end of its file (%#x bytes)", ErrPayload, i, r.MmapOffset, r.Size, st.Size)
		}
		// mmap wants a page-aligned offset: map from the page the region
		// starts in and skip the head.
		head := r.MmapOffset % page
		length := r.Size + head
		if length < r.Size || length > uint64(maxInt) || r.MmapOffset-head > uint64(maxInt64) {
			return nil, fmt.Errorf("%w: region %d: size %#x too large to map", ErrPayload, i, r.Size)
		}
		b, err := unix.Mmap(fds[i], int64(r.MmapOffset-head), int(length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("region %d: mmap %#x bytes at offset %#x: %v", i, length, r.MmapOffset-head, err)
		}
		table.mappings = append(table.mappings, b)
		table.mem.Regions = append(table.mem.Regions, vmm.Region{GPA: r.GuestAddr, Host: b[head:length:length]})
	}
	return table, nil
}

const (
	maxInt   = int(^uint(0) >> 1)
	maxInt64 = 1<<63 - 1
)

// checkRegions refuses empty, wrapping and overlapping regions.
func checkRegions(regions []MemoryRegion) error {
	for i, r := range regions {
		switch {
		case r.Size == 0:
			return fmt.Errorf("%w: region %d has size 0", ErrPayload, i)
		case r.GuestAddr+r.Size < r.GuestAddr, r.UserAddr+r.Size < r.UserAddr, r.MmapOffset+r.Size < r.MmapOffset:
			return fmt.Errorf("%w: region %d (guest %#x, user %#x, offset %#x, size %#x) wraps around", ErrPayload, i, r.GuestAddr, r.UserAddr, r.MmapOffset, r.Size)
		}
	}
	for _, addr := range []struct {
		name  string
		start func(MemoryRegion) uint64
	}{
		{"guest", func(r MemoryRegion) uint64 { return r.GuestAddr }},
		{"user", func(r MemoryRegion) uint64 { return r.UserAddr }},
	} {
		idx := make([]int, len(regions))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return addr.start(regions[idx[a]]) < addr.start(regions[idx[b]]) })
		for k := 1; k < len(idx); k++ {
			prev, cur := regions[idx[k-1]], regions[idx[k]]
			if addr.start(cur) < addr.start(prev)+prev.Size {
				return fmt.Errorf("%w: regions %d and %d overlap in %s addresses", ErrPayload, idx[k-1], idx[k], addr.name)
			}
		}
	}
	return nil
}

// unmap releases every mapping; the table must no longer be used.
func (t *memTable) unmap() {
	for _, b := range t.mappings {
		_ = unix.Munmap(b)
	}
	t.mappings, t.mem.Regions = nil, nil
}

// translate turns a front-end user address into a guest physical
// address through the region that holds it.
func (t *memTable) translate(ua uint64) (uint64, error) {
	for _, r := range t.regions {
		if ua >= r.UserAddr && ua-r.UserAddr < r.Size {
			return r.GuestAddr + (ua - r.UserAddr), nil
		}
	}
	return 0, fmt.Errorf("user address %#x is in no region of the memory table", ua)
}

// guestMemory is the device's view of guest RAM: the current memory
// table's vmm.Memory behind a lock, so that a new SET_MEM_TABLE (QEMU
// sends one whenever its memory map changes, also while the rings run)
// swaps and unmaps the old mappings only when no access is in progress.
// It implements virtio.GuestMemory, Atomic16 and RangeChecker.
type guestMemory struct {
	mu sync.RWMutex
	t  *memTable // nil before SET_MEM_TABLE and after a reset
}

// swap installs t (nil: none) and unmaps the table it replaces.
func (g *guestMemory) swap(t *memTable) {
	g.mu.Lock()
	old := g.t
	g.t = t
	g.mu.Unlock()
	if old != nil {
		old.unmap()
	}
}

// table returns the current table; only the session's goroutine, which
// alone swaps tables, may use it without the lock.
func (g *guestMemory) table() *memTable { return g.t }

// access runs f on the current table's memory under the read lock. A
// fault in a mapping is an error, not the end of the process: the front
// end can shrink a region's file after SET_MEM_TABLE (or hugetlbfs run
// out of pages), and touching a page past the end of a shared file is
// SIGBUS, which debug.SetPanicOnFault turns into a panic recovered here.
// Every access the device makes goes through here.
func (g *guestMemory) access(f func(m *vmm.Memory) error) (err error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.t == nil {
		return errNoMemory
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			fault, ok := r.(interface{ Addr() uintptr })
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%w at host address %#x (has the front end shrunk a region's file?)", errFault, fault.Addr())
		}
	}()
	return f(&g.t.mem)
}

// ReadAt implements virtio.GuestMemory.
func (g *guestMemory) ReadAt(p []byte, gpa uint64) error {
	return g.access(func(m *vmm.Memory) error { return m.ReadAt(p, gpa) })
}

// WriteAt implements virtio.GuestMemory.
func (g *guestMemory) WriteAt(p []byte, gpa uint64) error {
	return g.access(func(m *vmm.Memory) error { return m.WriteAt(p, gpa) })
}

// LoadU16 implements virtio.Atomic16.
func (g *guestMemory) LoadU16(gpa uint64) (v uint16, err error) {
	err = g.access(func(m *vmm.Memory) (err error) {
		v, err = m.LoadU16(gpa)
		return err
	})
	return v, err
}

// StoreU16 implements virtio.Atomic16.
func (g *guestMemory) StoreU16(gpa uint64, v uint16) error {
	return g.access(func(m *vmm.Memory) error { return m.StoreU16(gpa, v) })
}

// CheckRange implements virtio.RangeChecker.
func (g *guestMemory) CheckRange(gpa, n uint64) error {
	return g.access(func(m *vmm.Memory) error { return m.CheckRange(gpa, n) })
}
