#!/bin/bash
# Guest script: flashpath's verbs provider (rdma/verbs_*_linux.go: libibverbs
# and librdmacm through dlopen) on soft-RoCE. Runs the package's lab tests
# (rdma/verbs_lab_test.go) against rxe0 on lab0 (169.254.42.1): connect with
# private data both ways, SEND/RECV, RDMA WRITE and READ checked byte for
# byte, Post+Poll without allocation, rejection with private data, flush on
# disconnect, Close waking Poll, connections outliving their listener, SEND
# with invalidate.
# Then target/rdma's tests (the NVMe/RDMA transport driven by its test host)
# and the end-to-end RDMA tests (test/e2e: flashpath's host against its
# target) over rxe instead of the in-process fake.
# The guest has no Go: build the test binaries on the host first (make
# rdma-test),
#   go test -c -o bin/rdma.test ./rdma
#   go test -c -o bin/target-rdma.test ./target/rdma
#   go test -c -o bin/e2e.test ./test/e2e
# then run from the checkout: ../shared/lab/vm-run test/lab/rdma-verbs.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"

TEST=${RDMA_TEST:-$LAB_CWD/bin/rdma.test}
T0=$SECONDS
step() { lab_step "[$((SECONDS - T0))s] $*"; }
trap 'echo "(${0##*/}: $((SECONDS - T0)) s in the guest, exit $?)"' EXIT

[ -x "$TEST" ] || lab_fail "$TEST missing: go test -c -o bin/rdma.test ./rdma (on the host)"

step "soft-RoCE: rxe0 on lab0"
addr=$(lab_rxe_up) || lab_fail "lab_rxe_up"
rdma link show rxe0/1
ibv_devinfo -d rxe0 | grep -E 'hca_id|state|active_mtu' || true

step "rdma lab tests against rxe0 at $addr"
cd "$LAB_CWD/rdma" # where go test would run them
FP_RDMA_ADDR=$addr timeout 900 "$TEST" -test.v -test.run Lab -test.count=1 -test.timeout 14m 2>&1 |
	tee /tmp/rdma-test.log
grep -q '^PASS$' /tmp/rdma-test.log || lab_fail "rdma lab tests"
! grep -q -- '--- SKIP: TestLab\(SendRecv\|ReadWrite\|Reject\|DisconnectFlushes\|CloseWakesPoll\|ListenerCloseKeepsConns\)' /tmp/rdma-test.log ||
	lab_fail "a lab test skipped"
step "target/rdma tests over rxe0 (the NVMe/RDMA transport and its test host on real verbs)"
TTEST=${TARGET_RDMA_TEST:-$LAB_CWD/bin/target-rdma.test}
[ -x "$TTEST" ] || lab_fail "$TTEST missing: go test -c -o bin/target-rdma.test ./target/rdma (on the host)"
cd "$LAB_CWD/target/rdma"
FP_RDMA_ADDR=$addr timeout 900 "$TTEST" -test.v -test.count=1 -test.timeout 14m 2>&1 | tee /tmp/target-rdma-test.log
grep -q '^PASS$' /tmp/target-rdma-test.log || lab_fail "target/rdma tests over rxe"
step "end-to-end RDMA tests over rxe0 (flashpath's NVMe/RDMA host against its target on real verbs)"
ITEST=${E2E_TEST:-$LAB_CWD/bin/e2e.test}
[ -x "$ITEST" ] || lab_fail "$ITEST missing: go test -c -o bin/e2e.test ./test/e2e (on the host)"
cd "$LAB_CWD/test/e2e"
FP_RDMA_ADDR=$addr timeout 900 "$ITEST" -test.v -test.count=1 -test.run '^TestRDMA' -test.timeout 14m 2>&1 | tee /tmp/e2e-rdma-test.log
grep -q '^PASS$' /tmp/e2e-rdma-test.log || lab_fail "end-to-end RDMA tests over rxe"
if dmesg | grep -E 'WARNING:|BUG:|Call Trace'; then
	lab_fail "kernel warning"
fi
echo PASS
