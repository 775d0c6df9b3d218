#!/bin/bash
# Guest script: NVMe reservations between the Linux kernel host (nvme-cli
# resv-register, resv-acquire, resv-release, resv-report on its block
# device) and flashpath's own host (`flashpath io resv-*`, a second host
# identity), on flashpath's target with an io_uring file namespace:
#   1. the kernel host registers and takes a write exclusive reservation;
#      flashpath's host reads but its write fails with reservation conflict;
#   2. fio writes from the kernel host (QD 32) while flashpath's host
#      preempts it with abort and writes its pattern over fio's region:
#      fio's writes fail from then on, and the kernel host reads back only
#      flashpath's pattern (no write of the preempted host landed late);
#   3. nvme resv-report shows the new holder; a clear lets everyone write;
#   4. persistence through power loss: the kernel host registers with
#      nvme resv-register --cptpl=3 and reserves; the target is killed
#      (kill -9) and started again; its registration and reservation are
#      back, enforced, and --cptpl=2 turns it off.
# Run from the checkout: ../shared/lab/vm-run test/lab/reservations.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2026-12.io.flashpath:resv
fp_init
cat >"$FP_WORK/target.yaml" <<EOC
listeners: [tcp://127.0.0.1:$FP_PORT]
subsystems:
  - nqn: $NQN
    allowed_hosts: [$FP_HOSTNQN, $FP_HOST2NQN]
    namespaces: [{nsid: 1, backend: "file:$FP_WORK/ns.img:64MiB", ptpl_file: "$FP_WORK/ns1.ptpl"}]
EOC
fp_target_start "$FP_WORK/target.yaml"
fpio() { timeout 60 "$FP" io --addr "tcp://127.0.0.1:$FP_PORT" --nqn "$NQN" --hostnqn "$FP_HOST2NQN" --hostid "$FP_HOST2ID" "$@"; }
report() { timeout 30 nvme resv-report "$dev" --eds -o json; }

fp_step "kernel host connects; nvme id-ns shows the reservation types"
fp_connect -n "$NQN"
dev=$(fp_ns "$NQN" 1) || lab_fail "no namespace appeared"
rescap=$(nvme id-ns "$dev" -o json | jq -r .rescap)
[ "$rescap" = 255 ] || lab_fail "id-ns rescap $rescap, want 255 (persistence through power loss, all six types, IEKEY)"
oncs=$(nvme id-ctrl "$dev" -o json | jq -r .oncs)
[ $((oncs & 0x20)) != 0 ] || lab_fail "id-ctrl oncs $oncs lacks reservations"

fp_step "nvme resv-register and resv-acquire (write exclusive) from the kernel host"
timeout 30 nvme resv-register "$dev" --nrkey=0xa
timeout 30 nvme resv-acquire "$dev" --crkey=0xa --rtype=1 --racqa=0
report | tee "$FP_WORK/report1.json"
[ "$(jq -r .rtype "$FP_WORK/report1.json")" = 1 ] || lab_fail "resv-report rtype is not 1"
[ "$(jq -r .regctl "$FP_WORK/report1.json")" = 1 ] || lab_fail "resv-report regctl is not 1"
! timeout 30 nvme resv-report "$dev" -o json >/dev/null 2>&1 || lab_fail "resv-report without --eds succeeded: 64-bit host IDs are inconsistent with NVMe-oF's"

fp_step "flashpath's host (another host ID): reads, but its write is a reservation conflict"
head -c 1M /dev/urandom >"$FP_WORK/pat"
fpio read --length 4KiB --out /dev/null
if out=$(fpio write --in "$FP_WORK/pat" 2>&1); then lab_fail "write under the kernel host's reservation succeeded"; fi
grep -q "reservation conflict" <<<"$out" || lab_fail "write failed otherwise: $out"
fp_write "$dev" 0 "$FP_WORK/pat" || lab_fail "the holder's write failed"

fp_step "fio writes from the kernel host while flashpath's host preempts it with abort"
fpio resv-register --nrkey=0xb
path=$(fp_path_of "$FP_PORT") || lab_fail "no path device" # the head counts no I/O
writes() { awk '{print $5}' "/sys/block/$path/stat"; }
w0=$(writes)
fio --name=holder --filename="$dev" --rw=randwrite --bs=4k --size=1m --iodepth=32 --ioengine=io_uring \
	--direct=1 --time_based --runtime=60 --output="$FP_WORK/fio.log" >/dev/null 2>&1 &
fio_pid=$!
t=100 # until fio's writes complete on the device (10 s at most)
while [ "$(writes)" -lt $((w0 + 64)) ] && [ $t -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
[ $t -gt 0 ] || lab_fail "fio wrote nothing in 10 s"
fpio resv-acquire --crkey=0xb --prkey=0xa --rtype=1 --racqa=2
fpio write --in "$FP_WORK/pat"
if wait "$fio_pid"; then lab_fail "fio went on writing after the preemption"; fi
grep -qi "error" "$FP_WORK/fio.log" || lab_fail "fio ended without an error: $(tail -3 "$FP_WORK/fio.log")"
cmp <(fp_read "$dev" 0 $((1 << 20))) "$FP_WORK/pat" ||
	lab_fail "the kernel host reads other data than flashpath's pattern: a preempted write landed after Preempt and Abort"

fp_step "nvme resv-report shows flashpath's host holding; the kernel host's write is refused"
report | tee "$FP_WORK/report2.json"
[ "$(jq -r .regctl "$FP_WORK/report2.json")" = 1 ] || lab_fail "resv-report regctl is not 1 after the preemption"
rep=$(fpio resv-report) # not piped into grep -q: with pipefail, its early exit can fail fpio (SIGPIPE)
grep -q "key 0xb (holds)" <<<"$rep" || lab_fail "flashpath's resv-report does not show itself holding: $rep"
! fp_write "$dev" 0 "$FP_WORK/pat" 2>/dev/null || lab_fail "the preempted kernel host's write succeeded"

fp_step "resv-release --rrela=1 (clear): the kernel host writes again"
fpio resv-release --crkey=0xb --rrela=1
fp_write "$dev" 0 "$FP_WORK/pat" || lab_fail "write after the clear failed"
report | tee "$FP_WORK/report3.json"
[ "$(jq -r .regctl "$FP_WORK/report3.json")" = 0 ] || lab_fail "registrants left after the clear"
[ ! -e "$FP_WORK/ns1.ptpl" ] || lab_fail "ptpl file written while persistence was off"

fp_step "nvme resv-register --cptpl=3: the registration and reservation survive kill -9 of the target"
timeout 30 nvme resv-register "$dev" --nrkey=0xc --cptpl=3
timeout 30 nvme resv-acquire "$dev" --crkey=0xc --rtype=2 --racqa=0
jq -e '.ptpl and .rtype == 2 and (.registrants | length) == 1' "$FP_WORK/ns1.ptpl" ||
	lab_fail "ptpl file: $(cat "$FP_WORK/ns1.ptpl")"
fp_disconnect "$NQN"
fp_target_stop KILL
fp_target_start "$FP_WORK/target.yaml"
fp_connect -n "$NQN"
dev=$(fp_ns "$NQN" 1) || lab_fail "no namespace after the restart"
report | tee "$FP_WORK/report4.json"
[ "$(jq -r .rtype "$FP_WORK/report4.json")" = 2 ] || lab_fail "resv-report rtype is not 2 after the restart"
[ "$(jq -r .regctl "$FP_WORK/report4.json")" = 1 ] || lab_fail "resv-report regctl is not 1 after the restart"
[ "$(jq -r .ptpls "$FP_WORK/report4.json")" = 1 ] || lab_fail "resv-report ptpls is not 1 after the restart"
rep=$(fpio resv-report)
grep -q "persist through power loss: on" <<<"$rep" || lab_fail "flashpath's resv-report: persistence is not on: $rep"
if fpio read --length 4KiB --out /dev/null 2>/dev/null; then lab_fail "flashpath's host read under the restored exclusive access reservation"; fi
fp_write "$dev" 0 "$FP_WORK/pat" || lab_fail "the restored holder's write failed"

fp_step "nvme resv-register --cptpl=2 turns persistence off: the file goes"
timeout 30 nvme resv-register "$dev" --nrkey=0xc --cptpl=2
[ ! -e "$FP_WORK/ns1.ptpl" ] || lab_fail "ptpl file left after --cptpl=2"
timeout 30 nvme resv-release "$dev" --crkey=0xc --rrela=1
fp_disconnect "$NQN"
echo PASS
