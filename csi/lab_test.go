package csi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/flashpath/flashpath/initiator/kernel"
	"github.com/flashpath/flashpath/spdk"
	"github.com/flashpath/flashpath/target/server"
)

// TestLabNode runs the node side for real: the kernel's NVMe/TCP host
// (two addresses: native multipath), mkfs and mount(2) against an
// in-process flashpath target, as
// test/lab/csi-node.sh runs it in the lab VM (FLASHPATH_LAB_CSI=1, as
// root, nvme-tcp loaded). A volume is created, published to this host,
// staged (connected, formatted ext4, mounted), published into a "pod"
// folder where a file is written, unpublished and unstaged (unmounted,
// disconnected); staged again, the file is still there; as a block
// volume the pod gets the device itself; once unpublished from this host
// the target refuses its connect.
func TestLabNode(t *testing.T) {
	if os.Getenv("FLASHPATH_LAB_CSI") == "" {
		t.Skip("the lab's (test/lab/csi-node.sh): set FLASHPATH_LAB_CSI=1 as root with nvme-tcp loaded")
	}
	hostNQN := strings.TrimSpace(readFile(t, "/etc/nvme/hostnqn"))
	ctx := context.Background()
	dir := t.TempDir()
	vols := filepath.Join(dir, "volumes")
	os.Mkdir(vols, 0o700)
	sock := filepath.Join(dir, "spdk.sock")
	// Two listeners: two paths, which the kernel's native multipath
	// joins into one namespace device (the guest's ports are free).
	srv, err := server.Start(&server.Config{Listeners: []string{"tcp://127.0.0.1:4420", "tcp://127.0.0.1:4421"}, RPCSocket: sock}, server.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	rs := spdk.New(srv, spdk.Options{Logger: quietLog(), VolumeDir: vols})
	if err := rs.Serve(sock); err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	addrs := []string{"tcp://127.0.0.1:4420", "tcp://127.0.0.1:4421"}
	hos := NewHostOS(quietLog())
	d, err := New(Options{Logger: quietLog(),
		Controller: &Config{Targets: []TargetConfig{{Name: "lab", RPC: "unix://" + sock, Addresses: addrs}}},
		Node:       &NodeOptions{HostNQN: hostNQN, OS: hos}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { // whatever failed, leave no controller behind
		cs, _ := kernel.Default.Controllers()
		for _, c := range cs {
			if strings.HasPrefix(c.SubNQN, nqnPrefix) {
				kernel.Default.Disconnect(c.Name)
			}
		}
	}()

	r, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "lab-pvc", VolumeCapabilities: labMountCap, CapacityRange: &csi.CapacityRange{RequiredBytes: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	id, nqn := r.Volume.VolumeId, r.Volume.VolumeContext["nqn"]
	pr, err := d.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: hostNQN, VolumeCapability: labMountCap[0]})
	if err != nil {
		t.Fatal(err)
	}
	staging, pod := filepath.Join(dir, "staging"), filepath.Join(dir, "pod")
	stage := &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: labMountCap[0], PublishContext: pr.PublishContext}
	pub := &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: pod, VolumeCapability: labMountCap[0]}
	unpub := &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: pod}
	unstage := &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.NodeStageVolume(ctx, stage))
	must(d.NodeStageVolume(ctx, stage)) // idempotent
	dev, _ := hos.Device(nqn)
	if cs, err := hos.controllers(nqn); err != nil || len(cs) != 2 {
		t.Fatalf("controllers of %s: %+v %v: want one per address", nqn, cs, err)
	} else {
		for _, c := range cs {
			if len(c.Namespaces) != 1 || "/dev/"+c.Namespaces[0] != dev {
				t.Fatalf("controller %s has namespaces %v: want the one multipath device %s", c.Name, c.Namespaces, dev)
			}
		}
		t.Logf("two paths: %s (%s) and %s (%s) under %s", cs[0].Name, cs[0].Address, cs[1].Name, cs[1].Address, dev)
	}
	if m := mountLine(t, staging); m == "" || !strings.Contains(m, " ext4 ") || !strings.Contains(m, dev) {
		t.Fatalf("staging mount %q: want %s as ext4", m, dev)
	}
	t.Logf("staged: %s", mountLine(t, staging))
	must(d.NodePublishVolume(ctx, pub))
	if err := os.WriteFile(filepath.Join(pod, "checkpoint"), []byte("step 1000"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: pod})
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Usage[0]; b.Total <= 48<<20 || b.Total > 64<<20 || b.Used <= 0 || b.Available <= 0 {
		t.Fatalf("file system stats %v: want the 64 MiB volume's", st.Usage)
	}
	must(d.NodeUnpublishVolume(ctx, unpub))
	must(d.NodeUnstageVolume(ctx, unstage))
	if m := mountLine(t, staging); m != "" {
		t.Fatalf("still mounted after unstage: %s", m)
	}
	if dev, _ := hos.Device(nqn); dev != "" {
		t.Fatalf("still connected after unstage: %s", dev)
	}

	must(d.NodeStageVolume(ctx, stage)) // formatted already: mounted as it is
	must(d.NodePublishVolume(ctx, pub))
	if b, err := os.ReadFile(filepath.Join(pod, "checkpoint")); err != nil || string(b) != "step 1000" {
		t.Fatalf("after staging again: %q %v", b, err)
	}
	must(d.NodeUnpublishVolume(ctx, unpub))
	must(d.NodeUnstageVolume(ctx, unstage))

	// Block: the pod's path is the device.
	stage.VolumeCapability = labBlockCap
	blk := filepath.Join(dir, "pod-dev")
	must(d.NodeStageVolume(ctx, stage))
	must(d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: blk, VolumeCapability: labBlockCap}))
	f, err := os.Open(blk)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 2048)
	_, err = f.ReadAt(head, 0)
	f.Close()
	if err != nil || !bytes.Equal(head[1080:1082], []byte{0x53, 0xef}) { // ext4's superblock magic at 1024+56
		t.Fatalf("the block device bound at %s: %v, no ext4 superblock", blk, err)
	}
	if st, err := d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: blk}); err != nil || st.Usage[0].Total != 64<<20 {
		t.Fatalf("block stats %v %v: want 64 MiB", st, err)
	}
	must(d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: blk}))
	must(d.NodeUnstageVolume(ctx, unstage))

	// Unpublished: the target refuses this host.
	must(d.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: hostNQN}))
	stage.VolumeCapability = labMountCap[0]
	_, err = d.NodeStageVolume(ctx, stage)
	wantCode(t, err, codes.Internal)
	t.Logf("refused once unpublished: %v", err)
	must(d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}))
}

var labMountCap = []*csi.VolumeCapability{{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}}

var labBlockCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

func readFileBytes(t *testing.T, p string) []byte { return []byte(readFile(t, p)) }

// writeKey writes the private key of tc's certificate to p (PEM).
func writeKey(t *testing.T, p string, tc *tls.Config) {
	der, err := x509.MarshalPKCS8PrivateKey(tc.Certificates[0].PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mountLine is /proc/self/mounts' line for the mount point p, or "".
func mountLine(t *testing.T, p string) string {
	for _, l := range strings.Split(readFile(t, "/proc/self/mounts"), "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == p {
			return l
		}
	}
	return ""
}
