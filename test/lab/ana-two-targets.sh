#!/bin/bash
# Guest script: multipath across two flashpath targets with the Linux
# kernel host (native NVMe multipath). Targets A (127.0.0.1:FP_PORT) and B
# (FP_PORT+1), separate processes, export the same backing file as
# namespace 1 of the same subsystem, with disjoint controller ID ranges
# (min_cntlid/max_cntlid). The host connects both: `nvme list-subsys`
# shows one subsystem with two paths, both optimized. fio runs verified
# writes on the multipath device while
#   1. A's listener is set inaccessible over A's JSON-RPC: the host moves
#      the I/O to B;
#   2. A is killed (SIGKILL): its path fails, I/O goes on through B;
#   3. A is started again: the host reconnects the path, optimized.
# fio sees no error, and the kernel logs no NVMe error beyond the path
# changes.
# Run from the checkout: ../shared/lab/vm-run test/lab/ana-two-targets.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2026-12.io.flashpath:shared
PA=$FP_PORT
PB=$((FP_PORT + 1))
fp_init
trap 'rc=$?; set +e; [ -n "${fio_pid:-}" ] && kill "$fio_pid" 2>/dev/null; [ -n "${TA:-}" ] && kill -KILL "$TA" 2>/dev/null; trap - EXIT; (exit $rc); fp_cleanup' EXIT
la() { echo "{\"trtype\": \"TCP\", \"adrfam\": \"IPv4\", \"traddr\": \"127.0.0.1\", \"trsvcid\": \"$1\"}"; }
cat /sys/module/nvme_core/parameters/multipath

fp_step "two targets, one backing file, one subsystem NQN, controller IDs 1-1000 on A and 1001-2000 on B"
truncate -s 64M "$FP_WORK/shared.img"
# config NAME PORT MIN MAX — a target's configuration.
config() {
	cat >"$FP_WORK/$1.yaml" <<CONF
listeners: [tcp://127.0.0.1:$2]
rpc_socket: $FP_WORK/$1.sock
subsystems:
  - nqn: $NQN
    min_cntlid: $3
    max_cntlid: $4
    namespaces:
      - backend: file:$FP_WORK/shared.img
CONF
}
config a "$PA" 1 1000
config b "$PB" 1001 2000
# start_a — start target A (again), remembering it apart from B.
start_a() {
	fp_target_start "$FP_WORK/a.yaml"
	TA=$FP_TGT TA_LOG=$FP_TGT_LOG
}
start_a
fp_target_start "$FP_WORK/b.yaml" # B is the library's FP_TGT: fp_cleanup stops it

fp_step "the kernel host connects to both: one subsystem, one namespace, two optimized paths"
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --reconnect-delay 1 --ctrl-loss-tmo 60
timeout 60 nvme connect -t tcp -a 127.0.0.1 -s "$PB" -n "$NQN" --hostnqn "$FP_HOSTNQN" --reconnect-delay 1 --ctrl-loss-tmo 60
ns=$(fp_ns "$NQN" 1 30) || lab_fail "no namespace 1"
fp_wait_ana "$PA" optimized 10
fp_wait_ana "$PB" optimized 10
nvme list-subsys
[ "$(ls -d "$(fp_subsys_dir "$NQN")"/nvme[0-9]* | grep -cE '/nvme[0-9]+$')" = 2 ] ||
	lab_fail "the host did not join both targets' controllers into one subsystem"
for p in "$PA" "$PB"; do
	c=$(fp_ctrl_of "$p") || lab_fail "no controller through port $p"
	echo "port $p: $c cntlid $(cat "/sys/class/nvme/$c/cntlid")"
done
[ "$(cat "/sys/class/nvme/$(fp_ctrl_of "$PB")/cntlid")" -ge 1001 ] || lab_fail "B's controller ID is outside 1001-2000"
fp_fio_paths_start "$ns"

fp_step "A's listener inaccessible (A's JSON-RPC): the host writes through B"
timeout 60 "$FP" rpc -s "$FP_WORK/a.sock" nvmf_subsystem_listener_set_ana_state \
	"{\"nqn\": \"$NQN\", \"listen_address\": $(la "$PA"), \"ana_state\": \"inaccessible\"}"
fp_wait_ana "$PA" inaccessible 20
fp_wait_ana "$PB" optimized 5

fp_step "A killed (SIGKILL): its path fails, I/O goes on through B"
cA=$(fp_ctrl_of "$PA") || lab_fail "no controller through port $PA"
kill -KILL "$TA"
wait "$TA" 2>/dev/null || true
TA=
fp_wait_state "$cA" "connecting|resetting" 20 || lab_fail "$cA stayed live after its target was killed"
for x in /sys/class/nvme/nvme*; do echo "${x##*/}: $(cat "$x/state") $(cat "$x/address")"; done

fp_step "A started again: the host reconnects its path, optimized"
start_a
fp_wait_ana "$PA" optimized 40
fp_wait_ana "$PB" optimized 5

fp_step "fio ran through every change"
# Allowed: path A's recovery after its target was killed and came back.
fp_fio_paths_end "two targets"
kill -TERM "$TA"
wait "$TA" 2>/dev/null || true
TA=
fp_disconnect "$NQN"
echo; echo "PASS: multipath across two flashpath targets with the kernel host: inaccessible, killed and restarted target under verified I/O"
