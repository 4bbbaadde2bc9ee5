package vmm

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bobuhiro11/gokvm/kvm"
	"github.com/gvmm/gvmm/boot"
	"golang.org/x/sys/unix"
)

// Exit reasons gokvm does not name.
const (
	exitSystemEvent = 24
	systemShutdown  = 1
	systemReset     = 2
	systemCrash     = 3
)

// Local APIC LVT registers and delivery modes.
const (
	apicLVT0       = 0x350
	apicLVT1       = 0x360
	apicModeNMI    = 4
	apicModeExtINT = 7
)

type vcpu struct {
	vm     *VM
	id     int
	fd     *os.File
	kr     *kvm.RunData
	runMem []byte
	tid    atomic.Int32
	exited chan struct{}
	// dump asks the vCPU thread to write its registers here at its next
	// exit (see VM.DumpState).
	dump atomic.Pointer[chan string]
}

func newVCPU(vm *VM, id, runSize int, cpuid []kvm.CPUIDEntry2) (*vcpu, error) {
	fd, err := retryEINTR(func() (uintptr, error) { return kvm.CreateVCPU(vm.vmFd.Fd(), id) })
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	v := &vcpu{vm: vm, id: id, fd: os.NewFile(fd, "kvm-vcpu"), exited: make(chan struct{})}
	if v.kr, v.runMem, err = mapRun(fd, runSize); err != nil {
		v.fd.Close()
		return nil, err
	}
	if err := kvm.SetCPUID2(fd, &kvm.CPUID{Nent: uint32(len(cpuid)), Entries: cpuid}); err != nil {
		v.close()
		return nil, fmt.Errorf("KVM_SET_CPUID2: %w", err)
	}
	// Virtual-wire mode, as firmware leaves it: the 8259 PIC's interrupts
	// arrive through LINT0 and NMIs through LINT1.
	var lapic kvm.LAPICState
	if err := kvm.GetLocalAPIC(fd, &lapic); err != nil {
		v.close()
		return nil, fmt.Errorf("KVM_GET_LAPIC: %w", err)
	}
	setLVTMode(lapic.Regs[:], apicLVT0, apicModeExtINT)
	setLVTMode(lapic.Regs[:], apicLVT1, apicModeNMI)
	if err := kvm.SetLocalAPIC(fd, &lapic); err != nil {
		v.close()
		return nil, fmt.Errorf("KVM_SET_LAPIC: %w", err)
	}
	return v, nil
}

func setLVTMode(regs []byte, off int, mode uint32) {
	r := binary.LittleEndian.Uint32(regs[off:])
	binary.LittleEndian.PutUint32(regs[off:], r&^0x700|mode<<8)
}

// setBootState puts the vCPU in 64-bit mode at the kernel's entry point.
func (v *vcpu) setBootState(st *boot.CPUState) error {
	fd := v.fd.Fd()
	sregs, err := kvm.GetSregs(fd)
	if err != nil {
		return fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	seg := func(s boot.Segment) kvm.Segment {
		return kvm.Segment{Base: s.Base, Limit: s.Limit, Selector: s.Selector, Typ: s.Type,
			Present: s.Present, DPL: s.DPL, DB: s.DB, S: s.S, L: s.L, G: s.G}
	}
	sregs.CS = seg(st.CS)
	sregs.DS, sregs.ES, sregs.FS, sregs.GS, sregs.SS = seg(st.DS), seg(st.DS), seg(st.DS), seg(st.DS), seg(st.DS)
	sregs.TR = seg(st.TR)
	sregs.GDT.Base, sregs.GDT.Limit = st.GDTBase, st.GDTLimit
	sregs.IDT.Base, sregs.IDT.Limit = 0, 0
	sregs.CR0, sregs.CR3, sregs.CR4, sregs.EFER = st.CR0, st.CR3, st.CR4, st.EFER
	if err := kvm.SetSregs(fd, sregs); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	regs := &kvm.Regs{RIP: st.RIP, RSI: st.RSI, RSP: st.RSP, RBP: st.RSP, RFLAGS: st.RFLAGS}
	if err := kvm.SetRegs(fd, regs); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	return nil
}

// run is the vCPU loop: KVM_RUN, then hand the exit to the bus, until the
// VM stops. It returns nil when the guest resets or shuts down.
func (v *vcpu) run() error {
	// KVM requires every KVM_RUN of a vCPU to come from the same thread.
	runtime.LockOSThread()
	defer close(v.exited)
	v.tid.Store(int32(unix.Gettid()))
	fd := v.fd.Fd()
	for !v.vm.stopped() {
		exited, err := kvmRun(fd)
		if err != nil {
			return fmt.Errorf("vCPU %d: KVM_RUN: %w", v.id, err)
		}
		if !exited {
			v.answerDump()
			continue
		}
		switch kvm.ExitType(v.kr.ExitReason) {
		case kvm.EXITIO:
			dir, size, port, count, off := v.kr.IO()
			if size == 0 || off+size*count > uint64(len(v.runMem)) {
				return fmt.Errorf("vCPU %d: bad I/O exit (port %#x size %d count %d)", v.id, port, size, count)
			}
			for i := uint64(0); i < count; i++ {
				data := v.runMem[off+i*size : off+(i+1)*size]
				if dir == kvm.EXITIOOUT {
					v.vm.pio.Write(port, data)
				} else {
					v.vm.pio.Read(port, data)
				}
			}
		case kvm.EXITMMIO:
			// struct { u64 phys_addr; u8 data[8]; u32 len; u8 is_write; }
			addr, n, write := v.kr.Data[0], min(uint32(v.kr.Data[2]), 8), uint8(v.kr.Data[2]>>32) != 0
			data := v.runMem[40 : 40+n]
			if write {
				v.vm.mmio.Write(addr, data)
			} else {
				v.vm.mmio.Read(addr, data)
			}
		case kvm.EXITSHUTDOWN:
			// A triple fault. Linux reboots through the i8042 first, so
			// this is a guest that crashed too early to say so, unless
			// its command line chose this way to reboot (reboot=t, as
			// for QEMU's microvm, which has no i8042).
			if v.vm.tripleReboot {
				return nil
			}
			regs := v.regsString()
			if strings.HasPrefix(regs, "RIP 0xfff0 ") {
				// KVM on AMD INITs the vCPU at a shutdown intercept (the
				// VMCB is undefined after one): what was there is lost.
				regs += "; this is the reset state, as KVM on AMD leaves a vCPU after a shutdown: the registers at the fault are lost"
			}
			return fmt.Errorf("vCPU %d: guest triple fault (%s)", v.id, regs)
		case kvm.EXITINTR:
			// A signal: a kick from Close or DumpState, or Go's runtime.
		case exitSystemEvent:
			switch uint32(v.kr.Data[0]) {
			case systemShutdown, systemReset:
				return nil
			case systemCrash:
				return fmt.Errorf("vCPU %d: guest crashed (KVM_SYSTEM_EVENT_CRASH)", v.id)
			}
		case kvm.EXITFAILENTRY:
			return fmt.Errorf("vCPU %d: KVM_EXIT_FAIL_ENTRY, hardware reason %#x", v.id, v.kr.Data[0])
		case kvm.EXITINTERNALERROR:
			return fmt.Errorf("vCPU %d: KVM_EXIT_INTERNAL_ERROR, suberror %d (KVM could not emulate an instruction)", v.id, uint32(v.kr.Data[0]))
		default:
			return fmt.Errorf("vCPU %d: unexpected exit %v", v.id, kvm.ExitType(v.kr.ExitReason))
		}
		v.answerDump()
	}
	return nil
}

// kvmRunIoctl is KVM_RUN, _IO(KVMIO, 0x80).
const kvmRunIoctl = 0xae80

// kvmRun enters the guest once. exited says whether KVM filled in an exit
// for the loop to handle; it is false when KVM_RUN returned EINTR (a
// signal, or immediate_exit) or EAGAIN. EAGAIN is what an application
// processor gets while it waits for INIT and SIPI (KVM_MP_STATE_UNINITIALIZED
// in arch/x86/kvm/x86.c: kvm_arch_vcpu_ioctl_run blocks, accepts the
// event and returns -EAGAIN without touching kvm_run->exit_reason). The
// vCPU must simply run again, as QEMU's kvm_cpu_exec does; gokvm's
// kvm.Run hides the errno, and the stale exit reason it leaves (0,
// KVM_EXIT_UNKNOWN, before the first exit) stopped vCPU 1 of every SMP
// guest.
func kvmRun(fd uintptr) (exited bool, err error) {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, fd, kvmRunIoctl, 0)
	switch e {
	case 0:
		return true, nil
	case unix.EINTR, unix.EAGAIN:
		return false, nil
	}
	return false, e
}

// answerDump writes the registers to a waiting DumpState. It costs a plain
// load on every exit; the swap only when a dump was asked.
func (v *vcpu) answerDump() {
	if v.dump.Load() != nil {
		if ch := v.dump.Swap(nil); ch != nil {
			*ch <- v.dumpString()
		}
	}
}

// dumpStackWords is how many 8-byte words at RSP a dump shows.
const dumpStackWords = 16

// dumpString describes the vCPU for DumpState, in three lines: where it
// is (regsString), its general registers and flags (RFLAGS bit 9, IF,
// says whether the guest takes interrupts), and the words on its stack,
// which hold the return addresses a guest System.map names. A spinning
// vCPU's lock is in one of its registers.
func (v *vcpu) dumpString() string {
	s := fmt.Sprintf("vCPU %d: %s", v.id, v.regsString())
	r, err := kvm.GetRegs(v.fd.Fd())
	if err != nil {
		return s
	}
	s += fmt.Sprintf("\nvCPU %d: RFLAGS %#x RAX %#x RBX %#x RCX %#x RDX %#x RSI %#x RDI %#x RBP %#x R8 %#x R9 %#x R10 %#x R11 %#x R12 %#x R13 %#x R14 %#x R15 %#x",
		v.id, r.RFLAGS, r.RAX, r.RBX, r.RCX, r.RDX, r.RSI, r.RDI, r.RBP, r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15)
	return s + fmt.Sprintf("\nvCPU %d: stack at RSP: %s", v.id, v.stackWords(r.RSP, dumpStackWords))
}

// stackWords reads n words of guest stack from virtual address rsp,
// translated by KVM through the vCPU's page tables.
func (v *vcpu) stackWords(rsp uint64, n int) string {
	words := make([]string, 0, n)
	var b [8]byte
	for i := range n {
		va := rsp + uint64(i)*8
		t := kvm.Translation{LinearAddress: va}
		if err := kvm.Translate(v.fd.Fd(), &t); err != nil || t.Valid == 0 {
			words = append(words, "(unmapped)")
			break
		}
		if err := v.vm.mem.ReadAt(b[:], t.PhysicalAddress); err != nil {
			words = append(words, "(outside RAM)")
			break
		}
		words = append(words, v.named(binary.LittleEndian.Uint64(b[:])))
	}
	return strings.Join(words, " ")
}

// regsString describes where the vCPU is, for error messages.
func (v *vcpu) regsString() string {
	r, err := kvm.GetRegs(v.fd.Fd())
	if err != nil {
		return "registers unavailable"
	}
	s, err := kvm.GetSregs(v.fd.Fd())
	if err != nil {
		return "RIP " + v.named(r.RIP)
	}
	return fmt.Sprintf("RIP %s RSP %#x CR0 %#x CR2 %#x CR3 %#x CR4 %#x EFER %#x", v.named(r.RIP), r.RSP, s.CR0, s.CR2, s.CR3, s.CR4, s.EFER)
}

// named formats a guest address, with its symbol if Config.Symbolize
// names it: "0xffffffff811bc892 (queued_spin_lock_slowpath+0x29)".
func (v *vcpu) named(addr uint64) string {
	if v.vm.symbolize != nil {
		if n := v.vm.symbolize(addr); n != "" {
			return fmt.Sprintf("%#x (%s)", addr, n)
		}
	}
	return fmt.Sprintf("%#x", addr)
}

// kick makes a vCPU thread in KVM_RUN return to its loop.
func (v *vcpu) kick() {
	if tid := v.tid.Load(); tid != 0 {
		// Any signal interrupts KVM_RUN; Go's runtime ignores SIGURG.
		_ = unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG)
	}
}

// close releases the vCPU, first making sure its loop has ended: a loop
// still inside KVM_RUN keeps its mapping rather than fault on it.
func (v *vcpu) close() {
	if v.runMem != nil && v.tid.Load() != 0 {
		v.kr.ImmediateExit = 1 // every later KVM_RUN returns at once
		v.kick()
		select {
		case <-v.exited:
		case <-time.After(time.Second):
			return
		}
	}
	if v.runMem != nil {
		_ = unix.Munmap(v.runMem)
		v.runMem, v.kr = nil, nil
	}
	_ = v.fd.Close()
}
