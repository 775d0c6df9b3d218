#!/usr/bin/env bash
# GPU check of remote checkpoint loads (part of `make gpu-check`; runs alone
# too). On the GPU machine itself: three flashpath targets on 127.0.0.1
# serve the shards of a sharded checkpoint of $FP_GIB GiB (default 8) from
# the page cache as read-only file namespaces; `flashpath load` loads them
# all into GPU memory over NVMe/TCP through flashpath's own host, verified.
# Printed beside what bounds it, measured in the same run: the pinned
# host-to-device copy rate, the NVMe/TCP loopback rate (`flashpath bench`,
# 16 connections), the same checkpoint's shards loaded from local files,
# and safetensors.torch.load_file(device="cuda") of every shard.
#
# Needs bin/flashpath (`make gpu-build`), python3 with torch and
# safetensors. Environment: FP_GIB, FP_SHARDS (8), FP_DIR, FP_SHAPES
# (queues:workers[:chunkMiB] of the load sweep), FP_TCP_JOBS (connections
# of the loopback baseline), FP_PORT and FP_METRICS_PORT (the first of the
# targets' three ports, 4420 and 9430), FP (the flashpath binary), OUT
# (results folder). Last, the targets are restarted with --sendfile=false
# and the default load runs again: what sendfile is worth when the host
# shares the machine.
#
# Without torch (off the GPU machine, FLASHPATH_LIBCUDA set to the fake
# libcuda) the checkpoint is random bytes and the torch steps fail and are
# skipped: test/e2e's TestGPURemoteScriptDryRun runs it that way.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR=${OUT:-$ROOT/bin/gpu-check}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu-remote.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
GIB=${FP_GIB:-8}
SHARDS=${FP_SHARDS:-8}
DIR=${FP_DIR:-/tmp/flashpath-remote}
RES=$DIR/results
PY=${PYTHON:-python3}
BENCH=$ROOT/scripts/gpu/bench.py
FP=${FP:-$ROOT/bin/flashpath}
PORT=${FP_PORT:-4420}
MPORT=${FP_METRICS_PORT:-9430}
IDX=$DIR/model.safetensors.index.json
say() { printf '\n== %s  [t+%ss]\n' "$*" "$(($(date +%s) - START))" >&2; }
step() { # NAME TIMEOUT CMD...: never aborts the script
	local name=$1 t=$2
	shift 2
	say "$name"
	timeout -k 5 "$t" "$@"
	local rc=$?
	[ $rc = 0 ] || echo "!! $name: exit status $rc" >&2
	return $rc
}
[ -x "$FP" ] || { echo "!! $FP missing: run 'make gpu-build' where Go is and carry bin/"; exit 1; }
rm -rf "$DIR"
mkdir -p "$DIR" "$RES"
say "environment"
echo "host: $(uname -srm), $(nproc) CPUs"
nvidia-smi --query-gpu=index,name,driver_version,pcie.link.gen.max,pcie.link.width.max --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"

step "write a ${GIB} GiB checkpoint in $SHARDS shards + index" 240 $PY "$BENCH" make-sharded "$DIR" "$GIB" "$SHARDS" || exit 1
mapfile -t NAMES < <($PY -c 'import json,sys; print("\n".join(sorted(set(json.load(open(sys.argv[1]))["weight_map"].values()))))' "$IDX")
$PY "$BENCH" warm-cache "$DIR"/*.safetensors

# Three storage "nodes": shard i on target i mod 3, exported byte for byte,
# read-only, through the page cache.
PIDS=()
SHARD_FLAGS=()
SHARD_MAP=()
SAVE_TO=()
TARGET_ARGS=()
for t in 0 1 2; do
	args=()
	nsid=0
	for i in "${!NAMES[@]}"; do
		[ $((i % 3)) = $t ] || continue
		nsid=$((nsid + 1))
		args+=(--namespace "file:$DIR/${NAMES[$i]}?ro&buffered")
		SHARD_MAP+=("\"${NAMES[$i]}\": \"tcp://127.0.0.1:$((PORT + t))/nqn.2026-12.io.flashpath:ckpt$t/$nsid\"")
		SHARD_FLAGS+=(--shard "${NAMES[$i]}=tcp://127.0.0.1:$((PORT + t))/nqn.2026-12.io.flashpath:ckpt$t/$nsid")
	done
	# and a writable memory namespace, last, for the save through the C ABI
	SAVE_TO+=("tcp://127.0.0.1:$((PORT + t))/nqn.2026-12.io.flashpath:ckpt$t/$((nsid + 1))")
	args+=(--namespace "mem:$(awk -v g="$GIB" 'BEGIN { printf "%d", g * 1024 / 3 + 1024 }')MiB")
	TARGET_ARGS[$t]="${args[*]@Q}"
done
# start_targets [FLAG...]: the three targets, each with the flags given.
start_targets() {
	PIDS=()
	for t in 0 1 2; do
		eval "args=(${TARGET_ARGS[$t]})"
		"$FP" target --listen "tcp://127.0.0.1:$((PORT + t))" --nqn "nqn.2026-12.io.flashpath:ckpt$t" "${args[@]}" \
			--metrics "127.0.0.1:$((MPORT + t))" --rpc-socket off --log-level warn "$@" >>"$DIR/target$t.log" 2>&1 &
		PIDS+=($!)
	done
	for port in $PORT $((PORT + 1)) $((PORT + 2)); do
		for _ in $(seq 100); do
			(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
			sleep 0.1
		done
	done
	for t in 0 1 2; do
		kill -0 "${PIDS[$t]}" 2>/dev/null || { echo "!! target $t did not start:"; cat "$DIR/target$t.log"; exit 1; }
	done
}
stop_targets() {
	kill "${PIDS[@]}" 2>/dev/null
	wait "${PIDS[@]}" 2>/dev/null
}
# wait for the targets only: a bare wait also waits for the tee above.
trap stop_targets EXIT
start_targets
echo "targets: ${PIDS[*]} on 127.0.0.1:$PORT-$((PORT + 2))"

step "baseline: pinned host-to-device copy (torch)" 60 $PY "$BENCH" h2d --out "$RES/h2d.json"

for nj in ${FP_TCP_JOBS-16 32}; do
	step "baseline: NVMe/TCP loopback, flashpath bench, 1m reads, $nj connections x QD8 (one target)" 60 \
		"$FP" bench --name=tcp-limit --ioengine=nvme-tcp --filename="tcp://127.0.0.1:$PORT/nqn.2026-12.io.flashpath:ckpt0/1" \
		--rw=read --bs=1m --iodepth=8 --numjobs=$nj --group_reporting --runtime=4s --time_based \
		--output-format=json --json-output="$RES/tcp-$nj.json" >/dev/null
	$PY -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]["read"]; print("read %.2f GB/s" % (j["bw_bytes"]/1e9))' "$RES/tcp-$nj.json" 2>/dev/null
done

# The sweep: queues per target x reader workers [x chunk MiB], 2 loads per
# process (the last reported), then the default shape verified.
for shape in ${FP_SHAPES-8:12 8:16 16:16 16:24 8:16:8 16:16:8}; do
	IFS=: read -r q w c <<<"$shape"
	key=q$q-w$w${c:+-c$c}
	step "flashpath load, remote, --queues $q --workers $w${c:+ --chunk-mib $c}" 120 "$FP" load "$IDX" "${SHARD_FLAGS[@]}" --queues "$q" --workers "$w" \
		${c:+--chunk-mib "$c"} --repeat 2 -o json >"$RES/remote-$key.json" && $PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.2f GB/s transfer, %.2f with setup, %.3f cpu-s/GB" % (r["gbps"], r["total_gbps"], r["cpu_s_per_gb"]))' "$RES/remote-$key.json"
done
step "flashpath load, remote, default shape, verified (CRC-32C of every tensor)" 180 "$FP" load "$IDX" "${SHARD_FLAGS[@]}" \
	--repeat 2 --verify -o json >"$RES/remote-verify.json"
cat "$RES/remote-verify.json"
# What the targets spent on everything read from them so far (the loopback
# baseline and the remote loads), and how much of it sendfile sent from
# the page cache (reads of 256 KiB or more of their buffered shards).
# target_stats OUT: the targets' CPU time and reads since they started, as
# JSON in OUT.
target_stats() {
	$PY - "$MPORT" "${PIDS[@]}" <<'PY' | tee "$1"
import json, os, sys, urllib.request
tick = os.sysconf("SC_CLK_TCK")
cpu = read = sent = 0.0
for t, pid in enumerate(sys.argv[2:]):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu += (int(f[11]) + int(f[12])) / tick
    for line in urllib.request.urlopen(f"http://127.0.0.1:{int(sys.argv[1]) + t}/metrics", timeout=5).read().decode().splitlines():
        if line.startswith("flashpath_target_namespace_bytes_total") and 'op="read"' in line:
            read += float(line.split()[-1])
        elif line.startswith("flashpath_target_namespace_sendfile_bytes_total"):
            sent += float(line.split()[-1])
print(json.dumps({"cpu_s": round(cpu, 2), "read_gb": round(read / 1e9, 2), "cpu_s_per_gb": round(cpu / (read / 1e9), 3) if read else None,
                  "sendfile_share": round(sent / read, 3) if read else None}))
PY
}
say "targets: CPU per GB read, and the part sent from the page cache"
target_stats "$RES/targets.json"
step "flashpath load, the same shards from local files (page cache), verified" 180 "$FP" load "$IDX" --repeat 2 --verify -o json >"$RES/local.json"
$PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.2f GB/s transfer, %.2f with setup" % (r["gbps"], r["total_gbps"]))' "$RES/local.json"
step "baseline: safetensors.torch.load_file(device=cuda) of every shard" 240 $PY "$BENCH" st-load-sharded "$IDX" --out "$RES/safetensors.json"

CAPI=$ROOT/bin/libflashpath.so
if [ -e "$CAPI" ]; then
	step "Python: capi/example.py loads the index from the targets, save_sharded to their memory namespaces, loads it back" 240 \
		$PY "$BENCH" capi-sharded "$IDX" --lib "$CAPI" --shards "{$(IFS=,; echo "${SHARD_MAP[*]}")}" \
		--save-to "$(IFS=,; echo "${SAVE_TO[*]}")" --out "$RES/capi-save.json"
fi

# sendfile against copies, same load on fresh targets: the default shape,
# twice per process, the targets restarted with and without --sendfile.
for sf in true false; do
	stop_targets
	start_targets --sendfile=$sf
	step "flashpath load, remote, default shape, targets with --sendfile=$sf" 120 "$FP" load "$IDX" "${SHARD_FLAGS[@]}" \
		--repeat 2 -o json >"$RES/ab-sendfile-$sf.json" &&
		$PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.2f GB/s transfer, %.2f with setup, %.3f cpu-s/GB" % (r["gbps"], r["total_gbps"], r["cpu_s_per_gb"]))' "$RES/ab-sendfile-$sf.json"
	target_stats "$RES/ab-targets-sendfile-$sf.json"
done

say "summary"
$PY - "$RES" <<'PY' | tee "$OUTDIR/gpu-remote.json"
import glob, json, os, sys
res = sys.argv[1]
def load(n):
    try:
        return json.load(open(os.path.join(res, n)))
    except Exception:
        return None
h2d = (load("h2d.json") or {}).get("gbps", 0)
tcp = max([json.load(open(p))["jobs"][0]["read"]["bw_bytes"] / 1e9 for p in glob.glob(os.path.join(res, "tcp-*.json"))] or [0])
runs = {os.path.basename(p)[7:-5]: json.load(open(p)) for p in glob.glob(os.path.join(res, "remote-*.json")) if os.path.getsize(p)}
best = max(runs.items(), key=lambda kv: kv[1].get("gbps", 0)) if runs else ("", {})
st = (load("safetensors.json") or {}).get("gbps", 0)
local = (load("local.json") or {})
bound = min(x for x in (tcp, h2d) if x) if (tcp or h2d) else 0
out = {"pinned_h2d_gbps": h2d, "tcp_loopback_gbps": tcp, "bound_gbps": bound,
       "remote_best": {"shape": best[0], "gbps": best[1].get("gbps"), "total_gbps": best[1].get("total_gbps"), "cpu_s_per_gb": best[1].get("cpu_s_per_gb")},
       "remote_runs": {k: {"gbps": v.get("gbps"), "total_gbps": v.get("total_gbps"), "cpu_s_per_gb": v.get("cpu_s_per_gb"), "verified": v.get("verified")} for k, v in runs.items()},
       "remote_vs_bound": (best[1].get("gbps", 0) / bound) if bound else None,
       "local_files_gbps": local.get("gbps"), "local_vs_h2d": (local.get("gbps", 0) / h2d) if h2d else None,
       "safetensors_gbps": st, "remote_vs_safetensors": (best[1].get("total_gbps", 0) / st) if st else None,
       "targets": load("targets.json"),
       "sendfile_ab": {sf: {"gbps": (load(f"ab-sendfile-{sf}.json") or {}).get("gbps"),
                            "total_gbps": (load(f"ab-sendfile-{sf}.json") or {}).get("total_gbps"),
                            "vs_safetensors": ((load(f"ab-sendfile-{sf}.json") or {}).get("total_gbps", 0) / st) if st else None,
                            "targets": load(f"ab-targets-sendfile-{sf}.json")} for sf in ("true", "false")},
       "capi_load": load("capi-save-load.json"), "capi_save": load("capi-save.json")}
print(json.dumps(out, indent=1))
PY
tar czf "$OUTDIR/gpu-remote-results.tgz" -C "$RES" . 2>/dev/null
tail -n 5 "$DIR"/target*.log
echo "total: $(($(date +%s) - START))s"
