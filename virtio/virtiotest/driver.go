package virtiotest

import (
	"encoding/binary"
	"fmt"

	"github.com/gvmm/gvmm/virtio"
)

// DriverQueue is the driver's side of one split virtqueue in a Mem: it
// lays out the descriptor table, available ring and used ring, places
// chains of buffers the way Linux's virtio_ring does, and collects the
// used elements the device returns. It is not safe for concurrent use.
//
// Besides the comfortable Add, AddIndirect and Used, it has raw
// accessors (SetDesc, WriteDescs, Publish, SetAvailIdx, ...) for tests
// that build malformed rings.
type DriverQueue struct {
	Mem  Mem
	Size uint16
	// DescAddr, AvailAddr and UsedAddr are the ring addresses the
	// driver would write to QueueDesc, QueueDriver and QueueDevice.
	DescAddr, AvailAddr, UsedAddr uint64
	// EventIdx makes the driver use used_event and avail_event
	// (VIRTIO_RING_F_EVENT_IDX negotiated). Set it before adding.
	EventIdx bool

	dataStart, dataEnd, dataNext uint64 // buffer area, allocated round robin

	free     []uint16 // free descriptor indices
	availIdx uint16   // the avail idx the driver published
	lastUsed uint16   // next used ring entry to read
	kicked   uint16   // availIdx at the last Kick
	chains   map[uint16]chain
}

// chain is what the driver remembers of a chain it added.
type chain struct {
	descs    []uint16 // main-table descriptors to free when used
	writable []virtio.Buffer
}

// UsedElem is one used element the device returned.
type UsedElem struct {
	Head uint16
	Len  uint32
	// Written is the first Len bytes of the chain's writable buffers
	// (fewer if Len is larger than they are), or nil if Head is not a
	// chain added with Add or AddIndirect.
	Written []byte
}

// NewDriverQueue lays out a queue of size entries (a power of two) at
// guest address base in mem, as a driver does before writing QueueReady:
// descriptor table, available ring (with used_event) and used ring (with
// avail_event), zeroed. The rest of mem after the rings holds the
// buffers. It panics if mem is too small.
func NewDriverQueue(mem Mem, base uint64, size uint16) *DriverQueue {
	if size == 0 || size&(size-1) != 0 {
		panic(fmt.Sprintf("virtiotest: queue size %d is not a power of two", size))
	}
	d := &DriverQueue{Mem: mem, Size: size, chains: map[uint16]chain{}}
	d.DescAddr = alignUp(base, 16)
	d.AvailAddr = d.DescAddr + virtio.DescSize*uint64(size)
	d.UsedAddr = alignUp(d.AvailAddr+virtio.AvailRingSize(size, true), 4)
	end := d.UsedAddr + virtio.UsedRingSize(size, true)
	d.dataStart = alignUp(end, 16)
	d.dataEnd = uint64(len(mem))
	d.dataNext = d.dataStart
	if d.dataStart >= d.dataEnd {
		panic(fmt.Sprintf("virtiotest: %d bytes of memory hold no queue of %d at %#x", len(mem), size, base))
	}
	clear(mem[d.DescAddr:end])
	for i := int(size) - 1; i >= 0; i-- {
		d.free = append(d.free, uint16(i))
	}
	return d
}

// Queue returns the device's side of this queue, configured as the
// transport would after QueueReady: ready, with VIRTIO_RING_F_INDIRECT_DESC
// and EventIdx negotiated.
func (d *DriverQueue) Queue() *virtio.Queue {
	return &virtio.Queue{
		MaxSize:      d.Size,
		Size:         d.Size,
		DescAddr:     d.DescAddr,
		DriverAddr:   d.AvailAddr,
		DeviceAddr:   d.UsedAddr,
		Ready:        true,
		EventIdx:     d.EventIdx,
		IndirectDesc: true,
	}
}

// Add places a chain of device-readable buffers holding the bytes of
// each readable element, followed by device-writable buffers of the
// given lengths, one descriptor each, and makes it available. It returns
// the head descriptor index.
func (d *DriverQueue) Add(readable [][]byte, writable []int) uint16 {
	descs := d.buildDescs(readable, writable)
	idx := d.takeDescs(len(descs))
	for i := range descs {
		if i+1 < len(descs) {
			descs[i].Flags |= virtio.DescFNext
			descs[i].Next = idx[i+1]
		}
		d.SetDesc(idx[i], descs[i])
	}
	d.track(idx, descs)
	d.Publish(idx[0])
	return idx[0]
}

// AddIndirect is Add with the chain in an indirect table referred to by
// a single descriptor.
func (d *DriverQueue) AddIndirect(readable [][]byte, writable []int) uint16 {
	descs := d.buildDescs(readable, writable)
	for i := range descs {
		if i+1 < len(descs) {
			descs[i].Flags |= virtio.DescFNext
			descs[i].Next = uint16(i + 1)
		}
	}
	table := d.Alloc(virtio.DescSize * len(descs))
	d.WriteDescs(table, descs)
	idx := d.takeDescs(1)
	d.SetDesc(idx[0], virtio.Desc{Addr: table, Len: uint32(virtio.DescSize * len(descs)), Flags: virtio.DescFIndirect})
	d.track(idx, descs)
	d.Publish(idx[0])
	return idx[0]
}

func (d *DriverQueue) buildDescs(readable [][]byte, writable []int) []virtio.Desc {
	if len(readable)+len(writable) == 0 {
		panic("virtiotest: empty chain")
	}
	var descs []virtio.Desc
	for _, r := range readable {
		a := d.Alloc(len(r))
		copy(d.Mem[a:], r)
		descs = append(descs, virtio.Desc{Addr: a, Len: uint32(len(r))})
	}
	for _, n := range writable {
		a := d.Alloc(n)
		clear(d.Mem[a : a+uint64(n)])
		descs = append(descs, virtio.Desc{Addr: a, Len: uint32(n), Flags: virtio.DescFWrite})
	}
	return descs
}

func (d *DriverQueue) takeDescs(n int) []uint16 {
	if n > len(d.free) {
		panic(fmt.Sprintf("virtiotest: chain of %d descriptors, %d free", n, len(d.free)))
	}
	idx := make([]uint16, n)
	for i := range idx {
		idx[i] = d.free[len(d.free)-1]
		d.free = d.free[:len(d.free)-1]
	}
	return idx
}

func (d *DriverQueue) track(idx []uint16, descs []virtio.Desc) {
	c := chain{descs: idx}
	for _, ds := range descs {
		if ds.Flags&virtio.DescFWrite != 0 {
			c.writable = append(c.writable, virtio.Buffer{Addr: ds.Addr, Len: ds.Len})
		}
	}
	d.chains[idx[0]] = c
}

// Used returns the used elements the device pushed since the last call,
// oldest first, and frees their descriptors. With EventIdx it then sets
// used_event to ask for an interrupt on the next one, as Linux does.
func (d *DriverQueue) Used() []UsedElem {
	var out []UsedElem
	end := d.UsedIdx()
	for ; d.lastUsed != end; d.lastUsed++ {
		var b [virtio.UsedElemSize]byte
		d.read(b[:], d.UsedAddr+4+virtio.UsedElemSize*uint64(d.lastUsed%d.Size))
		id := binary.LittleEndian.Uint32(b[0:])
		u := UsedElem{Head: uint16(id), Len: binary.LittleEndian.Uint32(b[4:])}
		if c, ok := d.chains[u.Head]; ok && id <= 0xffff {
			u.Written = []byte{}
			left := u.Len
			for _, w := range c.writable {
				n := min(left, w.Len)
				u.Written = append(u.Written, d.Mem[w.Addr:w.Addr+uint64(n)]...)
				left -= n
			}
			d.free = append(d.free, c.descs...)
			delete(d.chains, u.Head)
		}
		out = append(out, u)
	}
	if d.EventIdx {
		d.SetUsedEvent(d.lastUsed)
	}
	return out
}

// Outstanding is the number of chains added and not yet returned.
func (d *DriverQueue) Outstanding() int { return len(d.chains) }

// Kick reports whether the driver must notify the device about the
// chains made available since the last Kick (virtqueue_kick_prepare):
// with EventIdx, if they crossed avail_event; otherwise unless the
// device set VIRTQ_USED_F_NO_NOTIFY.
func (d *DriverQueue) Kick() bool {
	oldIdx, newIdx := d.kicked, d.availIdx
	d.kicked = newIdx
	if d.EventIdx {
		event := d.AvailEvent()
		return newIdx-event-1 < newIdx-oldIdx
	}
	return d.u16(d.UsedAddr)&virtio.UsedFNoNotify == 0
}

// Alloc reserves n bytes in the buffer area and returns their address.
// The area is reused round robin: tests keep the bytes of outstanding
// chains well below its size.
func (d *DriverQueue) Alloc(n int) uint64 {
	size := alignUp(uint64(n), 8)
	if d.dataNext+size > d.dataEnd {
		d.dataNext = d.dataStart
	}
	if d.dataNext+size > d.dataEnd {
		panic(fmt.Sprintf("virtiotest: no room for %d bytes", n))
	}
	a := d.dataNext
	d.dataNext += size
	return a
}

// SetDesc writes descriptor i of the descriptor table.
func (d *DriverQueue) SetDesc(i uint16, desc virtio.Desc) {
	d.WriteDescs(d.DescAddr+virtio.DescSize*uint64(i), []virtio.Desc{desc})
}

// WriteDescs writes descriptors at addr, as an indirect table.
func (d *DriverQueue) WriteDescs(addr uint64, descs []virtio.Desc) {
	b := make([]byte, virtio.DescSize*len(descs))
	for i, ds := range descs {
		e := b[virtio.DescSize*i:]
		binary.LittleEndian.PutUint64(e[0:], ds.Addr)
		binary.LittleEndian.PutUint32(e[8:], ds.Len)
		binary.LittleEndian.PutUint16(e[12:], ds.Flags)
		binary.LittleEndian.PutUint16(e[14:], ds.Next)
	}
	d.write(b, addr)
}

// Publish makes the chain at head available: it writes head into the
// next available ring entry, then bumps the avail idx.
func (d *DriverQueue) Publish(head uint16) {
	d.putU16(d.AvailAddr+4+2*uint64(d.availIdx%d.Size), head)
	d.SetAvailIdx(d.availIdx + 1)
}

// SetAvailIdx writes the avail idx (the driver's own count follows).
func (d *DriverQueue) SetAvailIdx(idx uint16) {
	d.availIdx = idx
	d.putU16(d.AvailAddr+2, idx)
}

// AvailIdx is the avail idx the driver published.
func (d *DriverQueue) AvailIdx() uint16 { return d.availIdx }

// SetAvailFlags writes the available ring's flags
// (virtio.AvailFNoInterrupt).
func (d *DriverQueue) SetAvailFlags(flags uint16) { d.putU16(d.AvailAddr, flags) }

// SetUsedEvent writes used_event: with EVENT_IDX, interrupt me when the
// used idx moves past this.
func (d *DriverQueue) SetUsedEvent(idx uint16) {
	d.putU16(d.AvailAddr+4+2*uint64(d.Size), idx)
}

// UsedIdx is the used idx the device published.
func (d *DriverQueue) UsedIdx() uint16 { return d.u16(d.UsedAddr + 2) }

// UsedFlags are the used ring's flags (virtio.UsedFNoNotify).
func (d *DriverQueue) UsedFlags() uint16 { return d.u16(d.UsedAddr) }

// AvailEvent is avail_event, which the device writes with EVENT_IDX.
func (d *DriverQueue) AvailEvent() uint16 {
	return d.u16(d.UsedAddr + 4 + virtio.UsedElemSize*uint64(d.Size))
}

func (d *DriverQueue) u16(addr uint64) uint16 {
	var b [2]byte
	d.read(b[:], addr)
	return binary.LittleEndian.Uint16(b[:])
}

func (d *DriverQueue) putU16(addr uint64, v uint16) {
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], v)
	d.write(b[:], addr)
}

func (d *DriverQueue) read(p []byte, addr uint64) {
	if err := d.Mem.ReadAt(p, addr); err != nil {
		panic(err)
	}
}

func (d *DriverQueue) write(p []byte, addr uint64) {
	if err := d.Mem.WriteAt(p, addr); err != nil {
		panic(err)
	}
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }
