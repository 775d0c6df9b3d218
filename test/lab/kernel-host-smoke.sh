#!/bin/bash
# Guest script: the Linux kernel NVMe/TCP host against flashpath's target.
# Run from the checkout: ../shared/lab/vm-run test/lab/kernel-host-smoke.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
NQN=nqn.2026-11.io.flashpath:lab
FP=${FP:-$LAB_CWD/bin/flashpath}

modprobe nvme-tcp
"$FP" target --listen tcp://127.0.0.1:4420 --nqn "$NQN" --namespace mem:256MiB --log-level debug >/tmp/target.log 2>&1 &
tgt=$!
trap 'nvme disconnect -n "$NQN" >/dev/null 2>&1 || true; kill "$tgt" 2>/dev/null || true; echo "--- target log (tail)"; tail -n 40 /tmp/target.log; echo "--- dmesg (nvme)"; dmesg | grep -i nvme | tail -n 30' EXIT
for _ in $(seq 100); do grep -q '^serving' /tmp/target.log && break; sleep 0.1; done

lab_step "nvme discover"
timeout 60 nvme discover -t tcp -a 127.0.0.1 -s 4420
for args in "" "--hdr-digest --data-digest"; do
	lab_step "nvme connect $args"
	timeout 60 nvme connect -t tcp -a 127.0.0.1 -s 4420 -n "$NQN" $args
	dev=$(lab_nvme_ns "$NQN" 30) || lab_fail "no namespace appeared"
	for s in /sys/class/nvme-subsystem/*; do
		[ "$(cat "$s/subsysnqn")" = "$NQN" ] && ctrl=/dev/$(ls "$s" | grep -E '^nvme[0-9]+$' | head -n 1)
	done
	lab_step "nvme list / id-ctrl / id-ns ($dev)"
	nvme list
	nvme id-ctrl "$ctrl" | grep -E '^(vid|sn|mn|fr|mdts|cntlid|ver|kas|sgls|subnqn|ioccsz|iorcsz|oncs|vwc) '
	nvme id-ns "$dev" | head -n 12
	nvme ns-descs "$dev" || true
	lab_step "fio 4k randwrite verify"
	timeout 300 fio --name=v --filename="$dev" --rw=randwrite --bs=4k --size=32M --ioengine=libaio --direct=1 --iodepth=16 --verify=crc32c --do_verify=1 --output-format=terse >/tmp/fio.out || { cat /tmp/fio.out; lab_fail "fio verify failed"; }
	lab_step "fio 128k write verify"
	timeout 300 fio --name=v2 --filename="$dev" --rw=write --bs=128k --size=32M --ioengine=libaio --direct=1 --iodepth=8 --verify=crc32c --do_verify=1 --output-format=terse >/tmp/fio.out || { cat /tmp/fio.out; lab_fail "fio verify failed"; }
	lab_step "disconnect"
	nvme disconnect -n "$NQN"
done
if dmesg | grep -iE 'nvme.*(error|warn|fail)'; then lab_fail "kernel complained"; fi
echo "PASS"
