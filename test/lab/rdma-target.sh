#!/bin/bash
# Guest script: the Linux kernel NVMe/RDMA host (nvme-rdma over soft-RoCE,
# rxe) and nvme-cli against flashpath's target listening on rdma:// —
# discovery (RDMA entries and their TSAS; flashpath discover rdma:// too), connect with several I/O queues,
# Identify (keyed SGLs, in-capsule data size), data written and read back
# through keyed SGLs (RDMA READ/WRITE) and in-capsule writes, fio verify at
# QD 1 and 32 up to 1 MiB transfers, flush, a controller reset, then the
# kernel's own nvmet-rdma target on the same rxe device measured beside ours,
# and flashpath's user-space NVMe/RDMA host (bench --ioengine nvme-rdma)
# against both targets.
# Run from the checkout: ../shared/lab/vm-run test/lab/rdma-target.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2026-11.io.flashpath:rdma
KNQN=nqn.2026-11.io.flashpath:kernel-rdma-ref
SERIAL=FPRDMA001
MODEL="flashpath rdma lab"

fp_init
fp_step "soft-RoCE device and the kernel's nvme-rdma host"
addr=$(lab_rxe_up) || lab_fail "rxe: no soft-RoCE device"
modprobe nvme-rdma || lab_fail "modprobe nvme-rdma"
rdma link show
cat >"$FP_WORK/target.yaml" <<EOF
listeners: [rdma://$addr:$FP_PORT, tcp://127.0.0.1:$FP_PORT]
subsystems:
  - nqn: $NQN
    serial: $SERIAL
    model: $MODEL
    allowed_hosts: [$FP_HOSTNQN]
    namespaces:
      - {nsid: 1, backend: "mem:64MiB"}
      - {nsid: 2, backend: "file:$FP_WORK/ns2.img:32MiB"}
EOF
fp_target_start "$FP_WORK/target.yaml"
grep '^serving\|^  connect' "$FP_TGT_LOG"
grep -q "nvme connect -t rdma -a $addr -s $FP_PORT -n $NQN" "$FP_TGT_LOG" || lab_fail "the target does not print the rdma connect line"

# ---------------------------------------------------------------- discovery
fp_step "nvme discover -t rdma: both ports, the RDMA entry with its TSAS"
fp_dmesg_mark
timeout 60 nvme discover -t rdma -a "$addr" -s "$FP_PORT" | tee "$FP_WORK/disc.txt"
timeout 60 nvme discover -t rdma -a "$addr" -s "$FP_PORT" -o json >"$FP_WORK/disc.json"
jq -c '.records[] | {trtype, traddr, trsvcid, subnqn}' "$FP_WORK/disc.json"
[ "$(jq -r '[.records[] | select(.trtype == "rdma" and .traddr == "'"$addr"'" and .subnqn == "'"$NQN"'")] | length' "$FP_WORK/disc.json")" = 1 ] ||
	lab_fail "discovery log lacks the rdma entry"
[ "$(jq -r '[.records[] | select(.trtype == "tcp")] | length' "$FP_WORK/disc.json")" = 1 ] || lab_fail "discovery log lacks the tcp entry"
grep -q 'rdma_qptype: connected' "$FP_WORK/disc.txt" || lab_fail "rdma entry: qptype is not 'connected'"
grep -q 'rdma_cms:.*rdma-cm' "$FP_WORK/disc.txt" || lab_fail "rdma entry: cms is not rdma-cm"
out=$(timeout 60 "$FP" discover "rdma://$addr:$FP_PORT" --output json) || lab_fail "flashpath discover rdma://"
[ "$(echo "$out" | jq -r '[.records[] | select(.trtype == "rdma" and .subnqn == "'"$NQN"'" and .rdma_cms == "rdma-cm")] | length')" = 1 ] ||
	{ echo "$out"; lab_fail "flashpath discover rdma:// lacks the rdma entry"; }
echo "  flashpath discover rdma://$addr:$FP_PORT: the rdma entry, as nvme-cli reads it"
fp_dmesg_clean discovery 'Removing ctrl: NQN'

# ------------------------------------------------------------------ connect
fp_step "nvme connect -t rdma --nr-io-queues 2: namespaces, queues, Identify"
fp_dmesg_mark
timeout 60 nvme connect -t rdma -a "$addr" -s "$FP_PORT" -n "$NQN" --nr-io-queues 2 || lab_fail "nvme connect -t rdma"
dev=$(fp_ns "$NQN" 1 60) || lab_fail "no namespace appeared over rdma"
dev2=$(fp_ns "$NQN" 2 20) || lab_fail "namespace 2 did not appear"
ctrl=$(fp_ctrl "$NQN")
[ "$(cat "/sys/class/nvme/$ctrl/transport")" = rdma ] || lab_fail "$ctrl is not an rdma controller"
fp_dmesg_new
fp_dmesg_new | fp_has -E "$ctrl: mapped 2/0/0 default/read/poll queues" || lab_fail "want 2 I/O queues"
nvme list | grep -F "$dev" | fp_has -F "$MODEL" || lab_fail "nvme list: $dev lacks the model"
nvme id-ctrl "/dev/$ctrl" -o json >"$FP_WORK/id-ctrl.json"
jq -c '{sn, mn, subnqn, mdts, sgls, ioccsz, iorcsz, msdbd}' "$FP_WORK/id-ctrl.json"
sgls=$(jq .sgls "$FP_WORK/id-ctrl.json")
(( sgls & 0x4 )) || lab_fail "id-ctrl sgls $sgls: no keyed SGL data blocks"
[ "$(jq .ioccsz "$FP_WORK/id-ctrl.json")" = $(((64 + 8192) / 16)) ] || lab_fail "id-ctrl ioccsz"
echo "queue: max_hw_sectors_kb $(cat /sys/block/${dev##*/}/queue/max_hw_sectors_kb)"
fp_dmesg_clean connect

# --------------------------------------------------------------------- data
fp_step "8 MiB written (1 MiB direct writes: RDMA READ by the target) and 4 KiB writes (in-capsule), read back"
fp_dmesg_mark
head -c 8M /dev/urandom >"$FP_WORK/pat8m"
dd if="$FP_WORK/pat8m" of="$dev" bs=1M oflag=direct status=none
cmp <(dd if="$dev" bs=1M count=8 iflag=direct status=none) "$FP_WORK/pat8m" || lab_fail "1 MiB reads differ from what was written"
head -c 64K /dev/urandom >"$FP_WORK/pat64k"
dd if="$FP_WORK/pat64k" of="$dev" bs=4k seek=4096 oflag=direct status=none
cmp <(fp_read "$dev" $((16 << 20)) $((64 << 10))) "$FP_WORK/pat64k" || lab_fail "4 KiB writes read back differ"
for d in "$dev" "$dev2"; do
	timeout 30 nvme flush "$d" -n "${d##*n}" || lab_fail "nvme flush $d"
done
fp_dmesg_clean data

# ---------------------------------------------------------------------- fio
fp_step "fio over nvme-rdma: 4K randrw verify QD 1 and 32, 128K and 1M sequential verify, 4K randread QD 32"
fp_dmesg_mark
cat >"$FP_WORK/rdma.fio" <<EOF
[global]
filename=$dev
ioengine=libaio
direct=1
verify=crc32c
verify_fatal=1
do_verify=1
randrepeat=0
stonewall
[4k-randrw-qd1]
rw=randrw
bs=4k
iodepth=1
size=2M
[4k-randrw-qd32]
rw=randrw
bs=4k
iodepth=32
size=8M
offset=8M
[128k-write-qd8]
rw=write
bs=128k
iodepth=8
size=8M
offset=16M
[1m-write-qd4]
rw=write
bs=1m
iodepth=4
size=16M
offset=32M
[4k-randread-qd32]
rw=randread
bs=4k
iodepth=32
size=16M
do_verify=0
verify=0
runtime=5
time_based
EOF
fp_jobs fio-rdma fio "$FP_WORK/rdma.fio"
fp_dmesg_clean fio

# -------------------------------------------------------------------- reset
fp_step "nvme reset: the host reconnects every queue over rdma"
fp_dmesg_mark
before=$(dd if="$dev" bs=1M count=48 iflag=direct status=none | md5sum)
echo 1 >"/sys/class/nvme/$ctrl/reset_controller"
st=$(fp_wait_state "$ctrl" live 60) || lab_fail "$ctrl did not come back after a reset: $st"
[ "$(dd if="$dev" bs=1M count=48 iflag=direct status=none | md5sum)" = "$before" ] || lab_fail "data differs after the reset"
fp_dmesg_new
fp_dmesg_clean reset 'resetting controller|Removing ctrl|reset'
! grep -E 'level=(WARN|ERROR)' "$FP_TGT_LOG" | grep -v 'closing connection' || lab_fail "the target logged warnings"

# ----------------------------------------------------------- target restart
fp_step "target restart (SIGTERM, start again) under a connected host: it reconnects over rdma, the file namespace's data intact"
fp_dmesg_mark
head -c 4M /dev/urandom >"$FP_WORK/pat4m"
dd if="$FP_WORK/pat4m" of="$dev2" bs=1M oflag=direct status=none
timeout 30 nvme flush "$dev2" -n 2 || lab_fail "flush before the restart"
fp_target_stop TERM
fp_target_start "$FP_WORK/target.yaml"
st=$(fp_wait_state "$ctrl" live 90) || lab_fail "$ctrl did not reconnect after the target restarted: $st"
cmp <(dd if="$dev2" bs=1M count=4 iflag=direct status=none) "$FP_WORK/pat4m" || lab_fail "file namespace data differs after the restart"
fp_dmesg_new | grep -E "Successfully reconnected|reconnect" | tail -n 2
# The host logs its lost connection and the reconnect attempts: only kernel
# warnings and oopses fail here.
fp_dmesg_clean restart 'nvme'
fp_disconnect "$NQN"

# ---------------------------------------------- the kernel target, same rxe
fp_step "reference: the kernel's nvmet-rdma on the same rxe device, same fio random reads"
fp_nvmet_file "$KNQN" "$FP_WORK/kref.img" $((64 << 20))
modprobe nvmet-rdma || lab_fail "modprobe nvmet-rdma"
lab_nvmet_port 2 rdma "$addr" 4421 "$KNQN"
timeout 60 nvme connect -t rdma -a "$addr" -s 4421 -n "$KNQN" --nr-io-queues 2 || lab_fail "connect to the kernel target"
kdev=$(fp_ns "$KNQN" 1 60) || lab_fail "no namespace from the kernel target"
dd if=/dev/zero of="$kdev" bs=1M count=16 oflag=direct status=none
timeout 60 nvme connect -t rdma -a "$addr" -s "$FP_PORT" -n "$NQN" --nr-io-queues 2 || lab_fail "reconnect to flashpath"
dev=$(fp_ns "$NQN" 1 60) || lab_fail "no namespace on reconnect"
for d in "$dev" "$kdev"; do
	printf '[global]\nfilename=%s\nioengine=libaio\ndirect=1\nrw=randread\nbs=4k\niodepth=32\nsize=16M\nruntime=5\ntime_based\n[randread-%s]\n' "$d" "${d##*/}" >"$FP_WORK/ref.fio"
	fp_jobs "ref-${d##*/}" fio "$FP_WORK/ref.fio"
done
echo "(the first line is flashpath's target, the second the kernel's nvmet-rdma; TCG numbers, for seeing both run)"

# ------------------------------------------- flashpath's own NVMe/RDMA host
fp_step "flashpath bench --ioengine nvme-rdma (the user-space host over verbs): verified writes and random reads, against flashpath's target and the kernel's"
for t in "$addr:$FP_PORT/$NQN/2" "$addr:4421/$KNQN/1"; do
	cat >"$FP_WORK/urdma.fio" <<EOF
[global]
ioengine=nvme-rdma
filename=rdma://$t
size=8m
offset=16m
stonewall
[randwrite-verify-16k]
rw=randwrite
bs=16k
iodepth=16
verify=crc32c
[write-verify-1m]
rw=write
bs=1m
iodepth=4
verify=crc32c
[randread-4k-qd32]
rw=randread
bs=4k
iodepth=32
runtime=5
time_based
EOF
	echo "  rdma://$t"
	fp_jobs "bench-nvme-rdma" "$FP" bench "$FP_WORK/urdma.fio"
done

# ------------------------------------------------------ checkpoint shards
fp_step "flashpath load over NVMe/RDMA: a two-shard checkpoint, one shard exported read-only by flashpath's target, one by the kernel's nvmet-rdma (file backend), through flashpath's host into host memory (the fake libcuda), verified"
FAKECUDA=$LAB_CWD/bin/libfakecuda.so
[ -e "$FAKECUDA" ] || lab_fail "$FAKECUDA missing: make rdma-test builds it"
S1=model-00001-of-00002.safetensors S2=model-00002-of-00002.safetensors
fp_safetensors "$FP_WORK/$S1" w1 3000001
fp_safetensors "$FP_WORK/$S2" w2 5000002
# The kernel's file backend serves whole blocks only: its copy is padded
# (safetensors allows bytes after the data); flashpath's target serves the
# unpadded file whole (read-only: the last block zero-filled).
cp "$FP_WORK/$S2" "$FP_WORK/kshard.img"
KSNQN=nqn.2026-12.io.flashpath:kernel-shard
fp_nvmet_file "$KSNQN" "$FP_WORK/kshard.img" $((($(stat -c %s "$FP_WORK/$S2") + 4095) / 4096 * 4096))
lab_nvmet_port 3 rdma "$addr" 4422 "$KSNQN"
sed -i "s|^      - {nsid: 2, .*|&\n      - {nsid: 3, backend: \"file:$FP_WORK/$S1?ro\"}|" "$FP_WORK/target.yaml"
fp_target_reload
printf '{"metadata": {"total_size": 8000003}, "weight_map": {"w1": "%s", "w2": "%s"}}\n' "$S1" "$S2" >"$FP_WORK/model.safetensors.index.json"
out=$(FLASHPATH_LIBCUDA=$FAKECUDA timeout 120 "$FP" load "$FP_WORK/model.safetensors.index.json" --hostnqn "$FP_HOSTNQN" --verify -o json \
	--shard "$S1=rdma://$addr:$FP_PORT/$NQN/3" --shard "$S2=rdma://$addr:4422/$KSNQN/1") || { echo "$out"; lab_fail "flashpath load over NVMe/RDMA"; }
echo "$out" | jq -c '.shards[] | {name, location, path, transport, bytes, reason}'
[ "$(echo "$out" | jq -r .verified)" = true ] || lab_fail "the load was not verified"
[ "$(echo "$out" | jq -r .tensors)" = 2 ] || lab_fail "want 2 tensors"
[ "$(echo "$out" | jq -r '[.shards[] | select(.transport == "rdma")] | length')" = 2 ] || lab_fail "want both shards over rdma"
echo "  both shards loaded over NVMe/RDMA and verified (CRC-32C of each tensor against its shard)"
