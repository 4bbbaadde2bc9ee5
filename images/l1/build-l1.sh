#!/bin/bash
# Builds the "L1" of the nested test host: a Debian kernel plus an initramfs
# (busybox-static, the KVM and 9p modules, images/l1/init) that l1-exec boots
# under QEMU TCG to get a real /dev/kvm. Outputs are cached under
#   $GVMM_CACHE/l1-<hash of inputs>/{vmlinuz,initramfs.cpio.gz}
# and $GVMM_CACHE/l1 points at the newest one. Prints that directory.
set -euo pipefail

# The kernel. Debian's cloud-amd64 flavour has no 9p (CONFIG_NET_9P is unset
# in both 6.1 and 6.12), so this is the generic amd64 flavour of the same 6.1.
KPKG=linux-image-6.1.0-56-amd64
KMETA=linux-image-amd64 # its meta-package: the fallback when KPKG is gone
# Modules to load in the L1, in order; their dependencies are added.
MODULES="kvm kvm_amd virtio_pci 9pnet_virtio 9p"

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
mkdir -p "$GVMM_CACHE/debs"
LOG=$GVMM_CACHE/l1-build.log
# lib.sh reports progress on stdout; here stdout is only for the result.
need_pkgs qemu-system-x86 busybox-static cpio gzip xz-utils >&2

# Candidate version of a package in the apt lists, empty if unknown.
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}'; }
kver=$(candidate "$KPKG")
if [ -z "$kver" ]; then
	new=$(apt-cache depends "$KMETA" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
	[ -n "$new" ] || die "neither $KPKG nor $KMETA is in the apt lists (apt-get update?)"
	echo "warning: $KPKG is no longer available; using $new (what $KMETA depends on). Update KPKG in $0." >&2
	KPKG=$new kver=$(candidate "$KPKG")
fi

hash=$(inputs_hash "$here/init" "$here/build-l1.sh" -- "$KPKG" "$kver" \
	"$MODULES" "$(pkg_version busybox-static)")
out=$GVMM_CACHE/l1-$hash
cached() { [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio.gz" ]; }
# One build at a time: go test may start several l1-exec at once.
cached || { exec 9>"$GVMM_CACHE/l1.lock" && flock 9; }
if cached; then
	ln -sfn "l1-$hash" "$GVMM_CACHE/l1"
	echo "$out"
	exit 0
fi
: >"$LOG"
echo "==> building the L1 ($KPKG $kver; log: $LOG)" >&2
tmp=$GVMM_CACHE/tmp-l1-$hash
rm -rf "$tmp" && mkdir -p "$tmp"
kdir=$tmp/kernel
deb=$GVMM_CACHE/debs/${KPKG}_${kver}_amd64.deb

download() {
	# apt-get download writes into the current directory; keep the .deb.
	[ -f "$deb" ] || (cd "$GVMM_CACHE/debs" && apt-get download "$KPKG=$kver")
}
extract() {
	dpkg-deb -x "$deb" "$kdir" &&
		cp "$kdir"/boot/vmlinuz-* "$tmp/vmlinuz"
}
initramfs() {
	r=$tmp/root
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,host,lib/modules}
	cp /bin/busybox "$r/bin/busybox" || return
	for a in $("$r/bin/busybox" --list-full); do
		[ -e "$r/$a" ] || ln -s /bin/busybox "$r/$a"
	done
	cp "$here/init" "$r/init" && chmod 755 "$r/init" || return

	# Resolve $MODULES with their dependencies (the "depends=" field of each
	# module's .modinfo; the .deb has no modules.dep, depmod runs at install)
	# into an ordered load list, copying the modules uncompressed.
	mdir=$(echo "$kdir"/lib/modules/*)
	declare -A file=() seen=()
	while read -r f; do
		n=${f##*/}; n=${n%.xz}; n=${n%.ko}
		file[${n//-/_}]=$f
	done < <(find "$mdir/kernel" -name '*.ko' -o -name '*.ko.xz')
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
		rm -rf "$r" "$kdir"
}

# step runs its command inside an "if", where set -e does not apply: the
# functions above chain their commands with && / || return instead.
step 1/3 "download $KPKG $kver" download >&2
step 2/3 "extract the kernel" extract >&2
step 3/3 "build the initramfs (busybox, modules, init)" initramfs >&2
rm -rf "$out" && mv "$tmp" "$out"
ln -sfn "l1-$hash" "$GVMM_CACHE/l1"
echo "==> L1 ready: $out" >&2
echo "$out"
