#!/bin/bash
# Guest script (LAB_SUITE=trixie: kernel 6.12, nvme-cli 2.13, tlshd):
# flashpath's host over TLS 1.3 against the Linux kernel target. nvmet's
# port requires TLS (addr_tsas tls1.3, addr_treq required); tlshd runs its
# handshakes with the TLS PSK that nvme gen-tls-key --insert put in the
# .nvme keyring. flashpath io and bench nvme-tcp connect with the same
# configured PSK (--tls-key, tls_key=): refused without it, data written
# and read back with it, a bench job verified.
# Run from the checkout: LAB_SUITE=trixie ../shared/lab/vm-run test/lab/trixie/tls-host.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

KNQN=nqn.2026-12.io.flashpath:kernel-tls
KPORT=4422

fp_init
trap 'rc=$?; set +e; lab_nvmet_clear; fp_tlshd_stop; trap - EXIT; (exit $rc); fp_cleanup' EXIT
uname -r; nvme version | head -n 1

fp_step "tlshd with the .nvme keyring; a PSK for this host and $KNQN (nvme gen-tls-key --insert)"
fp_tlshd_start
psk=$(fp_tls_key --hostnqn "$FP_HOSTNQN" --subsysnqn "$KNQN" --insert)
umask 077
echo "$psk" >"$FP_WORK/tls.key"
keyctl show %:.nvme | tail -n +2

fp_step "kernel target: $KNQN on port $KPORT, TLS required"
modprobe nvmet-tcp
fp_nvmet_file "$KNQN" "$FP_WORK/nvmet.img" $((64 << 20))
p=$LAB_NVMET/ports/3
mkdir -p "$p"
echo tcp >"$p/addr_trtype"; echo ipv4 >"$p/addr_adrfam"; echo 127.0.0.1 >"$p/addr_traddr"; echo "$KPORT" >"$p/addr_trsvcid"
echo tls1.3 >"$p/addr_tsas"; echo required >"$p/addr_treq"
ln -s "$LAB_NVMET/subsystems/$KNQN" "$p/subsystems/$KNQN"

io=(timeout 120 "$FP" io --addr "tcp://127.0.0.1:$KPORT" --nqn "$KNQN" --hostnqn "$FP_HOSTNQN")
fp_step "flashpath host → kernel target: refused without TLS, and with a key the target does not hold"
if "${io[@]}" identify 2>"$FP_WORK/io.err"; then lab_fail "flashpath io connected without TLS"; fi
cat "$FP_WORK/io.err"
grep -q -- "--tls-key" "$FP_WORK/io.err" || lab_fail "the error does not say to give a TLS key"
other=$(fp_tls_key --hostnqn "$FP_HOSTNQN" --subsysnqn "$KNQN")
if "${io[@]}" --tls-key "$other" identify 2>"$FP_WORK/io.err"; then lab_fail "flashpath io connected with a key the target does not hold"; fi
cat "$FP_WORK/io.err"

fp_step "flashpath host → kernel target over TLS: write and read back"
head -c 1M /dev/urandom >"$FP_WORK/pat"
"${io[@]}" --tls-key "@$FP_WORK/tls.key" write --offset 1048576 --in "$FP_WORK/pat"
"${io[@]}" --tls --tls-key "$psk" read --offset 1048576 --length 1MiB --out "$FP_WORK/back"
cmp "$FP_WORK/pat" "$FP_WORK/back" || lab_fail "read back over TLS differs"
cmp <(dd if="$FP_WORK/nvmet.img" bs=1M skip=1 count=1 status=none) "$FP_WORK/pat" || lab_fail "the kernel target's file differs"

fp_step "flashpath bench --ioengine nvme-tcp with tls_key, verified"
fp_bench_verified tls "tcp://127.0.0.1:$KPORT/$KNQN/1" "tls_key=$psk"
grep -i -E "error|fail" "$FP_WORK/tlshd.log" | tail -n 5 || true
echo; echo "PASS: flashpath's host over TLS to the Linux kernel target"
