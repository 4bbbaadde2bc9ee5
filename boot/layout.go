package boot

// Guest physical addresses used while loading; all lie in the first MiB.
const (
	GDTAddr        = 0x500   // four 8-byte GDT entries
	BootParamsAddr = 0x7000  // struct boot_params, the "zero page"
	StackAddr      = 0x8ff0  // initial RSP (the kernel sets its own soon)
	PML4Addr       = 0x9000  // page tables: PML4, one PDPT, four PDs
	pdptAddr       = 0xa000  //
	pdAddr         = 0xb000  // 4 × 4 KiB, each mapping 1 GiB in 2 MiB pages
	CmdlineAddr    = 0x20000 // kernel command line
	setupDataAddr  = 0x21000 // setup_data chain, up to ebdaStart
	ebdaStart      = 0x9fc00 // top of conventional memory (legacy EBDA)
	KernelAddr     = 0x100000
	highMemStart   = 0x100000
	pageSize       = 0x1000
)

// Segment selectors of the GDT written at GDTAddr.
const (
	SelectorCode = 0x10
	SelectorData = 0x18
	SelectorTSS  = 0x20
)

// gdt holds flat segments as Firecracker and the kernel's own boot code
// use them: null, unused, 64-bit code, data, TSS.
var gdt = [...]uint64{
	0,
	0,
	gdtEntry(0xa09b, 0, 0xfffff), // code: present, exec/read, L=1, G=1
	gdtEntry(0xc093, 0, 0xfffff), // data: present, read/write, D/B=1, G=1
	gdtEntry(0x808b, 0, 0xfffff), // TSS: present, 64-bit busy TSS
}

// gdtEntry encodes a segment descriptor from its flags (access byte in the
// low 8 bits, flags nibble in bits 12..15), base and limit.
func gdtEntry(flags uint16, base, limit uint32) uint64 {
	return uint64(base&0xff000000)<<(56-24) |
		uint64(flags&0xf0ff)<<40 |
		uint64(limit&0x000f0000)<<(48-16) |
		uint64(base&0x00ffffff)<<16 |
		uint64(limit&0x0000ffff)
}

// Segment is a segment register as KVM's struct kvm_segment describes it,
// derived from the GDT entry it was loaded from.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
}

// segmentFromGDT decodes GDT entry e as the CPU would for selector sel.
func segmentFromGDT(sel uint16) Segment {
	e := gdt[sel>>3]
	limit := uint32(e&0xffff) | uint32((e>>48)&0xf)<<16
	s := Segment{
		Base:     (e>>16)&0xffffff | (e>>56)<<24,
		Limit:    limit,
		Selector: sel,
		Type:     uint8(e>>40) & 0xf,
		S:        uint8(e>>44) & 1,
		DPL:      uint8(e>>45) & 3,
		Present:  uint8(e>>47) & 1,
		L:        uint8(e>>53) & 1,
		DB:       uint8(e>>54) & 1,
		G:        uint8(e>>55) & 1,
	}
	if s.G == 1 {
		s.Limit = limit<<12 | 0xfff
	}
	return s
}
