package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Offsets into struct boot_params and its struct setup_header
// (arch/x86/include/uapi/asm/bootparam.h).
const (
	offExtRamdiskImage = 0x0c0
	offExtRamdiskSize  = 0x0c4
	offExtCmdLinePtr   = 0x0c8
	offE820Entries     = 0x1e8
	offSetupSects      = 0x1f1
	offHeaderMagic     = 0x202
	offVersion         = 0x206
	offKernelVersion   = 0x20e
	offTypeOfLoader    = 0x210
	offLoadFlags       = 0x211
	offRamdiskImage    = 0x218
	offRamdiskSize     = 0x21c
	offCmdLinePtr      = 0x228
	offInitrdAddrMax   = 0x22c
	offXLoadFlags      = 0x236
	offCmdlineSize     = 0x238
	offSetupData       = 0x250
	offPrefAddress     = 0x258
	offInitSize        = 0x260
	offE820Table       = 0x2d0

	headerMagic      = 0x53726448 // "HdrS"
	minVersion       = 0x0209     // setup_data needs 2.09
	xlfKernel64      = 1 << 0
	xlfCanBeAbove4G  = 1 << 1
	loadedHigh       = 1 << 0
	typeOfLoaderNone = 0xff // "undefined" boot loader ID
	e820Max          = 128
	e820EntrySize    = 20
)

// E820 memory types.
const (
	E820RAM      = 1
	E820Reserved = 2
)

// SetupData types (enum of SETUP_* in bootparam.h).
const (
	SetupDTB = 2
)

// Region is a range of guest RAM.
type Region struct {
	Addr, Size uint64
}

// SetupData is one entry of the boot_params setup_data chain.
type SetupData struct {
	Type uint32
	Data []byte
}

// Config describes what to load.
type Config struct {
	Kernel    []byte      // bzImage
	Initrd    []byte      // optional initramfs
	Cmdline   string      // kernel command line
	RAM       []Region    // all guest RAM, for the e820 map; RAM[0] starts at 0
	SetupData []SetupData // appended to the setup_data chain in order
}

// CPUState is the register state for the boot vCPU to start at.
type CPUState struct {
	RIP, RSI, RSP, RFLAGS uint64
	CR0, CR3, CR4, EFER   uint64
	GDTBase               uint64
	GDTLimit              uint16
	CS, DS, TR            Segment
}

// Control-register bits used for long mode.
const (
	cr0PE    = 1 << 0
	cr0ET    = 1 << 4
	cr0PG    = 1 << 31
	cr4PAE   = 1 << 5
	eferLME  = 1 << 8
	eferLMA  = 1 << 10
	pteFlags = 0x3  // present, writable
	pdeLarge = 0x83 // present, writable, 2 MiB page
)

// Errors returned by Load; wrapped with details.
var (
	ErrNotBzImage = errors.New("not a bzImage (no HdrS header)")
	ErrTooOld     = errors.New("boot protocol too old")
	ErrNo64Bit    = errors.New("kernel has no 64-bit entry point")
	ErrNoRoom     = errors.New("does not fit in guest memory")
)

// maxKernelVersion bounds the version string KernelVersion reads.
const maxKernelVersion = 256

// KernelVersion returns the human-readable version string a bzImage
// carries (the setup header's kernel_version: "6.1.172-gvmm (root@vm) ...
// #1 SMP ..."), or "" if it has none or k is not a bzImage. It reads at
// most 256 bytes and never past k.
func KernelVersion(k []byte) string {
	if len(k) < 0x264 || le32(k, offHeaderMagic) != headerMagic {
		return ""
	}
	p := le16(k, offKernelVersion)
	if p == 0 {
		return ""
	}
	start := 0x200 + int(p)
	if start >= len(k) {
		return ""
	}
	s := k[start:min(len(k), start+maxKernelVersion)]
	n := bytes.IndexByte(s, 0)
	if n < 0 {
		return ""
	}
	return string(s[:n])
}

// Load writes the kernel, initrd, command line, boot_params, page tables
// and GDT into mem, which is guest RAM starting at address 0, and returns
// the register state to start the boot vCPU with.
func Load(mem []byte, c Config) (*CPUState, error) {
	k := c.Kernel
	if len(k) < 0x264 || le32(k, offHeaderMagic) != headerMagic {
		return nil, fmt.Errorf("kernel: %w", ErrNotBzImage)
	}
	if v := le16(k, offVersion); v < minVersion {
		return nil, fmt.Errorf("kernel: %w: version %#x, need %#x", ErrTooOld, v, minVersion)
	}
	if le16(k, offXLoadFlags)&xlfKernel64 == 0 {
		return nil, fmt.Errorf("kernel: %w", ErrNo64Bit)
	}
	setupSects := int(k[offSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	setupSize := (setupSects + 1) * 512
	if setupSize >= len(k) {
		return nil, fmt.Errorf("kernel: truncated bzImage (%d bytes, setup alone is %d)", len(k), setupSize)
	}
	if len(mem) < highMemStart {
		return nil, fmt.Errorf("guest memory of %d bytes: %w", len(mem), ErrNoRoom)
	}
	payload := k[setupSize:]
	// The decompressor runs the kernel from pref_address (LOAD_PHYSICAL_ADDR)
	// and needs init_size bytes there: the initrd must stay clear of both.
	initEnd := binary.LittleEndian.Uint64(k[offPrefAddress:]) + uint64(le32(k, offInitSize))
	kernelEnd := max(uint64(KernelAddr)+uint64(len(payload)), initEnd)
	if kernelEnd > uint64(len(mem)) {
		return nil, fmt.Errorf("kernel needs memory up to %#x: %w", kernelEnd, ErrNoRoom)
	}
	copy(mem[KernelAddr:], payload)

	// The zero page starts as a copy of the image's setup header.
	bp := mem[BootParamsAddr : BootParamsAddr+pageSize]
	clear(bp)
	hdrEnd := 0x202 + int(k[0x201])
	if hdrEnd > len(k) || hdrEnd > pageSize {
		return nil, fmt.Errorf("kernel: bad setup header length %d", hdrEnd)
	}
	copy(bp[offSetupSects:hdrEnd], k[offSetupSects:hdrEnd])
	bp[offTypeOfLoader] = typeOfLoaderNone
	bp[offLoadFlags] |= loadedHigh

	// Command line.
	maxCmd := uint64(le32(k, offCmdlineSize))
	if uint64(len(c.Cmdline)) > maxCmd || len(c.Cmdline) >= setupDataAddr-CmdlineAddr {
		return nil, fmt.Errorf("kernel command line is %d bytes; this kernel takes at most %d", len(c.Cmdline), maxCmd)
	}
	clear(mem[CmdlineAddr:setupDataAddr])
	copy(mem[CmdlineAddr:], c.Cmdline)
	put32(bp, offCmdLinePtr, CmdlineAddr)
	put32(bp, offExtCmdLinePtr, 0)

	// Initrd: as high as allowed, below the end of low RAM.
	if len(c.Initrd) > 0 {
		limit := uint64(le32(k, offInitrdAddrMax)) + 1
		if le16(k, offXLoadFlags)&xlfCanBeAbove4G != 0 || limit == 1 {
			limit = 1 << 32
		}
		top := min(limit, uint64(len(mem)))
		size := uint64(len(c.Initrd))
		if size > top || (top-size)&^(pageSize-1) < kernelEnd {
			return nil, fmt.Errorf("initrd of %d bytes does not fit between the kernel (ends %#x) and %#x: give the guest more memory", size, kernelEnd, top)
		}
		addr := (top - size) &^ (pageSize - 1)
		copy(mem[addr:], c.Initrd)
		put32(bp, offRamdiskImage, uint32(addr))
		put32(bp, offRamdiskSize, uint32(size))
		put32(bp, offExtRamdiskImage, uint32(addr>>32))
		put32(bp, offExtRamdiskSize, uint32(size>>32))
	}

	if err := writeE820(bp, c.RAM); err != nil {
		return nil, err
	}
	if err := writeSetupData(mem, bp, c.SetupData); err != nil {
		return nil, err
	}
	writePageTables(mem)
	for i, e := range gdt {
		binary.LittleEndian.PutUint64(mem[GDTAddr+8*i:], e)
	}

	return &CPUState{
		RIP:      KernelAddr + 0x200,
		RSI:      BootParamsAddr,
		RSP:      StackAddr,
		RFLAGS:   2,
		CR0:      cr0PE | cr0ET | cr0PG,
		CR3:      PML4Addr,
		CR4:      cr4PAE,
		EFER:     eferLME | eferLMA,
		GDTBase:  GDTAddr,
		GDTLimit: uint16(len(gdt)*8 - 1),
		CS:       segmentFromGDT(SelectorCode),
		DS:       segmentFromGDT(SelectorData),
		TR:       segmentFromGDT(SelectorTSS),
	}, nil
}

// E820 builds the memory map for ram: conventional memory below the EBDA,
// then every region from 1 MiB up. The legacy hole between stays unlisted.
func E820(ram []Region) ([]Region, error) {
	if len(ram) == 0 || ram[0].Addr != 0 || ram[0].Size < highMemStart {
		return nil, fmt.Errorf("e820: RAM must start at 0 and cover the first MiB: %w", ErrNoRoom)
	}
	out := []Region{{0, ebdaStart}, {highMemStart, ram[0].Size - highMemStart}}
	for _, r := range ram[1:] {
		if r.Size > 0 {
			out = append(out, r)
		}
	}
	if len(out) > e820Max {
		return nil, fmt.Errorf("e820: %d regions, at most %d", len(out), e820Max)
	}
	return out, nil
}

func writeE820(bp []byte, ram []Region) error {
	m, err := E820(ram)
	if err != nil {
		return err
	}
	for i, r := range m {
		e := bp[offE820Table+i*e820EntrySize:]
		binary.LittleEndian.PutUint64(e[0:], r.Addr)
		binary.LittleEndian.PutUint64(e[8:], r.Size)
		binary.LittleEndian.PutUint32(e[16:], E820RAM)
	}
	bp[offE820Entries] = uint8(len(m))
	return nil
}

// writeSetupData lays out the chain struct setup_data { u64 next; u32 type;
// u32 len; u8 data[]; } from setupDataAddr, 8-byte aligned, and points
// boot_params.hdr.setup_data at its head.
func writeSetupData(mem, bp []byte, sd []SetupData) error {
	addr := uint64(setupDataAddr)
	var prev uint64 // address of the previous entry's next field
	for _, d := range sd {
		end := addr + 16 + uint64(len(d.Data))
		if end > ebdaStart {
			return fmt.Errorf("setup_data: %d bytes of type %d do not fit below %#x", len(d.Data), d.Type, ebdaStart)
		}
		binary.LittleEndian.PutUint64(mem[addr:], 0)
		binary.LittleEndian.PutUint32(mem[addr+8:], d.Type)
		binary.LittleEndian.PutUint32(mem[addr+12:], uint32(len(d.Data)))
		copy(mem[addr+16:], d.Data)
		if prev == 0 {
			binary.LittleEndian.PutUint64(bp[offSetupData:], addr)
		} else {
			binary.LittleEndian.PutUint64(mem[prev:], addr)
		}
		prev = addr
		addr = (end + 7) &^ 7
	}
	return nil
}

// writePageTables identity-maps the low 4 GiB with 2 MiB pages.
func writePageTables(mem []byte) {
	clear(mem[PML4Addr : pdAddr+4*pageSize])
	binary.LittleEndian.PutUint64(mem[PML4Addr:], pdptAddr|pteFlags)
	for i := range uint64(4) {
		pd := pdAddr + i*pageSize
		binary.LittleEndian.PutUint64(mem[pdptAddr+8*i:], pd|pteFlags)
		for j := range uint64(512) {
			binary.LittleEndian.PutUint64(mem[pd+8*j:], (i*512+j)<<21|pdeLarge)
		}
	}
}

func le16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func put32(b []byte, off int, v uint32) {
	binary.LittleEndian.PutUint32(b[off:], v)
}
