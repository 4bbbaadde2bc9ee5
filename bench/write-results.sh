#!/bin/sh
# bench/write-results.sh LOG: write the report TestBench, TestBenchGPIO and
# TestBenchDensity printed in LOG (make bench's output, each part between
# BENCH-REPORT-BEGIN and BENCH-REPORT-END)
# to bench/results/YYYY-MM-DD-HHMM.md (UTC), headed by how it was made and
# a description of this host; print the file and its path.
set -eu
log=${1:?usage: bench/write-results.sh LOG}
here=$(dirname "$0")
report=$(sed -n '/^BENCH-REPORT-BEGIN$/,/^BENCH-REPORT-END$/p' "$log" | sed '1d;$d')
[ -n "$report" ] || { echo "bench/write-results.sh: no report in $log" >&2; exit 1; }
out=$here/results/$(date -u +%Y-%m-%d-%H%M).md
mkdir -p "$here/results"

commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$here" diff --quiet HEAD -- 2>/dev/null || commit="$commit, with uncommitted changes"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
if [ -w /dev/kvm ] && [ ! -e /sys/module/kvm_pvm ]; then
	kvm="hardware KVM (/dev/kvm usable): the VMMs ran directly on it"
elif [ -e /sys/module/kvm_pvm ]; then
	kvm="/dev/kvm is kvm_pvm, which cannot run Linux guests: the VMMs ran in the nested test host (images/l1) with ${GVMM_L1_CPUS:-1} CPU(s) and ${GVMM_L1_MEM:-4096} MiB"
else
	kvm="no usable /dev/kvm: the VMMs ran in the nested test host (images/l1) with ${GVMM_L1_CPUS:-1} CPU(s) and ${GVMM_L1_MEM:-4096} MiB"
fi

# l1-exec runs the unfinished tests again in a fresh nested host when one
# wedges (images/l1/README.md): say how often, and that the parts may come
# from different boots of it.
wedges=$(grep -c -e '^l1-exec: the L1 stopped answering' -e "^l1-exec: the L1's kernel locked up" "$log" || :)
retried=
[ "${wedges:-0}" -gt 0 ] && retried=" The nested test host wedged $wedges time(s) during the bench; each time l1-exec ran the tests not yet passed again in a fresh one, so the parts below may come from different boots of it."

{
	echo "# make bench, $(date -u '+%Y-%m-%d %H:%M') UTC"
	echo
	echo "Command: \`make bench\` (\`GVMM_BENCH=1 GVMM_BIN=bin/gvmm go test -count=1 -timeout 3h -exec images/l1/l1-exec -v -run '^TestBench(GPIO|Density)?\$' ./cmd/gvmm\`), commit $commit."
	echo
	echo "Host: \`$(uname -a)\`; $cpu; $(nproc) CPUs; $mem; $kvm.$retried"
	echo
	echo "$report"
} >"$out"
cat "$out"
echo "make bench: written to $out"
