#!/bin/bash
# Guest script: `flashpath initiator`, the daemon that keeps subsystems
# connected through the Linux kernel host — discovery from flashpath's
# target, both subsystems connected and their namespaces written and read
# back, Prometheus metrics, a subsystem disconnected by hand connected
# again on SIGHUP, one added on the target connected at once through the
# persistent discovery connection's change notice (the interval is an hour),
# disconnect on SIGTERM; --once; and the kernel target over NVMe/RDMA on
# soft-RoCE (rxe) connected through the daemon's rdma:// entries, with
# `flashpath bench` and fio (verified writes, random reads) over it.
# Run from the checkout: ../shared/lab/vm-run test/lab/initiator-daemon.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"
NQN1=nqn.2026-11.io.flashpath:daemon-a
NQN2=nqn.2026-11.io.flashpath:daemon-b
NQN3=nqn.2026-11.io.flashpath:daemon-c
RNQN=nqn.2026-11.io.flashpath:kernel-rdma
METRICS=127.0.0.1:9421
FP_INI=
FP_INI_LOG=$FP_WORK/initiator.log
fp_init
trap 'rc=$?; set +e; [ -n "$FP_INI" ] && kill -KILL "$FP_INI" 2>/dev/null; [ "$rc" != 0 ] && { echo "--- initiator log (tail)"; tail -n 40 "$FP_INI_LOG"; }; timeout 30 nvme disconnect-all >/dev/null 2>&1; lab_nvmet_clear; trap - EXIT; (exit $rc); fp_cleanup' EXIT

# target_config [EXTRA_SUBSYSTEM_NQN]
target_config() {
	cat >"$FP_WORK/target.yaml" <<-EOF
	listeners: [tcp://127.0.0.1:$FP_PORT]
	subsystems:
	  - nqn: $NQN1
	    namespaces: [{nsid: 1, backend: "mem:64MiB"}]
	  - nqn: $NQN2
	    namespaces: [{nsid: 1, backend: "mem:32MiB"}]
	EOF
	if [ -n "${1:-}" ]; then
		cat >>"$FP_WORK/target.yaml" <<-EOF
		  - nqn: $1
		    namespaces: [{nsid: 1, backend: "mem:16MiB"}]
		EOF
	fi
}

# metrics, metric NAME_AND_LABELS — the daemon's /metrics page, one sample.
metrics() { fp_metrics "$METRICS"; }
metric() { fp_metric "$METRICS" "$1"; }

# wait_log REGEX — wait until the daemon's log has a matching line (bounded).
wait_log() {
	local t=300
	until grep -q "$1" "$FP_INI_LOG"; do
		t=$((t - 1)); [ $t -gt 0 ] || { tail -n 20 "$FP_INI_LOG"; lab_fail "no '$1' in the daemon's log"; }
		sleep 0.1
	done
}

# wait_metric SAMPLE VALUE — wait until the sample has the value (bounded).
wait_metric() {
	local t=300
	until [ "$(metric "$1")" = "$2" ]; do
		t=$((t - 1)); [ $t -gt 0 ] || lab_fail "$1 is '$(metric "$1")', want $2"
		sleep 0.1
	done
}

target_config
fp_target_start "$FP_WORK/target.yaml"

fp_step "flashpath initiator: persistent discovery on 127.0.0.1:$FP_PORT (interval 1 h), metrics on $METRICS"
cat >"$FP_WORK/initiator.yaml" <<EOF
discovery:
  - address: tcp://127.0.0.1:$FP_PORT
defaults: {nr_io_queues: 2, reconnect_delay: 1, ctrl_loss_tmo: 30}
interval: 1h
metrics: $METRICS
disconnect_on_stop: true
EOF
"$FP" initiator --config "$FP_WORK/initiator.yaml" --log-level debug >"$FP_INI_LOG" 2>&1 &
FP_INI=$!
dev1=$(fp_ns "$NQN1" 1 60) || lab_fail "$NQN1: no namespace appeared"
dev2=$(fp_ns "$NQN2" 1 60) || lab_fail "$NQN2: no namespace appeared"
echo "  $NQN1 -> $dev1, $NQN2 -> $dev2"
wait_log 'msg="first pass done" result="2 subsystems: 2 connected now'
wait_log 'msg="persistent discovery connection'
c1=$(fp_ctrl "$NQN1")
[ "$(cat "/sys/class/nvme/$c1/queue_count" 2>/dev/null || echo 3)" = 3 ] || lab_fail "nr_io_queues 2 not applied ($(cat /sys/class/nvme/$c1/queue_count) queues)"
[ "$(blockdev --getsize64 "$dev2")" = $((32 << 20)) ] || lab_fail "$dev2 is not 32 MiB"

fp_step "write and read back 4 MiB on each namespace"
head -c 4M /dev/urandom >"$FP_WORK/data"
for d in "$dev1" "$dev2"; do
	fp_write "$d" 1048576 "$FP_WORK/data"
	cmp <(fp_read "$d" 1048576 $((4 << 20))) "$FP_WORK/data" || lab_fail "$d: data read back differs"
done

fp_step "metrics: both controllers live, the namespace's bytes counted"
m=$(metrics)
echo "$m" | grep -E '^flashpath_initiator_(controller_live|namespace_bytes_total|connects_total)' | sed 's/^/  /'
echo "$m" | fp_has "^flashpath_initiator_controller_live{ctrl=\"$c1\",subsys=\"$NQN1\"} 1$" || lab_fail "controller_live of $c1 missing"
w=$(echo "$m" | awk -v k="flashpath_initiator_namespace_bytes_total{device=\"${dev1#/dev/}\",op=\"write\",subsys=\"$NQN1\"}" '$1 == k { print $2 }')
[ -n "$w" ] && awk -v w="$w" 'BEGIN { exit !(w >= 4194304) }' || lab_fail "write bytes of $dev1: '$w', want >= 4 MiB"

fp_step "a subsystem disconnected by hand is connected again on SIGHUP (systemctl reload)"
fp_disconnect "$NQN2"
kill -HUP "$FP_INI"
dev2=$(fp_ns "$NQN2" 1 60) || lab_fail "$NQN2 not reconnected"
cmp <(fp_read "$dev2" 1048576 $((4 << 20))) "$FP_WORK/data" || lab_fail "$dev2: data differs after reconnect"

fp_step "a subsystem added on the target is connected at once: the discovery log change notice"
target_config "$NQN3"
fp_target_reload
dev3=$(fp_ns "$NQN3" 1 60) || lab_fail "$NQN3 not connected"
[ "$(blockdev --getsize64 "$dev3")" = $((16 << 20)) ] || lab_fail "$dev3 is not 16 MiB"
wait_metric flashpath_initiator_subsystems_wanted 3
grep 'msg="pass done"' "$FP_INI_LOG" | tail -n 1 | sed 's/^/  /'
grep 'msg="pass done"' "$FP_INI_LOG" | fp_has 'why="discovery log change"' || lab_fail "no pass for a discovery log change"
n=$(grep -c 'msg=connected' "$FP_INI_LOG")
[ "$n" = 4 ] || { grep 'msg=connected' "$FP_INI_LOG"; lab_fail "$n connects logged, want 4 (2 + reconnect + new)"; }

fp_step "SIGTERM: the daemon disconnects what it connected (disconnect_on_stop) and exits 0"
kill -TERM "$FP_INI"
rc=0
timeout 30 tail --pid="$FP_INI" -f /dev/null || lab_fail "the daemon did not exit in 30 s"
wait "$FP_INI" || rc=$?
FP_INI=
[ "$rc" = 0 ] || lab_fail "daemon exit status $rc"
for n in "$NQN1" "$NQN2" "$NQN3"; do
	t=100
	while fp_subsys_dir "$n" >/dev/null && [ $t -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
	! fp_subsys_dir "$n" >/dev/null || lab_fail "$n still connected after the daemon stopped"
done
grep -q 'msg=stopped' "$FP_INI_LOG" || lab_fail "no 'stopped' in the daemon's log"

fp_step "--once: one pass connects everything, a second finds it connected"
out=$(timeout 120 "$FP" initiator --discover "tcp://127.0.0.1:$FP_PORT" --once --nr-poll-queues 1 --log-level warn)
echo "$out" | sed 's/^/  /'
echo "$out" | fp_has '^3 subsystems: 3 connected now, 0 already connected$' || lab_fail "--once did not connect 3"
out=$(timeout 120 "$FP" initiator --discover "tcp://127.0.0.1:$FP_PORT" --once --log-level warn)
echo "$out" | fp_has '^3 subsystems: 0 connected now, 3 already connected$' || lab_fail "second --once: $out"
fp_step "polled I/O (fio's hipri) on a namespace connected with --nr-poll-queues 1"
dev1=$(fp_ns "$NQN1" 1 30) || lab_fail "$NQN1: no namespace"
cat >"$FP_WORK/hipri.fio" <<EOF
[global]
filename=$dev1
ioengine=io_uring
direct=1
hipri=1
[write-verify]
rw=randwrite
bs=4k
iodepth=8
size=4M
offset=8M
verify=crc32c
[randread]
stonewall
rw=randread
bs=4k
iodepth=8
size=16M
runtime=3s
time_based
EOF
fp_jobs bench-hipri "$FP" bench "$FP_WORK/hipri.fio"
fp_jobs fio-hipri fio "$FP_WORK/hipri.fio"
# A target that is not there: --once fails, saying so.
if out=$(timeout 120 "$FP" initiator --connect "tcp://127.0.0.1:4499/$NQN1" --once --log-level error 2>&1); then
	lab_fail "--once to a closed port succeeded: $out"
fi
echo "  closed port: ${out##*$'\n'}"
echo "$out" | fp_has 'is the target listening there' || lab_fail "no hint in: $out"
timeout 30 nvme disconnect-all >/dev/null

fp_step "NVMe/RDMA: the kernel target on rxe, connected through an rdma:// entry"
addr=$(lab_rxe_up) || lab_fail "rxe: no soft-RoCE device"
addr=${addr%/*}
modprobe nvme-rdma
fp_nvmet_file "$RNQN" "$FP_WORK/rdma.img" $((64 << 20))
modprobe nvmet-rdma
lab_nvmet_port 2 rdma "$addr" 4420 "$RNQN"
out=$(timeout 120 "$FP" initiator --connect "rdma://$addr:4420/$RNQN" --nr-io-queues 1 --once --log-level warn)
echo "$out" | sed 's/^/  /'
rdev=$(fp_ns "$RNQN" 1 60) || lab_fail "$RNQN: no namespace over rdma"
[ "$(cat "/sys/class/nvme/$(fp_ctrl "$RNQN")/transport")" = rdma ] || lab_fail "not an rdma controller"
nd=$("$FP" topo --output json | jq -r '.nvme[] | select(.transport == "rdma") | .netdev')
want=$(ip -o route get "$addr" | sed -n 's/.* dev \([^ ]*\).*/\1/p')
[ -n "$nd" ] && [ "$nd" = "$want" ] || lab_fail "flashpath topo places the rdma controller on '$nd', ip route get $addr says '$want'"
echo "  flashpath topo: the rdma controller is reached through $nd, as ip route get says"
fp_write "$rdev" 0 "$FP_WORK/data"
cmp <(fp_read "$rdev" 0 $((4 << 20))) "$FP_WORK/data" || lab_fail "$rdev: data read back over rdma differs"
cmp <(head -c 4M "$FP_WORK/rdma.img") "$FP_WORK/data" || lab_fail "the kernel target's file lacks the data"
cat >"$FP_WORK/rdma.fio" <<EOF
[global]
filename=$rdev
ioengine=io_uring
direct=1
[randwrite-verify]
rw=randwrite
bs=4k
iodepth=16
size=8M
offset=16M
verify=crc32c
[randread]
stonewall
rw=randread
bs=4k
iodepth=16
size=32M
runtime=3s
time_based
EOF
fp_jobs bench-rdma "$FP" bench "$FP_WORK/rdma.fio"
fp_jobs fio-rdma fio "$FP_WORK/rdma.fio"
timeout 30 nvme disconnect -n "$RNQN" >/dev/null
fp_step "done"
