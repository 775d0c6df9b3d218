package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	csispec "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// runUntil runs the CLI with args until the test ends (then as SIGTERM
// does), and returns the first line of its stdout or stderr that re
// matches, with its submatches.
func runUntil(t *testing.T, re *regexp.Regexp, args ...string) []string {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd()
	root.SetOut(pw)
	root.SetErr(pw)
	root.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	var m []string
	sc := bufio.NewScanner(pr)
	for m == nil && sc.Scan() {
		m = re.FindStringSubmatch(sc.Text())
	}
	go io.Copy(io.Discard, pr)
	if m == nil {
		cancel()
		t.Fatalf("%s: no line matching %s: %v", strings.Join(args, " "), re, <-done)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s exited with %v", args[0], err)
		}
	})
	return m
}

// TestCSICommand: `flashpath target` with the JSON-RPC over HTTP and a
// volume folder, `flashpath csi --controller` pointed at it, and a
// CreateVolume through the CSI socket makes the volume's file on the
// target and exports it.
func TestCSICommand(t *testing.T) {
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	token := filepath.Join(dir, "token")
	os.Mkdir(vols, 0o700)
	os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600)
	sock := filepath.Join(dir, "spdk.sock")
	m := runUntil(t, regexp.MustCompile(`^JSON-RPC over HTTP on (\S+) `), "target", "--listen", "tcp://127.0.0.1:0", "--log-level", "warn",
		"--rpc-socket", sock, "--rpc-listen", "tcp://127.0.0.1:0", "--rpc-token-file", token, "--volume-dir", vols)
	cfg := filepath.Join(dir, "targets.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "targets:\n- name: t1\n  rpc: http://%s\n  token_file: %s\n  addresses: [tcp://127.0.0.1:4420]\n", m[1], token), 0o600)
	csiSock := filepath.Join(dir, "csi.sock")
	runUntil(t, regexp.MustCompile(`CSI driver serving`), "csi", "--endpoint", "unix://"+csiSock, "--controller", cfg)

	conn, err := grpc.NewClient("unix://"+csiSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	info, err := csispec.NewIdentityClient(conn).GetPluginInfo(ctx, &csispec.GetPluginInfoRequest{})
	if err != nil || info.Name != "csi.flashpath.io" {
		t.Fatalf("plugin info %v %v", info, err)
	}
	r, err := csispec.NewControllerClient(conn).CreateVolume(ctx, &csispec.CreateVolumeRequest{Name: "pvc-cli", CapacityRange: &csispec.CapacityRange{RequiredBytes: 4 << 20},
		VolumeCapabilities: []*csispec.VolumeCapability{{AccessType: &csispec.VolumeCapability_Block{Block: &csispec.VolumeCapability_BlockVolume{}},
			AccessMode: &csispec.VolumeCapability_AccessMode{Mode: csispec.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, hash, _ := strings.Cut(r.Volume.VolumeId, "/")
	if fi, err := os.Stat(filepath.Join(vols, hash+".img")); err != nil || fi.Size() != 4<<20 {
		t.Fatalf("volume %s: file %v %v", r.Volume.VolumeId, fi, err)
	}
	if subs := subsystemsOver(t, sock); !strings.Contains(strings.Join(subs, " "), r.Volume.VolumeContext["nqn"]) {
		t.Fatalf("subsystems %v, want %s", subs, r.Volume.VolumeContext["nqn"])
	}
}

func TestCSIFlagErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc"), 0o600)
	for _, args := range [][]string{
		{"csi"},
		{"csi", "--controller", filepath.Join(dir, "missing.yaml")},
		{"csi", "--node", "--hostnqn", "nqn.x", "--topology", "rack"},
		{"csi", "--controller", short, "--topology", "a=b"},
		{"target", "--rpc-listen", "tcp://127.0.0.1:0"},
		{"target", "--rpc-listen", "127.0.0.1:0", "--rpc-token-file", short},
		{"target", "--rpc-listen", "tcp://127.0.0.1:0", "--rpc-token-file", short},
		{"target", "--volume-dir", "relative"},
	} {
		root := newRootCmd()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(args)
		if err := root.Execute(); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
