package csi

import (
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
)

const testHostNQN = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"

// TestSanity runs csi-sanity (kubernetes-csi/csi-test) against the driver
// as Kubernetes deploys it, both services on one socket: the controller
// places volumes on two real in-process flashpath targets (one reached
// over HTTPS with a token, one on its Unix socket), the node side runs on
// the fake OS, whose connects succeed only where the target allows the
// node's host NQN.
func TestSanity(t *testing.T) {
	t1, t2 := startTargetTLS(t, true), startTarget(t)
	cfg := &Config{Targets: []TargetConfig{
		t1.config("rack1-a", true, map[string]string{TopologyRack: "rack1"}),
		t2.config("rack1-b", false, map[string]string{TopologyRack: "rack1"}),
	}}
	d, err := New(Options{Version: "test", Logger: quietLog(), Controller: cfg,
		Node: &NodeOptions{HostNQN: testHostNQN, Topology: map[string]string{TopologyRack: "rack1"}, OS: newFakeOS(t1, t2)}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "csi.sock")
	ln, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := d.NewServer()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	c := sanity.NewTestConfig()
	c.Address = "unix://" + sock
	c.TargetPath = filepath.Join(dir, "target")
	c.StagingPath = filepath.Join(dir, "staging")
	c.TestVolumeSize = 16 << 20
	c.IdempotentCount = 2
	sanity.Test(t, c)
}
