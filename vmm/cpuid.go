package vmm

import "github.com/bobuhiro11/gokvm/kvm"

// CPUID bits the guest needs beyond what KVM_GET_SUPPORTED_CPUID reports
// (see ../shared notes in the README: without all three of ARAT,
// TSC-deadline and the hypervisor bit a device-tree boot dies in
// check_timer(), and without the hypervisor bit the guest does not use
// kvm-clock and hangs calibrating its delay loop).
const (
	leaf1ECXTSCDeadline = 1 << 24
	leaf1ECXHypervisor  = 1 << 31
	leaf6EAXARAT        = 1 << 2
	kvmSignatureLeaf    = 0x40000000
	kvmFeaturesLeaf     = 0x40000001
)

// kvmSignature is "KVMKVMKVM\0\0\0" as EBX, ECX, EDX of leaf 0x40000000.
var kvmSignature = [3]uint32{0x4b4d564b, 0x564b4d56, 0x0000004d}

// AdjustCPUID returns the CPUID table for vCPU id of a VM with ncpus
// vCPUs, derived from KVM's supported table: the hypervisor bit, ARAT, the
// TSC-deadline timer when tscDeadline (KVM_CAP_TSC_DEADLINE_TIMER), KVM's
// own leaves, and this vCPU's APIC ID. The input is not modified.
func AdjustCPUID(supported []kvm.CPUIDEntry2, id, ncpus int, tscDeadline bool) []kvm.CPUIDEntry2 {
	out := make([]kvm.CPUIDEntry2, 0, len(supported)+1)
	hasKVM := false
	for _, e := range supported {
		switch e.Function {
		case 1:
			e.Ecx |= leaf1ECXHypervisor
			if tscDeadline {
				e.Ecx |= leaf1ECXTSCDeadline
			}
			// EBX: initial APIC ID in 31..24, logical processors in 23..16.
			e.Ebx = e.Ebx&0x0000ffff | uint32(id)<<24 | uint32(ncpus&0xff)<<16
		case 6:
			e.Eax |= leaf6EAXARAT
		case 0xb, 0x1f:
			e.Edx = uint32(id) // x2APIC ID
		case kvmSignatureLeaf:
			hasKVM = true
			e.Ebx, e.Ecx, e.Edx = kvmSignature[0], kvmSignature[1], kvmSignature[2]
			e.Eax = max(e.Eax, kvmFeaturesLeaf)
		}
		out = append(out, e)
	}
	if !hasKVM {
		out = append(out, kvm.CPUIDEntry2{Function: kvmSignatureLeaf, Eax: kvmFeaturesLeaf,
			Ebx: kvmSignature[0], Ecx: kvmSignature[1], Edx: kvmSignature[2]})
	}
	return out
}
