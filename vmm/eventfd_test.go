package vmm

import (
	"testing"
	"unsafe"
)

// The structs must match include/uapi/linux/kvm.h byte for byte.
func TestEventFDStructLayout(t *testing.T) {
	tests := []struct {
		name       string
		size, want uintptr
	}{
		{"kvm_irqfd", unsafe.Sizeof(kvmIRQFD{}), sizeofKVMIRQFD},
		{"kvm_ioeventfd", unsafe.Sizeof(kvmIOEventFD{}), sizeofKVMIOEventFD},
		{"kvm_ioeventfd.fd offset", unsafe.Offsetof(kvmIOEventFD{}.FD), 20},
		{"kvm_ioeventfd.flags offset", unsafe.Offsetof(kvmIOEventFD{}.Flags), 24},
		{"kvm_irqfd.resamplefd offset", unsafe.Offsetof(kvmIRQFD{}.ResampleFD), 12},
	}
	for _, tt := range tests {
		if tt.size != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.size, tt.want)
		}
	}
}
