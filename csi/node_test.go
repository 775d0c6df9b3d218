package csi

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/flashpath/flashpath/initiator/kernel"
	"github.com/flashpath/flashpath/initiator/kernel/kerneltest"
	"github.com/flashpath/flashpath/target/server"
)

var blockCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// TestNodeLifecycle: a volume the controller made and published is
// connected at every address, formatted once (xfs, as asked), mounted
// at the staging path and bound read-only into a pod; a block volume's
// device is bound onto a file; unstage disconnects. A node the volume is
// not published to cannot connect.
func TestNodeLifecycle(t *testing.T) {
	ctx := context.Background()
	tt := startTarget(t)
	tc := tt.config("t", true, nil)
	// A second address the target does not listen on yet: the
	// controller adds it for the volume (all of 127/8 is loopback).
	tc.Addresses = []string{tt.addr, strings.Replace(tt.addr, "127.0.0.1", "127.0.0.2", 1)}
	fos := newFakeOS(tt)
	d, err := New(Options{Logger: quietLog(), Controller: &Config{Targets: []TargetConfig{tc}},
		Node: &NodeOptions{HostNQN: testHostNQN, OS: fos}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	staging, pod := filepath.Join(dir, "staging"), filepath.Join(dir, "pods/p1/volumes/v")

	r, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "train-data", VolumeCapabilities: mountCap})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Volume.VolumeId
	nqn := r.Volume.VolumeContext["nqn"]
	if !slices.ContainsFunc(tt.srv.Ports(), func(p server.Port) bool { return "tcp://"+p.Addr == tc.Addresses[1] }) {
		t.Fatalf("the target listens on %v: want %s too", tt.srv.Ports(), tc.Addresses[1])
	}
	stage := &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: staging, VolumeCapability: mountCap[0], VolumeContext: r.Volume.VolumeContext}
	_, err = d.NodeStageVolume(ctx, stage)
	wantCode(t, err, codes.Internal) // not published: the target refuses this host

	pr, err := d.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: testHostNQN, VolumeCapability: mountCap[0]})
	if err != nil {
		t.Fatal(err)
	}
	stage.PublishContext = pr.PublishContext
	for range 2 {
		if _, err := d.NodeStageVolume(ctx, stage); err != nil {
			t.Fatal(err)
		}
	}
	dev, _ := fos.Device(nqn)
	if m, ok := fos.mountAt(staging); !ok || m.source != dev || m.fstype != "xfs" || fos.formats != 1 {
		t.Fatalf("staging mount %+v (%v), formats %d: want %s as xfs, formatted once", m, ok, fos.formats, dev)
	}
	if !slices.Equal(fos.addrs[nqn], tc.Addresses) {
		t.Errorf("connected at %v, want every address %v", fos.addrs[nqn], tc.Addresses)
	}
	pub := &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: pod, VolumeCapability: mountCap[0], Readonly: true}
	for range 2 {
		if _, err := d.NodePublishVolume(ctx, pub); err != nil {
			t.Fatal(err)
		}
	}
	if m, ok := fos.mountAt(pod); !ok || m.source != staging || !m.ro {
		t.Fatalf("pod mount %+v (%v): want a read-only bind of the staging path", m, ok)
	}
	if st, err := d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: pod}); err != nil || len(st.Usage) != 2 || st.Usage[0].Total <= 0 {
		t.Fatalf("stats %v %v", st, err)
	}
	_, err = d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: staging + "-not"})
	wantCode(t, err, codes.NotFound)
	_, err = d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging})
	wantCode(t, err, codes.Internal) // still bound into the pod
	for range 2 {
		if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: pod}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(pod); !os.IsNotExist(err) {
		t.Fatalf("target path left: %v", err)
	}
	for range 2 {
		if _, err := d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
			t.Fatal(err)
		}
	}
	if dev, _ := fos.Device(nqn); dev != "" {
		t.Fatalf("still connected: %s", dev)
	}

	// Block: no file system; the device is bound onto a file.
	blockPod := filepath.Join(dir, "pods/p2/dev")
	stage.VolumeCapability = blockCap
	if _, err := d.NodeStageVolume(ctx, stage); err != nil {
		t.Fatal(err)
	}
	if _, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: staging, TargetPath: blockPod, VolumeCapability: blockCap}); err != nil {
		t.Fatal(err)
	}
	dev, _ = fos.Device(nqn)
	if m, ok := fos.mountAt(blockPod); !ok || m.source != dev || m.fstype != "" {
		t.Fatalf("block target %+v (%v), want %s bound", m, ok, dev)
	}
	if fi, err := os.Stat(blockPod); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("block target path: %v %v", fi, err)
	}
	if fos.formats != 1 {
		t.Errorf("formats %d: a block volume was formatted", fos.formats)
	}
}

// TestHostOSConnect: the real NodeOS over a fake sysfs connects every
// address once (as the node's host NQN), finds the namespace's device,
// and disconnects every path.
func TestHostOSConnect(t *testing.T) {
	fs := kerneltest.New(t.TempDir())
	h := &HostOS{Kernel: fs, Log: quietLog()}
	const nqn = nqnPrefix + "csi-00112233445566778899aabbccddeeff"
	addrs := []string{"tcp://10.0.0.5:4420", "tcp://10.0.1.5"}
	for range 2 {
		dev, err := h.Connect(context.Background(), nqn, addrs, testHostNQN)
		if err != nil {
			t.Fatal(err)
		}
		if dev != "/dev/nvme0n1" {
			t.Fatalf("device %q", dev)
		}
	}
	want := []kernel.Params{
		{Transport: "tcp", TrAddr: "10.0.0.5", TrSvcID: "4420", NQN: nqn, HostNQN: testHostNQN},
		{Transport: "tcp", TrAddr: "10.0.1.5", TrSvcID: "4420", NQN: nqn, HostNQN: testHostNQN},
	}
	if !slices.Equal(fs.Params, want) {
		t.Fatalf("connects %+v, want %+v", fs.Params, want)
	}
	if err := h.Disconnect(nqn); err != nil {
		t.Fatal(err)
	}
	if cs, _ := fs.Controllers(); len(cs) != 0 {
		t.Fatalf("left: %+v", cs)
	}
	if dev, err := h.Device(nqn); dev != "" || err != nil {
		t.Fatalf("device after disconnect %q %v", dev, err)
	}
	fs.Refuse[nqn] = os.ErrPermission
	if _, err := h.Connect(context.Background(), nqn, addrs, testHostNQN); err == nil {
		t.Fatal("connect with every path refused succeeded")
	}
}
