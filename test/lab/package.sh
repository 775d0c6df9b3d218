#!/bin/bash
# Guest script: the Debian package's lifecycle with dpkg on Debian 12 —
# install (the user flashpath, files, conffiles, units enabled, nothing
# started), both daemons run as their units run them, the kernel host
# connected through the initiator to the target, an upgrade to a rebuilt
# package with the daemons running, remove, purge.
#
# The guest has no init system, and this script keeps it so: the daemons
# are started as the installed units' ExecStart= with the units' user,
# groups, capabilities, limits, umask and runtime folder (setpriv,
# prlimit), and the maintainer scripts take their no-systemd paths (the
# enablement symlinks through deb-systemd-helper, no start or restart), as
# in a container image. test/lab/package-systemd.sh runs the same
# lifecycle under systemd.
#
# Needs the packages from `make lab-debs` (bin/lab-deb: this checkout's
# and a rebuild with a later version). Run from the checkout:
#   make lab-debs && ../shared/lab/vm-run test/lab/package.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
FP=/usr/bin/flashpath
. "$LAB_CWD/test/lab/lib.sh"
NQN=nqn.2026-11.io.flashpath:pkg
FP_PORT=4420
TGT= INI=
export DEBIAN_FRONTEND=noninteractive

cleanup() {
	local rc=$?
	set +e
	[ -n "$INI" ] && kill -KILL "$INI" 2>/dev/null
	timeout 30 nvme disconnect-all >/dev/null 2>&1
	[ -n "$TGT" ] && kill -KILL "$TGT" 2>/dev/null
	if [ "$rc" != 0 ]; then
		for l in "$FP_WORK"/*.log; do echo "--- $l (tail)"; tail -n 20 "$l"; done
		echo "--- dmesg (tail)"; dmesg | tail -n 20
	fi
	echo "(${0##*/}: $((SECONDS - FP_T0)) s in the guest, exit $rc)"
	exit "$rc"
}
trap cleanup EXIT

# unit_key UNIT KEY — the value of KEY in the installed unit (the last one).
unit_key() { sed -n "s/^$2=//p" "/lib/systemd/system/$1" | tail -n 1; }

# start_unit UNIT LOG — start the unit's ExecStart= as systemd would, less
# the sandbox: its RuntimeDirectory=, User=, Group=,
# SupplementaryGroups=, CapabilityBoundingSet=, AmbientCapabilities=,
# NoNewPrivileges=, LimitMEMLOCK=, LimitNOFILE=, UMask=; the modules of
# Wants=modprobe@NAME.service and ExecStartPre= as root. The daemon's pid
# (the wrappers exec it) in UNIT_PID.
UNIT_PID=
start_unit() {
	local u=$1 log=$2 user group groups bound amb caps rt pre memlock nofile
	user=$(unit_key "$u" User) group=$(unit_key "$u" Group) groups=$(unit_key "$u" SupplementaryGroups)
	rt=$(unit_key "$u" RuntimeDirectory)
	if [ -n "$rt" ]; then
		install -d -m "$(unit_key "$u" RuntimeDirectoryMode)" -o "$user" -g "${group:-$user}" "/run/$rt"
	fi
	for m in $(sed -n 's/^Wants=//p' "/lib/systemd/system/$u" | grep -o 'modprobe@[^ ]*\.service'); do
		m=${m#modprobe@}
		modprobe -abq "${m%.service}" || true
	done
	pre=$(unit_key "$u" ExecStartPre)
	[ -z "$pre" ] || ${pre#-+} >/dev/null 2>&1 || true
	bound=$(unit_key "$u" CapabilityBoundingSet) amb=$(unit_key "$u" AmbientCapabilities)
	caps=-all
	for c in $bound; do caps+=",+$(echo "${c#CAP_}" | tr A-Z a-z)"; done
	local args=(--bounding-set="$caps" --no-new-privs)
	if [ -n "$amb" ]; then
		local a=
		for c in $amb; do a+="${a:+,}+$(echo "${c#CAP_}" | tr A-Z a-z)"; done
		args+=(--inh-caps="$a" --ambient-caps="$a")
	else
		args+=(--inh-caps=-all)
	fi
	[ "$user" = root ] || args+=(--reuid="$user" --regid="${group:-$user}" --groups="${groups:-${group:-$user}}")
	memlock=$(unit_key "$u" LimitMEMLOCK) nofile=$(unit_key "$u" LimitNOFILE)
	[ "$memlock" = infinity ] && memlock=unlimited
	# shellcheck disable=SC2046 # ExecStart= is split as systemd splits it here (no quotes)
	prlimit ${memlock:+--memlock=$memlock:$memlock} ${nofile:+--nofile=$nofile:$nofile} \
		bash -c 'umask "$0"; exec "$@"' "$(unit_key "$u" UMask)" \
		setpriv "${args[@]}" -- $(unit_key "$u" ExecStart) >"$log" 2>&1 &
	UNIT_PID=$!
}

# stop_unit PID — SIGTERM (KillSignal=), wait TimeoutStopSec= (30 s).
stop_unit() {
	kill -TERM "$1"
	timeout 30 tail --pid="$1" -f /dev/null || lab_fail "pid $1 did not stop in 30 s"
	wait "$1" || lab_fail "pid $1 exited with $?"
}

fp_pkg_debs
fp_host_id
[ ! -d /run/systemd/system ] || lab_fail "this guest runs systemd: the test expects none"

fp_step "dpkg -i flashpath $FP_V1"
dpkg -i "$FP_DEB1" </dev/null || lab_fail "dpkg -i $FP_DEB1"
fp_pkg_installed "$FP_V1" "$FP_DEB1"
! $FP version | fp_has rebuild1 || lab_fail "$FP_V1 has the rebuild's binary"
echo "  $($FP version); user $(id flashpath); units enabled, nothing started"

fp_step "configure: a file namespace in /var/lib/flashpath and a block device (group disk)"
fp_pkg_configure "$NQN"

fp_step "start both daemons as their units do (target: user flashpath, group disk, CAP_IPC_LOCK; initiator: root, no capability)"
start_unit flashpath-target.service "$FP_WORK/target.1.log"
TGT=$UNIT_PID
fp_wait_port $FP_PORT
fp_pkg_target_runs "$TGT"
start_unit flashpath-initiator.service "$FP_WORK/initiator.1.log"
INI=$UNIT_PID
dev1=$(fp_ns "$NQN" 1 90) || lab_fail "the initiator did not connect $NQN"
dev2=$(fp_ns "$NQN" 2 30) || lab_fail "no namespace 2 (the block device)"
fp_pkg_initiator_runs "$INI"
echo "  target pid $TGT (flashpath, CapEff $(fp_caps "$TGT")), initiator pid $INI (uid 0, CapEff $(fp_caps "$INI")): $dev1 $dev2"

fp_step "I/O through the kernel host: the file and the block device"
fp_pkg_io "$dev1" "$dev2"

fp_step "the JSON-RPC socket (root), reload (ExecReload=: SIGHUP)"
$FP rpc spdk_get_version | tee "$FP_WORK/version.1.json" | jq -c . || lab_fail "flashpath rpc on the default socket"
kill -HUP "$TGT"
t=100
until grep -q '"msg":"reload done"' "$FP_WORK/target.1.log"; do
	t=$((t - 1)); [ $t -gt 0 ] || lab_fail "no reload done in the target's log"
	sleep 0.1
done
kill -HUP "$INI"

fp_step "upgrade to $FP_V2 with both daemons running"
fp_pkg_upgrade
# No systemd: postinst restarted nothing; the old daemons still serve.
kill -0 "$TGT" && kill -0 "$INI" || lab_fail "a daemon died in the upgrade"
cmp <(fp_read "$dev1" 0 $((1 << 20))) "$FP_WORK/data" || lab_fail "the old target stopped serving"
echo "  $($FP version) installed; the old daemons run on (no systemd: no try-restart): restarting them by hand"
stop_unit "$INI"; INI=
stop_unit "$TGT"; TGT=
# The restarted initiator disconnects when it stops: delete_controller, as uid 0 without capabilities.
echo 'disconnect_on_stop: true' >>/etc/flashpath/initiator.yaml
start_unit flashpath-target.service "$FP_WORK/target.2.log"
TGT=$UNIT_PID
fp_wait_port $FP_PORT
start_unit flashpath-initiator.service "$FP_WORK/initiator.2.log"
INI=$UNIT_PID
fp_pkg_serves_v2
c=$(fp_ctrl "$NQN")
fp_wait_state "$c" live 60 >/dev/null || lab_fail "$c did not come back live after the target's restart"
fp_pkg_data "$dev1" "$dev2" "after the upgrade"

fp_step "dpkg -r (the daemons stopped first, as prerm does under systemd)"
stop_unit "$INI"; INI=
t=100
while fp_subsys_dir "$NQN" >/dev/null && [ $t -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
! fp_subsys_dir "$NQN" >/dev/null || lab_fail "the initiator (uid 0, no capability) did not disconnect on stop"
stop_unit "$TGT"; TGT=
fp_pkg_files "$FP_DEB2" "$FP_WORK/files"
fp_pkg_remove

fp_step "dpkg -P: nothing left but the data (/var/lib/flashpath) and its owner"
dpkg -P flashpath </dev/null || lab_fail "dpkg -P"
fp_pkg_purged "$FP_WORK/files"
echo "  kept: $(ls -l /var/lib/flashpath | tail -n +2) (user flashpath)"
fp_step "done"
