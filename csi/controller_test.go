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
	"google.golang.org/grpc/status"

	"github.com/flashpath/flashpath/spdk"
	"github.com/flashpath/flashpath/target/server"
)

var mountCap = []*csi.VolumeCapability{{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "xfs"}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}}

func wantCode(t *testing.T, err error, c codes.Code) {
	t.Helper()
	if status.Code(err) != c {
		t.Fatalf("%v, want %v", err, c)
	}
}

// twoRacks is a controller over three targets: a and b in rack1, c in
// rack2.
func twoRacks(t *testing.T) (*Driver, map[string]*testTarget) {
	ts := map[string]*testTarget{"a": startTarget(t), "b": startTarget(t), "c": startTarget(t)}
	cfg := &Config{Targets: []TargetConfig{
		ts["a"].config("a", true, map[string]string{TopologyRack: "rack1"}),
		ts["b"].config("b", false, map[string]string{TopologyRack: "rack1"}),
		ts["c"].config("c", true, map[string]string{TopologyRack: "rack2"}),
	}}
	d := newController(t, cfg)
	return d, ts
}

func topo(rack string) *csi.Topology {
	return &csi.Topology{Segments: map[string]string{TopologyRack: rack}}
}

// TestPlacement: the requisite topology and the StorageClass's targets
// decide where a volume may go, the preferred topology where it goes
// first; the volume's topology is its target's, and the target exports
// it at once (a subsystem named after the volume, no host allowed yet).
func TestPlacement(t *testing.T) {
	d, ts := twoRacks(t)
	ctx := context.Background()
	create := func(name string, params map[string]string, ar *csi.TopologyRequirement) (*csi.Volume, error) {
		r, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name, VolumeCapabilities: mountCap,
			CapacityRange: &csi.CapacityRange{RequiredBytes: 10<<20 + 1}, Parameters: params, AccessibilityRequirements: ar})
		return r.GetVolume(), err
	}
	v, err := create("in-rack2", nil, &csi.TopologyRequirement{Requisite: []*csi.Topology{topo("rack2")}})
	if err != nil {
		t.Fatal(err)
	}
	tn, h, _ := parseVolumeID(v.VolumeId)
	if tn != "c" || v.CapacityBytes != 11<<20 || v.AccessibleTopology[0].Segments[TopologyRack] != "rack2" {
		t.Fatalf("volume %s of %d bytes in %v: want target c (rack2), 11 MiB", v.VolumeId, v.CapacityBytes, v.AccessibleTopology)
	}
	if hosts, exported := ts["c"].allowed(volumeNQN(h)); !exported || len(hosts) != 0 {
		t.Fatalf("target c: subsystem %s exported %v with hosts %v, want exported to none yet", volumeNQN(h), exported, hosts)
	}
	if v.VolumeContext["nqn"] != volumeNQN(h) || v.VolumeContext["addresses"] != ts["c"].addr {
		t.Errorf("volume context %v", v.VolumeContext)
	}

	v, err = create("prefers-rack1", nil, &csi.TopologyRequirement{
		Requisite: []*csi.Topology{topo("rack2"), topo("rack1")}, Preferred: []*csi.Topology{topo("rack1")}})
	if err != nil {
		t.Fatal(err)
	}
	if tn, _, _ := parseVolumeID(v.VolumeId); tn != "a" && tn != "b" {
		t.Fatalf("preferred rack1, got target %s", tn)
	}
	v, err = create("only-b", map[string]string{ParamTargets: "b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tn, _, _ := parseVolumeID(v.VolumeId); tn != "b" {
		t.Fatalf("targets=b, got target %s", tn)
	}
	_, err = create("nowhere", map[string]string{ParamTargets: "b"}, &csi.TopologyRequirement{Requisite: []*csi.Topology{topo("rack2")}})
	wantCode(t, err, codes.ResourceExhausted)
	_, err = create("bad-target", map[string]string{ParamTargets: "z"}, nil)
	wantCode(t, err, codes.InvalidArgument)
	_, err = create("bad-param", map[string]string{"fsType": "ext4"}, nil)
	wantCode(t, err, codes.InvalidArgument)
	_, err = create("too-big", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "huge", VolumeCapabilities: mountCap, CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 60}})
	wantCode(t, err, codes.ResourceExhausted)
	_ = r

	// GetCapacity per rack: rack2 is target c alone.
	c2, err := d.GetCapacity(ctx, &csi.GetCapacityRequest{AccessibleTopology: topo("rack2")})
	if err != nil {
		t.Fatal(err)
	}
	lc, err := d.target("c").volumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The targets' volume directories share this machine's file system,
	// whose free space other tests change meanwhile: rack2's capacity is
	// target c's alone if it is near c's free space, where rack1 (a and b)
	// or all three would give twice or three times as much.
	if diff := c2.AvailableCapacity - lc.Free; diff < -lc.Free/8 || diff > lc.Free/8 || c2.MaximumVolumeSize.GetValue() > c2.AvailableCapacity {
		t.Errorf("rack2's capacity %d (largest %d), target c has %d free", c2.AvailableCapacity, c2.MaximumVolumeSize.GetValue(), lc.Free)
	}
}

// TestCreateIdempotentAcrossRestart: the controller keeps nothing: a
// CreateVolume repeated by a new controller after the target restarted
// (its subsystems gone, the volume's file still there) finds the volume
// by its name, on its target, and exports it again with its data; so
// does a ControllerPublishVolume after another restart.
func TestCreateIdempotentAcrossRestart(t *testing.T) {
	ctx := context.Background()
	tt := startTarget(t)
	other := startTarget(t)
	cfg := &Config{Targets: []TargetConfig{tt.config("one", true, nil), other.config("two", true, nil)}}
	d := newController(t, cfg)
	req := &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: mountCap, CapacityRange: &csi.CapacityRange{RequiredBytes: 8 << 20}}
	r1, err := d.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	tn, h, _ := parseVolumeID(r1.Volume.VolumeId)
	holder := map[string]*testTarget{"one": tt, "two": other}[tn]
	file := filepath.Join(holder.dir, h+".img")
	if err := os.WriteFile(file+".marker", nil, 0o600); err != nil { // a file that is not a volume is left alone
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("data written before the restart"), 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// Restart the holder: a new target and RPC over the same folder.
	holder.rpc.Close()
	holder.srv.Shutdown(ctx)
	srv, err := server.Start(&server.Config{RPCSocket: holder.sock}, server.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	holder.srv = srv
	holder.serveRPC(t)
	cfg.Targets[map[string]int{"one": 0, "two": 1}[tn]] = holder.config(tn, true, nil)
	if _, exported := holder.allowed(volumeNQN(h)); exported {
		t.Fatal("the restarted target exports the volume already")
	}

	d2 := newController(t, cfg)
	r2, err := d2.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Volume.VolumeId != r1.Volume.VolumeId || r2.Volume.CapacityBytes != r1.Volume.CapacityBytes {
		t.Fatalf("again: %s %d, first %s %d", r2.Volume.VolumeId, r2.Volume.CapacityBytes, r1.Volume.VolumeId, r1.Volume.CapacityBytes)
	}
	if _, exported := holder.allowed(volumeNQN(h)); !exported {
		t.Fatal("the volume is not exported again")
	}
	// The restarted target has no listeners of its own: the volume's
	// subsystem got one on the target's address.
	if ps := srv.Ports(); len(ps) != 1 || "tcp://"+ps[0].Addr != holder.addr {
		t.Fatalf("the restarted target listens on %v, want %s", ps, holder.addr)
	}
	ns := srv.Target.Subsystem(volumeNQN(h)).Namespace(1)
	buf := make([]byte, 4096)
	if err := ns.Backend.ReadAt(buf, 4096); err != nil || string(buf[:31]) != "data written before the restart" {
		t.Fatalf("namespace data %q %v", buf[:31], err)
	}
	// The other target was asked and has nothing.
	lo, err := d2.target(map[string]string{"one": "two", "two": "one"}[tn]).volumes(ctx)
	if err != nil || len(lo.Volumes) != 0 {
		t.Fatalf("the other target: %+v %v", lo, err)
	}

	// Restarted again, the volume is attached to a node without a
	// CreateVolume (a bound volume's next pod): ControllerPublishVolume
	// exports it again and allows the node.
	holder.rpc.Close()
	holder.srv.Shutdown(ctx)
	srv, err = server.Start(&server.Config{RPCSocket: holder.sock}, server.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	holder.srv = srv
	holder.serveRPC(t)
	cfg.Targets[map[string]int{"one": 0, "two": 1}[tn]] = holder.config(tn, true, nil)
	d3 := newController(t, cfg)
	if _, err := d3.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: r1.Volume.VolumeId, NodeId: testHostNQN, VolumeCapability: mountCap[0]}); err != nil {
		t.Fatal(err)
	}
	if hosts, exported := holder.allowed(volumeNQN(h)); !exported || !slices.Equal(hosts, []string{testHostNQN}) {
		t.Fatalf("after publish on the restarted target: exported %v, hosts %v", exported, hosts)
	}

	// A target that does not answer stops CreateVolume (it may hold
	// the volume), not DeleteVolume of a volume elsewhere.
	other.rpc.Close()
	holder.rpc.Close()
	_, err = d2.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-2", VolumeCapabilities: mountCap})
	wantCode(t, err, codes.Unavailable)
}

// TestPublish: ControllerPublishVolume allows the node's host NQN on the
// volume's subsystem and nobody else; a second node is refused while the
// first has it; unpublish takes the host away; a published volume is not
// deleted; delete removes the subsystem and the file.
func TestPublish(t *testing.T) {
	ctx := context.Background()
	tt := startTarget(t)
	d := newController(t, &Config{Targets: []TargetConfig{tt.config("t", true, nil)}})
	r, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc", VolumeCapabilities: mountCap})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Volume.VolumeId
	_, h, _ := parseVolumeID(id)
	nqn := volumeNQN(h)
	const nodeA, nodeB = "nqn.2014-08.org.nvmexpress:uuid:aaaa", "nqn.2014-08.org.nvmexpress:uuid:bbbb"
	pub := func(node string) (*csi.ControllerPublishVolumeResponse, error) {
		return d.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: node, VolumeCapability: mountCap[0]})
	}
	for range 2 {
		pr, err := pub(nodeA)
		if err != nil {
			t.Fatal(err)
		}
		if pr.PublishContext["nqn"] != nqn {
			t.Fatalf("publish context %v", pr.PublishContext)
		}
	}
	if hosts, _ := tt.allowed(nqn); !slices.Equal(hosts, []string{nodeA}) {
		t.Fatalf("allowed hosts %v, want node A's", hosts)
	}
	_, err = pub(nodeB)
	wantCode(t, err, codes.FailedPrecondition)
	if err := d.target("t").rpc.call(ctx, "flashpath_volume_create", map[string]any{"name": "by-hand", "size": 1 << 20}, nil); err != nil {
		t.Fatal(err)
	}
	lv, err := d.ListVolumes(ctx, &csi.ListVolumesRequest{}) // not the volume made by hand
	if err != nil || len(lv.Entries) != 1 || lv.Entries[0].Volume.VolumeId != id || !slices.Equal(lv.Entries[0].Status.PublishedNodeIds, []string{nodeA}) {
		t.Fatalf("list volumes %v %v: want %s published to node A", lv, err, id)
	}
	_, err = d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
	wantCode(t, err, codes.FailedPrecondition)
	for range 2 {
		if _, err := d.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id, NodeId: nodeA}); err != nil {
			t.Fatal(err)
		}
	}
	if hosts, exported := tt.allowed(nqn); len(hosts) != 0 || !exported {
		t.Fatalf("after unpublish: hosts %v exported %v", hosts, exported)
	}
	if _, err := pub(nodeB); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: id}); err != nil { // every node
		t.Fatal(err)
	}
	if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatal(err)
	}
	if _, exported := tt.allowed(nqn); exported || tt.srv.Target.Subsystem(nqn) != nil {
		t.Fatal("the subsystem is still there")
	}
	if _, err := os.Stat(filepath.Join(tt.dir, h+".img")); !os.IsNotExist(err) {
		t.Fatalf("the volume's file: %v", err)
	}
	_, err = pub(nodeA)
	wantCode(t, err, codes.NotFound)
}

// TestConfig: the controller's file is checked field by field.
func TestConfig(t *testing.T) {
	dir := t.TempDir()
	good := `targets:
  - name: rack1-a
    rpc: http://10.0.0.5:5260
    token_file: /etc/flashpath-csi/tokens/rack1-a
    addresses: [tcp://10.0.0.5:4420, tcp://10.0.1.5:4420]
    topology: {topology.flashpath.io/rack: rack1}
`
	p := filepath.Join(dir, "good.yaml")
	os.WriteFile(p, []byte(good), 0o600)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 1 || len(c.Targets[0].Addresses) != 2 || c.Targets[0].Topology[TopologyRack] != "rack1" {
		t.Fatalf("%+v", c)
	}
	for bad, want := range map[string]string{
		"targets: []": "targets: none",
		"targets: [{name: A, rpc: 'unix:///x', addresses: [tcp://h:1]}]":                                                  "targets[0].name",
		"targets: [{name: a, rpc: 'http://h:1', addresses: [tcp://h:1]}]":                                                 "targets[0].token_file",
		"targets: [{name: a, rpc: 'h:1', addresses: [tcp://h:1]}]":                                                        "targets[0].rpc",
		"targets: [{name: a, rpc: 'unix:///x', addresses: [h:1]}]":                                                        "targets[0].addresses[0]",
		"targets: [{name: a, rpc: 'unix:///x', addresses: [tcp://h:1], colour: blue}]":                                    "colour",
		"targets: [{name: a, rpc: 'unix:///x', addresses: [tcp://h]}, {name: a, rpc: 'unix:///y', addresses: [tcp://h]}]": "used twice",
	} {
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", bad, err, want)
		}
	}
}

// TestRPCTrust: an HTTPS target is reached only with its certificate
// trusted (ca_file) and with its token.
func TestRPCTrust(t *testing.T) {
	ctx := context.Background()
	tt := startTargetTLS(t, true)
	req := &csi.CreateVolumeRequest{Name: "pvc", VolumeCapabilities: mountCap}
	for _, c := range []struct {
		what string
		edit func(*TargetConfig)
		code codes.Code
	}{
		{"no ca_file: the system's roots", func(c *TargetConfig) { c.CAFile = "" }, codes.Unavailable},
		{"plain http to the TLS listener", func(c *TargetConfig) { c.CAFile, c.RPC = "", "http://"+tt.http }, codes.Unavailable},
		{"another token", func(c *TargetConfig) {
			c.TokenFile = filepath.Join(t.TempDir(), "token")
			os.WriteFile(c.TokenFile, []byte("not-the-token-of-this-target"), 0o600)
		}, codes.Unavailable},
		{"trusted, with the token", func(*TargetConfig) {}, codes.OK},
	} {
		tc := tt.config("t", true, nil)
		c.edit(&tc)
		d := newController(t, &Config{Targets: []TargetConfig{tc}})
		_, err := d.CreateVolume(ctx, req)
		if status.Code(err) != c.code {
			t.Errorf("%s: %v, want %v", c.what, err, c.code)
		}
	}
}

// TestVolumeLocks: a volume's lock serializes its callers and is gone
// once nobody holds or waits for it.
func TestVolumeLocks(t *testing.T) {
	d := &Driver{vols: map[string]*volLock{}}
	unlock := d.lock("a")
	got := make(chan func())
	go func() { got <- d.lock("a") }()
	other := d.lock("b") // another volume does not wait
	other()
	select {
	case <-got:
		t.Fatal("the second caller got volume a's lock while the first held it")
	default:
	}
	unlock()
	(<-got)()
	if len(d.vols) != 0 {
		t.Fatalf("locks left: %v", d.vols)
	}
}

// TestRestartFromSavedConfig: the README's way to have a target's
// volumes back at once after a restart: its save_config, replayed at
// start (flashpath target --config saved.json), brings back each
// volume's subsystem, namespace and allowed node, so the node connects
// again without the controller, which then finds the same volume.
func TestRestartFromSavedConfig(t *testing.T) {
	ctx := context.Background()
	tt := startTarget(t)
	cfg := &Config{Targets: []TargetConfig{tt.config("t", true, nil)}}
	d := newController(t, cfg)
	req := &csi.CreateVolumeRequest{Name: "pvc-saved", VolumeCapabilities: mountCap, CapacityRange: &csi.CapacityRange{RequiredBytes: 4 << 20}}
	r, err := d.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: r.Volume.VolumeId, NodeId: testHostNQN, VolumeCapability: mountCap[0]}); err != nil {
		t.Fatal(err)
	}
	saved, err := spdk.SaveConfig(ctx, tt.sock)
	if err != nil {
		t.Fatal(err)
	}

	tt.rpc.Close()
	tt.srv.Shutdown(ctx)
	scfg := &server.Config{RPCSocket: tt.sock}
	if err := spdk.PrepareConfig(saved, scfg); err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(scfg, server.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	tt.srv = srv
	tt.serveRPC(t)
	if err := tt.rpc.LoadConfig(saved); err != nil {
		t.Fatal(err)
	}
	nqn := r.Volume.VolumeContext["nqn"]
	if hosts, exported := tt.allowed(nqn); !exported || !slices.Equal(hosts, []string{testHostNQN}) {
		t.Fatalf("after the replay: exported %v, hosts %v", exported, hosts)
	}
	if _, err := newFakeOS(tt).Connect(ctx, nqn, []string{tt.addr}, testHostNQN); err != nil {
		t.Fatal(err)
	}
	cfg.Targets[0] = tt.config("t", true, nil)
	d2 := newController(t, cfg)
	r2, err := d2.CreateVolume(ctx, req)
	if err != nil || r2.Volume.VolumeId != r.Volume.VolumeId {
		t.Fatalf("again after the replay: %v %v", r2, err)
	}
}
