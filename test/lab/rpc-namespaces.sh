#!/bin/bash
# Guest script: namespaces added and removed over flashpath's SPDK-compatible
# JSON-RPC (flashpath rpc, as rpc.py would send them) while the Linux kernel
# host is connected and runs verified I/O on another namespace: the new
# namespace appears on the host (namespace-change notice, rescan) and takes
# I/O, the removed one disappears, the running job sees no error and the
# kernel logs no NVMe error.
# Run from the checkout: ../shared/lab/vm-run test/lab/rpc-namespaces.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2016-06.io.spdk:cnode1
SOCK=$FP_WORK/spdk.sock
fp_init
trap 'rc=$?; set +e; [ -n "${fio_pid:-}" ] && kill "$fio_pid" 2>/dev/null; trap - EXIT; (exit $rc); fp_cleanup' EXIT
rpc() { timeout 60 "$FP" rpc -s "$SOCK" "$@"; }

fp_step "flashpath target with one namespace and the JSON-RPC on $SOCK; the kernel host connects"
cat >"$FP_WORK/rpc.yaml" <<CONF
listeners: [tcp://127.0.0.1:$FP_PORT]
rpc_socket: $SOCK
subsystems:
  - nqn: $NQN
    namespaces:
      - backend: mem:64MiB
CONF
fp_target_start "$FP_WORK/rpc.yaml"
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN"
ns1=$(fp_ns "$NQN" 1 30) || lab_fail "no namespace 1"
fp_dmesg_mark
# Longer than the steps below take under the lab's emulated CPU (about 4 s);
# each block is verified while the job runs (verify_backlog).
fio --name=busy --filename="$ns1" --rw=randwrite --bs=4k --size=32M --iodepth=8 --ioengine=libaio --direct=1 \
	--verify=crc32c --verify_backlog=64 --time_based --runtime=15 --output="$FP_WORK/fio.txt" &
fio_pid=$!

fp_step "bdev_malloc_create and nvmf_subsystem_add_ns over the RPC: namespace 2 appears on the host"
rpc bdev_malloc_create '{"name": "Malloc1", "num_blocks": 65536, "block_size": 512}'
rpc nvmf_subsystem_add_ns "{\"nqn\": \"$NQN\", \"namespace\": {\"bdev_name\": \"Malloc1\", \"nsid\": 2}}"
ns2=$(fp_ns "$NQN" 2 30) || { fp_dmesg_new; lab_fail "namespace 2 did not appear on the host"; }
echo "namespace 2 is $ns2"
head -c 1M /dev/urandom >"$FP_WORK/pat"
fp_write "$ns2" 4096 "$FP_WORK/pat"
cmp <(fp_read "$ns2" 4096 $((1 << 20))) "$FP_WORK/pat" || lab_fail "namespace 2 read back differs"
rpc nvmf_get_subsystems | fp_has '"bdev_name": "Malloc1"' || lab_fail "nvmf_get_subsystems does not list Malloc1"

fp_step "nvmf_subsystem_remove_ns over the RPC: namespace 2 disappears from the host"
rpc nvmf_subsystem_remove_ns "{\"nqn\": \"$NQN\", \"nsid\": 2}"
fp_ns_gone "$ns2" 30 || { fp_dmesg_new; lab_fail "$ns2 still there after nvmf_subsystem_remove_ns"; }
rpc bdev_malloc_delete '{"name": "Malloc1"}'

fp_step "the job on namespace 1 ran through both changes"
wait "$fio_pid" || lab_fail "fio on namespace 1 failed: $(tail -n 20 "$FP_WORK/fio.txt")"
fio_pid=
grep -E "err= *0" "$FP_WORK/fio.txt" || lab_fail "fio reported errors"
fp_dmesg_clean "namespace changes over the RPC" "rescanning|new namespace|removing"
fp_disconnect "$NQN"
echo; echo "PASS: namespaces added and removed over the JSON-RPC, seen by the kernel host"
