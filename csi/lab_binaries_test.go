package csi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestLabBinaries runs the driver as it is deployed, in the lab VM
// (test/lab/csi-node.sh: FLASHPATH_LAB_CSI=1, FP the flashpath binary):
// `flashpath target` with its JSON-RPC over HTTPS, a volume folder and
// its state in a file (--rpc-state),
// `flashpath csi --controller --node` on a Unix socket, and the calls
// Kubernetes' sidecars and kubelet make, over gRPC: create (in the node's
// rack), publish, stage (xfs where the guest has mkfs.xfs; mount options
// noatime, a flag, and discard, the file system's), publish into
// a pod, a file written and read back; the target restarted, a write
// and its fsync go through; then all undone; both daemons stop cleanly
// on SIGTERM.
func TestLabBinaries(t *testing.T) {
	fp := os.Getenv("FP")
	if os.Getenv("FLASHPATH_LAB_CSI") == "" || fp == "" {
		t.Skip("the lab's (test/lab/csi-node.sh): FLASHPATH_LAB_CSI=1 and FP=bin/flashpath, as root with nvme-tcp loaded")
	}
	hostNQN := strings.TrimSpace(readFile(t, "/etc/nvme/hostnqn"))
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	os.Mkdir(vols, 0o700)
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("lab-token-0123456789abcdef\n"), 0o600)
	tc, caFile := selfSigned(t)
	crt, key := filepath.Join(dir, "rpc.crt"), filepath.Join(dir, "rpc.key")
	os.WriteFile(crt, readFileBytes(t, caFile), 0o600)
	writeKey(t, key, tc)

	// As the README deploys it: the target keeps its JSON-RPC state in a
	// file and has no listeners of its own; the controller adds each
	// volume's.
	targetArgs := []string{"target", "--rpc-socket", filepath.Join(dir, "spdk.sock"), "--rpc-state", filepath.Join(dir, "state.json"),
		"--rpc-listen", "tcp://127.0.0.1:5260", "--rpc-token-file", token, "--rpc-tls-cert", crt, "--rpc-tls-key", key, "--volume-dir", vols}
	rpcLine := regexp.MustCompile(`^JSON-RPC over HTTP on (\S+) `)
	m, stopTarget := startDaemon(t, fp, rpcLine, targetArgs...)
	cfg := filepath.Join(dir, "targets.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "targets:\n- name: lab\n  rpc: https://%s\n  token_file: %s\n  ca_file: %s\n  addresses: [tcp://127.0.0.1:4430]\n  topology: {%s: r1}\n",
		m[1], token, caFile, TopologyRack), 0o600)
	sock := filepath.Join(dir, "csi.sock")
	startDaemon(t, fp, regexp.MustCompile(`CSI driver serving`), "csi", "--endpoint", "unix://"+sock, "--controller", cfg,
		"--node", "--topology", TopologyRack+"=r1")

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	cc, nc := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	info, err := nc.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || info.NodeId != hostNQN {
		t.Fatalf("node info %v %v: want the node ID %s", info, err, hostNQN)
	}
	// xfs where the guest has mkfs.xfs (make interop unpacks it into
	// bin/lab-xfs), else ext4.
	fstype, size := "ext4", int64(32<<20)
	if _, err := exec.LookPath("mkfs.xfs"); err == nil {
		fstype, size = "xfs", 320<<20 // xfs's smallest file system is 300 MiB
	}
	mountCap := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fstype, MountFlags: []string{"noatime", "discard"}}},
		AccessMode: labMountCap[0].AccessMode}
	r, err := cc.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "lab-binaries", VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		CapacityRange:             &csi.CapacityRange{RequiredBytes: size},
		AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{info.AccessibleTopology}}})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Volume.VolumeId
	pr, err := cc.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: info.NodeId, VolumeCapability: mountCap})
	if err != nil {
		t.Fatal(err)
	}
	staging, pod := filepath.Join(dir, "staging"), filepath.Join(dir, "pod")
	if _, err := nc.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: mountCap, PublishContext: pr.PublishContext}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: pod, VolumeCapability: mountCap}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pod, "weights"), []byte("layer 0"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(pod, "weights")); err != nil || string(b) != "layer 0" {
		t.Fatalf("read back %q %v", b, err)
	}
	if m := mountLine(t, staging); !strings.Contains(m, " "+fstype+" ") || !strings.Contains(m, "noatime") || !strings.Contains(m, "discard") {
		t.Fatalf("staging mount %q: want %s with the StorageClass's noatime and discard", m, fstype)
	}
	t.Logf("published at %s: %s", pod, mountLine(t, pod))

	// The target restarts: from its state file it serves the volume to
	// this host again, and the kernel's reconnect makes a write and its
	// fsync go through.
	if err := stopTarget(); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, fp, rpcLine, targetArgs...)
	f, err := os.Create(filepath.Join(pod, "after-restart"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("layer 1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync after the target's restart: %v", err)
	}
	f.Close()
	t.Log("fsync after the target's restart: done")
	for _, step := range []func() error{
		func() error {
			_, err := nc.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: pod})
			return err
		},
		func() error {
			_, err := nc.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
			return err
		},
		func() error {
			_, err := cc.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: info.NodeId})
			return err
		},
		func() error { _, err := cc.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(vols); len(ents) != 0 {
		t.Fatalf("volume folder after delete: %v", ents)
	}
}

// startDaemon runs FP with args until stop or the end of the test (then
// SIGTERM, and it must exit 0), and returns the first output line
// matching re.
func startDaemon(t *testing.T, fp string, re *regexp.Regexp, args ...string) (match []string, stop func() error) {
	t.Helper()
	cmd := exec.Command(fp, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for match == nil && sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		match = re.FindStringSubmatch(sc.Text())
	}
	go io.Copy(io.Discard, pr)
	if match == nil {
		cmd.Process.Kill()
		t.Fatalf("flashpath %s: no line matching %s (%v):\n%s", args[0], re, <-done, out.String())
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			if err = <-done; err != nil {
				err = fmt.Errorf("flashpath %s exited with %w", args[0], err)
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return match, stop
}
