package vmm

import (
	"testing"

	"github.com/bobuhiro11/gokvm/kvm"
)

func find(t *testing.T, es []kvm.CPUIDEntry2, fn, idx uint32) kvm.CPUIDEntry2 {
	t.Helper()
	for _, e := range es {
		if e.Function == fn && e.Index == idx {
			return e
		}
	}
	t.Fatalf("leaf %#x.%d missing", fn, idx)
	return kvm.CPUIDEntry2{}
}

func TestAdjustCPUID(t *testing.T) {
	supported := []kvm.CPUIDEntry2{
		{Function: 0, Eax: 0xd},
		{Function: 1, Eax: 0x806f8, Ebx: 0xff0a0800, Ecx: 0x7ed8320b},
		{Function: 6, Eax: 0},
		{Function: 0xb, Index: 0, Edx: 77},
		{Function: 0xb, Index: 1, Edx: 77},
	}
	tests := []struct {
		name        string
		id, ncpus   int
		tscDeadline bool
		wantECX1    uint32
		wantEBX1    uint32
	}{
		{"boot cpu", 0, 1, true, 0x7ed8320b | 1<<31 | 1<<24, 0x00010800},
		{"no tsc deadline", 0, 1, false, 0x7ed8320b | 1<<31, 0x00010800},
		{"cpu 3 of 4", 3, 4, true, 0x7ed8320b | 1<<31 | 1<<24, 0x03040800},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]kvm.CPUIDEntry2(nil), supported...)
			out := AdjustCPUID(in, tt.id, tt.ncpus, tt.tscDeadline)
			if in[1] != supported[1] {
				t.Error("input modified")
			}
			l1 := find(t, out, 1, 0)
			if l1.Ecx != tt.wantECX1 || l1.Ebx != tt.wantEBX1 || l1.Eax != 0x806f8 {
				t.Errorf("leaf 1: eax %#x ebx %#x ecx %#x", l1.Eax, l1.Ebx, l1.Ecx)
			}
			if l6 := find(t, out, 6, 0); l6.Eax&(1<<2) == 0 {
				t.Errorf("leaf 6: ARAT missing (eax %#x)", l6.Eax)
			}
			for idx := uint32(0); idx < 2; idx++ {
				if e := find(t, out, 0xb, idx); e.Edx != uint32(tt.id) {
					t.Errorf("leaf 0xb.%d: x2APIC ID %d", idx, e.Edx)
				}
			}
			sig := find(t, out, 0x40000000, 0)
			if sig.Eax < 0x40000001 || sig.Ebx != 0x4b4d564b || sig.Ecx != 0x564b4d56 || sig.Edx != 0x4d {
				t.Errorf("KVM signature leaf %+v", sig)
			}
		})
	}
}

func TestAdjustCPUIDKeepsKVMLeaves(t *testing.T) {
	in := []kvm.CPUIDEntry2{{Function: 0x40000000, Eax: 0x40000001}, {Function: 0x40000001, Eax: 0x01007afb}}
	out := AdjustCPUID(in, 0, 1, false)
	if len(out) != 2 {
		t.Fatalf("%d entries, want 2 (no duplicate signature leaf)", len(out))
	}
	if f := find(t, out, 0x40000001, 0); f.Eax != 0x01007afb {
		t.Errorf("KVM feature leaf changed: %#x", f.Eax)
	}
}
