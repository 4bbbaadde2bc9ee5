#!/bin/bash
# host-deps.sh: install the Debian packages the unit tests use on the host
# (dtc checks generated device trees, cpio reads generated archives, gcc
# is cgo's compiler, which the race detector needs; QEMU is the peer of the
# vhost-user and bench tests), so that `make test` works on a fresh Debian
# machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$GVMM_CACHE"
LOG=$GVMM_CACHE/host-deps.log
need_pkgs device-tree-compiler cpio gcc libc6-dev qemu-system-x86
