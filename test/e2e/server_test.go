package e2e

// The target daemon (target/server) under flashpath's host: reloads under
// connected hosts, metrics, shutdown.

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/server"
)

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const (
	reloadNQN  = "nqn.2026-11.io.flashpath:reload"
	reloadNQN2 = "nqn.2026-11.io.flashpath:reload2"
	hostA      = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000000a"
	hostB      = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000000b"
)

func reloadConfig(addr string, nss ...server.NamespaceConfig) *server.Config {
	return &server.Config{
		Listeners:  []string{addr},
		Subsystems: []server.SubsystemConfig{{NQN: reloadNQN, Namespaces: nss}},
	}
}

// TestReloadNamespaces adds, removes and replaces namespaces under a
// connected host, which gets a Changed Namespace List notice each time,
// while an untouched namespace keeps its data.
func TestReloadNamespaces(t *testing.T) {
	var logs logBuffer
	cfg := reloadConfig("tcp://127.0.0.1:0", server.NamespaceConfig{NSID: 1, Backend: "mem:16MiB"})
	srv, err := server.Start(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ctx := context.Background()
	events := make(chan initiator.Event, 16)
	ctrl, err := initiator.Connect(ctx, initiator.Config{
		Addr: srv.Listeners[0].Addr().String(), SubNQN: reloadNQN, Options: initiator.Options{HostNQN: hostA},
		Events: func(ev initiator.Event) { events <- ev },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ctrl.Close()
	ns1, err := ctrl.Namespace(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("kept"), 1024)
	if _, err := ns1.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}

	wantNotice := func(step string, nsid uint32) {
		t.Helper()
		select {
		case ev := <-events:
			if ev.Type != nvmeof.AEReasonNotice || ev.Info != nvmeof.AENoticeNSAttrChanged || !slices.Contains(ev.ChangedNamespaces, nsid) {
				t.Fatalf("%s: event %+v, want a namespace attribute notice listing %d", step, ev, nsid)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no asynchronous event", step)
		}
	}
	wantActive := func(step string, want ...uint32) {
		t.Helper()
		got, err := ctrl.ActiveNamespaces(ctx)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%s: active namespaces %v, %v; want %v", step, got, err, want)
		}
	}

	// Add NSID 2 (left 0 in the file: the lowest free).
	file := filepath.Join(t.TempDir(), "ns2.img")
	cfg = reloadConfig(cfg.Listeners[0], server.NamespaceConfig{NSID: 1, Backend: "mem:16MiB"}, server.NamespaceConfig{Backend: "file:" + file + ":8MiB"})
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	wantNotice("add", 2)
	wantActive("add", 1, 2)
	ns2, err := ctrl.Namespace(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns2.WriteAt(data, 4096); err != nil {
		t.Fatal(err)
	}

	// The same configuration again changes nothing.
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		t.Fatalf("unchanged reload raised %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}

	// A backend that does not open changes nothing.
	bad := reloadConfig(cfg.Listeners[0], server.NamespaceConfig{NSID: 1, Backend: "mem:16MiB"}, server.NamespaceConfig{NSID: 3, Backend: "file:/nonexistent/dir/x.img:1MiB"})
	if err := srv.Reload(bad); err == nil || !strings.Contains(err.Error(), "namespace 3") {
		t.Fatalf("reload with a bad backend = %v, want an error naming namespace 3", err)
	}
	wantActive("bad backend", 1, 2)

	// Nor does a replacement backend that does not open: namespace 2 stays
	// live with its data (the security issue found it removed).
	bad = reloadConfig(cfg.Listeners[0], server.NamespaceConfig{NSID: 1, Backend: "mem:16MiB"}, server.NamespaceConfig{NSID: 2, Backend: "file:/nonexistent/dir/y.img:1MiB"})
	if err := srv.Reload(bad); err == nil || !strings.Contains(err.Error(), "namespace 2") || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("reload with a bad replacement backend = %v, want an error naming namespace 2 and saying nothing changed", err)
	}
	wantActive("bad replacement", 1, 2)
	kept := make([]byte, len(data))
	if _, err := ns2.ReadAt(kept, 4096); err != nil || !bytes.Equal(kept, data) {
		t.Fatalf("namespace 2 after a failed replacement: %v, data equal %v", err, bytes.Equal(kept, data))
	}

	// Replace NSID 2 by another UUID (same file), then remove it.
	const uuid = "6b0f3a2e-5d1c-4e8f-9a7b-1c2d3e4f5a6b"
	cfg = reloadConfig(cfg.Listeners[0], server.NamespaceConfig{NSID: 1, Backend: "mem:16MiB"}, server.NamespaceConfig{NSID: 2, Backend: "file:" + file + ":8MiB", UUID: uuid})
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	wantNotice("replace", 2)
	descs, err := ctrl.NamespaceDescriptors(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	var gotUUID bool
	for _, d := range descs {
		if d.Type == nvmeof.NIDTUUID && strings.ReplaceAll(uuid, "-", "") == hex.EncodeToString(d.ID) {
			gotUUID = true
		}
	}
	if !gotUUID {
		t.Fatalf("descriptors after replace %+v lack UUID %s", descs, uuid)
	}
	ns2, err = ctrl.Namespace(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := ns2.ReadAt(got, 4096); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file namespace after replace: %v, data equal %v", err, bytes.Equal(got, data))
	}

	cfg = reloadConfig(cfg.Listeners[0], server.NamespaceConfig{NSID: 1, Backend: "mem:16MiB"})
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	wantNotice("remove", 2)
	wantActive("remove", 1)
	if _, err := ns1.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("namespace 1 after reloads: %v, data equal %v", err, bytes.Equal(got, data))
	}
	for _, want := range []string{"reload: namespace replaced", "reload: namespace removed", `nsid=2`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestReloadSubsystemsAndHosts adds a subsystem with an allow list,
// changes the list and removes the subsystem again.
func TestReloadSubsystemsAndHosts(t *testing.T) {
	var logs logBuffer
	cfg := reloadConfig("tcp://127.0.0.1:0", server.NamespaceConfig{NSID: 1, Backend: "mem:1MiB"})
	srv, err := server.Start(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	addr := srv.Listeners[0].Addr().String()
	ctx := context.Background()
	connect := func(nqn, host string) error {
		c, err := initiator.Connect(ctx, initiator.Config{Addr: addr, SubNQN: nqn, IOQueues: 1, Options: initiator.Options{HostNQN: host}})
		if err == nil {
			c.Close()
		}
		return err
	}
	discover := func(host string) []string {
		t.Helper()
		log, err := initiator.Discover(ctx, addr, initiator.Options{HostNQN: host})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range log.Entries {
			out = append(out, e.SubNQN)
		}
		return out
	}

	second := server.SubsystemConfig{NQN: reloadNQN2, AllowedHosts: []server.HostConfig{{NQN: hostA}}, Namespaces: []server.NamespaceConfig{{Backend: "mem:1MiB"}}}
	cfg.Subsystems = append(cfg.Subsystems, second)
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if err := connect(reloadNQN2, hostA); err != nil {
		t.Fatalf("allowed host: %v", err)
	}
	if err := connect(reloadNQN2, hostB); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("host off the list: %v, want refused", err)
	}
	if got := discover(hostB); !slices.Equal(got, []string{reloadNQN}) {
		t.Fatalf("discovery for a host off the list: %v", got)
	}

	cfg.Subsystems[1].AllowedHosts = []server.HostConfig{{NQN: hostB}}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if err := connect(reloadNQN2, hostB); err != nil {
		t.Fatalf("newly allowed host: %v", err)
	}
	if err := connect(reloadNQN2, hostA); err == nil {
		t.Fatal("host taken off the list still connects")
	}
	if got := discover(hostB); !slices.Equal(got, []string{reloadNQN, reloadNQN2}) {
		t.Fatalf("discovery for a newly allowed host: %v", got)
	}

	// Restart-only settings are ignored with a warning, not an error.
	cfg.Subsystems = cfg.Subsystems[:1]
	cfg.Listeners = []string{"tcp://127.0.0.1:1"}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if err := connect(reloadNQN2, hostB); err == nil {
		t.Fatal("removed subsystem still connects")
	}
	if err := connect(reloadNQN, hostA); err != nil {
		t.Fatalf("remaining subsystem: %v", err)
	}
	for _, want := range []string{"reload: subsystem added", "reload: allowed hosts changed", "reload: subsystem removed", "listeners changed: restart to apply"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestStartServeMetricsShutdown(t *testing.T) {
	dir := t.TempDir()
	cfg := &server.Config{
		Listeners: []string{"tcp://127.0.0.1:0"},
		Metrics:   "127.0.0.1:0",
		Pprof:     true,
		Subsystems: []server.SubsystemConfig{{
			NQN:        "nqn.2026-11.io.flashpath:test",
			Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "mem:16MiB"}, {NSID: 2, Backend: "file:" + filepath.Join(dir, "ns2.img") + ":8MiB"}},
		}},
	}
	srv, err := server.Start(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ctrl, err := initiator.Connect(ctx, initiator.Config{Addr: srv.Listeners[0].Addr().String(), SubNQN: cfg.Subsystems[0].NQN})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := ctrl.Namespace(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	copy(buf, "flashpath")
	if _, err := ns.WriteAt(buf, 8192); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + srv.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`flashpath_target_controllers 1`,
		`flashpath_target_namespace_bytes_total{nsid="2",op="write",subsys="nqn.2026-11.io.flashpath:test"} 4096`,
		`flashpath_target_namespace_size_bytes{nsid="1",subsys="nqn.2026-11.io.flashpath:test"} 1.6777216e+07`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	resp, err = http.Get("http://" + srv.MetricsAddr().String() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Errorf("pprof index: %s\n%s", resp.Status, body)
	}
	ctrl.Close()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Shutdown flushed and closed the file namespace: the data is in the file.
	b, err := os.ReadFile(filepath.Join(dir, "ns2.img"))
	if err != nil || !strings.HasPrefix(string(b[8192:]), "flashpath") {
		t.Fatalf("file namespace after shutdown: %v", err)
	}
}

// TestSameFileTwiceWarns: a file exported as two namespaces is logged as
// such (the security issue found it silent), through a symlink too.
func TestSameFileTwiceWarns(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "shared.img")
	if err := os.Symlink(file, filepath.Join(dir, "link.img")); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	cfg := reloadConfig("tcp://127.0.0.1:0",
		server.NamespaceConfig{NSID: 1, Backend: "file:" + file + ":1MiB"},
		server.NamespaceConfig{NSID: 2, Backend: "mem:1MiB"})
	srv, err := server.Start(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	if strings.Contains(logs.String(), "the same file") {
		t.Fatalf("warned with one namespace on the file:\n%s", logs.String())
	}
	cfg = reloadConfig(cfg.Listeners[0], cfg.Subsystems[0].Namespaces[0], server.NamespaceConfig{NSID: 2, Backend: "file:" + filepath.Join(dir, "link.img")})
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); !strings.Contains(s, "the same file is exported as two namespaces") || !strings.Contains(s, "also_nsid=1") {
		t.Fatalf("no warning for the file exported twice:\n%s", s)
	}
}
