#!/bin/bash
# Builds the "L1" of the nested test host: a Debian kernel plus an initramfs
# (busybox-static, the KVM and 9p modules, configfs and gpio-sim, built here
# from Debian's linux-source against its linux-headers, images/l1/init) that
# l1-exec boots under QEMU TCG to get a real /dev/kvm and a simulated GPIO
# chip. Outputs are cached under
#   $GVMM_CACHE/l1-<hash of inputs>/{vmlinuz,initramfs.cpio.gz}
# and $GVMM_CACHE/l1 points at the newest one. Prints that directory.
set -euo pipefail

# The kernel. Debian's cloud-amd64 flavour has no 9p (CONFIG_NET_9P is unset
# in both 6.1 and 6.12), so this is the generic amd64 flavour of the same 6.1.
KPKG=linux-image-6.1.0-57-amd64
KMETA=linux-image-amd64 # its meta-package: the fallback when KPKG is gone
# Modules to load in the L1, in order; their dependencies are added.
# gvmm_gpio_sim is ours (gpio-sim/Kbuild), not the package's.
MODULES="kvm kvm_amd virtio_pci 9pnet_virtio 9p configfs gvmm_gpio_sim"
# The gpio-sim sources, as found in linux-source's tarball under its top
# directory. Debian's kernel has no CONFIG_GPIO_SIM, nor the CONFIG_IRQ_SIM
# it needs; gpio-sim includes gpiolib.h from its own directory.
SIM_SRCS="drivers/gpio/gpio-sim.c drivers/gpio/gpiolib.h kernel/irq/irq_sim.c"

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
mkdir -p "$GVMM_CACHE/debs"
LOG=$GVMM_CACHE/l1-build.log
# lib.sh reports progress on stdout; here stdout is only for the result.
need_pkgs qemu-system-x86 busybox-static cpio gzip xz-utils gcc libc6-dev >&2

# Candidate version of a package in the apt lists, empty if unknown.
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}'; }
# Debian drops an old ABI's headers from the lists before its image (on
# 2026-12-07 linux-image-6.1.0-48-amd64 was still there, its headers gone):
# both must be there, or the meta-package's kernel is used.
kver=$(candidate "$KPKG")
[ -n "$(candidate "linux-headers-${KPKG#linux-image-}")" ] || kver=
if [ -z "$kver" ]; then
	new=$(apt-cache depends "$KMETA" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
	[ -n "$new" ] || die "neither $KPKG nor $KMETA is in the apt lists (apt-get update?)"
	echo "warning: $KPKG is no longer available; using $new (what $KMETA depends on). Update KPKG in $0." >&2
	KPKG=$new kver=$(candidate "$KPKG")
fi
# Headers and source of the same kernel, to build gpio-sim: HPKG installs
# /usr/src/$HPKG (and pulls in linux-headers-*-common, linux-kbuild-* and the
# compiler), SPKG /usr/src/$SPKG.tar.xz (e.g. linux-source-6.1 for 6.1.192-2).
HPKG=linux-headers-${KPKG#linux-image-}
SPKG=linux-source-$(echo "$kver" | cut -d. -f1,2)
need_pkgs "$HPKG" "$SPKG" make >&2
# Another upload of the same ABI (the same package name) builds compatible
# modules, so a version other than the kernel's is only worth a warning.
for p in "$HPKG" "$SPKG"; do
	v=$(pkg_version "$p")
	[ "$v" = "$kver" ] || echo "warning: $p $v is installed, the L1 kernel is $kver (apt-get install $p=$kver)" >&2
done
hver=$(pkg_version "$HPKG") sver=$(pkg_version "$SPKG")

# linux-source's version stands for the gpio-sim sources (hashing the
# 130 MB tarball would take longer than the rest of a cached run).
hash=$(inputs_hash "$here/init" "$here/build-l1.sh" "$here/kvm-hold.c" "$here"/gpio-sim/* -- "$KPKG" "$kver" \
	"$MODULES" "$(pkg_version busybox-static)" "$HPKG" "$hver" "$SPKG" "$sver" "$SIM_SRCS")
out=$GVMM_CACHE/l1-$hash
reuse_or_lock l1 "$hash" "$out" vmlinuz initramfs.cpio.gz
: >"$LOG"
echo "==> building the L1 ($KPKG $kver; log: $LOG)" >&2
tmp=$GVMM_CACHE/tmp-l1-$hash
rm -rf "$tmp" && mkdir -p "$tmp"
kdir=$tmp/kernel
sim=$tmp/gpio-sim
deb=$GVMM_CACHE/debs/${KPKG}_${kver}_amd64.deb

download() {
	# apt-get download writes into the current directory; keep the .deb.
	[ -f "$deb" ] || (cd "$GVMM_CACHE/debs" && apt-get download "$KPKG=$kver")
}
extract() {
	dpkg-deb -x "$deb" "$kdir" &&
		cp "$kdir"/boot/vmlinuz-* "$tmp/vmlinuz"
}
gpio_sim() {
	# The sources, unmodified, next to our Kbuild. Getting them out of the
	# tarball takes most of this step, so they are kept, per version, for the
	# next build (--occurrence: tar stops reading once it has them all; xz
	# -T0: the tarball has many blocks).
	local f members=() src=$GVMM_CACHE/$SPKG-$sver-gpio-sim
	if [ ! -d "$src" ]; then
		for f in $SIM_SRCS; do members+=("$SPKG/$f"); done
		rm -rf "$src.tmp" && mkdir -p "$src.tmp" &&
			tar -I 'xz -T0' -xf "/usr/src/$SPKG.tar.xz" -C "$src.tmp" --strip-components=1 \
				--occurrence "${members[@]}" &&
			mv "$src.tmp" "$src" || return
	fi
	mkdir -p "$sim" && cp "$here"/gpio-sim/* "$sim/" || return
	for f in $SIM_SRCS; do cp "$src/$f" "$sim/" || return; done
	make -C "/usr/src/$HPKG" M="$sim" -j"$(nproc)" modules &&
		[ -f "$sim/gvmm-gpio-sim.ko" ]
}
initramfs() {
	r=$tmp/root
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,host,lib/modules}
	cp /bin/busybox "$r/bin/busybox" || return
	for a in $("$r/bin/busybox" --list-full); do
		[ -e "$r/$a" ] || ln -s /bin/busybox "$r/$a"
	done
	cp "$here/init" "$r/init" && chmod 755 "$r/init" || return
	gcc -static -O2 -Wall -o "$r/bin/kvm-hold" "$here/kvm-hold.c" || return

	# Resolve $MODULES with their dependencies (the "depends=" field of each
	# module's .modinfo; the .deb has no modules.dep, depmod runs at install)
	# into an ordered load list, copying the modules uncompressed.
	mdir=$(echo "$kdir"/lib/modules/*)
	declare -A file=() seen=()
	while read -r f; do
		n=${f##*/}; n=${n%.xz}; n=${n%.ko}
		file[${n//-/_}]=$f
	done < <(find "$mdir/kernel" -name '*.ko' -o -name '*.ko.xz')
	file[gvmm_gpio_sim]=$sim/gvmm-gpio-sim.ko
	add() {
		local n=${1//-/_} f d
		[ -n "${seen[$n]:-}" ] && return 0
		seen[$n]=1
		f=${file[$n]:-}
		if [ -z "$f" ]; then
			grep -q "/${n}.ko\$" <(tr - _ <"$mdir/modules.builtin") && return 0
			echo "module $n: neither a module file nor built in"; return 1
		fi
		xz -dcf "$f" >"$r/lib/modules/$n.ko" || return
		for d in $(tr '\0' '\n' <"$r/lib/modules/$n.ko" | sed -n 's/^depends=//p' | tr , ' '); do
			add "$d" || return
		done
		echo "$n" >>"$r/lib/modules/load.list"
	}
	for m in $MODULES; do add "$m" || return; done
	echo "load list: $(tr '\n' ' ' <"$r/lib/modules/load.list")"

	(cd "$r" && find . | sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$tmp/initramfs.cpio.gz" &&
		rm -rf "$r" "$kdir" "$sim"
}

# step runs its command inside an "if", where set -e does not apply: the
# functions above chain their commands with && / || return instead.
step 1/4 "download $KPKG $kver" download >&2
step 2/4 "extract the kernel" extract >&2
step 3/4 "build gpio-sim from $SPKG $sver against $HPKG" gpio_sim >&2
step 4/4 "build the initramfs (busybox, modules, init, kvm-hold)" initramfs >&2
rm -rf "$out" && mv "$tmp" "$out"
ln -sfn "l1-$hash" "$GVMM_CACHE/l1"
echo "==> L1 ready: $out" >&2
echo "$out"
