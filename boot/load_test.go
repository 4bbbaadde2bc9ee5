package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

const mib = 1 << 20

// fakeKernel returns a minimal bzImage: a setup header with the fields Load
// reads, setupSects sectors of setup, and a recognisable payload.
func fakeKernel(mod func(k []byte)) []byte {
	const setupSects = 4
	k := make([]byte, (setupSects+1)*512+4096)
	k[offSetupSects] = setupSects
	k[0x201] = 0x6a // setup header ends at 0x26c
	put32(k, offHeaderMagic, headerMagic)
	binary.LittleEndian.PutUint16(k[offVersion:], 0x020f)
	binary.LittleEndian.PutUint16(k[offXLoadFlags:], xlfKernel64|xlfCanBeAbove4G)
	put32(k, offInitrdAddrMax, 0x7fffffff)
	put32(k, offCmdlineSize, 2047)
	binary.LittleEndian.PutUint64(k[offPrefAddress:], 16*mib)
	put32(k, offInitSize, 8*mib)
	for i := (setupSects + 1) * 512; i < len(k); i++ {
		k[i] = byte(i)
	}
	if mod != nil {
		mod(k)
	}
	return k
}

func TestLoadLayout(t *testing.T) {
	mem := make([]byte, 64*mib)
	kernel := fakeKernel(nil)
	initrd := bytes.Repeat([]byte{0xab}, 3000)
	st, err := Load(mem, Config{
		Kernel:    kernel,
		Initrd:    initrd,
		Cmdline:   "console=ttyS0",
		RAM:       []Region{{0, 64 * mib}},
		SetupData: []SetupData{{SetupDTB, []byte("dtb!")}, {7, []byte("x")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	bp := mem[BootParamsAddr:]

	if !bytes.Equal(mem[KernelAddr:KernelAddr+4096], kernel[5*512:]) {
		t.Error("kernel payload not at 1 MiB")
	}
	if got := le32(bp, offHeaderMagic); got != headerMagic {
		t.Errorf("setup header not copied: magic %#x", got)
	}
	if bp[offTypeOfLoader] != 0xff || bp[offLoadFlags]&loadedHigh == 0 {
		t.Errorf("type_of_loader %#x loadflags %#x", bp[offTypeOfLoader], bp[offLoadFlags])
	}
	if p := le32(bp, offCmdLinePtr); p != CmdlineAddr || string(mem[p:p+14]) != "console=ttyS0\x00" {
		t.Errorf("cmdline at %#x: %q", p, mem[p:p+14])
	}

	addr, size := le32(bp, offRamdiskImage), le32(bp, offRamdiskSize)
	if size != 3000 || addr%pageSize != 0 || uint64(addr)+uint64(size) > 64*mib || addr < 24*mib {
		t.Errorf("initrd at %#x size %d", addr, size)
	}
	if !bytes.Equal(mem[addr:addr+size], initrd) {
		t.Error("initrd bytes differ")
	}

	// setup_data chain: two entries, 8-byte aligned, last next = 0.
	var types []uint32
	var datas []string
	for p := binary.LittleEndian.Uint64(bp[offSetupData:]); p != 0; p = binary.LittleEndian.Uint64(mem[p:]) {
		if p%8 != 0 {
			t.Errorf("setup_data at %#x not aligned", p)
		}
		n := binary.LittleEndian.Uint32(mem[p+12:])
		types = append(types, binary.LittleEndian.Uint32(mem[p+8:]))
		datas = append(datas, string(mem[p+16:p+16+uint64(n)]))
		if len(types) > 2 {
			t.Fatal("setup_data chain does not end")
		}
	}
	if len(types) != 2 || types[0] != SetupDTB || datas[0] != "dtb!" || types[1] != 7 || datas[1] != "x" {
		t.Errorf("setup_data chain: types %v data %q", types, datas)
	}

	want := CPUState{RIP: 0x100200, RSI: 0x7000, RSP: StackAddr, RFLAGS: 2,
		CR0: 0x80000011, CR3: 0x9000, CR4: 0x20, EFER: 0x500, GDTBase: 0x500, GDTLimit: 39}
	got := *st
	got.CS, got.DS, got.TR = Segment{}, Segment{}, Segment{}
	if got != want {
		t.Errorf("cpu state\n got %+v\nwant %+v", got, want)
	}
}

func TestPageTablesIdentityMap(t *testing.T) {
	mem := make([]byte, 64*mib)
	writePageTables(mem)
	// Walk the tables for a few addresses as the MMU would.
	for _, va := range []uint64{0, 0x100200, 0x3fffffff, 0x40000000, 0xfee00000, 0xffffffff} {
		pml4e := binary.LittleEndian.Uint64(mem[PML4Addr+8*((va>>39)&511):])
		pdpte := binary.LittleEndian.Uint64(mem[(pml4e&^0xfff)+8*((va>>30)&511):])
		pde := binary.LittleEndian.Uint64(mem[(pdpte&^0xfff)+8*((va>>21)&511):])
		if pml4e&1 == 0 || pdpte&1 == 0 || pde&0x81 != 0x81 {
			t.Fatalf("va %#x: entries %#x %#x %#x not present/large", va, pml4e, pdpte, pde)
		}
		if pa := pde&^0x1fffff&^uint64(0x83) | va&0x1fffff; pa != va {
			t.Errorf("va %#x maps to %#x", va, pa)
		}
	}
}

func TestSegments(t *testing.T) {
	tests := []struct {
		sel  uint16
		want Segment
	}{
		{SelectorCode, Segment{Limit: 0xffffffff, Selector: 0x10, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}},
		{SelectorData, Segment{Limit: 0xffffffff, Selector: 0x18, Type: 0x3, Present: 1, S: 1, DB: 1, G: 1}},
		{SelectorTSS, Segment{Limit: 0xffffffff, Selector: 0x20, Type: 0xb, Present: 1, G: 1}},
	}
	for _, tt := range tests {
		if got := segmentFromGDT(tt.sel); got != tt.want {
			t.Errorf("selector %#x: got %+v want %+v", tt.sel, got, tt.want)
		}
	}
}

func TestE820(t *testing.T) {
	tests := []struct {
		name string
		ram  []Region
		want []Region
		err  error
	}{
		{"one slot", []Region{{0, 256 * mib}}, []Region{{0, 0x9fc00}, {mib, 255 * mib}}, nil},
		{"above 4G", []Region{{0, 3072 * mib}, {4096 * mib, 1024 * mib}},
			[]Region{{0, 0x9fc00}, {mib, 3071 * mib}, {4096 * mib, 1024 * mib}}, nil},
		{"empty high", []Region{{0, 2 * mib}, {4096 * mib, 0}}, []Region{{0, 0x9fc00}, {mib, mib}}, nil},
		{"none", nil, nil, ErrNoRoom},
		{"not at 0", []Region{{mib, 64 * mib}}, nil, ErrNoRoom},
		{"too small", []Region{{0, 512 * 1024}}, nil, ErrNoRoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := E820(tt.ram)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v want %v", got, tt.want)
				}
			}
		})
	}
}

func TestE820InBootParams(t *testing.T) {
	mem := make([]byte, 64*mib)
	if _, err := Load(mem, Config{Kernel: fakeKernel(nil), RAM: []Region{{0, 64 * mib}}}); err != nil {
		t.Fatal(err)
	}
	bp := mem[BootParamsAddr:]
	if n := bp[offE820Entries]; n != 2 {
		t.Fatalf("e820_entries = %d", n)
	}
	e := bp[offE820Table+e820EntrySize:]
	if a, s, ty := binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint64(e[8:]), le32(e, 16); a != mib || s != 63*mib || ty != E820RAM {
		t.Errorf("second entry %#x+%#x type %d", a, s, ty)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name   string
		kernel []byte
		mem    int
		cfg    func(c *Config)
		err    error
		msg    string
	}{
		{"empty", nil, 64 * mib, nil, ErrNotBzImage, ""},
		{"elf", append([]byte("\x7fELF"), make([]byte, 1000)...), 64 * mib, nil, ErrNotBzImage, ""},
		{"old protocol", fakeKernel(func(k []byte) { k[offVersion] = 0x08 }), 64 * mib, nil, ErrTooOld, ""},
		{"32-bit only", fakeKernel(func(k []byte) { k[offXLoadFlags] = 0 }), 64 * mib, nil, ErrNo64Bit, ""},
		{"truncated", fakeKernel(nil)[:0x400], 64 * mib, nil, nil, "truncated"},
		{"tiny memory", fakeKernel(nil), 512 * 1024, nil, ErrNoRoom, ""},
		{"init_size beyond memory", fakeKernel(nil), 20 * mib, nil, ErrNoRoom, ""},
		{"long cmdline", fakeKernel(nil), 64 * mib, func(c *Config) { c.Cmdline = strings.Repeat("a", 2048) }, nil, "command line"},
		{"huge initrd", fakeKernel(nil), 64 * mib, func(c *Config) { c.Initrd = make([]byte, 60*mib) }, nil, "initrd"},
		{"huge setup_data", fakeKernel(nil), 64 * mib, func(c *Config) {
			c.SetupData = []SetupData{{SetupDTB, make([]byte, 1*mib)}}
		}, nil, "setup_data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Kernel: tt.kernel, RAM: []Region{{0, uint64(tt.mem)}}}
			if tt.cfg != nil {
				tt.cfg(&c)
			}
			_, err := Load(make([]byte, tt.mem), c)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("err %v, want %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err %q does not mention %q", err, tt.msg)
			}
		})
	}
}

func TestKernelVersion(t *testing.T) {
	withVersion := func(p uint16, s string) []byte {
		return fakeKernel(func(k []byte) {
			binary.LittleEndian.PutUint16(k[offKernelVersion:], p)
			copy(k[0x200+int(p):], s)
		})
	}
	long := withVersion(0x300, strings.Repeat("x", 300)) // no NUL within the bound
	for _, tt := range []struct {
		name string
		k    []byte
		want string
	}{
		{"version", withVersion(0x300, "6.1.172-gvmm (root@vm) #1 SMP\x00"), "6.1.172-gvmm (root@vm) #1 SMP"},
		{"none", fakeKernel(nil), ""},
		{"past the end", fakeKernel(func(k []byte) { binary.LittleEndian.PutUint16(k[offKernelVersion:], 0xfff0) }), ""},
		{"unterminated", long, ""},
		{"not a bzImage", []byte("hello"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := KernelVersion(tt.k); got != tt.want {
				t.Errorf("KernelVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzLoad loads arbitrary bzImages, initrds and command lines (all of
// them the user's) into a small guest memory: Load and KernelVersion must
// return an error or a result, never panic, and never write past mem.
func FuzzLoad(f *testing.F) {
	f.Add(fakeKernel(nil), []byte("initrd"), "console=ttyS0")
	f.Add(fakeKernel(func(k []byte) { k[offSetupSects] = 0 }), []byte{}, "")
	f.Add([]byte("HdrS"), []byte{}, "x")
	mem := make([]byte, 40*mib) // reused: the fuzz function runs one call at a time
	f.Fuzz(func(t *testing.T, kernel, initrd []byte, cmdline string) {
		_ = KernelVersion(kernel)
		st, err := Load(mem, Config{Kernel: kernel, Initrd: initrd, Cmdline: cmdline, RAM: []Region{{Addr: 0, Size: uint64(len(mem))}}})
		if err == nil && st == nil {
			t.Fatal("Load returned neither state nor error")
		}
	})
}
