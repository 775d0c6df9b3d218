#!/bin/bash
# Guest script: the CSI driver's node side for real (csi/lab_test.go,
# TestLabNode): the kernel's NVMe/TCP host (a target with two addresses:
# native multipath, two controllers under one device), blkid, mkfs.ext4 and mount(2)
# against an in-process flashpath target whose volumes the driver's
# controller makes. Stage connects and formats a volume published to this
# host and mounts it; publish binds it into a pod's folder, where a file
# is written; unpublish and unstage unmount and disconnect; staged again,
# the file is there; as a block volume the pod's path is the device; once
# unpublished, the target refuses this host. Then the driver as deployed
# (TestLabBinaries): `flashpath target` with its JSON-RPC over HTTPS, a
# volume folder and --rpc-state, `flashpath csi --controller --node`,
# driven over gRPC as the sidecars and kubelet drive it; the target
# restarts under a mounted volume and a write's fsync still goes through.
# The kernel logs no warning.
# The guest has no Go: build the test binary on the host first (make
# rdma-test builds it too),
#   go build -o bin/flashpath ./cmd/flashpath && go test -c -o bin/csi.test ./csi
# then run from the checkout: ../shared/lab/vm-run test/lab/csi-node.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

TEST=${CSI_TEST:-$LAB_CWD/bin/csi.test}
# xfsprogs is not in the lab image: `make interop` unpacks Debian's into
# bin/lab-xfs (scripts/lab-xfsprogs.sh); the guest shares the host's glibc.
if [ -x "$LAB_CWD/bin/lab-xfs/sbin/mkfs.xfs" ]; then
	x=$LAB_CWD/bin/lab-xfs
	export PATH=$x/sbin:$x/usr/sbin:$PATH
	export LD_LIBRARY_PATH=$x/lib/x86_64-linux-gnu:$x/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	modprobe xfs 2>/dev/null || true
fi
[ -x "$TEST" ] || lab_fail "$TEST missing: go test -c -o bin/csi.test ./csi (on the host)"
fp_init

fp_step "TestLabNode: stage, publish, unpublish, unstage with the kernel host"
FLASHPATH_LAB_CSI=1 timeout 300 "$TEST" -test.run '^TestLabNode$' -test.v -test.count=1 || lab_fail "TestLabNode failed"

fp_step "TestLabBinaries: flashpath target (JSON-RPC over HTTPS) and flashpath csi --controller --node, driven over gRPC"
FLASHPATH_LAB_CSI=1 FP=$FP timeout 300 "$TEST" -test.run '^TestLabBinaries$' -test.v -test.count=1 || lab_fail "TestLabBinaries failed"

fp_step "no controller of a CSI volume is left, and the kernel logged no warning"
if ls /sys/class/nvme 2>/dev/null | fp_has .; then
	grep -l 'nqn.2026-12.io.flashpath:csi:' /sys/class/nvme/*/subsysnqn && lab_fail "a CSI volume's controller is left"
fi
if dmesg | tail -n +"$((FP_DMESG_MARK + 1))" | grep -E 'WARNING|BUG|Call Trace'; then
	lab_fail "kernel warnings"
fi
echo "csi-node: pass"
