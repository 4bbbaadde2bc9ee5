package vhostuser

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// Errors of ReadMessage and the payload decoders; test for them with
// errors.Is.
var (
	// ErrHeader: the header's flags are not those of a request (version
	// 1, no REPLY, no unknown bit), or its size is past MaxPayload.
	ErrHeader = errors.New("vhost-user: bad message header")
	// ErrFDs: the message carries more than MaxFDs file descriptors, or
	// the kernel truncated them (MSG_CTRUNC).
	ErrFDs = errors.New("vhost-user: bad file descriptors")
	// ErrPayload: a payload's size or contents do not fit its request.
	ErrPayload = errors.New("vhost-user: bad payload")
)

// Header is a message header. All numbers are little endian (the
// machine's order, on the x86 hosts gvmm runs on).
type Header struct {
	Request Request
	Flags   uint32
	Size    uint32 // payload bytes that follow
}

// Message is one front-end request: its header, exactly Size bytes of
// payload and the file descriptors that came with it. The message owns
// the descriptors until a handler takes them (setting the entry to -1);
// CloseFDs closes the rest.
type Message struct {
	Header
	Payload []byte
	FDs     []int
}

// NeedReply reports whether the front end set NEED_REPLY.
func (m *Message) NeedReply() bool { return m.Flags&FlagNeedReply != 0 }

// CloseFDs closes every descriptor the message still owns.
func (m *Message) CloseFDs() {
	for i, fd := range m.FDs {
		if fd >= 0 {
			_ = unix.Close(fd)
			m.FDs[i] = -1
		}
	}
}

// takeFD hands the message's only descriptor to the caller.
func (m *Message) takeFD() int {
	fd := m.FDs[0]
	m.FDs[0] = -1
	return fd
}

// MsgReader is what ReadMessage reads from: a Unix stream socket
// (*net.UnixConn), or anything that reads bytes and SCM_RIGHTS
// control messages the same way.
type MsgReader interface {
	ReadMsgUnix(b, oob []byte) (n, oobn, flags int, addr *net.UnixAddr, err error)
}

// oobSize holds one SCM_RIGHTS message of MaxFDs descriptors, and one more
// so that a message carrying too many is seen rather than truncated.
var oobSize = unix.CmsgSpace(4 * (MaxFDs + 1))

// ReadMessage reads one message: the header, checked before anything
// else (flags, Size ≤ MaxPayload), then the payload, and every file
// descriptor that came with either. It allocates at most MaxPayload bytes
// for the payload and keeps at most MaxFDs descriptors; on any error it
// closes every descriptor it received, and an error past the header
// names the request. It returns io.EOF if the stream ended cleanly
// before a header, an error wrapping io.ErrUnexpectedEOF if it ended
// inside a message.
func ReadMessage(r MsgReader) (*Message, error) {
	m := &Message{}
	var hdr [HeaderSize]byte
	oob := make([]byte, oobSize)
	if err := m.readFull(r, hdr[:], oob, true); err != nil {
		m.CloseFDs()
		return nil, err
	}
	m.Header = ParseHeader(hdr)
	if err := m.Header.Check(); err != nil {
		m.CloseFDs()
		return nil, err
	}
	m.Payload = make([]byte, m.Size)
	if err := m.readFull(r, m.Payload, oob, false); err != nil {
		m.CloseFDs()
		return nil, fmt.Errorf("%v: %d-byte payload: %w", m.Request, m.Size, err)
	}
	return m, nil
}

// readFull fills b from r, collecting descriptors into m.FDs. first says
// whether an EOF before any byte is a clean end.
func (m *Message) readFull(r MsgReader, b, oob []byte, first bool) error {
	for got := 0; got < len(b); {
		n, oobn, flags, _, err := r.ReadMsgUnix(b[got:], oob)
		if n < 0 || n > len(b)-got || oobn < 0 || oobn > len(oob) {
			return fmt.Errorf("vhost-user: socket read of %d bytes and %d of control data", n, oobn)
		}
		got += n
		if oobn > 0 {
			if ferr := m.addFDs(oob[:oobn]); ferr != nil {
				return ferr
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			return fmt.Errorf("%w: control data truncated", ErrFDs)
		}
		if err == nil && n == 0 && oobn == 0 || errors.Is(err, io.EOF) {
			err = io.EOF // a stream socket's recvmsg returns 0 at its end
		}
		switch {
		case err == io.EOF && got == 0 && first && len(m.FDs) == 0:
			return io.EOF
		case err == io.EOF && got < len(b):
			return io.ErrUnexpectedEOF
		case err != nil && err != io.EOF:
			return err
		}
	}
	return nil
}

// addFDs takes the descriptors of the SCM_RIGHTS messages in oob; all of
// them, so that they are closed even when there are too many.
func (m *Message) addFDs(oob []byte) error {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFDs, err)
	}
	for _, c := range cmsgs {
		if c.Header.Level != unix.SOL_SOCKET || c.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		fds, err := unix.ParseUnixRights(&c)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrFDs, err)
		}
		m.FDs = append(m.FDs, fds...)
	}
	if len(m.FDs) > MaxFDs {
		return fmt.Errorf("%w: %d descriptors, at most %d", ErrFDs, len(m.FDs), MaxFDs)
	}
	return nil
}

// ParseHeader decodes a message header.
func ParseHeader(b [HeaderSize]byte) Header {
	return Header{
		Request: Request(binary.LittleEndian.Uint32(b[0:])),
		Flags:   binary.LittleEndian.Uint32(b[4:]),
		Size:    binary.LittleEndian.Uint32(b[8:]),
	}
}

// Bytes encodes the header.
func (h Header) Bytes() [HeaderSize]byte {
	var b [HeaderSize]byte
	binary.LittleEndian.PutUint32(b[0:], uint32(h.Request))
	binary.LittleEndian.PutUint32(b[4:], h.Flags)
	binary.LittleEndian.PutUint32(b[8:], h.Size)
	return b
}

// Check refuses a header no front end sends: a version other than 1, the
// REPLY flag or an undefined flag set, or a payload larger than
// MaxPayload.
func (h Header) Check() error {
	switch {
	case h.Flags&VersionMask != Version:
		return fmt.Errorf("%w: %v: version %d, want %d", ErrHeader, h.Request, h.Flags&VersionMask, Version)
	case h.Flags&^(VersionMask|FlagNeedReply) != 0:
		return fmt.Errorf("%w: %v: flags %#x", ErrHeader, h.Request, h.Flags)
	case h.Size > MaxPayload:
		return fmt.Errorf("%w: %v: payload of %d bytes, at most %d", ErrHeader, h.Request, h.Size, MaxPayload)
	}
	return nil
}

// Reply encodes a reply to request r: a header with flags
// Version|FlagReply (exactly: QEMU refuses any other) and the payload.
func Reply(r Request, payload []byte) []byte {
	h := Header{Request: r, Flags: Version | FlagReply, Size: uint32(len(payload))}
	b := h.Bytes()
	return append(b[:], payload...)
}

// payloadSize checks that the payload is exactly n bytes.
func (m *Message) payloadSize(n int) error {
	if len(m.Payload) != n {
		return fmt.Errorf("%w: %d bytes, want %d", ErrPayload, len(m.Payload), n)
	}
	return nil
}

// U64 decodes a payload of one u64.
func (m *Message) U64() (uint64, error) {
	if err := m.payloadSize(u64Size); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(m.Payload), nil
}

// VringState is struct vhost_vring_state: a ring index and a number (the
// ring size, its base, or enable).
type VringState struct {
	Index, Num uint32
}

// Bytes encodes the state, for GET_VRING_BASE's reply.
func (s VringState) Bytes() []byte {
	b := binary.LittleEndian.AppendUint32(nil, s.Index)
	return binary.LittleEndian.AppendUint32(b, s.Num)
}

// VringState decodes a vring state payload.
func (m *Message) VringState() (VringState, error) {
	if err := m.payloadSize(vringStateSize); err != nil {
		return VringState{}, err
	}
	return VringState{binary.LittleEndian.Uint32(m.Payload), binary.LittleEndian.Uint32(m.Payload[4:])}, nil
}

// VringAddr is struct vhost_vring_addr: where a ring's three areas are,
// as addresses in the front end's address space ("user addresses").
type VringAddr struct {
	Index, Flags uint32
	Desc         uint64 // descriptor table
	Used         uint64 // used ring (the device area)
	Avail        uint64 // available ring (the driver area)
	Log          uint64 // guest address for logging used ring writes
}

// VringAddr decodes SET_VRING_ADDR's payload. The order in memory is
// desc, used, avail, log.
func (m *Message) VringAddr() (VringAddr, error) {
	if err := m.payloadSize(vringAddrSize); err != nil {
		return VringAddr{}, err
	}
	p := m.Payload
	return VringAddr{
		Index: binary.LittleEndian.Uint32(p[0:]),
		Flags: binary.LittleEndian.Uint32(p[4:]),
		Desc:  binary.LittleEndian.Uint64(p[8:]),
		Used:  binary.LittleEndian.Uint64(p[16:]),
		Avail: binary.LittleEndian.Uint64(p[24:]),
		Log:   binary.LittleEndian.Uint64(p[32:]),
	}, nil
}

// Bytes encodes the address description.
func (a VringAddr) Bytes() []byte {
	b := binary.LittleEndian.AppendUint32(nil, a.Index)
	b = binary.LittleEndian.AppendUint32(b, a.Flags)
	for _, v := range []uint64{a.Desc, a.Used, a.Avail, a.Log} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// MemoryRegion is one region of SET_MEM_TABLE: Size bytes of guest RAM at
// guest physical address GuestAddr, which the front end has at UserAddr
// and the back end maps from the region's descriptor at MmapOffset.
type MemoryRegion struct {
	GuestAddr, Size, UserAddr, MmapOffset uint64
}

// MemTable decodes SET_MEM_TABLE's payload: a count, padding and that
// many regions, 1 to MaxRegions. The payload must hold exactly them.
func (m *Message) MemTable() ([]MemoryRegion, error) {
	if len(m.Payload) < memHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, no region count", ErrPayload, len(m.Payload))
	}
	n := binary.LittleEndian.Uint32(m.Payload)
	if n == 0 || n > MaxRegions {
		return nil, fmt.Errorf("%w: %d regions, want 1 to %d", ErrPayload, n, MaxRegions)
	}
	if err := m.payloadSize(memHeaderSize + regionSize*int(n)); err != nil {
		return nil, fmt.Errorf("%d regions: %w", n, err)
	}
	regions := make([]MemoryRegion, n)
	for i := range regions {
		p := m.Payload[memHeaderSize+regionSize*i:]
		regions[i] = MemoryRegion{
			GuestAddr:  binary.LittleEndian.Uint64(p[0:]),
			Size:       binary.LittleEndian.Uint64(p[8:]),
			UserAddr:   binary.LittleEndian.Uint64(p[16:]),
			MmapOffset: binary.LittleEndian.Uint64(p[24:]),
		}
	}
	return regions, nil
}

// MemTableBytes encodes a memory table payload.
func MemTableBytes(regions []MemoryRegion) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(regions)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, r := range regions {
		for _, v := range []uint64{r.GuestAddr, r.Size, r.UserAddr, r.MmapOffset} {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
	}
	return b
}

// ConfigSpace is the payload of GET_CONFIG and SET_CONFIG: Size bytes of
// device configuration space at Offset. Data is the bytes that follow
// the 12-byte header (for GET_CONFIG, as many as Size, content ignored).
type ConfigSpace struct {
	Offset, Size, Flags uint32
	Data                []byte
}

// Config decodes a configuration space payload: Size at most
// MaxConfigSize, Offset+Size within it, and exactly Size bytes of data.
func (m *Message) Config() (ConfigSpace, error) {
	if len(m.Payload) < configHdrSize {
		return ConfigSpace{}, fmt.Errorf("%w: %d bytes, no config header", ErrPayload, len(m.Payload))
	}
	c := ConfigSpace{
		Offset: binary.LittleEndian.Uint32(m.Payload[0:]),
		Size:   binary.LittleEndian.Uint32(m.Payload[4:]),
		Flags:  binary.LittleEndian.Uint32(m.Payload[8:]),
	}
	if c.Size > MaxConfigSize || c.Offset > MaxConfigSize-c.Size {
		return ConfigSpace{}, fmt.Errorf("%w: config offset %d size %d, beyond %d bytes", ErrPayload, c.Offset, c.Size, MaxConfigSize)
	}
	if err := m.payloadSize(configHdrSize + int(c.Size)); err != nil {
		return ConfigSpace{}, fmt.Errorf("config size %d: %w", c.Size, err)
	}
	c.Data = m.Payload[configHdrSize:]
	return c, nil
}

// Bytes encodes the configuration space payload.
func (c ConfigSpace) Bytes() []byte {
	b := binary.LittleEndian.AppendUint32(nil, c.Offset)
	b = binary.LittleEndian.AppendUint32(b, c.Size)
	b = binary.LittleEndian.AppendUint32(b, c.Flags)
	return append(b, c.Data...)
}

// VringFile decodes the u64 payload of SET_VRING_KICK, SET_VRING_CALL and
// SET_VRING_ERR: the ring index in bits 0-7 and, in bit 8, no descriptor.
// It checks that exactly the descriptors the payload announces came with
// the message (one, or none with bit 8).
func (m *Message) VringFile() (index int, noFD bool, err error) {
	v, err := m.U64()
	if err != nil {
		return 0, false, err
	}
	if v&^vringFDMask != 0 {
		return 0, false, fmt.Errorf("%w: %#x: bits other than the index and the no-fd flag", ErrPayload, v)
	}
	index, noFD = int(v&vringIndexMask), v&vringNoFD != 0
	want := 1
	if noFD {
		want = 0
	}
	if len(m.FDs) != want {
		return 0, false, fmt.Errorf("%w: %d descriptors, want %d (payload %#x)", ErrFDs, len(m.FDs), want, v)
	}
	return index, noFD, nil
}
