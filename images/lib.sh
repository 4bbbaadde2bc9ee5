# Shared by the image build scripts: package installs, cache paths and
# progress reporting. Sourced, not run.

GVMM_CACHE=${GVMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gvmm}
_t0=$(date +%s)

# need_pkgs PKG...: install the Debian packages that are missing.
need_pkgs() {
	missing=
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	sudo=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || die "missing Debian packages:$missing (install them as root: apt-get install$missing)"
		sudo=sudo
	fi
	echo "==> installing Debian packages:$missing" >&2
	if ! $sudo apt-get install -y --no-install-recommends $missing >>"$LOG" 2>&1; then
		$sudo apt-get update >>"$LOG" 2>&1
		$sudo apt-get install -y --no-install-recommends $missing >>"$LOG" 2>&1 ||
			die "apt-get install$missing failed (log: $LOG)"
	fi
}

# pkg_version PKG: the installed version of a Debian package.
pkg_version() { dpkg-query -W -f='${Version}' "$1"; }

die() { echo "error: $*" >&2; exit 1; }

# step N/M TITLE CMD...: run CMD with its output in $LOG, showing the step,
# a heartbeat every 20 s and the elapsed time on stderr; on failure name the
# log. CMD runs in a background subshell so that `set -e` holds inside it
# (bash ignores -e in anything run as an `if` condition).
step() {
	n=$1 title=$2; shift 2
	s=$(date +%s)
	echo "==> [$n] $title" >&2
	echo "==> [$n] $title" >>"$LOG"
	( trap 'kill $! 2>/dev/null; exit 0' TERM
	  while :; do sleep 20 & wait $!; echo "    ... $title: $(( $(date +%s) - s ))s" >&2; done ) &
	hb=$!
	( "$@" ) >>"$LOG" 2>&1 &
	if wait $!; then rc=0; else rc=$?; fi
	kill $hb 2>/dev/null; wait $hb 2>/dev/null || true
	if [ $rc != 0 ]; then
		echo "error: step '$title' failed (exit $rc); last lines of $LOG:" >&2
		tail -n 15 "$LOG" >&2
		exit 1
	fi
	echo "    done in $(( $(date +%s) - s ))s (total $(( $(date +%s) - _t0 ))s)" >&2
}

# inputs_hash FILE... -- WORD...: a short hash of files and words. A file
# counts by its contents and its name, not its directory, so that every
# checkout of the same tree shares the cache.
inputs_hash() {
	{
		while [ $# -gt 0 ] && [ "$1" != -- ]; do
			echo "$(sha256sum <"$1" | cut -c1-64) ${1##*/}"
			shift
		done
		[ "${1:-}" = -- ] && shift
		echo "$@"
	} | sha256sum | cut -c1-16
}

# reuse_or_lock KIND HASH RESULT FILE...: if $GVMM_CACHE/KIND-HASH has
# every FILE, point $GVMM_CACHE/KIND at it, print RESULT and exit;
# otherwise take KIND's build lock (one build at a time: go test may start
# several l1-exec at once), look again once a build in progress is done,
# and return, holding the lock, to build.
reuse_or_lock() {
	local kind=$1 hash=$2 result=$3
	shift 3
	if ! cache_has "$kind-$hash" "$@"; then
		exec 9>"$GVMM_CACHE/$kind.lock" && flock 9
		cache_has "$kind-$hash" "$@" || return 0
	fi
	ln -sfn "$kind-$hash" "$GVMM_CACHE/$kind"
	echo "$result"
	exit 0
}
cache_has() {
	local dir=$GVMM_CACHE/$1 f
	shift
	for f in "$@"; do [ -e "$dir/$f" ] || return 1; done
}
