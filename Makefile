# flashpath — see README.md. `make demo` and `make test` work on a fresh Debian/Ubuntu machine.
SHELL      := /bin/bash
GO         ?= go
BIN        := bin
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -X main.version=$(VERSION)
export CGO_CFLAGS ?= -O2 -Wno-deprecated-declarations
# Execution counts rather than durations: a -fuzztime duration races the
# fuzz coordinator's deadline in go1.26 (golang/go#75804) and fails spuriously.
FUZZTIME   ?= 5000x
# What building needs (cgo, the verbs headers; the libraries themselves
# are loaded at run time), and what the tests need besides (mk/*.mk add
# theirs to APT_PKGS).
BUILD_PKGS := gcc libibverbs-dev librdmacm-dev
APT_PKGS   := $(BUILD_PKGS) fio nvme-cli iproute2 util-linux openssl gnutls-bin python3

.PHONY: all build build-deps deps test vet unit unit-norace fuzz interop rdma-test demo bench clean

all: build

# apt_install installs the apt packages in $(1) that are missing, and checks
# for Go.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed: https://go.dev/dl/ (or set GO=/path/to/go)"; exit 1; }
endef

# Every apt package the build and the tests need, only those missing.
deps:
	$(call apt_install,$(APT_PKGS))

# The build's alone: make build and make demo install no more.
build-deps:
	$(call apt_install,$(BUILD_PKGS))

build: build-deps
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/flashpath ./cmd/flashpath

# Platform code stays contained: the tree also builds without cgo and vets
# for another OS (cgo and Linux-only code sit behind _other.go stubs).
# staticcheck at a pinned version, fetched through the module proxy by go run
# (not a dependency of the module), with and without cgo.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	CGO_ENABLED=0 $(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) ./...
	CGO_ENABLED=0 $(GO) run $(STATICCHECK) ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# Every test again without the race detector, which allocates and drops
# sync.Pool items at random: the zero-allocation tests (TestSubmitZeroAlloc,
# TestExecuteDoesNotAllocate, ...) skip under -race and run here. Then each
# benchmark once, so that they keep building and running.
unit-norace:
	$(GO) test -count=1 -timeout 10m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 10m ./...

# Runs every native fuzz test for FUZZTIME (the seed corpora also run in `unit`).
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Linux interop in the lab VM (../shared/lab): the kernel NVMe/TCP and
# NVMe/RDMA hosts and nvme-cli against flashpath's target, flashpath's verbs
# provider and NVMe/RDMA transport on soft-RoCE; test/lab/trixie/ runs on
# the newer guest (kernel 6.12, nvme-cli 2.13: DH-HMAC-CHAP). Skipped, with
# a note, where there is no lab.
LAB ?= ../shared/lab
interop: deps build rdma-test
	@if [ ! -x $(LAB)/vm-run ]; then echo "interop: no lab at $(LAB): skipped"; exit 0; fi; \
	scripts/lab-xfsprogs.sh; \
	$(LAB)/setup >/tmp/flashpath-lab-setup.log 2>&1 || { tail -n 30 /tmp/flashpath-lab-setup.log; exit 1; }; \
	for t in test/lab/*.sh; do \
		case $$t in */lib.sh) continue ;; esac; \
		echo "== interop $$t"; LAB_TIMEOUT=900 scripts/lab-run.sh $(LAB) $$t || exit 1; \
	done; \
	LAB_SUITE=trixie $(LAB)/setup >/tmp/flashpath-lab-setup-trixie.log 2>&1 || { tail -n 30 /tmp/flashpath-lab-setup-trixie.log; exit 1; }; \
	for t in test/lab/trixie/*.sh; do \
		echo "== interop (trixie: kernel 6.12) $$t"; LAB_SUITE=trixie LAB_TIMEOUT=900 scripts/lab-run.sh $(LAB) $$t || exit 1; \
	done

# The guest has no Go: test/lab/rdma-verbs.sh and csi-node.sh run these test binaries;
# test/lab/rdma-target.sh loads a checkpoint behind the fake libcuda.
rdma-test: deps
	$(GO) test -c -o $(BIN)/rdma.test ./rdma
	$(GO) test -c -o $(BIN)/target-rdma.test ./target/rdma
	$(GO) test -c -o $(BIN)/e2e.test ./test/e2e
	$(GO) test -c -o $(BIN)/csi.test ./csi # test/lab/csi-node.sh
	$(CC) -shared -fPIC -O1 -o $(BIN)/libfakecuda.so gds/internal/cuda/testdata/fakecuda.c -lpthread # flashpath load in the guest, no GPU

test: deps vet unit unit-norace fuzz interop

demo: build
	scripts/demo.sh

bench: deps build
	bench/run-suite.sh
	@echo "== remote checkpoint (3 targets in process, fake GPU): sharded save and load beside the bench's nvme-tcp reads and writes"
	CGO_CFLAGS="$(GPU_CGO_CFLAGS)" $(GO) test ./test/e2e -run '^$$' -bench RemoteCheckpoint -benchtime 5x

clean:
	rm -rf $(BIN)

-include mk/*.mk
