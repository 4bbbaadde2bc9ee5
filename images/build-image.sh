#!/bin/bash
# Builds the gvmm guest image: an x86_64 kernel from Debian's linux-source-6.1
# (tinyconfig + images/kernel.config, with images/patches/*.patch applied)
# and an initramfs with busybox-static, Debian's gpiod tools, images/init
# and the command agent images/gvmm-agent (built with the host's Go). Outputs are cached under
#   $GVMM_CACHE/image-<hash of inputs>/{bzImage,initramfs.cpio.gz,System.map}
# and $GVMM_CACHE/image is pointed at the newest one. Prints its directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
mkdir -p "$GVMM_CACHE"
LOG=$GVMM_CACHE/image-build.log

command -v go >/dev/null || { echo "build-image.sh: needs Go (to build images/gvmm-agent); install it or put it on PATH" >&2; exit 1; }
need_pkgs linux-source-6.1 busybox-static gpiod libgpiod2 build-essential patch \
	flex bison bc libelf-dev cpio xz-utils gzip lz4
kver=$(pkg_version linux-source-6.1)
patches=("$here"/patches/*.patch)
agent_src=("$here"/gvmm-agent/*.go "$here"/../internal/agentwire/wire.go "$here"/../go.sum)
hash=$(inputs_hash "$here/kernel.config" "$here/init" "${patches[@]}" \
	"$here/build-image.sh" "${agent_src[@]}" -- "$kver" "$(go env GOVERSION)" "$(pkg_version busybox-static)" \
	"$(pkg_version gpiod)" "$(pkg_version libgpiod2)" "$(pkg_version libc6)")
out=$GVMM_CACHE/image-$hash
cached() { [ -f "$out/bzImage" ] && [ -f "$out/initramfs.cpio.gz" ]; }
# One build at a time: two checkouts (or two make runs) share the cache,
# its kernel tree and its log, and a second build would clobber the first.
if ! cached; then
	exec 9>"$GVMM_CACHE/image.lock"
	flock -n 9 || { echo "==> another build of the guest image is running (lock: $GVMM_CACHE/image.lock): waiting for it" >&2; flock 9; }
fi
if cached; then
	ln -sfn "image-$hash" "$GVMM_CACHE/image"
	echo "$out"
	exit 0
fi
: >"$LOG"
echo "==> building the guest image (log: $LOG)" >&2
# The unpacked, patched source is kept for the next build with the same
# patches.
src=$GVMM_CACHE/linux-$kver-$(inputs_hash "${patches[@]}" -- "$kver")
tmp=$GVMM_CACHE/tmp-$hash
rm -rf "$tmp" && mkdir -p "$tmp"

unpack() {
	rm -rf "$src.part" && mkdir -p "$src.part"
	tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$src.part" --strip-components=1
	for p in "${patches[@]}"; do
		if ! patch -d "$src.part" -p1 --forward --batch <"$p"; then
			echo "images/patches/$(basename "$p") does not apply to linux-source-6.1 $kver: update it"
			return 1
		fi
	done
	mv "$src.part" "$src"
}
configure() {
	make -C "$src" ARCH=x86_64 tinyconfig
	"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$here/kernel.config"
	make -C "$src" ARCH=x86_64 olddefconfig
	dropped=
	for opt in $(sed -n 's/^\(CONFIG_[A-Z0-9_]*\)=y$/\1/p' "$here/kernel.config"); do
		grep -qx "$opt=y" "$src/.config" || dropped="$dropped $opt"
	done
	for opt in $(sed -n 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1/p' "$here/kernel.config"); do
		grep -qx "$opt=[ym]" "$src/.config" && dropped="$dropped $opt(still on)"
	done
	if [ -n "$dropped" ]; then
		echo "kernel config: options of images/kernel.config not as asked after olddefconfig:$dropped"
		return 1
	fi
}
kernel() {
	make -C "$src" ARCH=x86_64 -j"$(nproc)" bzImage
	cp "$src/arch/x86/boot/bzImage" "$src/.config" "$src/System.map" "$tmp/"
}
initramfs() {
	r=$tmp/root
	mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,etc}
	cp /bin/busybox "$r/bin/busybox"
	for a in $("$r/bin/busybox" --list-full); do
		[ -e "$r/$a" ] || ln -s /bin/busybox "$r/$a"
	done
	cp "$here/init" "$r/init"
	(cd "$here/.." && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$r/sbin/gvmm-agent" ./images/gvmm-agent)
	for t in gpiodetect gpioinfo gpioget gpioset gpiomon gpiofind; do
		cp "/usr/bin/$t" "$r/usr/bin/$t"
		for lib in $(ldd "/usr/bin/$t" | grep -o '/[^ ]*'); do
			mkdir -p "$r$(dirname "$lib")"
			cp -L "$lib" "$r$lib"
		done
	done
	(cd "$r" && find . | sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 >"$tmp/initramfs.cpio.gz"
	rm -rf "$r"
}

if [ ! -d "$src" ]; then step 1/4 "unpack linux-source $kver, apply images/patches" unpack; else echo "==> [1/4] kernel source already unpacked" >&2; fi
step 2/4 "configure kernel (tinyconfig + images/kernel.config)" configure
step 3/4 "build kernel (make -j$(nproc) bzImage)" kernel
step 4/4 "build initramfs (busybox, gpiod, gvmm-agent)" initramfs
rm -rf "$out" && mv "$tmp" "$out"
ln -sfn "image-$hash" "$GVMM_CACHE/image"
echo "==> guest image ready: $out" >&2
echo "$out"
