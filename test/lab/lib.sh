# test/lab/lib.sh — helpers for the interop scripts in test/lab (not a test:
# `make interop` runs test/lab/*.sh only). Source it in the guest after
# guest-lib.sh:
#   . "$LAB_DIR/guest-lib.sh"; . "$LAB_CWD/test/lab/lib.sh"
# Every wait is bounded; every failure exits through lab_fail.

FP=${FP:-$LAB_CWD/bin/flashpath}
FP_PORT=4420
FP_WORK=/tmp/fp # guest tmpfs: survives target restarts, not the VM
# The guest's own host identity (/etc/nvme/hostnqn, hostid), on the allow
# lists; FP_HOST2 is a second host for allow-list checks. Distinct NQNs need
# distinct host IDs: the kernel refuses one host ID under two NQNs.
FP_HOSTID=0f1e2d3c-4b5a-4697-8879-aabbccddee01
FP_HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:$FP_HOSTID
FP_HOST2ID=0f1e2d3c-4b5a-4697-8879-aabbccddee02
FP_HOST2NQN=nqn.2014-08.org.nvmexpress:uuid:$FP_HOST2ID
FP_TGT= # pid of the running flashpath target
FP_TGT_LOG=
FP_TGT_N=0
FP_DMESG_MARK=0
FP_T0=$SECONDS

# fp_host_id — the guest's host identity (/etc/nvme/hostnqn, hostid) and $FP_WORK.
fp_host_id() {
	mkdir -p /etc/nvme "$FP_WORK"
	echo "$FP_HOSTNQN" >/etc/nvme/hostnqn
	echo "$FP_HOSTID" >/etc/nvme/hostid
}

# fp_init — load the host driver, write the host identity, start the clock.
fp_init() {
	modprobe nvme-tcp || lab_fail "modprobe nvme-tcp"
	fp_host_id
	[ -x "$FP" ] || lab_fail "$FP missing: go build -o bin/flashpath ./cmd/flashpath"
	FP_DMESG_MARK=$(dmesg | wc -l)
	trap fp_cleanup EXIT
}

# fp_step TEXT — lab_step with the seconds since fp_init.
fp_step() { lab_step "[$((SECONDS - FP_T0))s] $*"; }

# fp_cleanup — disconnect every controller, stop the target, show the logs
# on failure. The EXIT trap of fp_init.
fp_cleanup() {
	local rc=$?
	set +e
	timeout 30 nvme disconnect-all >/dev/null 2>&1
	fp_target_stop TERM >/dev/null 2>&1
	if [ "$rc" != 0 ]; then
		[ -n "$FP_TGT_LOG" ] && { echo "--- target log (tail)"; tail -n 40 "$FP_TGT_LOG"; }
		echo "--- dmesg (tail)"; dmesg | tail -n 40
	fi
	echo "(${0##*/}: $((SECONDS - FP_T0)) s in the guest, exit $rc)"
	exit "$rc"
}

# fp_target_start CONFIG — start the target on CONFIG and wait until it serves.
fp_target_start() {
	FP_TGT_N=$((FP_TGT_N + 1))
	FP_TGT_LOG=$FP_WORK/target.$FP_TGT_N.log
	"$FP" target --config "$1" --log-level debug >"$FP_TGT_LOG" 2>&1 &
	FP_TGT=$!
	local t=200
	until grep -q '^serving' "$FP_TGT_LOG"; do
		kill -0 "$FP_TGT" 2>/dev/null || { cat "$FP_TGT_LOG"; lab_fail "target exited at start"; }
		t=$((t - 1)); [ $t -gt 0 ] || lab_fail "target did not start in 20 s"
		sleep 0.1
	done
}

# fp_target_stop [SIGNAL] — stop the target (default TERM) and reap it
# within 20 s (then KILL).
fp_target_stop() {
	[ -n "$FP_TGT" ] || return 0
	kill -"${1:-TERM}" "$FP_TGT" 2>/dev/null || true
	local t=200
	while kill -0 "$FP_TGT" 2>/dev/null && [ $t -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
	kill -KILL "$FP_TGT" 2>/dev/null || true
	wait "$FP_TGT" 2>/dev/null || true # its status: 0 after TERM, 137 after KILL
	FP_TGT=
}

# fp_target_reload — SIGHUP, and wait for the target to report the result.
fp_target_reload() {
	local n t=100
	n=$(grep -c 'msg="reload \(done\|failed\)"' "$FP_TGT_LOG" || true)
	kill -HUP "$FP_TGT"
	until [ "$(grep -c 'msg="reload \(done\|failed\)"' "$FP_TGT_LOG")" -gt "$n" ]; do
		t=$((t - 1)); [ $t -gt 0 ] || lab_fail "no reload result in the target log"
		sleep 0.1
	done
	grep 'reload' "$FP_TGT_LOG" | tail -n 4
	! grep -q 'msg="reload failed"' <(tail -n 3 "$FP_TGT_LOG") || lab_fail "reload failed"
}

# fp_subsys_dir NQN — print the /sys/class/nvme-subsystem folder of NQN.
fp_subsys_dir() {
	local s
	for s in /sys/class/nvme-subsystem/*; do
		[ "$(cat "$s/subsysnqn" 2>/dev/null)" = "$1" ] && { echo "$s"; return 0; }
	done
	return 1
}

# fp_ctrls NQN — print the controllers (nvmeN) connected to NQN, one a line.
fp_ctrls() {
	local s c
	s=$(fp_subsys_dir "$1") || return 1
	for c in "$s"/nvme*; do
		c=${c##*/}
		[[ $c =~ ^nvme[0-9]+$ ]] && echo "$c"
	done
	return 0
}

# fp_ctrl NQN — print the first controller (nvmeN) connected to NQN.
fp_ctrl() {
	local c
	c=$(fp_ctrls "$1") && [ -n "$c" ] || return 1
	echo "${c%%$'\n'*}"
}

# fp_ctrl_on NQN TRANSPORT TIMEOUT_S — wait for and print the live
# controller of NQN over TRANSPORT (tcp, rdma).
fp_ctrl_on() {
	local t=$(($3 * 10)) c
	while [ $t -gt 0 ]; do
		for c in $(fp_ctrls "$1" || true); do
			[ "$(cat "/sys/class/nvme/$c/transport" 2>/dev/null)" = "$2" ] &&
				[ "$(cat "/sys/class/nvme/$c/state" 2>/dev/null)" = live ] && { echo "$c"; return 0; }
		done
		sleep 0.1; t=$((t - 1))
	done
	return 1
}

# fp_ns NQN NSID [TIMEOUT_S] — wait for and print the block device of
# namespace NSID of NQN. Matched by the disk's nsid attribute, not its name:
# the Y in nvmeXnY is an instance number, and since Linux 6.4 namespaces are
# scanned concurrently, so NSID 2 can become nvme0n1.
fp_ns() {
	local t=$(( ${3:-20} * 10 )) s d
	while [ $t -gt 0 ]; do
		if s=$(fp_subsys_dir "$1"); then
			for d in "$s"/nvme*n*; do
				[ "$(cat "$d/nsid" 2>/dev/null)" = "$2" ] && [ -b "/dev/${d##*/}" ] &&
					{ echo "/dev/${d##*/}"; return 0; }
			done
		fi
		sleep 0.1; t=$((t - 1))
	done
	return 1
}

# fp_path_of PORT — the multipath path device (nvmeXcYn1) of the controller
# connected through PORT.
fp_path_of() {
	local c p
	c=$(fp_ctrl_of "$1") || return 1
	for p in /sys/block/nvme*c"${c#nvme}"n1; do
		[ -e "$p" ] && { echo "${p##*/}"; return 0; }
	done
	return 1
}

# fp_ctrl_of PORT — the controller (nvmeN) connected through PORT.
fp_ctrl_of() {
	local c
	for c in /sys/class/nvme/nvme*; do
		grep -q "trsvcid=$1\b" "$c/address" 2>/dev/null && { echo "${c##*/}"; return 0; }
	done
	return 1
}

# fp_wait_ana PORT REGEX TIMEOUT_S — wait until the path through PORT has an
# ana_state matching REGEX.
fp_wait_ana() {
	local t=$(($3 * 10)) p st=
	while [ $t -gt 0 ]; do
		if p=$(fp_path_of "$1"); then
			st=$(cat "/sys/block/$p/ana_state" 2>/dev/null || true)
			[[ $st =~ ^($2)$ ]] && { echo "port $1 ($p): $st"; return 0; }
		fi
		sleep 0.1; t=$((t - 1))
	done
	lab_fail "the path through port $1 is ${st:-missing}, want $2"
}

# fp_ns_gone DEV [TIMEOUT_S] — wait until block device DEV is gone.
fp_ns_gone() {
	local t=$(( ${2:-20} * 10 ))
	while [ -e "/sys/block/${1##*/}" ] && [ $t -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
	[ ! -e "/sys/block/${1##*/}" ]
}

# fp_wait_state CTRL REGEX TIMEOUT_S — wait until the controller's state
# matches REGEX (live, connecting, resetting, deleting ...); prints it.
fp_wait_state() {
	local t=$(( $3 * 10 )) st
	while [ $t -gt 0 ]; do
		st=$(cat "/sys/class/nvme/$1/state" 2>/dev/null)
		[[ $st =~ ^($2)$ ]] && { echo "$st"; return 0; }
		sleep 0.1; t=$((t - 1))
	done
	echo "${st:-gone}"
	return 1
}

# fp_connect ARGS... — nvme connect to 127.0.0.1:FP_PORT, bounded.
fp_connect() { timeout 60 nvme connect -t tcp -a 127.0.0.1 -s "$FP_PORT" "$@"; }

# fp_disconnect NQN — disconnect and wait for the controllers to go.
fp_disconnect() {
	timeout 60 nvme disconnect -n "$1" >/dev/null || lab_fail "nvme disconnect -n $1"
	local t=100
	while fp_subsys_dir "$1" >/dev/null && [ $t -gt 0 ]; do sleep 0.1; t=$((t - 1)); done
	! fp_subsys_dir "$1" >/dev/null || lab_fail "$1 still connected after disconnect"
}

# fp_nvmet_file NQN FILE SIZE — a kernel nvmet subsystem open to any host
# with one namespace on FILE (created SIZE bytes), buffered: /tmp is tmpfs,
# which has no O_DIRECT. Expose it with lab_nvmet_port.
fp_nvmet_file() {
	local s=$LAB_NVMET/subsystems/$1
	modprobe nvmet || lab_fail "modprobe nvmet"
	truncate -s "$3" "$2"
	mkdir -p "$s/namespaces/1"
	echo 1 >"$s/attr_allow_any_host"
	echo -n "$2" >"$s/namespaces/1/device_path"
	echo 1 >"$s/namespaces/1/buffered_io"
	echo 1 >"$s/namespaces/1/enable"
}

# fp_has GREP_ARGS... — grep -q GREP_ARGS on stdin, read to its end first.
# Piped straight into grep -q, a command whose match comes early dies of
# SIGPIPE when grep exits before it has written the rest, and pipefail then
# fails the check: `CMD | fp_has PATTERN` never does.
fp_has() {
	local in
	in=$(cat)
	grep -q "$@" <<<"$in"
}

# fp_dmesg_mark — later fp_dmesg_new shows only what follows.
fp_dmesg_mark() { FP_DMESG_MARK=$(dmesg | wc -l); }
fp_dmesg_new() { dmesg | tail -n +"$((FP_DMESG_MARK + 1))"; }

# fp_dmesg_clean WHAT [ALLOWED_REGEX] — fail if the kernel logged warnings,
# oopses or NVMe errors since the mark (lines matching ALLOWED_REGEX are
# expected ones). One line is never a fault of the target: a keep-alive
# still in flight when the host tears its controller down (nvme
# disconnect) ends with BLK_STS_TRANSPORT, which Linux 6.12 logs as
# "failed nvme_keep_alive_end_io error=4" (once in a CI run so far).
fp_dmesg_clean() {
	local bad
	bad=$(fp_dmesg_new | grep -iE 'WARNING|BUG|Call Trace|nvme.*(error|fail|warn|timeout|invalid|reset)' |
		grep -v 'failed nvme_keep_alive_end_io error=4$' | grep -vE "${2:-^$}" || true)
	[ -z "$bad" ] || { echo "$bad"; lab_fail "kernel complained during $1"; }
}

# fp_fio_paths_start DEV — verified 4 KiB random writes on DEV in the
# background for 25 s while a test changes its paths (fio_pid; the output
# goes to $FP_WORK/fio.txt); marks dmesg first.
fp_fio_paths_start() {
	fp_dmesg_mark
	fio --name=mpath --filename="$1" --rw=randwrite --bs=4k --size=32M --iodepth=8 --ioengine=libaio --direct=1 \
		--verify=crc32c --verify_backlog=64 --time_based --runtime=25 --output="$FP_WORK/fio.txt" &
	fio_pid=$!
}

# fp_fio_paths_end WHAT — wait for fp_fio_paths_start's fio: fail if it
# failed or reported errors, or if the kernel logged an NVMe complaint
# other than a lost path's recovery.
fp_fio_paths_end() {
	wait "$fio_pid" || lab_fail "fio failed: $(tail -n 20 "$FP_WORK/fio.txt")"
	fio_pid=
	grep -E "err= *0" "$FP_WORK/fio.txt" || lab_fail "fio reported errors"
	fp_dmesg_new | grep -i nvme || true
	# A keep-alive the host sent as the target dropped the path times out
	# in the host's recovery of that controller (Linux 6.1, once in CI: the
	# recovery waited 5 s for it): allowed for a controller in recovery
	# only, so a live path's keep-alive timeout still fails.
	local lost ka=""
	for lost in $(fp_dmesg_new | sed -nE 's/.*nvme (nvme[0-9]+): starting error recovery$/\1/p' | sort -u); do
		ka="$ka|$lost: (queue 0: timeout request 0x[0-9a-f]+ type 4|long keepalive RTT \([0-9]+ ms\)|failed nvme_keep_alive_end_io error=[0-9]+)$"
	done
	fp_dmesg_clean "$1" "starting error recovery|Reconnecting in|failed to connect socket: -111|Failed reconnect attempt|Successfully reconnected|creating [0-9]+ I/O queues|mapped [0-9/]+ default$ka"
}

# fp_read DEV OFF LEN — print LEN bytes at OFF with O_DIRECT (4 KiB units).
fp_read() { dd if="$1" bs=4096 skip=$(($2 / 4096)) count=$(($3 / 4096)) iflag=direct status=none; }

# fp_write DEV OFF FILE — write FILE at OFF with O_DIRECT (4 KiB units).
fp_write() { dd if="$3" of="$1" bs=4096 seek=$(($2 / 4096)) oflag=direct conv=notrunc status=none; }

# fp_is_zero DEV OFF LEN — the range reads back as zeros.
fp_is_zero() { cmp -s <(fp_read "$1" "$2" "$3") <(head -c "$3" /dev/zero); }

# fp_metrics ADDR — the /metrics page a daemon serves on HOST:PORT (bash's
# /dev/tcp: no curl in the guest).
fp_metrics() {
	exec 3<>"/dev/tcp/${1%:*}/${1#*:}" || return 1
	printf 'GET /metrics HTTP/1.0\r\nHost: lab\r\n\r\n' >&3
	timeout 10 cat <&3
	exec 3<&-
}

# fp_metric ADDR NAME_AND_LABELS — the value of one sample (labels in
# Prometheus' order).
fp_metric() { fp_metrics "$1" | awk -v k="$2" '$1 == k { print $2 }'; }

# fp_jobs NAME PROGRAM ARGS... — run fio or `flashpath bench` (PROGRAM)
# bounded, with JSON output; print one line per job (IOPS, MiB/s, error)
# and fail on any error.
fp_jobs() {
	local name=$1 out=$FP_WORK/jobs-$1.json
	shift
	# From FP_WORK: fio writes its verify state files (local-JOB-N-verify.state)
	# into the working directory, which would be the checkout.
	if ! (cd "$FP_WORK" && timeout 600 "$@" --output-format=json --output="$out"); then
		tail -n 30 "$out" 2>/dev/null
		lab_fail "$name failed"
	fi
	jq -r --arg p "${1##*/}" '.jobs[] | "  \($p) \(.jobname): read \(.read.iops|floor) IOPS \(.read.bw_bytes/104857.6|floor/10) MiB/s, write \(.write.iops|floor) IOPS \(.write.bw_bytes/104857.6|floor/10) MiB/s, error \(.error)"' "$out"
	[ "$(jq '[.jobs[].error] | add' "$out")" = 0 ] || lab_fail "$name: job errors"
}

# fp_safetensors FILE TENSOR BYTES — a safetensors file holding one U8
# tensor of BYTES random bytes (the guest has no Python).
fp_safetensors() {
	local hdr="{\"$2\":{\"dtype\":\"U8\",\"shape\":[$3],\"data_offsets\":[0,$3]}}" n
	n=${#hdr}
	printf "$(printf '\\x%02x' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)) 0 0 0 0)" >"$1"
	printf '%s' "$hdr" >>"$1"
	head -c "$3" /dev/urandom >>"$1"
}

# fp_tlshd_start — run tlshd (ktls-utils) for the kernel's TLS handshakes,
# with its keys from the .nvme keyring; its pid in FP_TLSHD, its log in
# $FP_WORK/tlshd.log. Stop it with fp_tlshd_stop (EXIT traps).
FP_TLSHD=
fp_tlshd_start() {
	cat >/etc/tlshd.conf <<'CONF'
[debug]
loglevel=0
tls=0
nl=0
[authenticate]
keyrings=.nvme
CONF
	tlshd -s >"$FP_WORK/tlshd.log" 2>&1 &
	FP_TLSHD=$!
}
fp_tlshd_stop() { [ -z "$FP_TLSHD" ] || kill "$FP_TLSHD" 2>/dev/null; }

# fp_tls_key ARGS... — nvme gen-tls-key ARGS, printing only the key (the
# configured PSK, NVMeTLSkey-1:...:); --insert also prints the key's serial.
fp_tls_key() { nvme gen-tls-key "$@" | grep -o '^NVMeTLSkey-1:[^[:space:]]*'; }

# fp_bench_verified NAME FILENAME OPTION=VALUE... — a 4 MiB random-write
# bench job at depth 8 on the nvme-tcp FILENAME (at 8 MiB), verified, as
# this host, with the extra engine options (keys).
fp_bench_verified() {
	local name=$1 file=$2
	shift 2
	{
		printf '[%s]\nfilename=%s\nioengine=nvme-tcp\nhostnqn=%s\n' "$name" "$file" "$FP_HOSTNQN"
		printf '%s\n' "$@"
		printf 'rw=randwrite\nbs=4k\nsize=4M\noffset=8M\niodepth=8\nverify=crc32c\n'
	} >"$FP_WORK/$name.fio"
	timeout 300 "$FP" bench "$FP_WORK/$name.fio" >"$FP_WORK/$name.txt" 2>&1 ||
		{ cat "$FP_WORK/$name.txt"; lab_fail "bench job $name"; }
	tail -n 3 "$FP_WORK/$name.txt"
}

# --- The Debian package (package.sh, package-systemd.sh) ---------------------

# fp_pkg_debs — the two packages of `make lab-debs` in bin/lab-deb: this
# checkout's (FP_DEB1, version FP_V1) and its rebuild (FP_DEB2, FP_V2, later).
fp_pkg_debs() {
	local debs v
	mapfile -t debs < <(ls "$LAB_CWD"/bin/lab-deb/flashpath_*.deb 2>/dev/null)
	[ ${#debs[@]} = 2 ] || lab_fail "want two packages in bin/lab-deb (make lab-debs), have ${#debs[@]}"
	FP_DEB1=${debs[0]} FP_DEB2=${debs[1]}
	FP_V1=$(dpkg-deb -f "$FP_DEB1" Version) FP_V2=$(dpkg-deb -f "$FP_DEB2" Version)
	if dpkg --compare-versions "$FP_V1" gt "$FP_V2"; then
		FP_DEB1=${debs[1]} FP_DEB2=${debs[0]} v=$FP_V1 FP_V1=$FP_V2 FP_V2=$v
	fi
}

# fp_pkg_status — the package's dpkg status and version ("ii 1.2.3"), empty when purged.
fp_pkg_status() { dpkg-query -W -f='${db:Status-Abbrev}${Version}' flashpath 2>/dev/null || true; }

# fp_pkg_installed VERSION DEB — what `dpkg -i DEB` (VERSION, a first
# install) must leave: the system user flashpath, its folders, the files,
# the conffiles, both units enabled, no daemon running (no configuration
# yet), the man page.
fp_pkg_installed() {
	local v=$1 deb=$2 d f u
	[ "$(fp_pkg_status)" = "ii $v" ] || lab_fail "status: $(fp_pkg_status)"
	getent passwd flashpath | fp_has ':/var/lib/flashpath:/usr/sbin/nologin$' || lab_fail "no system user flashpath: $(getent passwd flashpath)"
	[ "$(id -u flashpath)" -lt 1000 ] || lab_fail "flashpath is not a system user (uid $(id -u flashpath))"
	for d in /var/lib/flashpath /run/flashpath; do
		[ "$(stat -c '%U:%G %a' $d)" = "flashpath:flashpath 750" ] || lab_fail "$d: $(stat -c '%U:%G %a' $d)"
	done
	for f in /usr/bin/flashpath /lib/systemd/system/flashpath-target.service /lib/systemd/system/flashpath-initiator.service \
		/usr/lib/sysusers.d/flashpath.conf /usr/lib/tmpfiles.d/flashpath.conf \
		/usr/share/bash-completion/completions/flashpath /usr/share/zsh/vendor-completions/_flashpath \
		/usr/share/flashpath/grafana/flashpath.json /usr/share/flashpath/prometheus/flashpath-rules.yml; do
		[ -s "$f" ] || lab_fail "$f missing"
	done
	for f in target initiator; do
		dpkg-query -W -f='${Conffiles}\n' flashpath | fp_has "/etc/flashpath/$f.yaml.example [0-9a-f]\{32\}$" ||
			lab_fail "$f.yaml.example is not a conffile"
	done
	for u in flashpath-target flashpath-initiator; do
		[ -L "/etc/systemd/system/multi-user.target.wants/$u.service" ] || lab_fail "$u not enabled (deb-systemd-helper)"
	done
	! pgrep -x flashpath >/dev/null || lab_fail "the package started a daemon"
	# The guest's dpkg leaves out /usr/share/man (path-exclude): read the page in the package.
	dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/man/man1/flashpath-target.1.gz | zcat | grep 'rpc-socket' >/dev/null ||
		lab_fail "no man page flashpath-target(1) with --rpc-socket in the package"
}

# fp_pkg_configure NQN [LISTENER...] — the package's configuration: a
# target on tcp://127.0.0.1:$FP_PORT (and LISTENERs) with a file namespace
# in /var/lib/flashpath (1) and a null_blk device (2, root:disk 0660 as
# udev makes block devices), and an initiator that discovers it.
fp_pkg_configure() {
	local nqn=$1 listeners="tcp://127.0.0.1:$FP_PORT" l
	shift
	for l in "$@"; do listeners+=", $l"; done
	modprobe null_blk nr_devices=1 gb=1 memory_backed=1 || lab_fail "modprobe null_blk"
	local t=50
	until [ -b /dev/nullb0 ]; do t=$((t - 1)); [ $t -gt 0 ] || lab_fail "no /dev/nullb0"; sleep 0.1; done
	chgrp disk /dev/nullb0 && chmod 0660 /dev/nullb0
	cat >/etc/flashpath/target.yaml <<EOT
listeners: [$listeners]
metrics: 127.0.0.1:9420
subsystems:
  - nqn: $nqn
    namespaces:
      - {nsid: 1, backend: "file:/var/lib/flashpath/ns1.img:64MiB"}
      - {nsid: 2, backend: /dev/nullb0}
EOT
	cat >/etc/flashpath/initiator.yaml <<EOT
discovery:
  - address: tcp://127.0.0.1:$FP_PORT
defaults: {nr_io_queues: 1, reconnect_delay: 1, ctrl_loss_tmo: 120}
interval: 5s
metrics: 127.0.0.1:9421
EOT
}

# fp_pkg_target_runs PID — the target's process as its unit runs it: user
# flashpath with group disk, no capability but CAP_IPC_LOCK, its JSON-RPC
# socket and file namespace private to it (UMask=0077).
fp_pkg_target_runs() {
	[ "$(stat -c %U "/proc/$1")" = flashpath ] || lab_fail "the target runs as $(stat -c %U "/proc/$1")"
	[ "$(fp_caps "$1")" = 0000000000004000 ] || lab_fail "the target's capabilities: $(fp_caps "$1"), want CAP_IPC_LOCK only"
	grep -q '^Groups:.*\b'"$(getent group disk | cut -d: -f3)"'\b' "/proc/$1/status" || lab_fail "the target lacks group disk"
	[ "$(stat -c '%U %a' /run/flashpath/spdk.sock)" = "flashpath 600" ] || lab_fail "/run/flashpath/spdk.sock: $(stat -c '%U %a' /run/flashpath/spdk.sock)"
	[ "$(stat -c '%U %a' /var/lib/flashpath/ns1.img)" = "flashpath 600" ] || lab_fail "ns1.img: $(stat -c '%U %a' /var/lib/flashpath/ns1.img) (UMask=0077)"
}

# fp_pkg_initiator_runs PID — the initiator's process: uid 0, no capability.
fp_pkg_initiator_runs() {
	[ "$(stat -c %u "/proc/$1")" = 0 ] && [ "$(fp_caps "$1")" = 0000000000000000 ] ||
		lab_fail "the initiator runs as uid $(stat -c %u "/proc/$1") with capabilities $(fp_caps "$1"), want 0 and none"
}

# fp_pkg_io DEV1 DEV2 — 1 MiB written through the kernel host to namespace
# 1 (DEV1: the file) and 2 (DEV2: /dev/nullb0) reads back, and is in the
# file and the device; the data stays in $FP_WORK/data.
fp_pkg_io() {
	head -c 1M /dev/urandom >"$FP_WORK/data"
	fp_write "$1" 0 "$FP_WORK/data"
	fp_write "$2" 0 "$FP_WORK/data"
	cmp <(fp_read "$1" 0 $((1 << 20))) "$FP_WORK/data" || lab_fail "$1 reads back different data"
	cmp <(head -c 1M /var/lib/flashpath/ns1.img) "$FP_WORK/data" || lab_fail "ns1.img lacks the data"
	cmp <(fp_read /dev/nullb0 0 $((1 << 20))) "$FP_WORK/data" || lab_fail "/dev/nullb0 lacks the data"
}

# fp_pkg_data DEV1 DEV2 WHEN — the data of fp_pkg_io still reads back from
# both namespaces (WHEN: "after the upgrade", for the failure).
fp_pkg_data() {
	cmp <(fp_read "$1" 0 $((1 << 20))) "$FP_WORK/data" || lab_fail "$1 $3"
	cmp <(fp_read "$2" 0 $((1 << 20))) "$FP_WORK/data" || lab_fail "$2 $3"
}

# fp_pkg_upgrade — dpkg -i FP_DEB2 over FP_DEB1 with the daemons running:
# installed, dpkg content, the admin's target.yaml untouched, the new binary.
fp_pkg_upgrade() {
	cp /etc/flashpath/target.yaml "$FP_WORK/target.yaml.before"
	dpkg -i "$FP_DEB2" </dev/null || lab_fail "dpkg -i $FP_DEB2 with the daemons running"
	[ "$(fp_pkg_status)" = "ii $FP_V2" ] || lab_fail "status after the upgrade: $(fp_pkg_status)"
	! dpkg --audit | grep . || lab_fail "dpkg --audit after the upgrade"
	cmp /etc/flashpath/target.yaml "$FP_WORK/target.yaml.before" || lab_fail "the upgrade changed the admin's target.yaml"
	$FP version | fp_has rebuild1 || lab_fail "/usr/bin/flashpath is still $($FP version)"
}

# fp_pkg_serves_v2 — the running target answers its JSON-RPC as FP_V2.
fp_pkg_serves_v2() {
	$FP rpc spdk_get_version | tee "$FP_WORK/version.2.json" | jq -c .
	grep -q rebuild1 "$FP_WORK/version.2.json" || lab_fail "the restarted target is not $FP_V2"
}

# fp_pkg_remove — dpkg -r: the package's files gone, its conffiles kept.
fp_pkg_remove() {
	dpkg -r flashpath </dev/null || lab_fail "dpkg -r"
	[ "$(fp_pkg_status)" = "rc $FP_V2" ] || lab_fail "status after remove: $(fp_pkg_status)"
	[ ! -e /usr/bin/flashpath ] && [ ! -e /lib/systemd/system/flashpath-target.service ] || lab_fail "files left after remove"
	[ -f /etc/flashpath/target.yaml.example ] || lab_fail "remove took the conffiles"
}

# fp_pkg_files DEB FILE — the package's files (not its folders: /lib is a
# link on merged /usr) into FILE.
fp_pkg_files() {
	dpkg-deb -c "$1" | awk '$1 ~ /^-/ { sub(/^\./, "", $6); print $6 }' >"$2"
	[ "$(wc -l <"$2")" -gt 20 ] || lab_fail "the package lists $(wc -l <"$2") files"
}

# fp_pkg_purged FILES — after `dpkg -P`: none of the package's files (the
# list of fp_pkg_files) nor anything named flashpath is left but the data
# (/var/lib/flashpath) and its owner.
fp_pkg_purged() {
	local left
	[ -z "$(fp_pkg_status)" ] || lab_fail "status after purge: $(fp_pkg_status)"
	left=$(while read -r f; do if [ -f "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done <"$1")
	[ -z "$left" ] || lab_fail "left after purge: $left"
	left=$(find /etc /run /var/lib/systemd /lib/systemd /usr/lib /usr/share -name '*flashpath*' 2>/dev/null | grep -v '^/var/lib/flashpath' || true)
	[ -z "$left" ] || lab_fail "left after purge: $left"
	[ -f /var/lib/flashpath/ns1.img ] || lab_fail "purge took the data"
	getent passwd flashpath >/dev/null || lab_fail "purge removed the user that owns the data"
}

# fp_caps PID — the process's effective capabilities (hex).
fp_caps() { awk '$1 == "CapEff:" { print $2 }' "/proc/$1/status"; }

# fp_wait_port PORT — until 127.0.0.1:PORT takes connections (bounded).
fp_wait_port() {
	local t=300
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		t=$((t - 1)); [ $t -gt 0 ] || lab_fail "nothing listens on 127.0.0.1:$1"
		sleep 0.1
	done
}

# fp_systemd_boot — installs systemd in this throwaway guest (the packages
# of `make lab-systemd`: the lab image has no init system) and boots it as
# PID 1 of new PID and mount namespaces, to multi-user.target, console
# logins masked, /tmp kept. Prints its pid (here); run commands under it
# with `nsenter -t PID -m -p`.
fp_systemd_boot() {
	local debs=("$LAB_CWD"/bin/lab-systemd/*.deb) u sd= t=100 st
	if [ ! -x /lib/systemd/systemd ]; then
		[ -e "${debs[0]}" ] || lab_fail "no systemd packages in bin/lab-systemd (make lab-systemd)"
		dpkg -i "${debs[@]}" >/tmp/systemd-dpkg.log 2>&1 </dev/null ||
			{ tail -n 20 /tmp/systemd-dpkg.log >&2; lab_fail "dpkg -i the systemd packages"; }
	fi
	rm -rf /run/systemd # a boot after fp_systemd_down starts afresh, as after a reboot
	ln -sf /dev/null /etc/systemd/system/getty.target
	# Its boot would empty /tmp (tmp.conf's "D /tmp"), which holds this
	# run's files and, in CI, the checkout's mount: an admin's override.
	echo 'd /tmp 1777 root root -' >/etc/tmpfiles.d/tmp.conf
	unshare --pid --mount --fork --mount-proc --propagation private \
		/lib/systemd/systemd --unit=multi-user.target </dev/null >/dev/null 2>&1 &
	u=$!
	until sd=$(pgrep -P "$u"); do
		t=$((t - 1)); [ $t -gt 0 ] || lab_fail "systemd did not start"
		sleep 0.1
	done
	# "offline" until systemd takes requests; then --wait waits for the boot.
	t=600
	until [ -S /run/systemd/private ]; do
		t=$((t - 1)); [ $t -gt 0 ] || lab_fail "systemd (pid $sd) did not open /run/systemd/private"
		sleep 0.1
	done
	st=$(timeout 300 nsenter -t "$sd" -m -p -- systemctl is-system-running --wait) || true
	case $st in
	running) ;;
	degraded) nsenter -t "$sd" -m -p -- systemctl --failed --no-pager >&2 ;;
	*) lab_fail "systemd did not finish booting: ${st:-no answer}" ;;
	esac
	echo "$sd"
}

# fp_systemd_down PID UNIT... — a reboot's end as the units see it: UNITs
# stopped as a shutdown stops them, then the systemd of fp_systemd_boot
# (PID) and its namespaces gone. Not `systemctl poweroff`: at its end
# systemd-shutdown remounts / read-only and force-unmounts the 9p folders,
# which the guest shares with it.
fp_systemd_down() {
	local sd=$1
	shift
	timeout 120 nsenter -t "$sd" -m -p -- systemctl stop "$@" || lab_fail "systemctl stop $*"
	kill -KILL "$sd"
	timeout 60 tail --pid="$sd" -f /dev/null || lab_fail "systemd (pid $sd) still runs 60 s after SIGKILL"
}
