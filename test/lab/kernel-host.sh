#!/bin/bash
# Guest script: the Linux kernel NVMe/TCP host and nvme-cli against
# flashpath's target on 127.0.0.1 — discovery, connect and connect-all
# (digests, queue counts), the host allow list, what nvme-cli prints, fio
# (4K randrw verify, 128K sequential, 70/30; QD 1 and 64; libaio and io_uring),
# reads of a buffered file namespace sent by sendfile (copied under a data
# digest), flush, write zeroes, deallocate and blkdiscard, and namespace hot add and
# remove through SIGHUP while connected; then the shipped examples
# (deploy/target.yaml, deploy/initiator.yaml): nvme discover and
# connect-all with no port reach the discovery service on 8009.
# Run from the checkout: ../shared/lab/vm-run test/lab/kernel-host.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2026-11.io.flashpath:lab
NQN2=nqn.2026-11.io.flashpath:lab-other # only FP_HOST2NQN may connect
SERIAL=FPLAB0001
MODEL="flashpath lab"
METRICS=127.0.0.1:9430
NS1_SIZE=$((64 << 20))

fp_init
# config [EXTRA_NS_YAML] [EXTRA_HOST] — the target's configuration file.
config() {
	cat >"$FP_WORK/target.yaml" <<-EOF
	listeners: [tcp://127.0.0.1:$FP_PORT]
	metrics: $METRICS
	subsystems:
	  - nqn: $NQN
	    serial: $SERIAL
	    model: $MODEL
	    allowed_hosts: [$FP_HOSTNQN${2:+, $2}]
	    namespaces:
	      - {nsid: 1, backend: "mem:64MiB"}
	      - {nsid: 2, backend: "file:$FP_WORK/ns2.img:32MiB?buffered"}
	${1:+      - $1}
	  - nqn: $NQN2
	    allowed_hosts: [$FP_HOST2NQN]
	    namespaces: [{nsid: 1, backend: "mem:8MiB"}]
	EOF
}
config
fp_target_start "$FP_WORK/target.yaml"
FW=$("$FP" version | awk '{print $2}')
FW=${FW#v}
FW=${FW:0:8}

# ---------------------------------------------------------------- discovery
fp_step "nvme discover: $NQN for this host, $NQN2 only for the other"
fp_dmesg_mark
timeout 60 nvme discover -t tcp -a 127.0.0.1 -s "$FP_PORT"
subs=$(timeout 60 nvme discover -t tcp -a 127.0.0.1 -s "$FP_PORT" -o json | jq -r '.records[].subnqn' | sort | tr '\n' ' ')
[ "$subs" = "$NQN " ] || lab_fail "discovery log for this host lists: $subs"
subs=$(timeout 60 nvme discover -t tcp -a 127.0.0.1 -s "$FP_PORT" --hostnqn "$FP_HOST2NQN" --hostid "$FP_HOST2ID" -o json |
	jq -r '.records[].subnqn' | sort | tr '\n' ' ')
[ "$subs" = "$NQN2 " ] || lab_fail "discovery log for the other host lists: $subs"
fp_dmesg_clean discovery

# ------------------------------------------------- connect and connect-all
# A little I/O through each connection: 1 MiB written and read back.
head -c 1M /dev/urandom >"$FP_WORK/pat1m"
ncpu=$(nproc)
for combo in "connect 1" "connect 4 --hdr-digest --data-digest" "connect-all 4" "connect-all 1 --hdr-digest --data-digest"; do
	set -- $combo
	cmd=$1 nq=$2
	shift 2
	fp_step "nvme $cmd --nr-io-queues $nq $*"
	fp_dmesg_mark
	if [ "$cmd" = connect ]; then
		fp_connect -n "$NQN" --nr-io-queues "$nq" "$@"
	else
		timeout 60 nvme connect-all -t tcp -a 127.0.0.1 -s "$FP_PORT" --nr-io-queues "$nq" "$@"
	fi
	dev=$(fp_ns "$NQN" 1) || lab_fail "no namespace appeared"
	fp_ns "$NQN" 2 5 >/dev/null || lab_fail "namespace 2 did not appear"
	! fp_subsys_dir "$NQN2" >/dev/null || lab_fail "connected to $NQN2, which does not allow this host"
	ctrl=$(fp_ctrl "$NQN")
	want=$((nq < ncpu ? nq : ncpu)) # the host caps I/O queues at the CPU count
	fp_dmesg_new | grep -E "$ctrl: mapped $want/0/0 default/read/poll queues" ||
		{ fp_dmesg_new; lab_fail "want $want I/O queues"; }
	fp_write "$dev" $((8 << 20)) "$FP_WORK/pat1m"
	cmp <(fp_read "$dev" $((8 << 20)) $((1 << 20))) "$FP_WORK/pat1m" || lab_fail "read back differs"
	fp_disconnect "$NQN"
	fp_dmesg_clean "nvme $cmd" 'Removing ctrl: NQN' # the discovery controller's removal is info
done

# --------------------------------------------------------------- allow list
fp_step "--hostnqn off the allow list is refused"
fp_dmesg_mark
if fp_connect -n "$NQN" --hostnqn "$FP_HOST2NQN" --hostid "$FP_HOST2ID"; then
	lab_fail "a host off the allow list connected"
fi
sleep 1
! fp_subsys_dir "$NQN" >/dev/null || lab_fail "a device appeared for a refused host"
if fp_connect -n "$NQN2"; then
	lab_fail "this host connected to $NQN2"
fi
fp_dmesg_new
fp_dmesg_clean "refused connects" 'not allowed|Invalid Host|failed to connect queue: 0|Connect command failed'
fp_step "--hostnqn on the allow list connects"
fp_connect -n "$NQN2" --hostnqn "$FP_HOST2NQN" --hostid "$FP_HOST2ID"
fp_ns "$NQN2" 1 >/dev/null || lab_fail "no namespace for the allowed host"
fp_disconnect "$NQN2"

# ------------------------------------------------------------- nvme-cli
fp_step "nvme connect --hostnqn (listed) --hdr-digest --data-digest; nvme list, id-ctrl, id-ns, ns-descs, logs, features"
fp_dmesg_mark
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --hostid "$FP_HOSTID" --hdr-digest --data-digest --nr-io-queues 2
dev=$(fp_ns "$NQN" 1) || lab_fail "no namespace appeared"
dev2=$(fp_ns "$NQN" 2) || lab_fail "no namespace 2"
ctrl=/dev/$(fp_ctrl "$NQN")
nvme list
nvme list | grep -F "$dev" | grep -F "$MODEL" | fp_has -F "$SERIAL" || lab_fail "nvme list: $dev lacks model or serial"
idc=$FP_WORK/id-ctrl.json
nvme id-ctrl "$ctrl" -o json >"$idc"
jq -c '{sn, mn, fr, subnqn, mdts, cntlid, ver, oncs, vwc, kas, nn, sgls, ioccsz, iorcsz}' "$idc"
trim() { sed 's/ *$//'; }
[ "$(jq -r .sn "$idc" | trim)" = "$SERIAL" ] || lab_fail "id-ctrl sn"
[ "$(jq -r .mn "$idc" | trim)" = "$MODEL" ] || lab_fail "id-ctrl mn"
[ "$(jq -r .fr "$idc" | trim)" = "$FW" ] || lab_fail "id-ctrl fr: want $FW"
[ "$(jq -r .subnqn "$idc")" = "$NQN" ] || lab_fail "id-ctrl subnqn"
mdts=$(jq .mdts "$idc")
[ "$mdts" -ge 5 ] || lab_fail "id-ctrl mdts $mdts"
oncs=$(jq .oncs "$idc")
(( oncs & 0x4 && oncs & 0x8 )) || lab_fail "id-ctrl oncs $oncs: want DSM and Write Zeroes"
max_hw=$(cat "/sys/block/${dev##*/}/queue/max_hw_sectors_kb")
echo "MDTS $mdts: the host's max_hw_sectors_kb is $max_hw"
[ "$max_hw" -gt 0 ] && [ "$max_hw" -le $((4 << mdts)) ] || lab_fail "max_hw_sectors_kb $max_hw beyond MDTS"

idn=$FP_WORK/id-ns.json
nvme id-ns "$dev" -o json >"$idn"
jq -c '{nsze, ncap, nuse, nlbaf, flbas, dlfeat, nguid, eui64, lbafs}' "$idn"
lbads=$(jq '.lbafs[.flbas % 16].ds' "$idn")
[ $(( $(jq .nsze "$idn") << lbads )) = $NS1_SIZE ] || lab_fail "id-ns nsze is not 64 MiB"
[ "$(jq .ncap "$idn")" = "$(jq .nsze "$idn")" ] || lab_fail "id-ns ncap != nsze"
[ $(( $(jq .dlfeat "$idn") & 7 )) = 1 ] || lab_fail "id-ns dlfeat: deallocated blocks should read as zeros"
[ "$(blockdev --getsize64 "$dev")" = $NS1_SIZE ] || lab_fail "block device size"
nvme ns-descs "$dev"
nvme ns-descs "$dev" | fp_has '^uuid' || lab_fail "ns-descs: no UUID"
nvme ns-descs "$dev" | fp_has '^nguid' || lab_fail "ns-descs: no NGUID"
[ "$(cat /sys/block/${dev##*/}/uuid)" != "$(cat /sys/block/${dev2##*/}/uuid)" ] || lab_fail "namespaces 1 and 2 share a UUID"

nvme smart-log "$ctrl" -o json | tee "$FP_WORK/smart.json" | jq -c '{critical_warning, temperature, avail_spare, percent_used, data_units_read, data_units_written, host_read_commands, host_write_commands, power_on_hours}'
[ "$(jq .critical_warning "$FP_WORK/smart.json")" = 0 ] || lab_fail "smart-log critical warning"
t=$(jq .temperature "$FP_WORK/smart.json")
[ "$t" -gt 250 ] && [ "$t" -lt 400 ] || lab_fail "smart-log temperature $t K"
[ "$(jq -r ".data_units_written|tonumber" "$FP_WORK/smart.json")" -gt 0 ] || lab_fail "smart-log data_units_written 0 after writes"
nvme error-log "$ctrl" -e 4 | head -n 12
nvme get-feature "$ctrl" -f 7 -H | tee "$FP_WORK/feat7"
grep -q 'Number of IO Submission Queues' "$FP_WORK/feat7" || lab_fail "get-feature 7"
nvme fw-log "$ctrl" | tee "$FP_WORK/fw"
grep -qE "frs1 *: .*$FW" "$FP_WORK/fw" || lab_fail "fw-log: slot 1 is not $FW"
fp_dmesg_clean "nvme-cli admin commands"

# --------------------------------------------------------------------- fio
fp_step "fio: 4K randrw verify, 128K sequential verify (QD 1, 16), 70/30 verify; QD 1 and 64; libaio and io_uring; direct"
fp_dmesg_mark
job=$FP_WORK/matrix.fio
printf '[global]\nfilename=%s\ndirect=1\nverify=crc32c\nverify_fatal=1\ndo_verify=1\nrandrepeat=0\nstonewall\n' "$dev" >"$job"
for eng in libaio io_uring; do
	for qd in 1 64; do
		size=$([ $qd = 1 ] && echo 2M || echo 8M)
		printf '[4k-randrw-%s-qd%s]\nioengine=%s\niodepth=%s\nrw=randrw\nbs=4k\nsize=%s\n' $eng $qd $eng $qd $size
		# 128K at QD 64 (8 MiB in flight on one connection) stalls the
		# guest's TCP receive path with the kernel's own nvmet target too
		# (Linux 6.1 under TCG): QD 16 there.
		sq=$((qd == 64 ? 16 : qd))
		printf '[128k-seq-%s-qd%s]\nioengine=%s\niodepth=%s\nrw=write\nbs=128k\nsize=%s\noffset=16M\n' $eng $sq $eng $sq 8M
		printf '[70-30-%s-qd%s]\nioengine=%s\niodepth=%s\nrw=randrw\nrwmixread=70\nbs=16k\nsize=%s\noffset=32M\n' $eng $qd $eng $qd $size
	done
done >>"$job"
fp_jobs fio-matrix fio "$job"
fp_dmesg_clean fio

# Namespace 2 is a buffered file: its reads of 256 KiB and more leave the
# target by sendfile, except on a connection with a data digest (this
# one), where they are copied.
fp_step "fio on namespace 2 (a buffered file): 1M and 256K writes verified by reads, copied with the data digest on, sent from the page cache without it"
fp_dmesg_mark
sent_key="flashpath_target_namespace_sendfile_bytes_total{nsid=\"2\",subsys=\"$NQN\"}"
job=$FP_WORK/sendfile.fio
printf '[global]\nfilename=%s\ndirect=1\nioengine=libaio\nverify=crc32c\nverify_fatal=1\ndo_verify=1\nstonewall\n' "$dev2" >"$job"
printf '[1m-seq]\nrw=write\nbs=1m\niodepth=4\nsize=16M\n[256k-rand]\nrw=randwrite\nbs=256k\niodepth=8\nsize=16M\noffset=16M\n' >>"$job"
sent0=$(fp_metric "$METRICS" "$sent_key")
[ -n "$sent0" ] || lab_fail "no $sent_key on $METRICS"
fp_jobs fio-digest fio "$job"
sent1=$(fp_metric "$METRICS" "$sent_key")
[ "$sent1" = "$sent0" ] || lab_fail "reads went out by sendfile on a connection with a data digest ($sent0 -> $sent1 bytes)"
fp_disconnect "$NQN"
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --hostid "$FP_HOSTID" --nr-io-queues 2
dev=$(fp_ns "$NQN" 1) || lab_fail "no namespace appeared"
dev2=$(fp_ns "$NQN" 2) || lab_fail "no namespace 2"
sed -i "s|^filename=.*|filename=$dev2|" "$job"
fp_jobs fio-sendfile fio "$job"
sent2=$(fp_metric "$METRICS" "$sent_key")
echo "sent from the page cache: $sent1 -> $sent2 bytes"
awk -v a="$sent2" -v b="$sent1" 'BEGIN { exit !(a - b >= 32 * 1048576) }' ||
	lab_fail "the verify reads of namespace 2 did not leave by sendfile ($sent1 -> $sent2 bytes)"
fp_dmesg_clean "fio on the buffered file namespace" 'Removing ctrl: NQN'

# ------------------------------------------ flush, write zeroes, discard
fp_step "nvme flush, write-zeroes, dsm --ad, blkdiscard: the ranges read back as zeros, the rest intact"
fp_dmesg_mark
for d in "$dev" "$dev2"; do
	lbs=$(blockdev --getss "$d")
	nsid=${d##*n}
	echo "$d: ${lbs}-byte blocks, discard_max_bytes $(cat /sys/block/${d##*/}/queue/discard_max_bytes)"
	head -c 1M /dev/urandom >"$FP_WORK/pat"
	fp_write "$d" 0 "$FP_WORK/pat"
	timeout 30 nvme flush "$d" -n "$nsid"
	cp "$FP_WORK/pat" "$FP_WORK/want"
	# write zeroes [64K, 80K); NLB is 0-based
	timeout 30 nvme write-zeroes "$d" -n "$nsid" -s $((65536 / lbs)) -c $((16384 / lbs - 1))
	dd if=/dev/zero of="$FP_WORK/want" bs=4096 seek=16 count=4 conv=notrunc status=none
	# deallocate [256K, 288K)
	timeout 30 nvme dsm "$d" -n "$nsid" --ad -s $((262144 / lbs)) -b $((32768 / lbs))
	dd if=/dev/zero of="$FP_WORK/want" bs=4096 seek=64 count=8 conv=notrunc status=none
	# blkdiscard [512K, 576K)
	[ "$(cat /sys/block/${d##*/}/queue/discard_max_bytes)" -gt 0 ] || lab_fail "$d: the host sees no discard support"
	timeout 30 blkdiscard -o 524288 -l 65536 "$d"
	dd if=/dev/zero of="$FP_WORK/want" bs=4096 seek=128 count=16 conv=notrunc status=none
	cmp <(fp_read "$d" 0 $((1 << 20))) "$FP_WORK/want" || lab_fail "$d: data after write-zeroes/dsm/blkdiscard is not what the spec says"
	timeout 30 nvme flush "$d" -n "$nsid"
	echo "$d: ok"
done
fp_dmesg_clean "flush/write-zeroes/discard"

# ------------------------------------------------------ hot add / remove
fp_step "namespace hot add (SIGHUP) while connected"
fp_dmesg_mark
config '{nsid: 3, backend: "mem:16MiB"}' "$FP_HOST2NQN"
fp_target_reload
dev3=$(fp_ns "$NQN" 3 30) || { fp_dmesg_new; lab_fail "namespace 3 did not appear"; }
echo "appeared: $dev3"
fp_dmesg_new | grep -i 'rescanning' || lab_fail "the kernel did not log a rescan"
[ "$(blockdev --getsize64 "$dev3")" = $((16 << 20)) ] || lab_fail "$dev3 size"
fp_write "$dev3" 0 "$FP_WORK/pat1m"
cmp <(fp_read "$dev3" 0 $((1 << 20))) "$FP_WORK/pat1m" || lab_fail "$dev3 read back differs"
subs=$(timeout 60 nvme discover -t tcp -a 127.0.0.1 -s "$FP_PORT" --hostnqn "$FP_HOST2NQN" --hostid "$FP_HOST2ID" -o json |
	jq -r '.records[].subnqn' | sort | tr '\n' ' ')
[ "$subs" = "$NQN $NQN2 " ] || lab_fail "after reload the other host discovers: $subs"
fp_dmesg_clean "hot add"

fp_step "namespace hot remove (SIGHUP) while connected"
fp_dmesg_mark
config
fp_target_reload
fp_ns_gone "$dev3" 30 || { fp_dmesg_new; lab_fail "$dev3 did not go away"; }
echo "gone: $dev3"
fp_dmesg_new | grep -i 'rescanning' || lab_fail "the kernel did not log a rescan"
cmp <(fp_read "$dev" $((8 << 20)) $((1 << 20))) "$FP_WORK/pat1m" || lab_fail "namespace 1 lost data across reloads"
[ "$(cat /sys/class/nvme/${ctrl##*/}/state)" = live ] || lab_fail "controller not live after reloads"
fp_dmesg_clean "hot remove"

# -------------------------------------------- persistent discovery controller
fp_step "persistent discovery: a change on the target reaches the host as NVME_AEN=0x70f002 (nvme-cli's autoconnect trigger)"
fp_dmesg_mark
timeout 120 udevadm monitor --kernel --property --subsystem-match=nvme >"$FP_WORK/uevents" 2>&1 &
mon=$!
t=100
until grep -q '^KERNEL' "$FP_WORK/uevents"; do t=$((t - 1)); [ $t -gt 0 ] || lab_fail "udevadm monitor did not start"; sleep 0.1; done
timeout 60 nvme discover -t tcp -a 127.0.0.1 -s "$FP_PORT" --persistent >/dev/null || lab_fail "nvme discover --persistent"
dctrl=$(fp_ctrl nqn.2014-08.org.nvmexpress.discovery) || lab_fail "no persistent discovery controller"
echo "persistent discovery controller: $dctrl"
config "" "$FP_HOST2NQN" # an access list changes: the discovery log's generation moves
fp_target_reload
t=300
until grep -q '^NVME_AEN=0x70f002' "$FP_WORK/uevents"; do
	t=$((t - 1)); [ $t -gt 0 ] || { cat "$FP_WORK/uevents"; lab_fail "no discovery log change uevent in 30 s"; }
	sleep 0.1
done
grep -B4 '^NVME_AEN=0x70f002' "$FP_WORK/uevents" | grep -E '^(ACTION|DEVNAME|NVME_AEN)' | sort -u
kill "$mon" 2>/dev/null || true
wait "$mon" 2>/dev/null || true
timeout 30 nvme disconnect -d "$dctrl" >/dev/null || lab_fail "disconnect the discovery controller"
config
fp_target_reload
fp_dmesg_clean "persistent discovery"

fp_step "disconnect"
fp_disconnect "$NQN"

# ---------------------------------- the shipped examples: discovery on 8009
# deploy/target.yaml as it is (I/O on 4420, the discovery service on 8009):
# nvme-cli's discover and connect-all with no port (8009 for discovery)
# find its subsystem at 4420 and connect it; so does the initiator daemon
# with deploy/initiator.yaml as it is.
DEMO=nqn.2026-11.io.flashpath:demo
fp_step "deploy/target.yaml: nvme discover -t tcp -a 127.0.0.1 (port 8009) lists $DEMO at 4420; connect-all connects it"
fp_target_stop
fp_target_start "$LAB_CWD/deploy/target.yaml"
grep '^discovery on\|^  discover:\|^  connect all:' "$FP_TGT_LOG"
fp_dmesg_mark
recs=$(timeout 60 nvme discover -t tcp -a 127.0.0.1 -o json | jq -r '.records[] | "\(.subnqn) \(.trsvcid)"')
echo "$recs"
[ "$recs" = "$DEMO 4420" ] || lab_fail "nvme discover on port 8009 lists: $recs"
timeout 60 nvme connect-all -t tcp -a 127.0.0.1 || lab_fail "nvme connect-all -t tcp -a 127.0.0.1"
dev=$(fp_ns "$DEMO" 1) || lab_fail "connect-all: no namespace of $DEMO"
addr=$(cat "/sys/class/nvme/$(fp_ctrl "$DEMO")/address")
[[ $addr == *trsvcid=4420* ]] || lab_fail "connect-all connected $addr, want port 4420"
fp_write "$dev" 0 "$FP_WORK/pat1m"
cmp <(fp_read "$dev" 0 $((1 << 20))) "$FP_WORK/pat1m" || lab_fail "read back differs"
fp_disconnect "$DEMO"
fp_step "flashpath initiator --config deploy/initiator.yaml --once connects $DEMO through discovery"
"$FP" initiator --config "$LAB_CWD/deploy/initiator.yaml" --once || lab_fail "flashpath initiator with deploy/initiator.yaml"
dev=$(fp_ns "$DEMO" 1) || lab_fail "the initiator daemon: no namespace of $DEMO"
cmp <(fp_read "$dev" 0 $((1 << 20))) "$FP_WORK/pat1m" || lab_fail "read back through the daemon's connection differs"
tmo=/sys/class/nvme/$(fp_ctrl "$DEMO")/ctrl_loss_tmo # deploy/initiator.yaml: 10m
[ ! -e "$tmo" ] || [ "$(cat "$tmo")" = 600 ] || lab_fail "ctrl_loss_tmo $(cat "$tmo"), want 600 (10m)"
fp_disconnect "$DEMO"
fp_dmesg_clean "the shipped examples" 'Removing ctrl: NQN'

if dmesg | grep -E 'WARNING:|BUG:|Call Trace'; then
	lab_fail "kernel warning"
fi
grep -E 'level=(WARN|ERROR)' "$FP_TGT_LOG" || true
echo PASS
