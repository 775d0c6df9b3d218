#!/bin/bash
# Guest script: the Debian package's lifecycle with dpkg on Debian 12 —
# install (the user flashpath, files, conffiles, units enabled, nothing
# started), both daemons run as their units run them, the kernel host
# connected through the initiator to the target, an upgrade to a rebuilt
# package with the daemons running, remove, purge.
#
# The guest has no init system, so real systemd is not exercised here:
# the daemons are started as the installed units' ExecStart= with the
# units' user, groups, capabilities, limits, umask and runtime folder
# (setpriv, prlimit), not their mount namespace, seccomp filter or
# device ACL; the maintainer scripts take their no-systemd paths (the
# enablement symlinks through deb-systemd-helper, no start or restart).
# What covers systemd instead: TestUnitSandbox in cmd/flashpath runs
# `systemd-analyze security --offline` (the exposure may not rise) and
# `systemd-analyze verify` (unknown or bad settings) on both units, and
# TestUnitExecStart checks their command lines against the CLI.
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

# wait_port PORT — until 127.0.0.1:PORT takes connections (bounded).
wait_port() {
	local t=300
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		t=$((t - 1)); [ $t -gt 0 ] || lab_fail "nothing listens on 127.0.0.1:$1"
		sleep 0.1
	done
}

# caps PID — the process's effective capabilities (hex).
caps() { awk '$1 == "CapEff:" { print $2 }' "/proc/$1/status"; }

# status — the package's dpkg status and version ("ii 1.2.3"), empty when purged.
status() { dpkg-query -W -f='${db:Status-Abbrev}${Version}' flashpath 2>/dev/null || true; }

mapfile -t debs < <(ls "$LAB_CWD"/bin/lab-deb/flashpath_*.deb 2>/dev/null)
[ ${#debs[@]} = 2 ] || lab_fail "want two packages in bin/lab-deb (make lab-debs), have ${#debs[@]}"
v1=$(dpkg-deb -f "${debs[0]}" Version) v2=$(dpkg-deb -f "${debs[1]}" Version)
deb1=${debs[0]} deb2=${debs[1]}
if dpkg --compare-versions "$v1" gt "$v2"; then
	deb1=${debs[1]} deb2=${debs[0]} v=$v1 v1=$v2 v2=$v
fi
mkdir -p "$FP_WORK" /etc/nvme
echo "$FP_HOSTNQN" >/etc/nvme/hostnqn
echo "$FP_HOSTID" >/etc/nvme/hostid
[ ! -d /run/systemd/system ] || lab_fail "this guest runs systemd: the test expects none"

fp_step "dpkg -i flashpath $v1"
dpkg -i "$deb1" </dev/null || lab_fail "dpkg -i $deb1"
[ "$(status)" = "ii $v1" ] || lab_fail "status: $(status)"
getent passwd flashpath | grep -q ':/var/lib/flashpath:/usr/sbin/nologin$' || lab_fail "no system user flashpath: $(getent passwd flashpath)"
[ "$(id -u flashpath)" -lt 1000 ] || lab_fail "flashpath is not a system user (uid $(id -u flashpath))"
for d in /var/lib/flashpath /run/flashpath; do
	[ "$(stat -c '%U:%G %a' $d)" = "flashpath:flashpath 750" ] || lab_fail "$d: $(stat -c '%U:%G %a' $d)"
done
for f in /usr/bin/flashpath /lib/systemd/system/flashpath-target.service /lib/systemd/system/flashpath-initiator.service \
	/usr/lib/sysusers.d/flashpath.conf /usr/lib/tmpfiles.d/flashpath.conf \
	/usr/share/bash-completion/completions/flashpath /usr/share/zsh/vendor-completions/_flashpath; do
	[ -s "$f" ] || lab_fail "$f missing"
done
dpkg-query -W -f='${Conffiles}\n' flashpath | grep -q '/etc/flashpath/target.yaml.example [0-9a-f]\{32\}$' || lab_fail "target.yaml.example is not a conffile"
dpkg-query -W -f='${Conffiles}\n' flashpath | grep -q '/etc/flashpath/initiator.yaml.example [0-9a-f]\{32\}$' || lab_fail "initiator.yaml.example is not a conffile"
for u in flashpath-target flashpath-initiator; do
	[ -L "/etc/systemd/system/multi-user.target.wants/$u.service" ] || lab_fail "$u not enabled (deb-systemd-helper)"
done
! pgrep -x flashpath >/dev/null || lab_fail "the package started a daemon"
# The guest's dpkg leaves out /usr/share/man (path-exclude): read the page in the package.
dpkg-deb --fsys-tarfile "$deb1" | tar -xO ./usr/share/man/man1/flashpath-target.1.gz | zcat | grep -q 'rpc-socket' ||
	lab_fail "no man page flashpath-target(1) with --rpc-socket in the package"
! $FP version | grep -q rebuild1 || lab_fail "$v1 has the rebuild's binary"
echo "  $($FP version); user $(id flashpath); units enabled, nothing started"

fp_step "configure: a file namespace in /var/lib/flashpath and a block device (group disk)"
modprobe null_blk nr_devices=1 gb=1 memory_backed=1 || lab_fail "modprobe null_blk"
# What udev does on a Debian system (no udev here): block devices root:disk 0660.
chgrp disk /dev/nullb0 && chmod 0660 /dev/nullb0
cat >/etc/flashpath/target.yaml <<EOF
listeners: [tcp://127.0.0.1:$FP_PORT]
metrics: 127.0.0.1:9420
subsystems:
  - nqn: $NQN
    namespaces:
      - {nsid: 1, backend: "file:/var/lib/flashpath/ns1.img:64MiB"}
      - {nsid: 2, backend: /dev/nullb0}
EOF
cat >/etc/flashpath/initiator.yaml <<EOF
discovery:
  - address: tcp://127.0.0.1:$FP_PORT
defaults: {nr_io_queues: 1, reconnect_delay: 1, ctrl_loss_tmo: 120}
interval: 5s
metrics: 127.0.0.1:9421
EOF

fp_step "start both daemons as their units do (target: user flashpath, group disk, CAP_IPC_LOCK; initiator: root, no capability)"
start_unit flashpath-target.service "$FP_WORK/target.1.log"
TGT=$UNIT_PID
wait_port $FP_PORT
[ "$(stat -c %U /proc/$TGT)" = flashpath ] || lab_fail "the target runs as $(stat -c %U /proc/$TGT)"
[ "$(caps "$TGT")" = 0000000000004000 ] || lab_fail "the target's capabilities: $(caps "$TGT"), want CAP_IPC_LOCK only"
grep -q '^Groups:.*\b'"$(getent group disk | cut -d: -f3)"'\b' "/proc/$TGT/status" || lab_fail "the target lacks group disk"
[ "$(stat -c '%U %a' /run/flashpath/spdk.sock)" = "flashpath 600" ] || lab_fail "/run/flashpath/spdk.sock: $(stat -c '%U %a' /run/flashpath/spdk.sock)"
[ "$(stat -c '%U %a' /var/lib/flashpath/ns1.img)" = "flashpath 600" ] || lab_fail "ns1.img: $(stat -c '%U %a' /var/lib/flashpath/ns1.img) (UMask=0077)"
start_unit flashpath-initiator.service "$FP_WORK/initiator.1.log"
INI=$UNIT_PID
dev1=$(fp_ns "$NQN" 1 90) || lab_fail "the initiator did not connect $NQN"
dev2=$(fp_ns "$NQN" 2 30) || lab_fail "no namespace 2 (the block device)"
[ "$(stat -c %u /proc/$INI)" = 0 ] && [ "$(caps "$INI")" = 0000000000000000 ] ||
	lab_fail "the initiator runs as uid $(stat -c %u /proc/$INI) with capabilities $(caps "$INI"), want 0 and none"
echo "  target pid $TGT (flashpath, CapEff $(caps "$TGT")), initiator pid $INI (uid 0, CapEff $(caps "$INI")): $dev1 $dev2"

fp_step "I/O through the kernel host: the file and the block device"
head -c 1M /dev/urandom >"$FP_WORK/data"
fp_write "$dev1" 0 "$FP_WORK/data"
fp_write "$dev2" 0 "$FP_WORK/data"
cmp <(fp_read "$dev1" 0 $((1 << 20))) "$FP_WORK/data" || lab_fail "$dev1 reads back different data"
cmp <(head -c 1M /var/lib/flashpath/ns1.img) "$FP_WORK/data" || lab_fail "ns1.img lacks the data"
cmp <(fp_read /dev/nullb0 0 $((1 << 20))) "$FP_WORK/data" || lab_fail "/dev/nullb0 lacks the data"

fp_step "the JSON-RPC socket (root), reload (ExecReload=: SIGHUP)"
$FP rpc spdk_get_version | tee "$FP_WORK/version.1.json" | jq -c . || lab_fail "flashpath rpc on the default socket"
kill -HUP "$TGT"
t=100
until grep -q '"msg":"reload done"' "$FP_WORK/target.1.log"; do
	t=$((t - 1)); [ $t -gt 0 ] || lab_fail "no reload done in the target's log"
	sleep 0.1
done
kill -HUP "$INI"

fp_step "upgrade to $v2 with both daemons running"
cp /etc/flashpath/target.yaml "$FP_WORK/target.yaml.before"
dpkg -i "$deb2" </dev/null || lab_fail "dpkg -i $deb2 with the daemons running"
[ "$(status)" = "ii $v2" ] || lab_fail "status after the upgrade: $(status)"
dpkg --audit | grep . && lab_fail "dpkg --audit after the upgrade"
cmp /etc/flashpath/target.yaml "$FP_WORK/target.yaml.before" || lab_fail "the upgrade changed the admin's target.yaml"
$FP version | grep -q rebuild1 || lab_fail "/usr/bin/flashpath is still $($FP version)"
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
wait_port $FP_PORT
start_unit flashpath-initiator.service "$FP_WORK/initiator.2.log"
INI=$UNIT_PID
$FP rpc spdk_get_version | tee "$FP_WORK/version.2.json" | jq -c .
grep -q rebuild1 "$FP_WORK/version.2.json" || lab_fail "the restarted target is not $v2"
c=$(fp_ctrl "$NQN")
fp_wait_state "$c" live 60 >/dev/null || lab_fail "$c did not come back live after the target's restart"
cmp <(fp_read "$dev1" 0 $((1 << 20))) "$FP_WORK/data" || lab_fail "$dev1 after the upgrade"
cmp <(fp_read "$dev2" 0 $((1 << 20))) "$FP_WORK/data" || lab_fail "$dev2 after the upgrade"

fp_step "dpkg -r (the daemons stopped first, as prerm does under systemd)"
stop_unit "$INI"; INI=
t=100
while fp_subsys_dir "$NQN" >/dev/null && [ $t -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
! fp_subsys_dir "$NQN" >/dev/null || lab_fail "the initiator (uid 0, no capability) did not disconnect on stop"
stop_unit "$TGT"; TGT=
# The package's files (not its folders: /lib is a link on merged /usr).
dpkg-deb -c "$deb2" | awk '$1 ~ /^-/ { sub(/^\./, "", $6); print $6 }' >"$FP_WORK/files"
[ "$(wc -l <"$FP_WORK/files")" -gt 20 ] || lab_fail "the package lists $(wc -l <"$FP_WORK/files") files"
dpkg -r flashpath </dev/null || lab_fail "dpkg -r"
[ "$(status)" = "rc $v2" ] || lab_fail "status after remove: $(status)"
[ ! -e /usr/bin/flashpath ] && [ ! -e /lib/systemd/system/flashpath-target.service ] || lab_fail "files left after remove"
[ -f /etc/flashpath/target.yaml.example ] || lab_fail "remove took the conffiles"

fp_step "dpkg -P: nothing left but the data (/var/lib/flashpath) and its owner"
dpkg -P flashpath </dev/null || lab_fail "dpkg -P"
[ -z "$(status)" ] || lab_fail "status after purge: $(status)"
left=$(while read -r f; do if [ -f "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done <"$FP_WORK/files")
[ -z "$left" ] || lab_fail "left after purge: $left"
left=$(find /etc /run /var/lib/systemd /lib/systemd /usr/lib /usr/share -name '*flashpath*' 2>/dev/null | grep -v '^/var/lib/flashpath' || true)
[ -z "$left" ] || lab_fail "left after purge: $left"
[ -f /var/lib/flashpath/ns1.img ] || lab_fail "purge took the data"
getent passwd flashpath >/dev/null || lab_fail "purge removed the user that owns the data"
echo "  kept: $(ls -l /var/lib/flashpath | tail -n +2) (user flashpath)"
fp_step "done"
