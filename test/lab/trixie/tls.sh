#!/bin/bash
# Guest script (LAB_SUITE=trixie: kernel 6.12, nvme-cli 2.13, tlshd): TLS 1.3
# between the Linux kernel host and flashpath's target.
#  - keys from nvme gen-tls-key, inserted into the .nvme keyring as the
#    kernel host needs them; flashpath's target gets the same configured
#    PSK (tls_key_file) and derives the TLS PSK itself;
#  - discovery reports TREQ (required / not required) and TSAS TLS 1.3,
#    and works over TLS;
#  - nvme connect --tls to a tls=required port: fio verify over TLS; which
#    PSK identity the kernel offered (version 0 or 1) is printed;
#  - a plain connect to the required port, a plain connect of the keyed
#    host to the optional port, and a wrong key are refused; a host
#    without a key connects plain to the optional port;
#  - the key on the command line (--tls --tls-key) works, and so does a
#    version 1 identity (the kernel prefers it when the keyring has one);
#  - the metrics count handshakes, failures and refused plain hosts.
# Found here (kernel 6.12, nvme-cli 2.13): keys inserted by nvme
# check-tls-key/gen-tls-key --insert get version 0 identities, which the
# kernel offers (NVMe0R01 ...); with --identity 1 it offers NVMe1R01 ...
# <digest>; --tls-key alone does not turn TLS on (give --tls too).
# Run from the checkout: LAB_SUITE=trixie ../shared/lab/vm-run test/lab/trixie/tls.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2026-12.io.flashpath:tls
DISC=nqn.2014-08.org.nvmexpress.discovery
OPT_PORT=4421 # tls=optional; FP_PORT (4420) is tls=required

fp_init
trap 'rc=$?; set +e; timeout 30 nvme disconnect-all >/dev/null 2>&1; fp_tlshd_stop; [ "$rc" = 0 ] || { echo "--- tlshd log"; tail -n 20 "$FP_WORK/tlshd.log"; }; trap - EXIT; (exit $rc); fp_cleanup' EXIT
uname -r; nvme version | head -n 1

fp_step "tlshd (handshakes for the kernel host, keys from the .nvme keyring)"
fp_tlshd_start

fp_step "keys: nvme gen-tls-key (the configured PSK), inserted for $NQN and for discovery"
umask 077
# insert_key SUBNQN [IDENTITY_VERSION] — put the retained PSK of $psk for
# this host and SUBNQN into the .nvme keyring, as the kernel host needs it.
insert_key() {
	nvme check-tls-key --hostnqn "$FP_HOSTNQN" --subsysnqn "$1" --keydata "$psk" --identity "${2:-0}" --insert ||
		lab_fail "nvme check-tls-key --insert for $1"
}
psk=$(fp_tls_key --hostnqn "$FP_HOSTNQN" --subsysnqn "$NQN")
echo "$psk" >"$FP_WORK/host.psk"
insert_key "$NQN"
insert_key "$DISC"
keyctl show %:.nvme | tail -n +2

cat >"$FP_WORK/tls.yaml" <<CONF
listeners:
  - tcp://127.0.0.1:$FP_PORT?tls=required
  - tcp://127.0.0.1:$OPT_PORT?tls=optional
metrics: 127.0.0.1:9420
subsystems:
  - nqn: $NQN
    allowed_hosts:
      - nqn: $FP_HOSTNQN
        tls_key_file: $FP_WORK/host.psk
      - $FP_HOST2NQN
    namespaces:
      - backend: mem:64MiB
CONF
fp_target_start "$FP_WORK/tls.yaml"
sed -n '/^serving/,/connect:/p' "$FP_TGT_LOG" | head -n 4

fp_step "discovery (plain, on the optional port): TREQ and TSAS of both ports"
timeout 60 nvme discover -t tcp -a 127.0.0.1 -s "$OPT_PORT" -o json >"$FP_WORK/disc.json" || lab_fail "nvme discover on the optional port"
jq -c '.records[] | {trsvcid, subnqn, treq, sectype}' "$FP_WORK/disc.json"
[ "$(jq -r --arg p "$FP_PORT" '.records[] | select(.trsvcid == $p) | .treq' "$FP_WORK/disc.json")" = "required" ] ||
	lab_fail "the tls=required port is not reported as requiring a secure channel"
jq -r --arg p "$OPT_PORT" '.records[] | select(.trsvcid == $p) | .treq' "$FP_WORK/disc.json" | fp_has "^not required" ||
	lab_fail "the tls=optional port is not reported as not requiring a secure channel"
[ "$(jq -r '[.records[] | .sectype] | unique | join(",")' "$FP_WORK/disc.json")" = "tls13" ] ||
	lab_fail "TSAS sectype is not tls13 on both ports"

fp_step "discovery over TLS on the required port (identity naming the discovery NQN)"
timeout 60 nvme discover -t tcp -a 127.0.0.1 -s "$FP_PORT" --tls -o json >"$FP_WORK/disc-tls.json" ||
	lab_fail "nvme discover --tls on the required port"
jq -e --arg n "$NQN" '[.records[] | select(.subnqn == $n)] | length == 2' "$FP_WORK/disc-tls.json" >/dev/null ||
	lab_fail "the discovery log over TLS does not list $NQN on both ports"
grep -o 'identity="NVMe[01]R0[12] [^ ]* [^ "]*' "$FP_TGT_LOG" | tail -n 1

fp_step "plain connect to the required port: refused"
if fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" 2>"$FP_WORK/plain.err"; then
	lab_fail "a plain connect to a tls=required port succeeded"
fi
tail -n 1 "$FP_WORK/plain.err"
grep -q "requires TLS" "$FP_TGT_LOG" || lab_fail "the target did not log why it closed the plain connection"

fp_step "nvme connect --tls to the required port, fio verify over TLS"
fp_dmesg_mark
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --tls
dev=$(lab_nvme_ns "$NQN" 30) || lab_fail "no namespace after a TLS connect"
ctrl=$(fp_ctrl "$NQN")
echo "$ctrl: tls_key $(cat "/sys/class/nvme/$ctrl/tls_key" 2>/dev/null || echo '?')"
fp_jobs tls fio --name=tls --filename="$dev" --rw=randwrite --bs=4k --size=8M --iodepth=8 \
	--ioengine=io_uring --direct=1 --verify=crc32c
fp_jobs tls-seq fio --name=tls-seq --filename="$dev" --rw=write --bs=128k --size=16M --offset=32M --iodepth=4 \
	--ioengine=io_uring --direct=1 --verify=crc32c
ids=$(grep -o 'identity="NVMe[01]R0[12]' "$FP_TGT_LOG" | sort | uniq -c)
echo "PSK identities the kernel host offered (count, version, hash):"; echo "$ids"
n=$(grep -c 'msg="admin queue connected".*tls=true' "$FP_TGT_LOG" || true)
[ "$n" -ge 2 ] || lab_fail "the target logged $n admin queues connected over TLS (discovery and $NQN)"
fp_dmesg_clean "I/O over TLS"
fp_disconnect "$NQN"

fp_step "optional port: the keyed host over TLS, a host without a key plain; the keyed host plain is refused"
OPT=(-t tcp -a 127.0.0.1 -s "$OPT_PORT" -n "$NQN")
timeout 60 nvme connect "${OPT[@]}" --hostnqn "$FP_HOSTNQN" --tls || lab_fail "TLS connect to the optional port"
lab_nvme_ns "$NQN" 30 >/dev/null || lab_fail "no namespace over TLS on the optional port"
fp_disconnect "$NQN"
timeout 60 nvme connect "${OPT[@]}" --hostnqn "$FP_HOST2NQN" --hostid "$FP_HOST2ID" || lab_fail "plain connect of a host without a key"
dev=$(lab_nvme_ns "$NQN" 30) || lab_fail "no namespace over plain TCP on the optional port"
echo "the same 4K job over plain TCP, for comparison (TCG: correctness, not speed):"
fp_jobs plain fio --name=plain --filename="$dev" --rw=randwrite --bs=4k --size=8M --iodepth=8 \
	--ioengine=io_uring --direct=1 --verify=crc32c
fp_disconnect "$NQN"
if timeout 60 nvme connect "${OPT[@]}" --hostnqn "$FP_HOSTNQN" 2>"$FP_WORK/plain-opt.err"; then
	lab_fail "the keyed host connected plain to the optional port"
fi
tail -n 1 "$FP_WORK/plain-opt.err"
grep -q "must connect over TLS" "$FP_TGT_LOG" || lab_fail "the target did not log why it refused the plain Connect"

fp_step "a wrong key: refused (another key under the same identity in the keyring)"
bad=$(fp_tls_key --hostnqn "$FP_HOSTNQN" --subsysnqn "$NQN")
good=$psk psk=$bad
insert_key "$NQN"
psk=$good
n=$(grep -c "TLS handshake failed" "$FP_TGT_LOG" || true)
if fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --tls --nr-io-queues 1 2>"$FP_WORK/bad.err"; then
	lab_fail "a connect with a wrong key succeeded"
fi
tail -n 1 "$FP_WORK/bad.err"
[ "$(grep -c "TLS handshake failed" "$FP_TGT_LOG")" -gt "$n" ] || lab_fail "the target logged no failed handshake"
grep "TLS handshake failed" "$FP_TGT_LOG" | tail -n 1
! grep -qF "${good#NVMeTLSkey-1:0?:}" "$FP_TGT_LOG" || lab_fail "the target logged the key"
! grep -qF "${bad#NVMeTLSkey-1:0?:}" "$FP_TGT_LOG" || lab_fail "the target logged the host's key"

fp_step "nvme connect --tls --tls-key (the key on the command line; the keyring still holds the wrong one)"
fp_dmesg_mark
if fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --tls --tls-key "$psk" --nr-io-queues 1 2>"$FP_WORK/tlskey.err"; then
	lab_nvme_ns "$NQN" 30 >/dev/null || lab_fail "no namespace after nvme connect --tls-key"
	echo "connected with --tls --tls-key"
	fp_disconnect "$NQN"
else
	cat "$FP_WORK/tlskey.err"; fp_dmesg_new | tail -n 5; grep "TLS" "$FP_TGT_LOG" | tail -n 3
	lab_fail "nvme connect --tls-key"
fi
insert_key "$NQN" # the good one in the keyring again

fp_step "identity version 1 (TP 8018): the same PSK inserted with --identity 1"
fp_dmesg_mark
before=$(grep -c 'identity="NVMe1' "$FP_TGT_LOG" || true)
insert_key "$NQN" 1
keyctl show %:.nvme | tail -n +2
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --tls --nr-io-queues 1 || lab_fail "TLS connect with a version 1 key in the keyring"
dev=$(lab_nvme_ns "$NQN" 30) || lab_fail "no namespace (version 1 key in the keyring)"
dd if="$dev" of=/dev/null bs=1M count=4 iflag=direct status=none
after=$(grep -c 'identity="NVMe1' "$FP_TGT_LOG" || true)
echo "version 1 identities offered: $((after - before)) ($(grep -o 'identity="NVMe[01]R0[12]' "$FP_TGT_LOG" | tail -n 1))"
fp_disconnect "$NQN"

fp_step "metrics"
busybox wget -qO- http://127.0.0.1:9420/metrics | grep '^flashpath_target_tls' || lab_fail "no TLS metrics"
echo; echo "PASS: the Linux kernel host over TLS 1.3 to flashpath's target"
