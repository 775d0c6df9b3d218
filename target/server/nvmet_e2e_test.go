package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	_ "github.com/flashpath/flashpath/initiator/tcp"
	"github.com/flashpath/flashpath/internal/testutil"
)

// TestNvmetJSONEndToEnd: a target configured by the file nvmetcli save
// writes serves its file namespace over 127.0.0.1 to the host the file
// allows, with the DH-HMAC-CHAP key the file gives it: a block written
// reads back, and lands in the file; a host without the key is refused.
// Reloading the edited file (what SIGHUP does) adds a namespace.
func TestNvmetJSONEndToEnd(t *testing.T) {
	const subNQN = "nqn.2026-01.io.example:nvmet"
	dir := t.TempDir()
	img := filepath.Join(dir, "ns1.img")
	if err := os.WriteFile(img, make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	key := secret(t)
	port := testutil.FreePort(t)
	doc := func(namespaces string) []byte {
		return fmt.Appendf(nil, `{
  "hosts": [{"nqn": %q, "dhchap": {"key": %q, "ctrl_key": "", "hash": "hmac(sha256)", "dhgroup": "null"}}],
  "ports": [{"portid": 1, "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": "%s", "treq": "not specified", "tsas": "none"},
             "param": {"inline_data_size": "-1"}, "referrals": [], "ana_groups": [{"grpid": 1, "ana": {"state": "optimized"}}],
             "subsystems": [%q]}],
  "subsystems": [{"nqn": %q, "attr": {"allow_any_host": "0", "serial": "e2e0000000000001", "model": "Linux", "version": "2.1"},
                  "allowed_hosts": [%q], "namespaces": [%s]}]
}`, hostA, key, port, subNQN, subNQN, hostA, namespaces)
	}
	ns1 := fmt.Sprintf(`{"nsid": 1, "enable": 1, "device": {"path": %q, "uuid": "3c1b7a52-9e0d-4f6a-8b21-5d7e9c0f4a13"}, "ana_grpid": 1}`, img)
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, doc(ns1), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	srv, err := Start(cfg, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	ctx := context.Background()
	addr := net.JoinHostPort("127.0.0.1", port)
	if c, err := initiator.Connect(ctx, initiator.Config{Addr: addr, SubNQN: subNQN, Options: initiator.Options{HostNQN: hostA, Logger: quiet}}); err == nil {
		c.Close()
		t.Fatal("a host without the DH-HMAC-CHAP key connected")
	}
	if c, err := initiator.Connect(ctx, initiator.Config{Addr: addr, SubNQN: subNQN, Options: initiator.Options{HostNQN: hostB, DHCHAPSecret: key, Logger: quiet}}); err == nil {
		c.Close()
		t.Fatal("a host the file does not allow connected")
	}
	ctrl, err := initiator.Connect(ctx, initiator.Config{Addr: addr, SubNQN: subNQN, Options: initiator.Options{HostNQN: hostA, DHCHAPSecret: key, Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	ns, err := ctrl.Namespace(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4096)
	rand.Read(data)
	const off = 64 << 10
	if _, err := ns.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := ns.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the block read back differs from the block written")
	}
	onDisk, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk[off:off+len(data)], data) {
		t.Fatal("the block written is not in the namespace's file")
	}

	// Edit the file as nvmetcli save would after adding a namespace, and
	// reload it.
	img2 := filepath.Join(dir, "ns2.img")
	if err := os.WriteFile(img2, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ns2 := fmt.Sprintf(`{"nsid": 2, "enable": 1, "device": {"path": %q}}`, img2)
	if err := os.WriteFile(path, doc(ns1+", "+ns2), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = Load(path); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	second, err := ctrl.Namespace(ctx, 2)
	if err != nil {
		t.Fatalf("namespace 2 after the reload: %v", err)
	}
	if _, err := second.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := second.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("namespace 2: read back %v, equal %v", err, bytes.Equal(got, data))
	}
}
