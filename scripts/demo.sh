#!/usr/bin/env bash
# make demo: a flashpath target with a 1 GiB memory namespace on 127.0.0.1,
# then flashpath bench against it over NVMe/TCP through flashpath's
# user-space host: 4K random read, 128K sequential read, and a verified write.
set -euo pipefail
cd "$(dirname "$0")/.."
FP=${FP:-bin/flashpath}
PORT=${PORT:-4420}
NQN=nqn.2026-11.io.flashpath:demo
RUNTIME=${RUNTIME:-5s}
log=$(mktemp)
trap 'kill -TERM $tgt 2>/dev/null || true; wait $tgt 2>/dev/null || true; rm -f "$log"' EXIT

"$FP" target --listen "tcp://127.0.0.1:$PORT" --nqn "$NQN" --namespace mem:1GiB >"$log" 2>&1 &
tgt=$!
# Wait (at most 10 s) for the target to say it serves.
for _ in $(seq 100); do
	grep -q '^serving' "$log" && break
	kill -0 $tgt 2>/dev/null || {
		cat "$log"
		echo "demo: the target exited (if port $PORT is taken: PORT=4421 make demo)"
		exit 1
	}
	sleep 0.1
done
grep -q '^serving' "$log" || { cat "$log"; echo "demo: the target did not start within 10 s"; exit 1; }
grep -v '^time=' "$log"
echo
# The discovery service, on 8009 beside a listener on 4420 (else the I/O port).
disc=$(sed -n 's|^discovery on nvme/tcp ||p' "$log" | head -n 1)
"$FP" discover "tcp://${disc:-127.0.0.1:$PORT}"
echo
dev="tcp://127.0.0.1:$PORT/$NQN/1"
echo "== write 64 MiB with crc32c verification, then read it back =="
"$FP" bench --name=verify --ioengine=nvme-tcp --filename="$dev" --rw=write --bs=128k --size=64m --iodepth=16 --verify=crc32c --do_verify=1
echo "== 4K random read, QD32, $RUNTIME =="
"$FP" bench --name=randread-4k --ioengine=nvme-tcp --filename="$dev" --rw=randread --bs=4k --iodepth=32 --runtime="$RUNTIME" --time_based
echo "== 128K sequential read, QD32, $RUNTIME =="
"$FP" bench --name=seqread-128k --ioengine=nvme-tcp --filename="$dev" --rw=read --bs=128k --iodepth=32 --runtime="$RUNTIME" --time_based
