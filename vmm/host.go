package vmm

import (
	"errors"
	"fmt"
	"os"
)

// ErrNoKVM is returned when this host cannot run the guest under KVM.
var ErrNoKVM = errors.New("no usable KVM")

// pvmModule is present when /dev/kvm is provided by kvm_pvm.
var pvmModule = "/sys/module/kvm_pvm"

// CheckHost reports why /dev/kvm cannot run an unmodified Linux guest here,
// or nil if it can.
func CheckHost() error {
	if _, err := os.Stat(pvmModule); err == nil {
		return fmt.Errorf("%w: /dev/kvm here is kvm_pvm, which cannot run unmodified Linux guests; use a host with hardware KVM or run through the nested test host (images/l1/l1-exec gvmm run ..., which `make run` does for you)", ErrNoKVM)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: /dev/kvm does not exist; load kvm_intel or kvm_amd, or run through the nested test host (images/l1/l1-exec)", ErrNoKVM)
		}
		return fmt.Errorf("%w: %v (is your user in the kvm group?)", ErrNoKVM, err)
	}
	return f.Close()
}
