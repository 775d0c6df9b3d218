# GPU data path: build here (Go, cgo; no CUDA needed), check on a GPU machine
# (bash and python3 only). The top Makefile includes mk/*.mk.

GPU_CGO_CFLAGS ?= -Wno-deprecated-declarations

.PHONY: gpu-build gpu-check gpu-remote gpu-test

# bin/flashpath and bin/libflashpath.so: all that scripts/gpu-check.sh needs
# besides the repository's scripts/ and capi/example.py. Carry bin/.
gpu-build: build-deps
	mkdir -p $(BIN)
	CGO_ENABLED=1 CGO_CFLAGS="$(GPU_CGO_CFLAGS)" $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/flashpath ./cmd/flashpath
	CGO_ENABLED=1 CGO_CFLAGS="$(GPU_CGO_CFLAGS)" $(GO) build -trimpath -buildmode=c-shared -o $(BIN)/libflashpath.so ./capi

# Runs on the GPU machine; does not rebuild (no Go there).
gpu-check:
	bash scripts/gpu-check.sh
	bash scripts/gpu-remote.sh

# Only the remote part: a sharded checkpoint served by three flashpath
# targets on the GPU machine itself, loaded over NVMe/TCP.
gpu-remote:
	bash scripts/gpu-remote.sh

# The GPU tests against the fake libcuda/libcufile (no GPU needed).
gpu-test:
	CGO_CFLAGS="$(GPU_CGO_CFLAGS)" $(GO) test -race ./gds/... ./bench/gpu/ ./cmd/flashpath/
