package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/spdk"
	"github.com/flashpath/flashpath/target/server"
)

// startRPCTarget starts an empty target with its JSON-RPC and returns a
// client for it and the socket.
func startRPCTarget(t *testing.T) (*rpcClient, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "spdk.sock")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(&server.Config{RPCSocket: sock}, server.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	rs, err := spdk.Listen(srv, sock, spdk.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rpcClient{t: t, c: conn, d: json.NewDecoder(conn)}, sock
}

// TestSPDKRPCKeyring: keys added with keyring_file_add_key and named by
// nvmf_subsystem_add_host (dhchap_key, dhchap_ctrlr_key, psk), as an SPDK
// operator's script does, make the host authenticate both ways on a plain
// listener and connect over TLS on a secure_channel one; a host without
// the keys is refused; save_config writes the keyring, and the target it
// restores takes the same hosts.
func TestSPDKRPCKeyring(t *testing.T) {
	rpc, sock := startRPCTarget(t)
	dir := t.TempDir()
	key, ctrl := newSecret(t, dhchap.SHA256), newSecret(t, dhchap.SHA384)
	psk := testPSK(dhchap.SHA256, 7)
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rpc.must("keyring_file_add_key", map[string]any{"name": "key0", "path": write("host.key", key.String())})
	rpc.must("keyring_file_add_key", map[string]any{"name": "ckey0", "path": write("ctrl.key", ctrl.String())})
	rpc.must("keyring_file_add_key", map[string]any{"name": "psk0", "path": write("host.psk", psk.String())})

	const nqn, tlsNQN = "nqn.2016-06.io.spdk:auth", "nqn.2016-06.io.spdk:tls"
	plain, secure := testutil.FreePort(t), testutil.FreePort(t)
	rpc.must("nvmf_create_transport", map[string]any{"trtype": "TCP"})
	for i, n := range []string{nqn, tlsNQN} {
		rpc.must("bdev_malloc_create", map[string]any{"name": fmt.Sprint("Malloc", i), "num_blocks": 4096, "block_size": 512})
		rpc.must("nvmf_create_subsystem", map[string]any{"nqn": n})
		rpc.must("nvmf_subsystem_add_ns", map[string]any{"nqn": n, "namespace": map[string]any{"bdev_name": fmt.Sprint("Malloc", i)}})
	}
	rpc.must("nvmf_subsystem_add_host", map[string]any{"nqn": nqn, "host": tlsHost, "dhchap_key": "key0", "dhchap_ctrlr_key": "ckey0"})
	rpc.must("nvmf_subsystem_add_host", map[string]any{"nqn": tlsNQN, "host": tlsHost, "psk": "psk0"})
	rpc.must("nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": map[string]any{"trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": plain}})
	rpc.must("nvmf_subsystem_add_listener", map[string]any{"nqn": tlsNQN, "secure_channel": true, "listen_address": map[string]any{"trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": secure}})

	c := connect(t, testTarget{addr: "127.0.0.1:" + plain, subnqn: nqn, nsid: 1}, func(c *initiator.Config) {
		c.DHCHAPSecret, c.DHCHAPCtrlSecret = key.String(), ctrl.String()
	})
	readWriteRandom(t, openNS(t, c, 1), 1)
	cfg := initiator.Config{Addr: "tcp://127.0.0.1:" + plain, SubNQN: nqn, IOQueues: 1, QueueDepth: 4, Options: initiator.Options{HostNQN: tlsHost}}
	if c, err := initiator.Connect(context.Background(), cfg); err == nil {
		c.Close()
		t.Error("a host without its DH-HMAC-CHAP key connected")
	}
	ct := connect(t, testTarget{addr: "127.0.0.1:" + secure, subnqn: tlsNQN, nsid: 1}, func(c *initiator.Config) { c.TLSKey = psk.String() })
	readWriteRandom(t, openNS(t, ct, 1), 1)

	var subs []struct {
		NQN   string `json:"nqn"`
		Hosts []struct {
			NQN            string `json:"nqn"`
			DHCHAPKey      string `json:"dhchap_key"`
			DHCHAPCtrlrKey string `json:"dhchap_ctrlr_key"`
		} `json:"hosts"`
	}
	json.Unmarshal(rpc.must("nvmf_get_subsystems", map[string]any{"nqn": nqn}), &subs)
	if len(subs) != 1 || len(subs[0].Hosts) != 1 || subs[0].Hosts[0].DHCHAPKey != "key0" || subs[0].Hosts[0].DHCHAPCtrlrKey != "ckey0" {
		t.Errorf("nvmf_get_subsystems hosts: %+v", subs)
	}
	if _, e := rpc.call("keyring_file_remove_key", map[string]any{"name": "key0"}); e == nil || !strings.Contains(e.Message, "in use") {
		t.Errorf("removing a key in use: %v", e)
	}
	saved, err := spdk.SaveConfig(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(saved)
	for _, want := range []string{`"keyring_file_add_key"`, `"psk":"psk0"`, `"dhchap_key":"key0"`, `"dhchap_ctrlr_key":"ckey0"`, `"secure_channel":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("save_config lacks %s:\n%s", want, b)
		}
	}

	// Keys replaced at run time: the old controller key no longer works.
	rpc.must("nvmf_subsystem_set_keys", map[string]any{"nqn": nqn, "host": tlsHost, "dhchap_key": "key0"})
	rpc.must("keyring_file_remove_key", map[string]any{"name": "ckey0"})
	c2 := connect(t, testTarget{addr: "127.0.0.1:" + plain, subnqn: nqn, nsid: 1}, func(c *initiator.Config) { c.DHCHAPSecret = key.String() })
	readWriteRandom(t, openNS(t, c2, 1), 1)
}
