// kvm-hold: keep one KVM VM, with an in-kernel irqchip and one vCPU that
// never runs, open for the L1's lifetime (init starts it).
//
// Why: a host's first VM turns on static keys that KVM holds while any VM
// or vCPU exists (preempt_notifier_key, tested in __schedule; the APIC's
// apic_sw_disabled), and the last one turns them off again. Each turn
// patches kernel code live (text_poke_bp: an INT3 on the site, IPIs to
// every CPU), and under QEMU's multi-threaded TCG two L1 CPUs were caught
// going round that INT3 at __schedule+0x2ab for good. With this VM open,
// gvmm's VMs only move the counts between 1 and more, which patches
// nothing. See README.md, "When the L1 itself wedges".
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char *what)
{
	perror(what);
	return 1;
}

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("kvm-hold: open /dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("kvm-hold: KVM_CREATE_VM");
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		return fail("kvm-hold: KVM_CREATE_IRQCHIP");
	if (ioctl(vm, KVM_CREATE_VCPU, 0) < 0)
		return fail("kvm-hold: KVM_CREATE_VCPU");
	printf("kvm-hold: holding a VM with one vCPU\n");
	fflush(stdout);
	for (;;)
		pause();
}
