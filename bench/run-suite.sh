#!/usr/bin/env bash
# run-suite.sh: the `make bench` suite.
#
# Starts a flashpath target with a memory namespace on 127.0.0.1 (pinned to
# CPU 0 with taskset where available), then runs flashpath's bench pinned
# to CPU 1: 4K randread QD1, 4K randread QD32, 4K randwrite QD32 and 128K
# seqread QD32, one queue each, RUNTIME each. Prints a table, writes the
# fio-format JSON to bench/results/ (git-ignored), and prints a raw TCP
# loopback figure (a plain Go socket copy) measured in the same run.
#
# Environment: FLASHPATH (binary; built into bin/ if unset), NAMESPACE (the
# target's namespace, default mem:1GiB; e.g. 'file:/srv/x.img:1GiB?buffered'
# for reads from the page cache, sent by sendfile), RUNTIME (10s),
# PORT (4420), ENGINE (nvme-tcp), TARGET_CPU (0), BENCH_CPU (1),
# LOOPBACK (5s), RESULTS (bench/results), BUSY_POLL (e.g. 50us: the target's
# --busy-poll, default 50us, and the host's busy_poll, default off), SPDK_DIR (an SPDK
# build tree: then ../shared/spdk/measure.sh, or SPDK_MEASURE, runs SPDK's
# target and perf beside flashpath's, same machine, same run).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNTIME=${RUNTIME:-10s}
PORT=${PORT:-4420}
ENGINE=${ENGINE:-nvme-tcp}
TARGET_CPU=${TARGET_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
LOOPBACK=${LOOPBACK:-5s}
RESULTS=${RESULTS:-bench/results}
NQN=nqn.2026-11.io.flashpath:bench

if [[ -z "${FLASHPATH:-}" ]]; then
	FLASHPATH=bin/flashpath
	go build -o "$FLASHPATH" ./cmd/flashpath
fi

# Pin with taskset where it works here (taskset execs the command, so $!
# below is the target's own PID, whose CPU time the bench reads).
PIN_TARGET=() PIN_BENCH=()
if command -v taskset >/dev/null && taskset -c "$TARGET_CPU" true 2>/dev/null &&
	taskset -c "$BENCH_CPU" true 2>/dev/null; then
	PIN_TARGET=(taskset -c "$TARGET_CPU")
	PIN_BENCH=(taskset -c "$BENCH_CPU")
fi

if ! "$FLASHPATH" bench --enghelp | grep -qx "$ENGINE"; then
	echo "run-suite: engine $ENGINE is not built into $FLASHPATH (have: $("$FLASHPATH" bench --enghelp | tr '\n' ' '))" >&2
	echo "run-suite: running the suite against the null engine: this measures the bench alone" >&2
	ENGINE=null
fi

TARGET_PID=
cleanup() {
	if [[ -n "$TARGET_PID" ]]; then
		kill "$TARGET_PID" 2>/dev/null || true
		wait "$TARGET_PID" 2>/dev/null || true
	fi
	rm -f "${JOBFILE:-}"
}
trap cleanup EXIT

if [[ "$ENGINE" != null ]]; then
	poll=()
	[[ -n "${BUSY_POLL:-}" ]] && poll=(--busy-poll "$BUSY_POLL")
	"${PIN_TARGET[@]}" "$FLASHPATH" target --listen "tcp://127.0.0.1:$PORT" --nqn "$NQN" \
		--namespace "${NAMESPACE:-mem:1GiB}" --log-level warn "${poll[@]}" >&2 &
	TARGET_PID=$!
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
		if ! kill -0 "$TARGET_PID" 2>/dev/null; then echo "run-suite: target exited" >&2; exit 1; fi
		sleep 0.1
	done
fi

JOBFILE=$(mktemp --suffix=.fio)
cat >"$JOBFILE" <<JOBS
[global]
ioengine=$ENGINE
filename=tcp://127.0.0.1:$PORT/$NQN/1
size=1g
runtime=$RUNTIME
time_based
numjobs=1
group_reporting
# Submit every free slot in one call (fio's default is one I/O per call).
iodepth_batch_submit=0
$([[ -n "${BUSY_POLL:-}" && $ENGINE == nvme-tcp ]] && echo "busy_poll=$BUSY_POLL")

[randread-4k-qd1]
rw=randread
bs=4k
iodepth=1
stonewall

[randread-4k-qd32]
rw=randread
bs=4k
iodepth=32
stonewall

[randwrite-4k-qd32]
rw=randwrite
bs=4k
iodepth=32
stonewall

[seqread-128k-qd32]
rw=read
bs=128k
iodepth=32
stonewall
JOBS

mkdir -p "$RESULTS"
stamp=$(date +%Y%m%d-%H%M%S)
json="$RESULTS/suite-$stamp-$ENGINE.json"
target_args=()
[[ -n "$TARGET_PID" ]] && target_args=(--target-pid "$TARGET_PID")

"${PIN_BENCH[@]}" "$FLASHPATH" bench "$JOBFILE" --eta=never --output-format=table \
	--json-output "$json" "${target_args[@]}"
"${PIN_BENCH[@]}" "$FLASHPATH" bench --tcp-loopback "$LOOPBACK" 2>&1
echo "JSON: $json"

if [[ -n "${SPDK_DIR:-}" ]]; then
	measure=${SPDK_MEASURE:-../shared/spdk/measure.sh}
	[[ -x $measure ]] || { echo "run-suite: SPDK_DIR is set but $measure is missing (set SPDK_MEASURE)" >&2; exit 1; }
	cleanup
	TARGET_PID=
	echo "== side by side with SPDK ($SPDK_DIR): $measure"
	"$measure" "$SPDK_DIR" "$FLASHPATH" "$RESULTS"
fi
