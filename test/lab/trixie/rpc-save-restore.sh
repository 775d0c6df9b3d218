#!/bin/bash
# Guest script (LAB_SUITE=trixie: kernel 6.12, nvme-cli 2.13): an SPDK-style
# target lifecycle against the Linux kernel host.
#  1. flashpath target --config setup.json starts from an SPDK JSON config
#     (as nvmf_tgt --json): keyring keys, an AIO bdev, a subsystem whose host
#     must authenticate both ways (DH-HMAC-CHAP keys named from the keyring),
#     SPDK's tuning methods. The kernel host is refused without the keys and
#     connects with them; data is written.
#  2. A namespace added over the JSON-RPC (flashpath rpc, rpc.py's shapes),
#     then save_config; the target stops.
#  3. flashpath target --config saved.json: the kernel host connects again
#     with its keys, reads back what it wrote, sees the namespace added over
#     RPC; save_config of the restored target is the same file; SIGHUP is
#     refused with a log line and the target keeps serving.
# Run from the checkout: LAB_SUITE=trixie ../shared/lab/vm-run test/lab/trixie/rpc-save-restore.sh
set -euo pipefail
. "$LAB_DIR/guest-lib.sh"
. "$LAB_CWD/test/lab/lib.sh"

NQN=nqn.2016-06.io.spdk:cnode1
SOCK=/run/flashpath/spdk.sock # the default as root
fp_init
uname -r; nvme version | head -n 1
rpc() { timeout 60 "$FP" rpc -s "$SOCK" "$@"; }

fp_step "keys (nvme gen-dhchap-key) in owner-only files, two backing files"
umask 077
host_key=$(nvme gen-dhchap-key --nqn "$FP_HOSTNQN" --hmac 1)
ctrl_key=$(nvme gen-dhchap-key --nqn "$NQN" --hmac 2)
echo "$host_key" >"$FP_WORK/host.key"
echo "$ctrl_key" >"$FP_WORK/ctrl.key"
truncate -s 64M "$FP_WORK/ns1.img" "$FP_WORK/ns2.img"
head -c 4M /dev/urandom >"$FP_WORK/pat"

cat >"$FP_WORK/setup.json" <<CONF
{"subsystems": [
  {"subsystem": "sock", "config": [
    {"method": "sock_impl_set_options", "params": {"impl_name": "posix", "recv_buf_size": 2097152, "send_buf_size": 2097152}}]},
  {"subsystem": "keyring", "config": [
    {"method": "keyring_file_add_key", "params": {"name": "key0", "path": "$FP_WORK/host.key"}},
    {"method": "keyring_file_add_key", "params": {"name": "ckey0", "path": "$FP_WORK/ctrl.key"}}]},
  {"subsystem": "bdev", "config": [
    {"method": "bdev_aio_create", "params": {"name": "Aio0", "filename": "$FP_WORK/ns1.img", "block_size": 512}},
    {"method": "bdev_wait_for_examine"}]},
  {"subsystem": "nvmf", "config": [
    {"method": "nvmf_create_transport", "params": {"trtype": "TCP", "max_queue_depth": 128}},
    {"method": "nvmf_create_subsystem", "params": {"nqn": "$NQN", "allow_any_host": false, "serial_number": "SPDK00000000000001", "model_number": "SPDK bdev Controller"}},
    {"method": "nvmf_subsystem_add_host", "params": {"nqn": "$NQN", "host": "$FP_HOSTNQN", "dhchap_key": "key0", "dhchap_ctrlr_key": "ckey0"}},
    {"method": "nvmf_subsystem_add_ns", "params": {"nqn": "$NQN", "namespace": {"bdev_name": "Aio0", "nsid": 1}}},
    {"method": "nvmf_subsystem_add_listener", "params": {"nqn": "$NQN", "listen_address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "$FP_PORT"}}}]}]}
CONF

fp_step "flashpath target --config setup.json (SPDK's JSON config)"
fp_target_start "$FP_WORK/setup.json"
rpc keyring_get_keys | fp_has '"name": "ckey0"' || lab_fail "keyring_get_keys lacks ckey0"
if fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" 2>"$FP_WORK/refused.err"; then
	lab_fail "the kernel host connected without its DH-HMAC-CHAP key"
fi
echo "refused without a key: $(tail -n 1 "$FP_WORK/refused.err")"
fp_dmesg_mark
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --dhchap-secret "$host_key" --dhchap-ctrl-secret "$ctrl_key"
ns1=$(fp_ns "$NQN" 1 30) || lab_fail "no namespace 1"
nvme id-ctrl "$ns1" | fp_has -E '^sn +: SPDK00000000000001' || lab_fail "serial: $(nvme id-ctrl "$ns1" | grep '^sn')"
fp_write "$ns1" $((8 << 20)) "$FP_WORK/pat"
cmp <(fp_read "$ns1" $((8 << 20)) $((4 << 20))) "$FP_WORK/pat" || lab_fail "namespace 1 read back differs"
fp_disconnect "$NQN"

fp_step "a namespace added over the JSON-RPC, then save_config"
rpc bdev_aio_create "{\"name\": \"Aio1\", \"filename\": \"$FP_WORK/ns2.img\", \"block_size\": 4096}"
rpc nvmf_subsystem_add_ns "{\"nqn\": \"$NQN\", \"namespace\": {\"bdev_name\": \"Aio1\", \"nsid\": 2}}"
rpc save_config >"$FP_WORK/saved.json"
grep -c '"method"' "$FP_WORK/saved.json"
grep -q '"dhchap_ctrlr_key": "ckey0"' "$FP_WORK/saved.json" || lab_fail "save_config lost the host's keys"
fp_target_stop TERM
cmp <(dd if="$FP_WORK/ns1.img" bs=1M skip=8 count=4 status=none) "$FP_WORK/pat" || lab_fail "ns1.img does not hold what the host wrote"

fp_step "flashpath target --config saved.json: the kernel host reads back its data"
fp_target_start "$FP_WORK/saved.json"
fp_connect -n "$NQN" --hostnqn "$FP_HOSTNQN" --dhchap-secret "$host_key" --dhchap-ctrl-secret "$ctrl_key"
ns1=$(fp_ns "$NQN" 1 30) || lab_fail "no namespace 1 after the restore"
ns2=$(fp_ns "$NQN" 2 30) || lab_fail "no namespace 2 (added over RPC) after the restore"
cmp <(fp_read "$ns1" $((8 << 20)) $((4 << 20))) "$FP_WORK/pat" || lab_fail "namespace 1 read back differs after the restore"
[ "$(blockdev --getss "$ns2")" = 4096 ] || lab_fail "namespace 2: $(blockdev --getss "$ns2")-byte blocks, want 4096"
rpc save_config >"$FP_WORK/saved2.json"
diff "$FP_WORK/saved.json" "$FP_WORK/saved2.json" || lab_fail "save_config of the restored target differs"

fp_step "SIGHUP: refused with a log line (an SPDK JSON config applies at start only); still serving"
kill -HUP "$FP_TGT"
t=100
until grep -q 'applies at start only' "$FP_TGT_LOG"; do
	t=$((t - 1)); [ $t -gt 0 ] || lab_fail "no log line for SIGHUP"
	sleep 0.1
done
cmp <(fp_read "$ns1" $((8 << 20)) $((4 << 20))) "$FP_WORK/pat" || lab_fail "namespace 1 after SIGHUP"
fp_dmesg_clean "SPDK JSON config save and restore" "authenticated|new ctrl|creating|new namespace"
fp_disconnect "$NQN"
echo; echo "PASS: SPDK JSON config start, keyring, save_config and restore with the kernel host"
