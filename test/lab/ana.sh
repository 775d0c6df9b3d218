#!/bin/bash
# Guest script: ANA multipath with the Linux kernel host (native NVMe
# multipath). One flashpath target serves a subsystem on two listeners
# (127.0.0.1:FP_PORT and FP_PORT+1): the host connects both, sees one
# namespace with two paths, both optimized; fio runs verified writes on the
# multipath device while, over the JSON-RPC (rpc.py's shapes through
# flashpath rpc):
#   1. listener A is set inaccessible: the host reads the ANA log (change
#      notice) and shows that path inaccessible; I/O goes on through B;
#   2. listener A is removed (its connections close): the path fails;
#      I/O goes on through B;
#   3. listener A comes back, optimized: the host reconnects it and both
#      paths are optimized again.
# fio sees no error, and the kernel logs no NVMe error beyond the path
# changes.
# Run from the checkout: ../shared/lab/vm-run test/lab/ana.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2016-06.io.spdk:ana
SOCK=$FP_WORK/spdk.sock
PA=$FP_PORT
PB=$((FP_PORT + 1))
fp_init
trap 'rc=$?; set +e; [ -n "${fio_pid:-}" ] && kill "$fio_pid" 2>/dev/null; trap - EXIT; (exit $rc); fp_cleanup' EXIT
rpc() { timeout 60 "$FP" rpc -s "$SOCK" "$@"; }
la() { echo "{\"trtype\": \"TCP\", \"adrfam\": \"IPv4\", \"traddr\": \"127.0.0.1\", \"trsvcid\": \"$1\"}"; }
cat /sys/module/nvme_core/parameters/multipath

fp_step "flashpath target: one subsystem on listener B ($PB) from the file and A ($PA) added over the JSON-RPC"
cat >"$FP_WORK/ana.yaml" <<CONF
listeners: [tcp://127.0.0.1:$PB]
rpc_socket: $SOCK
subsystems:
  - nqn: $NQN
    namespaces:
      - backend: mem:64MiB
CONF
fp_target_start "$FP_WORK/ana.yaml"
rpc nvmf_subsystem_add_listener "{\"nqn\": \"$NQN\", \"listen_address\": $(la "$PA")}"

fp_step "the kernel host connects through both: one namespace, two optimized paths"
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --reconnect-delay 1 --ctrl-loss-tmo 60
timeout 60 nvme connect -t tcp -a 127.0.0.1 -s "$PB" -n "$NQN" --hostnqn "$FP_HOSTNQN" --reconnect-delay 1 --ctrl-loss-tmo 60
ns=$(fp_ns "$NQN" 1 30) || lab_fail "no namespace 1"
fp_wait_ana "$PA" optimized 10
fp_wait_ana "$PB" optimized 10
nvme list-subsys 2>/dev/null || true
nvme ana-log "$(fp_ctrl "$NQN")" 2>/dev/null | head -n 20 || true
fp_fio_paths_start "$ns"

fp_step "listener A inaccessible over the RPC: the host sees it and writes through B"
rpc nvmf_subsystem_listener_set_ana_state "{\"nqn\": \"$NQN\", \"listen_address\": $(la "$PA"), \"ana_state\": \"inaccessible\"}"
fp_wait_ana "$PA" inaccessible 20
fp_wait_ana "$PB" optimized 5
rpc nvmf_subsystem_get_listeners "{\"nqn\": \"$NQN\"}" | grep -c inaccessible

fp_step "listener A removed: its path fails, I/O goes on through B"
rpc nvmf_subsystem_remove_listener "{\"nqn\": \"$NQN\", \"listen_address\": $(la "$PA")}"
cA=$(fp_ctrl_of "$PA") || lab_fail "no controller through port $PA"
fp_wait_state "$cA" "connecting|resetting" 20 || lab_fail "$cA stayed live after its listener went"
for x in /sys/class/nvme/nvme*; do echo "${x##*/}: $(cat "$x/state") $(cat "$x/address")"; done

fp_step "listener A back, optimized: the host reconnects it"
rpc nvmf_subsystem_add_listener "{\"nqn\": \"$NQN\", \"listen_address\": $(la "$PA")}"
fp_wait_ana "$PA" optimized 40
fp_wait_ana "$PB" optimized 5

fp_step "fio ran through every change"
# Allowed: path A's recovery after its listener went and came back.
fp_fio_paths_end "ANA changes"
fp_disconnect "$NQN"
echo; echo "PASS: ANA multipath with the kernel host: inaccessible, removed and restored paths under verified I/O"
