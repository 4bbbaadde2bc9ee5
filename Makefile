# gvmm: `make run` boots the guest image with a console; `make test` runs
# every test. Both build (or reuse from the cache) the guest image and, on
# hosts without usable hardware KVM, the nested test host (images/l1).

GO       ?= go
L1EXEC   := $(CURDIR)/images/l1/l1-exec
# Packages whose tests boot the guest: they run through l1-exec, which is a
# plain exec on hosts with hardware KVM and an L1 under QEMU elsewhere.
GUEST_PKGS := ./cmd/gvmm ./gvmmtest
STATICCHECK_VERSION := v0.8.2

.PHONY: all build image l1 run test lint unit guest-test guest-bins soak bench clean help

all: build

help:
	@echo "make run    build or reuse the guest image and boot it (Ctrl-A x quits)"
	@echo "make test   lint, unit tests, then tests that boot the real guest"
	@echo "make bench  gvmm's figures side by side with QEMU's, with ratios and targets (bench/results/; 15-30 min)"
	@echo "make soak   1M guest GPIO operations in one boot: counts and gvmm's RSS (1.5-3 h)"
	@echo "make image  build or reuse the guest image only"
	@echo "make build  build bin/gvmm"

# Static (no cgo): gvmm needs no C library, and without libc mapped its RSS
# beyond guest RAM was 5.7-7.6 MiB against 9.0-13.1 MiB (make bench's
# memory figure, the same nested test host).
build:
	CGO_ENABLED=0 $(GO) build -o bin/gvmm ./cmd/gvmm

image:
	@images/build-image.sh >/dev/null

# The nested test host is needed only where /dev/kvm cannot run Linux.
l1:
	@if [ -w /dev/kvm ] && [ ! -e /sys/module/kvm_pvm ]; then \
		echo "==> hardware KVM available: no nested test host needed"; \
	else images/l1/build-l1.sh >/dev/null && { images/l1/build-qemu.sh >/dev/null || \
		echo "==> warning: no patched QEMU for the nested test host: l1-exec will use Debian's"; }; fi

# The control socket goes where gvmm runs: here, or the nested test host's
# scratch directory (its TMPDIR) when it runs there.
run: build image l1
	@$(L1EXEC) sh -c 'exec "$$0" run --gpio sim:8,names=led0,led1,btn0 --control "$${TMPDIR:-/tmp}/gvmm.sock"' $(CURDIR)/bin/gvmm

test: lint unit guest-test

lint:
	@echo "==> go mod tidy, gofmt, go vet, staticcheck"
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run 'go mod tidy'"; $(GO) mod tidy -diff; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...

unit:
	@images/host-deps.sh
	@echo "==> unit tests (with the race detector)"
	$(GO) test -race $$($(GO) list ./... | grep -v -e '/cmd/gvmm$$')

# Static programs the guest-booting tests add to the guest image: a GPIO
# round-trip timer, an edge counter, the soak's GPIO workers and the cdev
# package's tests (run against gpio-sim).
guest-bins:
	CGO_ENABLED=0 $(GO) build -o bin/guest/gpio-rtt ./images/gpio-rtt
	CGO_ENABLED=0 $(GO) build -o bin/guest/gpio-events ./images/gpio-events
	CGO_ENABLED=0 $(GO) build -o bin/guest/gpio-soak ./images/gpio-soak
	CGO_ENABLED=0 $(GO) test -c -o bin/guest/cdev.test ./devices/gpio/cdev

# One test binary at a time (-p 1): each boots its own L1, and two L1s
# under TCG on two cores take as long as one after the other, with more
# load (the nested host wedges more often under load; images/l1/README.md).
guest-test: image l1 guest-bins
	@echo "==> tests that boot the guest (through $(L1EXEC))"
	$(GO) test -p 1 -count=1 -timeout 40m -exec $(L1EXEC) -v -skip '^TestPassthrough' $(GUEST_PKGS)
	@echo "==> host GPIO passthrough tests (always in the nested test host: it has gpio-sim)"
	GVMM_FORCE_L1=1 $(GO) test -p 1 -count=1 -timeout 20m -exec $(L1EXEC) -v -run '^TestPassthrough' $(GUEST_PKGS)

# The soak campaign, not part of make test: 1M guest GPIO operations in one
# boot, the device's counts checked against the guest's, gvmm's RSS logged
# (GVMM_SOAK_OPS=N for a shorter run; GVMM_SOAK_CPUS=N for an N-vCPU guest).
# Through the one-CPU nested test host, under its patched QEMU: 1M in 32 min
# (2026-12-07).
soak: image l1 guest-bins
	@echo "==> soak: guest GPIO operations in one boot (through $(L1EXEC))"
	GVMM_SOAK=1 $(GO) test -count=1 -timeout 3h -exec $(L1EXEC) -v -run '^TestSoak$$' ./cmd/gvmm

# The bench, not part of make test (which runs its smoke mode): gvmm and
# QEMU -M microvm and -M pc alternating, GVMM_BENCH_RUNS (10) runs of each,
# in one nested test host when there is no usable KVM; it measures
# bin/gvmm. bench/write-results.sh writes the report, with a description
# of this host, to bench/results/DATE-TIME.md (UTC).
bench: build image l1 guest-bins
	@echo "==> bench: gvmm and QEMU side by side (through $(L1EXEC))"
	@{ GVMM_BENCH=1 GVMM_BIN=$(CURDIR)/bin/gvmm $(GO) test -count=1 -timeout 3h -exec $(L1EXEC) -v -run '^TestBench(GPIO|Density)?$$' ./cmd/gvmm 2>&1; echo $$? >bin/bench.rc; } | tee bin/bench.log
	@[ "$$(cat bin/bench.rc)" = 0 ] || { echo "make bench: the bench failed (log: bin/bench.log)"; exit 1; }
	@bench/write-results.sh bin/bench.log

clean:
	rm -rf bin
