package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	csispec "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"

	"github.com/flashpath/flashpath/csi"
	"github.com/flashpath/flashpath/spdk"
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
	os.WriteFile(filepath.Join(dir, "long"), []byte("0123456789abcdef0123"), 0o600)
	for _, args := range [][]string{
		{"csi"},
		{"csi", "--controller", filepath.Join(dir, "missing.yaml")},
		{"csi", "--node", "--hostnqn", "nqn.x", "--topology", "rack"},
		{"csi", "--controller", short, "--topology", "a=b"},
		{"target", "--rpc-listen", "tcp://127.0.0.1:0"},
		{"target", "--rpc-listen", "127.0.0.1:0", "--rpc-token-file", short},
		{"target", "--rpc-listen", "tcp://127.0.0.1:0", "--rpc-token-file", short},
		{"target", "--volume-dir", "relative"},
		{"target", "--rpc-state", filepath.Join(dir, "state.json"), "--rpc-socket", "off"},
		{"target", "--rpc-state", filepath.Join(dir, "state.json"), "--rpc-socket", filepath.Join(dir, "s.sock"), "--listen", "tcp://127.0.0.1:0"},
		{"target", "--rpc-state", "relative.json", "--rpc-socket", filepath.Join(dir, "s.sock")},
		{"target", "--rpc-tls-cert", short},
		{"target", "--rpc-listen", "tcp://127.0.0.1:0", "--rpc-token-file", filepath.Join(dir, "long"), "--rpc-tls-cert", short},
		{"target", "--rpc-listen", "tcp://127.0.0.1:0", "--rpc-token-file", filepath.Join(dir, "long"), "--rpc-tls-cert", short, "--rpc-tls-key", short},
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

// TestKubernetesManifests: every document of deploy/kubernetes parses
// as a Kubernetes object; the driver's name agrees across them; the
// controller's ConfigMap is a valid configuration that the StorageClass's
// parameters fit; the flashpath containers' arguments are flags that
// `flashpath csi` takes.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil || len(files) < 6 {
		t.Fatalf("manifests %v %v", files, err)
	}
	type object struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Data        map[string]string `json:"data"`
		Provisioner string            `json:"provisioner"`
		Parameters  map[string]string `json:"parameters"`
		Spec        struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name  string   `json:"name"`
						Image string   `json:"image"`
						Args  []string `json:"args"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	byKind := map[string][]object{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			var o object
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s document %d: apiVersion %q kind %q name %q: want all three", f, i, o.APIVersion, o.Kind, o.Metadata.Name)
			}
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	for _, k := range []string{"CSIDriver", "StorageClass", "Deployment", "DaemonSet", "ConfigMap", "ClusterRole", "ServiceAccount", "PersistentVolumeClaim", "Pod"} {
		if len(byKind[k]) == 0 {
			t.Errorf("no %s", k)
		}
	}
	if byKind["CSIDriver"][0].Metadata.Name != csi.DefaultName || byKind["StorageClass"][0].Provisioner != csi.DefaultName {
		t.Errorf("CSIDriver %s, StorageClass provisioner %s: want %s", byKind["CSIDriver"][0].Metadata.Name, byKind["StorageClass"][0].Provisioner, csi.DefaultName)
	}
	cfgFile := filepath.Join(t.TempDir(), "targets.yaml")
	os.WriteFile(cfgFile, []byte(byKind["ConfigMap"][0].Data["targets.yaml"]), 0o600)
	cfg, err := csi.LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range strings.Split(byKind["StorageClass"][0].Parameters[csi.ParamTargets], ",") {
		if !slices.ContainsFunc(cfg.Targets, func(tc csi.TargetConfig) bool { return tc.Name == n }) {
			t.Errorf("the StorageClass names target %q, which the ConfigMap lacks", n)
		}
	}
	for _, o := range append(byKind["Deployment"], byKind["DaemonSet"]...) {
		found := false
		for _, c := range o.Spec.Template.Spec.Containers {
			if c.Name != "flashpath" {
				continue
			}
			found = true
			cmd := newCSICmd()
			if c.Args[0] != "csi" || cmd.ParseFlags(c.Args[1:]) != nil {
				t.Errorf("%s: flashpath %v: not flashpath csi's flags", o.Metadata.Name, c.Args)
			}
		}
		if !found {
			t.Errorf("%s: no flashpath container", o.Metadata.Name)
		}
	}
}

// TestCSITopologyFile: the node's segments come from the file and the
// flags together.
func TestCSITopologyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "topology")
	os.WriteFile(p, []byte("# this node\ntopology.flashpath.io/rack=rack7\n\ntopology.flashpath.io/pool=h100 # GPU pool\n"), 0o600)
	f := csiFlags{node: true, hostNQN: "nqn.2014-08.org.nvmexpress:uuid:1", topoFile: p, topology: []string{"zone=z1"}}
	o, err := f.options(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"topology.flashpath.io/rack": "rack7", "topology.flashpath.io/pool": "h100", "zone": "z1"}
	if !maps.Equal(o.Node.Topology, want) {
		t.Fatalf("topology %v, want %v", o.Node.Topology, want)
	}
	os.WriteFile(p, []byte("rack7\n"), 0o600)
	if _, err := f.options(slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a line without = was taken")
	}
}

// TestTargetRPCState: with --rpc-state, what the JSON-RPC made (a volume,
// its subsystem, namespace and allowed host) is there again after a
// restart, and a restart with nothing saved yet starts empty.
func TestTargetRPCState(t *testing.T) {
	dir := t.TempDir()
	sock, state, vols := filepath.Join(dir, "spdk.sock"), filepath.Join(dir, "state.json"), filepath.Join(dir, "volumes")
	os.Mkdir(vols, 0o700)
	const nqn, host = "nqn.2026-12.io.flashpath:state", "nqn.2014-08.org.nvmexpress:uuid:5"
	args := []string{"--rpc-socket", sock, "--rpc-state", state, "--volume-dir", vols}
	call := func(t *testing.T, method, params string) string {
		t.Helper()
		res, err := spdk.Call(context.Background(), sock, method, json.RawMessage(params))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return string(res)
	}
	t.Run("first", func(t *testing.T) {
		startRPCTarget(t, sock, args...)
		call(t, "flashpath_volume_create", `{"name": "v1", "size": 1048576}`)
		call(t, "nvmf_create_subsystem", `{"nqn": "`+nqn+`"}`)
		call(t, "nvmf_subsystem_add_ns", `{"nqn": "`+nqn+`", "namespace": {"bdev_name": "v1"}}`)
		call(t, "nvmf_subsystem_add_host", `{"nqn": "`+nqn+`", "host": "`+host+`"}`)
	})
	t.Run("restarted", func(t *testing.T) {
		startRPCTarget(t, sock, args...)
		got := call(t, "nvmf_get_subsystems", `{"nqn": "`+nqn+`"}`)
		if !strings.Contains(got, host) || !strings.Contains(got, `"bdev_name":"v1"`) {
			t.Fatalf("after the restart: %s", got)
		}
	})
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	t.Run("nothing saved", func(t *testing.T) {
		startRPCTarget(t, sock, args...)
		if subs := subsystemsOver(t, sock); len(subs) != 1 { // the discovery subsystem
			t.Fatalf("subsystems %v, want none but discovery", subs)
		}
	})
}
