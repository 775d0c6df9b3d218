#!/bin/bash
# Guest script: flashpath's target on a file namespace under the Linux
# kernel host across target restarts — a filesystem written, the target
# restarted, every file checked; identifiers stable; keep-alive while idle;
# the target killed under a mounted filesystem, the host reconnecting
# (--ctrl-loss-tmo, --reconnect-delay) and I/O going on.
# Run from the checkout: ../shared/lab/vm-run test/lab/kernel-host-restart.sh
# FP_IDLE (default 45) is the idle time in seconds for the keep-alive check.
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2026-11.io.flashpath:restart
IDLE=${FP_IDLE:-120} # the issue: the host survives 2 minutes idle
MNT=/mnt/fp
# xfsprogs is not in the lab image: `make interop` unpacks Debian's into
# bin/lab-xfs (scripts/lab-xfsprogs.sh); the guest shares the host's glibc.
if [ -x "$LAB_CWD/bin/lab-xfs/sbin/mkfs.xfs" ]; then
	x=$LAB_CWD/bin/lab-xfs
	export PATH=$x/sbin:$x/usr/sbin:$PATH
	export LD_LIBRARY_PATH=$x/lib/x86_64-linux-gnu:$x/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	modprobe xfs 2>/dev/null || true
fi
CONNECT=(-n "$NQN" --ctrl-loss-tmo 120 --reconnect-delay 2 --keep-alive-tmo 5 --nr-io-queues 2)

fp_init
mkdir -p "$MNT"
cat >"$FP_WORK/target.yaml" <<EOF
listeners: [tcp://127.0.0.1:$FP_PORT]
subsystems:
  - nqn: $NQN
    namespaces:
      - {nsid: 1, backend: "file:$FP_WORK/ns1.img:320MiB"}
EOF

# ids — the identity a host keys on: serial, UUID, NGUID, EUI-64.
ids() {
	echo "sn=$(nvme id-ctrl "/dev/$(fp_ctrl "$NQN")" -o json | jq -r .sn | sed 's/ *$//')"
	nvme ns-descs "$dev" | grep -E '^(uuid|nguid|eui64)'
}

# tree DIR — a tree of files of odd sizes, and one of 4 MiB.
tree() {
	local d f
	for d in a b c d/e d/f; do
		mkdir -p "$1/$d"
		for f in $(seq 12); do
			head -c $(( (RANDOM * 7 + f) % 300000 )) /dev/urandom >"$1/$d/file$f"
		done
	done
	head -c 4M /dev/urandom >"$1/big"
	ln -s a/file1 "$1/link"
}

# manifest DIR — sha256 of every file, sorted.
manifest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

connect() {
	fp_connect "${CONNECT[@]}"
	dev=$(fp_ns "$NQN" 1 30) || lab_fail "no namespace appeared"
	ctrl=$(fp_ctrl "$NQN")
}

fp_target_start "$FP_WORK/target.yaml"
fp_step "connect (${CONNECT[*]})"
fp_dmesg_mark
connect
ids | tee "$FP_WORK/ids.1"

for fs in xfs ext4; do # ext4 last: the rest runs on it
	if ! command -v "mkfs.$fs" >/dev/null; then
		fp_step "SKIP $fs: mkfs.$fs is not in the guest (the lab image lacks ${fs/xfs/xfsprogs})"
		continue
	fi
	fp_step "mkfs.$fs, mount, write a tree, sync, unmount"
	case $fs in
	ext4) timeout 120 mkfs.ext4 -q -F "$dev" ;;
	xfs) timeout 120 mkfs.xfs -q -f "$dev" ;;
	esac
	timeout 60 mount "$dev" "$MNT"
	tree "$MNT"
	manifest "$MNT" >"$FP_WORK/manifest.$fs"
	echo "$(wc -l <"$FP_WORK/manifest.$fs") files, $(du -sh "$MNT" | cut -f1)"
	timeout 60 sync
	timeout 60 umount "$MNT"

	fp_step "$fs: disconnect, restart the target, reconnect, mount: every file checks out; fsck -n"
	fp_disconnect "$NQN"
	fp_target_stop TERM
	fp_target_start "$FP_WORK/target.yaml"
	connect
	ids >"$FP_WORK/ids.2"
	diff "$FP_WORK/ids.1" "$FP_WORK/ids.2" || lab_fail "identifiers changed across the restart"
	timeout 60 mount "$dev" "$MNT"
	(cd "$MNT" && timeout 120 sha256sum --quiet -c "$FP_WORK/manifest.$fs") || lab_fail "$fs: files differ after the restart"
	[ "$(readlink "$MNT/link")" = a/file1 ] || lab_fail "symlink"
	timeout 60 umount "$MNT"
	case $fs in
	ext4) timeout 120 fsck.ext4 -n -f "$dev" ;;
	xfs) timeout 120 xfs_repair -n "$dev" ;;
	esac || lab_fail "$fs check found problems"
	fp_dmesg_clean "$fs"
done

fp_step "keep-alive: the host stays connected through ${IDLE}s idle (mounted)"
fp_dmesg_mark
timeout 60 mount "$dev" "$MNT"
n0=$(grep -c 'controller deleted' "$FP_TGT_LOG" || true)
sleep "$IDLE"
st=$(cat "/sys/class/nvme/$ctrl/state")
[ "$st" = live ] || lab_fail "controller state $st after idling"
[ "$(grep -c 'controller deleted' "$FP_TGT_LOG" || true)" = "$n0" ] || { grep 'controller deleted' "$FP_TGT_LOG"; lab_fail "the target dropped a controller while idle"; }
! grep -q 'keep-alive timeout expired' "$FP_TGT_LOG" || lab_fail "keep-alive expired on the target"
fp_dmesg_clean "idle"
echo "state: $st"

fp_step "kill -9 the target under a mounted filesystem: the host goes to connecting"
fp_dmesg_mark
fp_target_stop KILL
fp_wait_state "$ctrl" 'connecting|resetting' 30 || lab_fail "controller did not start reconnecting"
# Writes issued while the target is down wait for the reconnect.
(echo "written while the target was down" >"$MNT/during" && sync) &
writer=$!
sleep 5
st=$(cat "/sys/class/nvme/$ctrl/state")
[[ $st =~ ^(connecting|resetting)$ ]] || lab_fail "controller state $st while the target is down"
echo "state while down: $st"

fp_step "restart the target: the host reconnects and I/O goes on"
fp_target_start "$FP_WORK/target.yaml"
fp_wait_state "$ctrl" live 60 || lab_fail "controller did not reconnect"
t=600
while kill -0 "$writer" 2>/dev/null && [ $t -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
kill -0 "$writer" 2>/dev/null && lab_fail "the write issued while down did not finish after the reconnect"
wait "$writer" || lab_fail "the write issued while down failed"
fp_dmesg_new | grep -iE 'reconnect' || true
ids >"$FP_WORK/ids.3"
diff "$FP_WORK/ids.1" "$FP_WORK/ids.3" || lab_fail "identifiers changed across the crash"
head -c 2M /dev/urandom >"$MNT/after"
timeout 60 sync
(cd "$MNT" && timeout 120 sha256sum --quiet -c "$FP_WORK/manifest.ext4") || lab_fail "files differ after the reconnect"
sum=$(sha256sum <"$MNT/after")
timeout 60 umount "$MNT"
echo 3 >/proc/sys/vm/drop_caches
timeout 60 mount "$dev" "$MNT"
[ "$(sha256sum <"$MNT/after")" = "$sum" ] || lab_fail "file written after the reconnect differs"
grep -q 'written while the target was down' "$MNT/during" || lab_fail "file written while down is lost"
timeout 60 umount "$MNT"
timeout 120 fsck.ext4 -n -f "$dev" || lab_fail "fsck after the crash"
fp_dmesg_clean "crash and reconnect" 'error recovery|Reconnecting|reconnect|failed to connect|Failed reconnect|could not set timestamp|receive failed|send failed|starting error recovery'

fp_step "disconnect"
fp_disconnect "$NQN"
if dmesg | grep -E 'WARNING:|BUG:|Call Trace'; then lab_fail "kernel warning"; fi
echo PASS
