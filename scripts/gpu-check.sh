#!/usr/bin/env bash
# GPU check for flashpath's GPU data path. Runs on a GPU machine with only
# bash, python3 (torch, safetensors; cupy, kvikio and nvidia-cufile where
# installed) and the binaries `make gpu-build` put in bin/: bin/flashpath and
# bin/libflashpath.so. No Go toolchain needed.
#
# It writes a safetensors checkpoint of $FP_GIB GiB (default 8) of bf16
# tensors, loads it into GPU memory through each available path, verifies
# every byte, and prints GB/s and CPU-seconds per GB beside baselines
# measured in the same run. Log and JSON summary go to $OUT when set.
#
# Environment: FP_GIB, FP_DIR (scratch dir, default /tmp/flashpath-gpu-check),
# FP_KEEP=1 keeps the checkpoint, FLASHPATH_LIBCUFILE, CUFILE_ENV_PATH_JSON,
# FP_SWEEP (workers:depth:chunkMiB[:reader] shapes for the bounce sweep; "" skips it),
# FP_BENCH_SIZE (the GPU bench engine jobs' size, 2g), FP and CAPI (the
# binaries, default bin/), FP_NO_UDEV_SHIM=1 (never write the udev entry
# cuFile wants; see udev_shim).
#
# Without torch (off the GPU machine, FLASHPATH_LIBCUDA and
# FLASHPATH_LIBCUFILE set to the fakes) the checkpoint is random bytes and
# the torch steps fail and are skipped: test/e2e's TestGPUCheckScriptDryRun
# runs it that way.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR=${OUT:-$ROOT/bin/gpu-check}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu-check.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
GIB=${FP_GIB:-8}
DIR=${FP_DIR:-/tmp/flashpath-gpu-check}
RES=$DIR/results
mkdir -p "$DIR" "$RES"
rm -f "$RES"/*.json
PY=${PYTHON:-python3}
BENCH="$ROOT/scripts/gpu/bench.py"
FP=${FP:-$ROOT/bin/flashpath}
CAPI=${CAPI:-$ROOT/bin/libflashpath.so}
CKPT=$DIR/ckpt.safetensors
BENCH_SIZE=${FP_BENCH_SIZE:-2g}

say() { printf '\n== %s  [t+%ss]\n' "$*" "$(( $(date +%s) - START ))" >&2; }

# step NAME TIMEOUT CMD...: run with a timeout; never abort the script.
step() {
	local name=$1 t=$2
	shift 2
	say "$name"
	timeout -k 10 "$t" "$@"
	local rc=$?
	case $rc in
	0) ;;
	124 | 137) echo "!! $name: timed out after ${t}s" >&2 ;;
	*) echo "!! $name: exit status $rc" >&2 ;;
	esac
	return $rc
}

say "environment"
echo "host: $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
if command -v nvidia-smi >/dev/null; then
	nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id,memory.total,pcie.link.gen.max,pcie.link.width.max --format=csv,noheader || true
else
	echo "nvidia-smi: not found"
fi
$PY -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' || echo "torch: not importable"
$PY -c 'import safetensors; print("safetensors", safetensors.__version__)' || echo "safetensors: not importable"
$PY -c 'import cupy; print("cupy", cupy.__version__)' 2>/dev/null || echo "cupy: not installed"
$PY -c 'import kvikio; print("kvikio", kvikio.__version__)' 2>/dev/null || echo "kvikio: not installed (cuFile baseline = flashpath --gpu-path cufile over NVIDIA libcufile)"

# libcufile: from the nvidia-cufile wheel unless given.
if [ -z "${FLASHPATH_LIBCUFILE:-}" ]; then
	CUFILE_DIR=$($PY -c 'import nvidia.cufile, os; print(os.path.join(list(nvidia.cufile.__path__)[0], "lib"))' 2>/dev/null || true)
	if [ -n "$CUFILE_DIR" ] && [ -e "$CUFILE_DIR/libcufile.so.0" ]; then
		export FLASHPATH_LIBCUFILE=$CUFILE_DIR/libcufile.so.0
		export LD_LIBRARY_PATH=$CUFILE_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	elif ldconfig -p 2>/dev/null | grep -q libcufile.so.0; then
		export FLASHPATH_LIBCUFILE=libcufile.so.0
	fi
fi
echo "libcufile: ${FLASHPATH_LIBCUFILE:-not found (cufile path will be skipped)}"
if [ -e /proc/driver/nvidia-fs ]; then
	echo "nvidia-fs: loaded ($(cat /proc/driver/nvidia-fs/version 2>/dev/null | head -1)): cuFile can run true GDS"
else
	echo "nvidia-fs: not loaded: cuFile runs in compat mode"
fi
# cuFile honours the user's config; without one, allow compat mode and keep its log here.
if [ -z "${CUFILE_ENV_PATH_JSON:-}" ] && [ ! -e /etc/cufile.json ]; then
	cat >"$DIR/cufile.json" <<JSON
{ "logging": { "dir": "$DIR", "level": "ERROR" },
  "properties": { "allow_compat_mode": true, "max_direct_io_size_kb": 16384 } }
JSON
	export CUFILE_ENV_PATH_JSON=$DIR/cufile.json
fi
CUFILE_CFG=${CUFILE_ENV_PATH_JSON:-/etc/cufile.json}
echo "cufile.json: $CUFILE_CFG"
$PY "$BENCH" cufile-config "$CUFILE_CFG" || true
# The cuFile baseline runs in compat mode where nvidia-fs is absent: that
# needs allow_compat_mode, which a site config may turn off. Give the cufile
# runs a copy of the config that allows it (everything else unchanged).
CUFILE_RUN_CFG=$CUFILE_CFG
if [ -e "$CUFILE_CFG" ] && [ ! -e /proc/driver/nvidia-fs ]; then
	if $PY "$BENCH" cufile-config "$CUFILE_CFG" --compat-out "$DIR/cufile-compat.json" >/dev/null; then
		CUFILE_RUN_CFG=$DIR/cufile-compat.json
		echo "cufile runs: CUFILE_ENV_PATH_JSON=$CUFILE_RUN_CFG (a copy of $CUFILE_CFG with \"allow_compat_mode\" and \"force_compat_mode\" true, CUFILE_FORCE_COMPAT_MODE=true: nvidia-fs is not loaded)"
	fi
fi
df -h "$DIR" | tail -1

missing=0
for f in "$FP" "$CAPI"; do
	[ -e "$f" ] || { echo "!! $f missing: run 'make gpu-build' where Go is and carry bin/"; missing=1; }
done
if [ -x "$FP" ]; then
	step "flashpath topo" 60 "$FP" topo
fi

# Fit the checkpoint (and its .pt copy) on the disk.
avail_gib=$(df -Pk "$DIR" | awk 'NR==2 {print int($4/1048576)}')
if awk -v a="$avail_gib" -v g="$GIB" 'BEGIN { exit !(a < g * 2 + 4) }'; then
	GIB=$(((avail_gib - 4) / 2))
	echo "!! only ${avail_gib} GiB free in $DIR: checkpoint reduced to ${GIB} GiB"
fi

step "write a ${GIB} GiB bf16 safetensors checkpoint and a .pt copy" 240 $PY "$BENCH" make-ckpt "$CKPT" "$GIB" || echo "!! no checkpoint: later steps will fail"

step "baseline: pinned host-to-device copy (torch)" 60 $PY "$BENCH" h2d --out "$RES/10-h2d.json"

fp_load() { # key name timeout flashpath-load-args...
	local key=$1 name=$2 t=$3
	shift 3
	[ -x "$FP" ] || { echo "!! skipped $name: no bin/flashpath"; return; }
	if step "$name" "$t" "$FP" load "$CKPT" --gpu 0 --verify -o json "$@" >"$RES/$key.raw"; then
		cat "$RES/$key.raw"
		$PY "$BENCH" from-flashpath "$RES/$key.raw" --name "$name" --out "$RES/$key.json" >/dev/null
	else
		cat "$RES/$key.raw"
		# a failed --verify still reports
		$PY "$BENCH" from-flashpath "$RES/$key.raw" --name "$name" --out "$RES/$key.json" >/dev/null 2>&1 ||
			echo "{\"name\": \"$name\", \"error\": \"failed, see log\"}" >"$RES/$key.json"
	fi
}

# udev_shim FILE: cuFile (compat mode too) reads the ID_FS_USAGE udev
# property of the block device under FILE and refuses the file without it;
# VMs without udevd (the lent GPU machine is one) have no udev database.
# Where the entry is missing, write a minimal one for the run (root only)
# and remove it on exit. This is the test machine's gap, not flashpath's:
# flashpath's error names it and the fix when a user hits it.
UDEV_SHIM=
udev_shim() {
	local maj min db fstype
	[ -z "${FP_NO_UDEV_SHIM:-}" ] || return 0 # dry runs: the fake libcufile reads no udev
	read -r maj min < <($PY -c 'import os, sys; s = os.stat(sys.argv[1]); print(os.major(s.st_dev), os.minor(s.st_dev))' "$1") || return 0
	db=/run/udev/data/b$maj:$min
	grep -q '^E:ID_FS_USAGE=' "$db" 2>/dev/null && return 0
	[ "$(id -u)" = 0 ] || { echo "udev: $db has no ID_FS_USAGE and this is not root: cuFile will refuse the file"; return 0; }
	[ -e "$db" ] && return 0 # udev knows the device without a filesystem: leave it
	fstype=$(stat -f -c %T "$1")
	[ "$fstype" = ext2/ext3 ] && fstype=ext4
	mkdir -p /run/udev/data && printf 'I:%s\nE:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=%s\n' \
		"$(($(date +%s) * 1000000))" "$fstype" >"$db" || return 0
	UDEV_SHIM=$db
	echo "udev: no database entry for block device $maj:$min; wrote $db (ID_FS_USAGE=filesystem, ID_FS_TYPE=$fstype) for cuFile, removed on exit"
}
trap '[ -n "$UDEV_SHIM" ] && rm -f "$UDEV_SHIM"' EXIT

$PY "$BENCH" warm-cache "$CKPT" 2>/dev/null
fp_load 20-bounce-cached "flashpath bounce, buffered (file in page cache)" 120 --gpu-path bounce --direct off --repeat 3
# The mmap reader: the page cache's own pages pinned in place and DMAed
# to the GPU, no CPU copy (--reader mmap; auto does not pick it yet).
fp_load 20b-bounce-mmap "flashpath bounce, mmap reader (page cache pinned in place)" 120 --gpu-path bounce --direct off --reader mmap --repeat 3
SHAPES=${FP_SWEEP-12:3:4 12:3:2 12:4:4 10:3:4 14:3:4 16:3:2 8:4:4 12:2:8 12:3:4:mmap 12:3:16:mmap 8:3:64:mmap 4:4:64:mmap}
if [ -n "$SHAPES" ] && [ -x "$FP" ]; then
	step "flashpath bounce sweep (workers:depth:chunkMiB[:reader], page cache, 2 loads per process)" 200 \
		$PY "$BENCH" sweep "$CKPT" --fp "$FP" --shapes "$SHAPES" --out "$RES/25-sweep.json"
fi
# The same idea measured from Python, without flashpath: what registration
# and the copy cost on this machine, for comparison with the mmap reader.
step "probe: mmap + cuMemHostRegister(read-only) of the cached checkpoint, DMA from the page cache" 120 \
	$PY "$BENCH" mmap-h2d "$CKPT" --out "$RES/26-mmap-probe.json"
$PY "$BENCH" drop-cache "$CKPT" 2>/dev/null
fp_load 21-bounce-direct "flashpath bounce, O_DIRECT (from the drive), io_uring reader" 180 --gpu-path bounce --direct on --reader io_uring
$PY "$BENCH" drop-cache "$CKPT" 2>/dev/null
fp_load 21b-bounce-direct-pread "flashpath bounce, O_DIRECT (from the drive), pread reader" 180 --gpu-path bounce --direct on --reader pread
if [ -n "${FLASHPATH_LIBCUFILE:-}" ]; then
	udev_shim "$CKPT"
	# cuFile in compat mode where nvidia-fs is absent (see CUFILE_RUN_CFG).
	cf_load() { CUFILE_FORCE_COMPAT_MODE=true CUFILE_ENV_PATH_JSON=$CUFILE_RUN_CFG fp_load "$@"; }
	$PY "$BENCH" drop-cache "$CKPT" 2>/dev/null
	cf_load 22-cufile "flashpath cufile, O_DIRECT (from the drive)" 240 --gpu-path cufile
	$PY "$BENCH" drop-cache "$CKPT" 2>/dev/null
	cf_load 22b-cufile-batch "flashpath cufile batch API, O_DIRECT (from the drive)" 240 --gpu-path cufile --cufile-io batch
	$PY "$BENCH" warm-cache "$CKPT" 2>/dev/null
	cf_load 22c-cufile-cached "flashpath cufile, buffered fd (page cache)" 120 --gpu-path cufile --direct off --repeat 3
	for l in "$DIR"/cufile*.log ./cufile*.log; do
		[ -e "$l" ] && { echo "-- $l (tail)"; tail -n 15 "$l"; }
	done
	$PY "$BENCH" drop-cache "$CKPT" 2>/dev/null
	CUFILE_FORCE_COMPAT_MODE=true CUFILE_ENV_PATH_JSON=$CUFILE_RUN_CFG step "baseline: kvikio cuFile read (if installed)" 240 $PY "$BENCH" kvikio "$CKPT" --out "$RES/24-kvikio.json"
else
	echo "!! skipped cufile: no libcufile"
fi
$PY "$BENCH" warm-cache "$CKPT" 2>/dev/null
fp_load 23-auto "flashpath load, auto path (file in page cache)" 120 --gpu-path auto --repeat 2

# The bench's GPU engine, gdsio-like: reads of the cached checkpoint and
# writes of a new file (checkpoint save), 16 MiB transfers, 8 in flight.
if [ -x "$FP" ]; then
	step "flashpath bench --ioengine=gpu, 16m reads, QD8 (page cache)" 120 "$FP" bench --name=gpu-read --ioengine=gpu --gpu=0 \
		--filename="$CKPT" --rw=read --bs=16m --iodepth=8 --size=$BENCH_SIZE --direct=0 --invalidate=0 | grep -E "read:|READ:|cpu" || true
	step "flashpath bench --ioengine=gpu, 16m writes, QD8 (save)" 120 "$FP" bench --name=gpu-write --ioengine=gpu --gpu=0 \
		--filename="$DIR/bench-write" --rw=write --bs=16m --iodepth=8 --size=$BENCH_SIZE --direct=0 | grep -E "write:|WRITE:|cpu" || true
	rm -f "$DIR/bench-write"
fi

$PY "$BENCH" warm-cache "$CKPT" "$CKPT.pt" 2>/dev/null
step "baseline: safetensors.torch.load_file(device=cuda), 2 loads in a warm process" 240 $PY "$BENCH" st-load "$CKPT" --out "$RES/30-safetensors.json"
step "baseline: torch.load(map_location=cuda)" 240 $PY "$BENCH" torch-load "$CKPT.pt" --out "$RES/31-torch-load.json"
if [ -e "$CAPI" ]; then
	step "ctypes example: capi/example.py through bin/libflashpath.so, 2 loads in one torch process, verified" 300 $PY "$BENCH" capi "$CKPT" --lib "$CAPI" --out "$RES/40-capi.json"
fi

say "summary (${GIB} GiB checkpoint; GB/s = 10^9 bytes/s of tensor data)"
$PY "$BENCH" summarize "$RES" --summary "$OUTDIR/gpu-check.json" || echo "!! summarize failed"
cp "$RES"/*.raw "$OUTDIR/" 2>/dev/null || true
[ -n "${FP_KEEP:-}" ] || rm -f "$CKPT" "$CKPT.pt"
echo
echo "log: $LOG"
echo "summary: $OUTDIR/gpu-check.json"
echo "total: $(( $(date +%s) - START ))s"
exit $missing
