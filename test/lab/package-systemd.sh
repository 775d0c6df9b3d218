#!/bin/bash
# Guest script: the Debian package's lifecycle under systemd on Debian 12 —
# install with systemd running (units enabled, a start tried and skipped:
# no configuration yet), both daemons started by systemctl (Type=notify:
# serving when start returns) inside their units' sandboxes, the kernel
# host connected through the initiator over NVMe/TCP and NVMe/RDMA
# (soft-RoCE: the target's verbs under its unit), JSON logs in the journal with
# their priorities, reload (a bad configuration refused, a good one
# applied), Restart=on-failure, systemd-analyze security on the running
# units, an upgrade that restarts both on the new binary, a reboot (both
# come up at boot and the host connects again), remove (prerm stops them
# cleanly), purge.
#
# The lab image has no init system (../shared/lab/README.md): this script
# installs Debian 12's systemd in the throwaway guest (the packages of
# `make lab-systemd`) and boots it as PID 1 of new PID and mount
# namespaces (fp_systemd_boot), then runs the rest of itself under it.
# test/lab/package.sh covers the maintainer scripts' paths without systemd.
#
# Run from the checkout:
#   make lab-debs lab-systemd && ../shared/lab/vm-run test/lab/package-systemd.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
FP=/usr/bin/flashpath
. "$LAB_CWD/test/lab/lib.sh"
NQN=nqn.2026-11.io.flashpath:pkg-systemd
FP_PORT=4420
export DEBIAN_FRONTEND=noninteractive

# The script runs in three parts: here it boots systemd and runs the rest
# of itself under it (install to upgrade), then reboots (fp_systemd_down, boot)
# and runs it again (what came up at boot, remove, purge).
mode=${1:-}
if [ -z "$mode" ]; then
	fp_step "boot systemd (installed in this guest from bin/lab-systemd)"
	sd=$(fp_systemd_boot)
	echo "  $(systemctl --version | head -n 1) runs as PID 1 of its namespaces (pid $sd here)"
	nsenter -t "$sd" -m -p -- bash "$0" under-systemd || exit $?
	fp_step "reboot: both units stopped as a shutdown stops them, systemd booted again"
	fp_systemd_down "$sd" flashpath-initiator.service flashpath-target.service
	sd=$(fp_systemd_boot)
	echo "  systemd pid $sd here"
	nsenter -t "$sd" -m -p -- bash "$0" after-reboot || exit $?
	exit 0
fi

UNITS="flashpath-target flashpath-initiator"
cleanup() {
	local rc=$?
	set +e
	if [ "$rc" != 0 ]; then
		systemctl status --no-pager --lines=0 $UNITS
		echo "--- journal (tail)"; journalctl --no-pager -n 40 -u flashpath-target -u flashpath-initiator
		echo "--- dmesg (tail)"; dmesg | tail -n 20
	fi
	[ "$rc" = 0 ] && [ "$mode" = under-systemd ] || timeout 30 nvme disconnect-all >/dev/null 2>&1
	echo "(${0##*/} $mode: $((SECONDS - FP_T0)) s, exit $rc)"
	exit "$rc"
}
trap cleanup EXIT

# prop UNIT PROPERTY — the unit's property as systemd has it now.
prop() { systemctl show -P "$2" "$1.service"; }

# wait_active UNIT — until the unit is active with a main process (bounded).
wait_active() {
	local t=300
	until [ "$(prop "$1" ActiveState)" = active ] && [ "$(prop "$1" MainPID)" != 0 ]; do
		t=$((t - 1)); [ $t -gt 0 ] || lab_fail "$1 is $(prop "$1" ActiveState)/$(prop "$1" SubState), want active"
		sleep 0.1
	done
}

# journal_level UNIT PID MSG — the log level of the daemon's (PID's)
# journal record whose msg is MSG, with the journal's PRIORITY beside it
# ("ERROR 3"), waiting for it (bounded); every record of PID must be a
# JSON object.
journal_level() {
	local t=200 out
	while :; do
		out=$(journalctl --no-pager -o json _SYSTEMD_UNIT="$1.service" _PID="$2" |
			jq -r --arg msg "$3" '(.MESSAGE | fromjson) as $m | select($m.msg == $msg) | "\($m.level) \(.PRIORITY)"' | tail -n 1) ||
			lab_fail "$1: a journal record of pid $2 is not a JSON object: $(journalctl --no-pager -o cat _SYSTEMD_UNIT="$1.service" _PID="$2" | grep -v '^{' | head -n 3)"
		[ -n "$out" ] && { echo "$out"; return 0; }
		t=$((t - 1)); [ $t -gt 0 ] || lab_fail "$1: no record \"$3\" from pid $2 in the journal"
		sleep 0.1
	done
}

# sandboxed PID — checks the mount namespace systemd made for PID:
# /usr read-only (ProtectSystem=strict), /root hidden (ProtectHome=), its
# own /tmp (PrivateTmp=), /var/lib/flashpath writable for the target.
sandboxed() {
	local pid=$1 unit=$2
	! nsenter -t "$pid" -m touch /usr/.fp-probe 2>/dev/null || lab_fail "$unit can write /usr (ProtectSystem=strict)"
	[ -z "$(nsenter -t "$pid" -m ls -A /root 2>/dev/null)" ] || lab_fail "$unit sees /root (ProtectHome=yes)"
	touch /tmp/.fp-outside
	! nsenter -t "$pid" -m test -e /tmp/.fp-outside || lab_fail "$unit shares /tmp (PrivateTmp=yes)"
	grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$pid/status" || lab_fail "$unit may gain privileges (NoNewPrivileges=yes)"
	grep -q '^Seccomp:[[:space:]]*2$' "/proc/$pid/status" || lab_fail "$unit runs without a seccomp filter (SystemCallFilter=)"
}

fp_pkg_debs
[ -d /run/systemd/system ] || lab_fail "systemd is not running"
if [ "$mode" = under-systemd ]; then
fp_host_id

fp_step "dpkg -i flashpath $FP_V1 with systemd running: units enabled, started only once configured"
dpkg -i "$FP_DEB1" </dev/null || lab_fail "dpkg -i $FP_DEB1"
fp_pkg_installed "$FP_V1" "$FP_DEB1"
for u in $UNITS; do
	[ "$(systemctl is-enabled "$u")" = enabled ] || lab_fail "$u is $(systemctl is-enabled "$u"), want enabled"
	# postinst tried a start (the condition was checked) and the condition held it back.
	[ "$(prop "$u" ActiveState)" = inactive ] && [ -n "$(prop "$u" ConditionTimestamp)" ] && [ "$(prop "$u" ConditionResult)" = no ] ||
		lab_fail "$u: $(prop "$u" ActiveState), condition checked at '$(prop "$u" ConditionTimestamp)' with $(prop "$u" ConditionResult): want a start tried and skipped"
done
echo "  $($FP version); units enabled; postinst's start skipped for want of /etc/flashpath/*.yaml"

fp_step "the README's commands: the shipped examples, copied, find each other (discovery on 8009)"
cp /etc/flashpath/target.yaml.example /etc/flashpath/target.yaml
cp /etc/flashpath/initiator.yaml.example /etc/flashpath/initiator.yaml
timeout 120 systemctl start flashpath-target || lab_fail "systemctl start flashpath-target (the example)"
timeout 120 systemctl start flashpath-initiator || lab_fail "systemctl start flashpath-initiator (the example)"
demo=$(sed -n 's/^ *- nqn: //p' /etc/flashpath/target.yaml | head -n 1)
dev=$(fp_ns "$demo" 1 90) || lab_fail "the example initiator did not connect the example target's $demo"
head -c 64K /dev/urandom >"$FP_WORK/demo"
fp_write "$dev" 0 "$FP_WORK/demo"
cmp <(fp_read "$dev" 0 65536) "$FP_WORK/demo" || lab_fail "$dev reads back different data"
echo "  $demo: $dev ($(($(blockdev --getsize64 "$dev") >> 20)) MiB)"
systemctl stop flashpath-initiator flashpath-target
timeout 60 nvme disconnect -n "$demo" >/dev/null || lab_fail "nvme disconnect -n $demo"

fp_step "configure (NVMe/TCP and NVMe/RDMA on soft-RoCE); the unit's device list lacks null_blk: the start fails, saying what to add"
addr=$(lab_rxe_up) || lab_fail "rxe: no soft-RoCE device"
fp_pkg_configure "$NQN" "rdma://$addr:$FP_PORT"
! timeout 120 systemctl start flashpath-target 2>/dev/null || lab_fail "the target opened /dev/nullb0, which DeviceAllow= does not name"
systemctl stop flashpath-target # no more tries (Restart=on-failure)
journalctl --no-pager -o cat _SYSTEMD_UNIT=flashpath-target.service | grep '/dev/nullb0' | tail -n 1 | tee "$FP_WORK/refused"
grep -q 'add DeviceAllow=/dev/nullb0 rw with systemctl edit flashpath-target' "$FP_WORK/refused" ||
	lab_fail "the target's error does not say to add DeviceAllow=/dev/nullb0 rw"
# What systemctl edit writes.
mkdir -p /etc/systemd/system/flashpath-target.service.d
printf '[Service]\nDeviceAllow=/dev/nullb0 rw\n' >/etc/systemd/system/flashpath-target.service.d/override.conf
systemctl daemon-reload

fp_step "systemctl start: the target serves when start returns (Type=notify, READY=1)"
timeout 120 systemctl start flashpath-target || lab_fail "systemctl start flashpath-target"
# No wait: start returned after READY=1, so the listener is up now.
(exec 3<>"/dev/tcp/127.0.0.1/$FP_PORT") 2>/dev/null || lab_fail "systemctl start returned before the target listened"
TGT=$(prop flashpath-target MainPID)
fp_pkg_target_runs "$TGT"
sandboxed "$TGT" flashpath-target
nsenter -t "$TGT" -m sh -c 'touch /var/lib/flashpath/.probe && rm /var/lib/flashpath/.probe' || lab_fail "the target cannot write /var/lib/flashpath (StateDirectory=)"
timeout 120 systemctl start flashpath-initiator || lab_fail "systemctl start flashpath-initiator"
INI=$(prop flashpath-initiator MainPID)
fp_pkg_initiator_runs "$INI"
sandboxed "$INI" flashpath-initiator
dev1=$(fp_ns "$NQN" 1 90) || lab_fail "the initiator did not connect $NQN"
dev2=$(fp_ns "$NQN" 2 30) || lab_fail "no namespace 2 (the block device)"
echo "  target pid $TGT (flashpath, CapEff $(fp_caps "$TGT")), initiator pid $INI (uid 0, CapEff $(fp_caps "$INI")): $dev1 $dev2"
# The discovery log names both listeners: the initiator connects both,
# and the kernel's native multipath puts them under one disk.
for tr in tcp rdma; do
	c=$(fp_ctrl_on "$NQN" "$tr" 120) || lab_fail "no live $tr controller for $NQN: the target's RDMA under its unit, or the initiator's"
	echo "  $tr: $c $(cat "/sys/class/nvme/$c/address")"
done
# Round robin: the I/O below goes over both transports.
echo round-robin >"$(fp_subsys_dir "$NQN")/iopolicy"

fp_step "I/O through the kernel host: the file and the block device"
fp_pkg_io "$dev1" "$dev2"
$FP rpc spdk_get_version | jq -c . || lab_fail "flashpath rpc on the unit's socket"

fp_step "the journal: JSON records only, each with its level's priority"
[ "$(journal_level flashpath-target "$TGT" serving)" = "INFO 6" ] || lab_fail "serving: $(journal_level flashpath-target "$TGT" serving), want INFO 6"
for u in $UNITS; do journalctl --no-pager -o json _SYSTEMD_UNIT="$u.service" _COMM=flashpath; done |
	jq -r '(.MESSAGE | fromjson) as $m | "\($m.level) \(.PRIORITY)"' | sort | uniq -c | tee "$FP_WORK/levels"
! grep -v -E ' (DEBUG 7|INFO 6|WARN 4|ERROR 3)$' "$FP_WORK/levels" || lab_fail "a level with the wrong priority (above)"
journalctl --no-pager -o cat -p info -u flashpath-target.service | grep '"msg":"serving"' >/dev/null || lab_fail "journalctl -p info lacks serving"

fp_step "systemctl reload (SIGHUP): a bad target.yaml refused and logged as an error, a good one applied"
cp /etc/flashpath/target.yaml "$FP_WORK/target.yaml.good"
echo 'subsystems: [' >>/etc/flashpath/target.yaml
systemctl reload flashpath-target || lab_fail "systemctl reload flashpath-target"
[ "$(journal_level flashpath-target "$TGT" "reload failed")" = "ERROR 3" ] || lab_fail "reload failed is not an error record"
journalctl --no-pager -o cat -p err -u flashpath-target.service | grep '"msg":"reload failed"' >/dev/null || lab_fail "journalctl -p err lacks reload failed"
[ "$(prop flashpath-target ActiveState)" = active ] && [ "$(prop flashpath-target MainPID)" = "$TGT" ] || lab_fail "the bad reload stopped the target"
cp "$FP_WORK/target.yaml.good" /etc/flashpath/target.yaml
echo '      - {nsid: 3, backend: "mem:16MiB"}' >>/etc/flashpath/target.yaml
systemctl reload flashpath-target || lab_fail "systemctl reload flashpath-target"
[ "$(journal_level flashpath-target "$TGT" "reload done")" = "INFO 6" ] || lab_fail "reload done is not an info record"
dev3=$(fp_ns "$NQN" 3 60) || lab_fail "the reload's namespace 3 did not reach the host"
systemctl reload flashpath-initiator || lab_fail "systemctl reload flashpath-initiator"
echo "  namespace 3 added by reload: $dev3; target pid still $TGT"

fp_step "Restart=on-failure: the target killed, systemd starts it again, the host reconnects"
c=$(fp_ctrl "$NQN") n=$(prop flashpath-target NRestarts)
kill -KILL "$TGT"
t=600
until [ "$(prop flashpath-target NRestarts)" = $((n + 1)) ] && [ "$(prop flashpath-target ActiveState)" = active ]; do
	t=$((t - 1)); [ $t -gt 0 ] || lab_fail "flashpath-target not restarted: $(prop flashpath-target ActiveState), NRestarts=$(prop flashpath-target NRestarts)"
	sleep 0.1
done
[ "$(prop flashpath-target MainPID)" != "$TGT" ] || lab_fail "the same pid after a restart"
TGT=$(prop flashpath-target MainPID)
fp_wait_state "$c" live 60 >/dev/null || lab_fail "$c did not come back live after the restart"
fp_pkg_data "$dev1" "$dev2" "after the restart"
echo "  restarted as pid $TGT; $c live"

fp_step "systemd-analyze security on the running units"
for u in $UNITS; do
	e=$(systemd-analyze security --no-pager "$u.service" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	[ -n "$e" ] || lab_fail "systemd-analyze security $u: no exposure level"
	echo "  $u: $e"
	if [ "$u" = flashpath-target ]; then
		awk -v e="$e" 'BEGIN { exit !(e <= 4.0) }' || lab_fail "flashpath-target's exposure $e, want 4.0 or less"
	fi
done

fp_step "upgrade to $FP_V2 with both running: postinst restarts them on the new binary"
echo 'disconnect_on_stop: true' >>/etc/flashpath/initiator.yaml
fp_pkg_upgrade
for u in $UNITS; do wait_active "$u"; done
[ "$(prop flashpath-target MainPID)" != "$TGT" ] || lab_fail "the upgrade did not restart the target"
[ "$(prop flashpath-initiator MainPID)" != "$INI" ] || lab_fail "the upgrade did not restart the initiator"
TGT=$(prop flashpath-target MainPID) INI=$(prop flashpath-initiator MainPID)
fp_pkg_serves_v2
fp_wait_state "$c" live 60 >/dev/null || lab_fail "$c did not come back live after the upgrade"
fp_pkg_data "$dev1" "$dev2" "after the upgrade"
echo "  target pid $TGT, initiator pid $INI, both $FP_V2"
exit 0
fi

fp_step "after the reboot: both units started at boot (enabled), the host connected again, the data there"
for u in $UNITS; do wait_active "$u"; done
dev1=$(fp_ns "$NQN" 1 120) || lab_fail "the initiator did not connect $NQN after the reboot"
dev2=$(fp_ns "$NQN" 2 30) || lab_fail "no namespace 2 after the reboot"
for tr in tcp rdma; do
	c=$(fp_ctrl_on "$NQN" "$tr" 120) || lab_fail "no live $tr controller for $NQN after the reboot"
done
fp_pkg_data "$dev1" "$dev2" "after the reboot"
[ "$(prop flashpath-target NRestarts)" = 0 ] && [ "$(prop flashpath-initiator NRestarts)" = 0 ] ||
	lab_fail "a unit needed restarts to come up at boot: target $(prop flashpath-target NRestarts), initiator $(prop flashpath-initiator NRestarts)"
echo "  target pid $(prop flashpath-target MainPID), initiator pid $(prop flashpath-initiator MainPID): $dev1 $dev2"

fp_step "dpkg -r: prerm stops both (SIGTERM, a clean exit), the initiator disconnects"
fp_pkg_files "$FP_DEB2" "$FP_WORK/files"
fp_pkg_remove
for u in $UNITS; do
	[ "$(prop "$u" ActiveState)" = inactive ] && [ "$(prop "$u" Result)" = success ] && [ "$(prop "$u" ExecMainStatus)" = 0 ] ||
		lab_fail "$u after remove: $(prop "$u" ActiveState), result $(prop "$u" Result), exit status $(prop "$u" ExecMainStatus)"
	[ "$(systemctl is-enabled "$u" 2>/dev/null)" = masked ] || lab_fail "$u after remove: $(systemctl is-enabled "$u" 2>&1), want masked"
done
! pgrep -x flashpath >/dev/null || lab_fail "a flashpath process outlived remove"
! fp_subsys_dir "$NQN" >/dev/null || lab_fail "the initiator did not disconnect on stop"
rm -r /etc/systemd/system/flashpath-target.service.d # the admin's drop-in, not the package's

fp_step "dpkg -P: nothing left but the data (/var/lib/flashpath) and its owner"
dpkg -P flashpath </dev/null || lab_fail "dpkg -P"
fp_pkg_purged "$FP_WORK/files"
for u in $UNITS; do
	[ "$(prop "$u" LoadState)" = not-found ] || lab_fail "$u after purge: $(prop "$u" LoadState), want not-found"
done
fp_step "done"
