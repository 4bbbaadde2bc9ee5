#!/bin/bash
# Builds the QEMU that runs the nested test host: Debian's own qemu 7.2
# source (apt-get source, the version of the installed qemu-system-x86),
# with images/l1/qemu-patches/*.patch applied, configured for x86_64
# system emulation with TCG, KVM and 9p only. Debian's binary delivers an
# interrupt injected into a nested guest twice, which deadlocked guests
# of the nested test host, and loses the L1's timer interrupt while a
# guest spins, which wedged the L1 (see the patches). Cached under
#   $GVMM_CACHE/qemu-<hash of inputs>/qemu-system-x86_64
# with $GVMM_CACHE/qemu pointing at the newest. Prints the binary's path.
# Firmware comes from Debian's qemu-system-data (l1-exec passes -L).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
mkdir -p "$GVMM_CACHE"
LOG=$GVMM_CACHE/qemu-build.log
# lib.sh reports progress on stdout; here stdout is only for the result.
need_pkgs qemu-system-x86 dpkg-dev gcc make ninja-build meson pkg-config python3-venv \
	libglib2.0-dev libpixman-1-dev libfdt-dev libcap-ng-dev libattr1-dev flex bison >&2
# The installed binary package's version, less a binNMU suffix (+bN): the
# source package of the same upload.
ver=$(pkg_version qemu-system-x86 | sed 's/+b[0-9]*$//')
patches=("$here"/qemu-patches/*.patch)
hash=$(inputs_hash "${patches[@]}" "$here/build-qemu.sh" -- "$ver" "$(pkg_version libglib2.0-dev)")
out=$GVMM_CACHE/qemu-$hash
reuse_or_lock qemu "$hash" "$out/qemu-system-x86_64" qemu-system-x86_64
# A failed build is not tried again by every l1-exec (each would spend
# minutes on it): l1-exec then runs the L1 under Debian's QEMU.
failed=$out.failed
[ ! -e "$failed" ] || die "an earlier build of this QEMU failed (log: $LOG); delete $failed to try again"
trap '[ $? != 1 ] || touch "$failed"' EXIT
: >"$LOG"
echo "==> building QEMU $ver for the nested test host, with images/l1/qemu-patches (log: $LOG)" >&2
tmp=$GVMM_CACHE/tmp-qemu-$hash
rm -rf "$tmp" && mkdir -p "$tmp"

source_pkg() {
	# deb-src lines for the suites the system's apt uses, in an apt
	# configuration of our own (the system's is left as it is).
	local a=$tmp/apt
	mkdir -p "$a/lists/partial"
	for s in bookworm bookworm-updates; do echo "deb-src http://deb.debian.org/debian $s main"; done >"$a/sources.list"
	echo "deb-src http://deb.debian.org/debian-security bookworm-security main" >>"$a/sources.list"
	local opts=(-o "Dir::Etc::SourceList=$a/sources.list" -o "Dir::Etc::SourceParts=$a/none" -o "Dir::State::Lists=$a/lists")
	apt-get "${opts[@]}" update || return
	# The installed upload's source, else the suite's newest (another
	# upload of 7.2, to which the patches apply as well).
	(cd "$tmp" && { apt-get "${opts[@]}" source "qemu=$ver" ||
		{ echo "warning: no source for qemu $ver in the lists: taking the newest" >&2 &&
			apt-get "${opts[@]}" source qemu; }; }) &&
		mv "$tmp"/qemu-*/ "$tmp/src"
}
apply() {
	for p in "${patches[@]}"; do
		if ! patch -d "$tmp/src" -p1 --forward --batch <"$p"; then
			echo "images/l1/qemu-patches/$(basename "$p") does not apply to Debian's qemu $ver: update it"
			return 1
		fi
	done
}
build() {
	mkdir -p "$tmp/build" && cd "$tmp/build" &&
		../src/configure --target-list=x86_64-softmmu --without-default-features \
			--enable-tcg --enable-kvm --enable-virtfs --enable-attr --enable-cap-ng --enable-fdt=system \
			--disable-docs --disable-werror &&
		ninja qemu-system-x86_64 &&
		mkdir -p "$tmp/out" && cp qemu-system-x86_64 "$tmp/out/"
}
step 1/3 "download Debian's qemu $ver source (apt-get source)" source_pkg
step 2/3 "apply images/l1/qemu-patches" apply
step 3/3 "build qemu-system-x86_64 (TCG, 9p)" build
rm -rf "$out" && mv "$tmp/out" "$out" && rm -rf "$tmp"
ln -sfn "qemu-$hash" "$GVMM_CACHE/qemu"
echo "==> QEMU for the nested test host ready: $out/qemu-system-x86_64" >&2
echo "$out/qemu-system-x86_64"
