#!/bin/bash
# Guest script: flashpath's user-space host against the Linux kernel target
# (nvmet-tcp on a file, 127.0.0.1) — discover, identify, write/read verify,
# with and without digests, `flashpath bench --ioengine nvme-tcp`; then the
# kernel host on the same namespace, `flashpath bench --ioengine io_uring`
# and fio side by side on /dev/nvmeXnY (emulated machine: the numbers are
# for seeing both run, not for comparing speed).
# Run from the checkout: ../shared/lab/vm-run test/lab/userspace-host.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2026-11.io.flashpath:kernel-target
ADDR=tcp://127.0.0.1:$FP_PORT
SIZE=$((128 << 20))

fp_init
trap 'rc=$?; set +e; timeout 30 nvme disconnect-all >/dev/null 2>&1; lab_nvmet_clear; trap - EXIT; (exit $rc); fp_cleanup' EXIT

fp_step "kernel target: $NQN on $ADDR, a $((SIZE >> 20)) MiB file (buffered: /tmp is tmpfs)"
fp_nvmet_file "$NQN" "$FP_WORK/nvmet.img" $SIZE
modprobe nvmet-tcp
lab_nvmet_port 1 tcp 127.0.0.1 "$FP_PORT" "$NQN"

head -c 1M /dev/urandom >"$FP_WORK/pat"
for dig in "" "--hdr-digest --data-digest"; do
	fp_step "flashpath discover $ADDR $dig"
	timeout 60 "$FP" discover "$ADDR" $dig | tee "$FP_WORK/disc"
	grep -q "$NQN" "$FP_WORK/disc" || lab_fail "discovery lacks $NQN"
	timeout 60 "$FP" discover "$ADDR" $dig -o json | jq -e --arg n "$NQN" '[.. | objects | select(.subnqn? == $n)] | length > 0' >/dev/null ||
		lab_fail "JSON discovery lacks $NQN"

	fp_step "flashpath io identify / write / read $dig"
	io=(timeout 60 "$FP" io --addr "$ADDR" --nqn "$NQN" $dig)
	"${io[@]}" identify | tee "$FP_WORK/ident"
	grep -qE "size: +$SIZE bytes" "$FP_WORK/ident" || lab_fail "identify: namespace size is not $SIZE"
	grep -q "subnqn: *$NQN" "$FP_WORK/ident" || lab_fail "identify: subnqn"
	off=$(( ${#dig} > 0 ? 3 << 20 : 1 << 20 ))
	"${io[@]}" write --offset "$off" --in "$FP_WORK/pat"
	"${io[@]}" read --offset "$off" --length 1MiB --out "$FP_WORK/back"
	cmp "$FP_WORK/pat" "$FP_WORK/back" || lab_fail "read back differs ($dig)"
	# what the kernel target stored, seen through the file
	cmp <(dd if="$FP_WORK/nvmet.img" bs=1M skip=$((off >> 20)) count=1 status=none) "$FP_WORK/pat" ||
		lab_fail "the kernel target's file differs ($dig)"
done

fp_step "flashpath bench --ioengine nvme-tcp: verified writes (with digests), random reads, 128K verified"
cat >"$FP_WORK/nvme-tcp.fio" <<EOF
[global]
filename=$ADDR/$NQN/1
ioengine=nvme-tcp
hdr_digest=1
data_digest=1
offset=16M

[randwrite-verify]
rw=randwrite
bs=4k
iodepth=16
size=8M
verify=crc32c

[randread-qd16]
stonewall
rw=randread
bs=4k
iodepth=16
size=32M
runtime=5s
time_based

[seq-128k-verify]
stonewall
rw=write
bs=128k
iodepth=8
size=16M
offset=48M
verify=crc32c
EOF
fp_jobs bench-nvme-tcp "$FP" bench "$FP_WORK/nvme-tcp.fio"

fp_step "kernel host on the same namespace: fio and flashpath bench (io_uring) side by side"
fp_dmesg_mark
fp_connect -n "$NQN"
dev=$(fp_ns "$NQN" 1) || lab_fail "no namespace appeared"
cmp <(fp_read "$dev" $((3 << 20)) $((1 << 20))) "$FP_WORK/pat" || lab_fail "the kernel host reads other data than flashpath's host wrote"
# The same job file for both: verified writes, then timed random and
# sequential reads.
cat >"$FP_WORK/dev.fio" <<EOF
[global]
filename=$dev
ioengine=io_uring
direct=1

[randwrite-verify]
rw=randwrite
bs=4k
iodepth=16
size=8M
offset=64M
verify=crc32c

[randread-qd32]
stonewall
rw=randread
bs=4k
iodepth=32
size=64M
runtime=5s
time_based

[seqread-128k]
stonewall
rw=read
bs=128k
iodepth=8
size=32M
runtime=5s
time_based
EOF
fp_jobs fio-dev fio "$FP_WORK/dev.fio"
fp_jobs bench-dev "$FP" bench "$FP_WORK/dev.fio"
fp_disconnect "$NQN"
fp_dmesg_clean "kernel host"
if dmesg | grep -E 'WARNING:|BUG:|Call Trace'; then lab_fail "kernel warning"; fi
echo PASS
