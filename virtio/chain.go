package virtio

import "fmt"

// Buffer is one guest buffer of a descriptor chain: Len bytes at guest
// physical address Addr. Pop has checked that it lies in guest memory, and
// Len is never 0 (Pop skips zero-length descriptors).
type Buffer struct {
	Addr uint64
	Len  uint32
}

// Chain is a descriptor chain popped from a queue: the driver's request.
// Readable are the device-readable buffers in chain order, Writable the
// device-writable ones that follow them. Descriptors from an indirect
// table are flattened in; zero-length ones are left out. A chain holds at
// most the queue size of buffers. The chain is a copy: the driver cannot change
// it after Pop, though it can still change the bytes in the buffers.
type Chain struct {
	// Head is the index of the chain's first descriptor, the id the
	// device returns with Queue.Push.
	Head     uint16
	Readable []Buffer
	Writable []Buffer
}

// ReadableLen is the total length of the device-readable buffers.
func (c *Chain) ReadableLen() uint64 { return totalLen(c.Readable) }

// WritableLen is the total length of the device-writable buffers.
func (c *Chain) WritableLen() uint64 { return totalLen(c.Writable) }

func totalLen(bufs []Buffer) uint64 {
	var n uint64
	for _, b := range bufs {
		n += uint64(b.Len)
	}
	return n
}

// Read gathers the chain's device-readable bytes into p, in order, and
// returns how many it copied: min(len(p), ReadableLen()). The error is
// that of guest memory, if any.
func (c *Chain) Read(mem GuestMemory, p []byte) (int, error) {
	n := 0
	for _, b := range c.Readable {
		if n == len(p) {
			break
		}
		m := min(uint64(b.Len), uint64(len(p)-n))
		if err := mem.ReadAt(p[n:n+int(m)], b.Addr); err != nil {
			return n, err
		}
		n += int(m)
	}
	return n, nil
}

// Write scatters p over the chain's device-writable buffers, in order,
// and returns len(p). If p is longer than WritableLen it writes nothing
// and returns ErrNoSpace. The caller pushes the chain with
// written = the total it wrote.
func (c *Chain) Write(mem GuestMemory, p []byte) (int, error) {
	if uint64(len(p)) > c.WritableLen() {
		return 0, fmt.Errorf("%w: %d bytes, room for %d", ErrNoSpace, len(p), c.WritableLen())
	}
	n := 0
	for _, b := range c.Writable {
		if n == len(p) {
			break
		}
		m := min(uint64(b.Len), uint64(len(p)-n))
		if err := mem.WriteAt(p[n:n+int(m)], b.Addr); err != nil {
			return n, err
		}
		n += int(m)
	}
	return n, nil
}

// walk follows the chain starting at c.Head and fills in c's buffers
// (virtio 1.2 §2.7.5). Every descriptor is read from guest memory exactly
// once. The walk is bounded by the queue size: "A driver MUST NOT create a
// descriptor chain longer than the Queue Size of the device" (§2.7.5.3.1),
// so a chain of more than Size buffers, direct and indirect ones together,
// is refused with ErrChainTooLong, and so is a loop through next. A
// zero-length buffer is counted against that bound but otherwise skipped:
// it is neither checked against memory nor kept in the chain, so no access
// is ever made for it.
func (q *Queue) walk(mem GuestMemory, c *Chain) error {
	table, count := q.DescAddr, uint32(q.Size)
	idx := uint32(c.Head)
	indirect := false
	var descs uint32 // buffers walked so far, zero-length ones included
	var total uint64
	for {
		if idx >= count {
			return fmt.Errorf("%w: %d, table of %d", ErrDescIndex, idx, count)
		}
		var raw [DescSize]byte
		// table+idx*16 lies in the descriptor table (Validate) or in
		// the indirect table (checked below): no overflow.
		if err := mem.ReadAt(raw[:], table+uint64(idx)*DescSize); err != nil {
			return fmt.Errorf("%w: descriptor %d: %v", ErrRing, idx, err)
		}
		d := decodeDesc(&raw)

		if d.Flags&DescFIndirect != 0 {
			switch {
			case indirect:
				return fmt.Errorf("%w: nested indirect table", ErrIndirect)
			case !q.IndirectDesc:
				return fmt.Errorf("%w: VIRTIO_RING_F_INDIRECT_DESC not negotiated", ErrIndirect)
			case d.Flags&DescFNext != 0:
				return fmt.Errorf("%w: INDIRECT with NEXT", ErrIndirect)
			case d.Len == 0 || d.Len%DescSize != 0 || d.Len/DescSize > MaxIndirectDescs:
				return fmt.Errorf("%w: table length %d", ErrIndirect, d.Len)
			}
			if err := checkRange(mem, d.Addr, uint64(d.Len)); err != nil {
				return fmt.Errorf("indirect table: %w", err)
			}
			// The WRITE flag of this descriptor is ignored (§2.7.5.3.2).
			table, count = d.Addr, d.Len/DescSize
			idx, indirect = 0, true
			continue
		}

		if descs++; descs > uint32(q.Size) {
			return fmt.Errorf("%w: more than the queue size, %d", ErrChainTooLong, q.Size)
		}
		if d.Len > 0 {
			if err := checkRange(mem, d.Addr, uint64(d.Len)); err != nil {
				return fmt.Errorf("descriptor %d: %w", idx, err)
			}
			if total += uint64(d.Len); total > 1<<32 {
				return fmt.Errorf("%w: more than 2^32 bytes", ErrChainTooLong)
			}
			b := Buffer{Addr: d.Addr, Len: d.Len}
			if d.Flags&DescFWrite != 0 {
				c.Writable = append(c.Writable, b)
			} else {
				if len(c.Writable) > 0 {
					return fmt.Errorf("%w: descriptor %d", ErrWriteOrder, idx)
				}
				c.Readable = append(c.Readable, b)
			}
		}
		if d.Flags&DescFNext == 0 {
			return nil
		}
		idx = uint32(d.Next)
	}
}
