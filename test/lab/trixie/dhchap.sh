#!/bin/bash
# Guest script (LAB_SUITE=trixie: kernel 6.12, nvme-cli 2.13): in-band
# authentication (DH-HMAC-CHAP) between flashpath and Linux, both ways.
#  1. The kernel host (nvme connect --dhchap-secret/--dhchap-ctrl-secret)
#     against flashpath's target: refused without a key and with a wrong
#     one, connected one way and both ways, for each hash and DH group the
#     kernel offers; fio verifies data over an authenticated connection.
#  2. flashpath's host (flashpath io, bench nvme-tcp) against the kernel
#     target (nvmet hosts/NQN/dhchap_key, dhchap_ctrl_key).
# Run from the checkout: LAB_SUITE=trixie ../shared/lab/vm-run test/lab/trixie/dhchap.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2026-12.io.flashpath:auth
KNQN=nqn.2026-12.io.flashpath:kernel-auth
KPORT=4421

fp_init
trap 'rc=$?; set +e; timeout 30 nvme disconnect-all >/dev/null 2>&1; lab_nvmet_clear; trap - EXIT; (exit $rc); fp_cleanup' EXIT
uname -r; nvme version | head -n 1

fp_step "keys: nvme gen-dhchap-key (host: SHA-256 transform; controller: SHA-384)"
host_key=$(nvme gen-dhchap-key --nqn "$FP_HOSTNQN" --hmac 1)
ctrl_key=$(nvme gen-dhchap-key --nqn "$NQN" --hmac 2)
bad_key=$(nvme gen-dhchap-key --nqn "$FP_HOSTNQN" --hmac 1)
umask 077
echo "$host_key" >"$FP_WORK/host.key"
echo "$ctrl_key" >"$FP_WORK/ctrl.key"

# target_with HASHES DHGROUPS — (re)start flashpath's target accepting them.
target_with() {
	fp_target_stop TERM
	cat >"$FP_WORK/auth.yaml" <<CONF
listeners: [tcp://127.0.0.1:$FP_PORT]
dhchap_hashes: [$1]
dhchap_dhgroups: [$2]
subsystems:
  - nqn: $NQN
    allowed_hosts:
      - nqn: $FP_HOSTNQN
        dhchap_key_file: $FP_WORK/host.key
        dhchap_ctrl_key_file: $FP_WORK/ctrl.key
    namespaces:
      - backend: mem:64MiB
CONF
	fp_target_start "$FP_WORK/auth.yaml"
}

# refused WHAT ARGS... — nvme connect must fail.
refused() {
	local what=$1
	shift
	if fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" "$@" 2>"$FP_WORK/refused.err"; then
		lab_fail "kernel host connected $what"
	fi
	echo "refused $what: $(tail -n 1 "$FP_WORK/refused.err")"
}

target_with "sha512, sha384, sha256" "ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144, ffdhe8192, \"null\""

fp_step "kernel host → flashpath target: refused without a key, with a wrong key, with a wrong controller key"
refused "without a key"
refused "with a wrong key" --dhchap-secret "$bad_key"
refused "with a wrong controller key" --dhchap-secret "$host_key" --dhchap-ctrl-secret "$(nvme gen-dhchap-key --nqn "$NQN" --hmac 2)"
grep -c "authentication failed" "$FP_TGT_LOG" || lab_fail "the target logged no failed authentication"

fp_step "kernel host → flashpath target: one way (host key only)"
fp_dmesg_mark
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --dhchap-secret "$host_key"
dev=$(lab_nvme_ns "$NQN" 30) || lab_fail "no namespace after an authenticated connect"
dd if="$dev" of=/dev/null bs=1M count=4 iflag=direct status=none
fp_dmesg_new | grep -i "authenticated" || true
fp_disconnect "$NQN"

fp_step "kernel host → flashpath target: both ways, fio verify"
fp_dmesg_mark
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --dhchap-secret "$host_key" --dhchap-ctrl-secret "$ctrl_key"
dev=$(lab_nvme_ns "$NQN" 30) || lab_fail "no namespace after a bidirectional connect"
fp_dmesg_new | grep -i "controller authenticated" || lab_fail "the kernel did not report the controller authenticated"
fio --name=auth --filename="$dev" --rw=randwrite --bs=4k --size=8M --iodepth=8 --ioengine=io_uring \
	--direct=1 --verify=crc32c --output-format=terse >"$FP_WORK/fio.txt" || lab_fail "fio verify over an authenticated connection"

fp_step "key rotation: the target reloads a new host key, the connected kernel host re-authenticates with it"
new_key=$(nvme gen-dhchap-key --nqn "$FP_HOSTNQN" --hmac 3)
echo "$new_key" >"$FP_WORK/host.key"
fp_target_reload
ctrl=$(fp_ctrl "$NQN") || lab_fail "no controller for $NQN"
fp_dmesg_mark
echo "$new_key" >"/sys/class/nvme/$ctrl/dhchap_secret"
t=300
until fp_dmesg_new | fp_has "qid 0: authenticated"; do
	t=$((t - 1)); [ $t -gt 0 ] || { fp_dmesg_new; lab_fail "no re-authentication within 30 s"; }
	sleep 0.1
done
fp_dmesg_new | grep -i "authenticat"
dd if="$dev" of=/dev/null bs=1M count=4 iflag=direct status=none || lab_fail "I/O after re-authentication"
fp_disconnect "$NQN"
refused "with the rotated-out key" --dhchap-secret "$host_key"
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --dhchap-secret "$new_key" --nr-io-queues 1
lab_nvme_ns "$NQN" 30 >/dev/null || lab_fail "no namespace with the new key"
fp_disconnect "$NQN"
echo "$host_key" >"$FP_WORK/host.key"
grep "host authenticated" "$FP_TGT_LOG" | tail -n 2
n=$(grep -c "host authenticated" "$FP_TGT_LOG")
[ "$n" -ge 4 ] || lab_fail "only $n queues authenticated (admin and I/O queues of the connects)"

# ffdhe8192 is left out: under the lab's emulated CPU the kernel host takes
# about 9 s for its admin queue's exchange, close to the target's 10 s bound
# on each authentication step (it passes, but would be a flaky test; the
# unit and e2e tests cover the group).
for combo in "sha256:null" "sha384:ffdhe3072" "sha512:ffdhe4096" "sha256:ffdhe6144"; do
	h=${combo%%:*} g=${combo##*:}
	fp_step "kernel host → flashpath target: $h with DH group $g, both ways"
	target_with "$h" "\"$g\""
	fp_dmesg_mark
	fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --dhchap-secret "$host_key" --dhchap-ctrl-secret "$ctrl_key" --nr-io-queues 1
	dev=$(lab_nvme_ns "$NQN" 30) || lab_fail "no namespace with $h/$g"
	dd if="$dev" of=/dev/null bs=1M count=1 iflag=direct status=none
	fp_dmesg_new | grep -i "authenticated with hash" || true
	grep -q "hash=$h dhgroup=$g" "$FP_TGT_LOG" || lab_fail "the target did not log $h/$g"
	fp_disconnect "$NQN"
done
fp_target_stop TERM

fp_step "kernel target: $KNQN with host and controller keys (hmac(sha512), ffdhe3072)"
modprobe nvmet-tcp
fp_nvmet_file "$KNQN" "$FP_WORK/nvmet.img" $((64 << 20))
s=$LAB_NVMET/subsystems/$KNQN
echo 0 >"$s/attr_allow_any_host"
h=$LAB_NVMET/hosts/$FP_HOSTNQN
mkdir -p "$h"
echo "$host_key" >"$h/dhchap_key"
echo "$ctrl_key" >"$h/dhchap_ctrl_key"
echo "hmac(sha512)" >"$h/dhchap_hash"
echo ffdhe3072 >"$h/dhchap_dhgroup"
ln -s "$h" "$s/allowed_hosts/$FP_HOSTNQN"
lab_nvmet_port 2 tcp 127.0.0.1 "$KPORT" "$KNQN"

io=(timeout 120 "$FP" io --addr "tcp://127.0.0.1:$KPORT" --nqn "$KNQN" --hostnqn "$FP_HOSTNQN")
fp_step "flashpath host → kernel target: refused without a key, with a wrong controller key"
if "${io[@]}" identify 2>"$FP_WORK/io.err"; then lab_fail "flashpath io connected without a key"; fi
cat "$FP_WORK/io.err"
grep -q "requires DH-HMAC-CHAP" "$FP_WORK/io.err" || lab_fail "the error does not say the target requires authentication"
if "${io[@]}" --dhchap-secret "$host_key" --dhchap-ctrl-secret "$bad_key" identify 2>"$FP_WORK/io.err"; then
	lab_fail "flashpath io accepted a controller that does not hold the controller key"
fi
cat "$FP_WORK/io.err"

fp_step "flashpath host → kernel target: both ways, write and read back"
head -c 1M /dev/urandom >"$FP_WORK/pat"
"${io[@]}" --dhchap-secret "@$FP_WORK/host.key" --dhchap-ctrl-secret "$ctrl_key" write --offset 1048576 --in "$FP_WORK/pat"
"${io[@]}" --dhchap-secret "$host_key" read --offset 1048576 --length 1MiB --out "$FP_WORK/back"
cmp "$FP_WORK/pat" "$FP_WORK/back" || lab_fail "read back differs"
cmp <(dd if="$FP_WORK/nvmet.img" bs=1M skip=1 count=1 status=none) "$FP_WORK/pat" || lab_fail "the kernel target's file differs"

fp_step "flashpath bench --ioengine nvme-tcp with dhchap_secret, verified"
fp_bench_verified auth "tcp://127.0.0.1:$KPORT/$KNQN/1" "dhchap_secret=$host_key" "dhchap_ctrl_secret=$ctrl_key"
echo; echo "PASS: DH-HMAC-CHAP between flashpath and Linux, both directions"
