package server

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	good := `
listeners: [tcp://127.0.0.1:4420]
metrics: 127.0.0.1:9420
busy_poll: 20us
sendfile: false
subsystems:
  - nqn: nqn.2026-11.io.example:a
    allowed_hosts: [nqn.2014-08.org.nvmexpress:uuid:1]
    namespaces:
      - {nsid: 1, backend: "mem:1GiB", uuid: 6b0f3a2e-5d1c-4e8f-9a7b-1c2d3e4f5a6b}
      - {backend: "null:1TiB"}
`
	cfg, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Subsystems[0].Namespaces[1].Backend != "null:1TiB" || cfg.Metrics != "127.0.0.1:9420" || cfg.BusyPollWindow() != 20*time.Microsecond || cfg.SendfileOn() {
		t.Fatalf("parsed %+v", cfg)
	}
	// The same in JSON; sendfile is on unless turned off.
	if cfg, err := Parse([]byte(`{"listeners":["tcp://127.0.0.1:4420"],"subsystems":[{"nqn":"nqn.2026-11.io.example:a","namespaces":[{"backend":"mem:1MiB"}]}]}`)); err != nil || !cfg.SendfileOn() {
		t.Fatalf("JSON: %v, sendfile %v (want on)", err, err == nil && cfg.SendfileOn())
	}
	bad := []struct{ cfg, want string }{
		{`listeners: [tcp://x:1]
subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M}]}]
bogus: 1`, `unknown field "bogus"`},
		{`subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M}]}]`, "listeners: at least one"},
		{`listeners: [fc://1.2.3.4:4420]
subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M}]}]`, "listeners[0]"},
		{`listeners: [tcp://x:1]
subsystems: [{nqn: iqn.wrong, namespaces: [{backend: mem:1M}]}]`, "subsystems[0].nqn"},
		{`listeners: [tcp://x:1]
subsystems: [{nqn: nqn.a, namespaces: [{nsid: 1, backend: mem:1M}, {nsid: 1, backend: mem:1M}]}]`, "subsystems[0].namespaces[1].nsid"},
		{`listeners: [tcp://x:1]
subsystems: [{nqn: nqn.a, namespaces: [{backend: ""}]}]`, "subsystems[0].namespaces[0].backend"},
		{`listeners: [tcp://x:1]
subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M, uuid: xyz}]}]`, "subsystems[0].namespaces[0].uuid"},
		{`listeners: [tcp://x:1]
subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M, ptpl_file: /var/lib/fp/a}]}, {nqn: nqn.b, namespaces: [{backend: mem:1M, ptpl_file: /var/lib/fp//a}]}]`, "subsystems[1].namespaces[0].ptpl_file: /var/lib/fp//a is also the file of subsystems[0].namespaces[0]"},
		{`listeners: [tcp://x:1]
subsystems: [{nqn: nqn.a, allow_any_host: true, allowed_hosts: [nqn.h], namespaces: [{backend: mem:1M}]}]`, "choose one"},
		{`listeners: [tcp://x:1]
subsystems: [{nqn: nqn.a, min_cntlid: 200, max_cntlid: 100, namespaces: [{backend: mem:1M}]}]`, "subsystems[0].min_cntlid, max_cntlid: controller ID range 200-100"},
		{`listeners: [tcp://x:1]
busy_poll: 1s
subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M}]}]`, "busy_poll (--busy-poll) 1s: want 0 (off) to 10ms, e.g. \"50us\" (a bare number counts seconds)"},
		{`listeners: [tcp://x:1]
io_keep_alive: -5s
subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M}]}]`, `io_keep_alive: duration "-5s": negative: want seconds (600)`},
		{`listeners: [tcp://x:1]
io_keep_alive: -1
subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M}]}]`, "io_keep_alive -1: want 0 (none) or more"},
		{`listeners: [tcp://x:1]
max_h2c_data: 5001
subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M}]}]`, "max_h2c_data 5001: want a multiple of 4"},
		{`listeners: [tcp://x:1]
busy_poll: soon
subsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M}]}]`, `busy_poll: duration "soon": want seconds (600), a number and a unit (600s, 10m`},
	}
	for _, b := range bad {
		_, err := Parse([]byte(b.cfg))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", b.cfg, err, b.want)
		}
	}
}

func TestParseListener(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:4420": "127.0.0.1:4420",
		"127.0.0.1:4421":       "127.0.0.1:4421",
		"tcp://[::1]:4420":     "[::1]:4420",
		"tcp://localhost":      "localhost:4420",
		"rdma://10.0.0.1":      "10.0.0.1:4420",
	} {
		_, got, err := ParseListener(in)
		if err != nil || got != want {
			t.Errorf("ParseListener(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestStartRDMAWithoutDevice: an rdma:// listener where no RDMA device has
// the address fails the start with a message that says what to do (the lab
// runs NVMe/RDMA itself: test/lab/rdma-target.sh).
func TestStartRDMAWithoutDevice(t *testing.T) {
	cfg := &Config{
		Listeners:  []string{"rdma://127.0.0.1:0"},
		Subsystems: []SubsystemConfig{{NQN: "nqn.2026-11.io.flashpath:test", Namespaces: []NamespaceConfig{{NSID: 1, Backend: "mem:1MiB"}}}},
	}
	srv, err := Start(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		srv.Shutdown(context.Background())
		t.Skip("this machine has an RDMA device on 127.0.0.1")
	}
	if !strings.Contains(err.Error(), "listeners[0]") || !strings.Contains(err.Error(), "RDMA unavailable") {
		t.Errorf("error %q: want listeners[0] and RDMA unavailable", err)
	}
}

func TestPprofNeedsMetrics(t *testing.T) {
	cfg := &Config{Listeners: []string{"tcp://127.0.0.1:0"}, Pprof: true,
		Subsystems: []SubsystemConfig{{NQN: "nqn.2026-11.io.flashpath:t", Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}}}}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Fatalf("Validate = %v, want an error asking for a metrics address", err)
	}
}

func TestStartFailsCleanly(t *testing.T) {
	cfg := &Config{
		Listeners:  []string{"tcp://127.0.0.1:0"},
		Subsystems: []SubsystemConfig{{NQN: "nqn.2026-11.io.flashpath:t", Namespaces: []NamespaceConfig{{Backend: "mem:lots"}}}},
	}
	if _, err := Start(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "subsystems[0].namespaces[0].backend") {
		t.Fatalf("Start = %v, want an error naming the backend field", err)
	}
}

// TestDeployConfigParses: the example shipped in deploy/ stays valid.
func TestDeployConfigParses(t *testing.T) {
	b, err := os.ReadFile("../../deploy/target.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("deploy/target.yaml: %v", err)
	}
}

// TestListenerPortTaken: a listener whose port another process holds
// fails the start naming the listener and what to do.
func TestListenerPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := "tcp://" + ln.Addr().String()
	sub := []SubsystemConfig{{NQN: reloadNQN, Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}}}}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Listeners: []string{taken}, Subsystems: sub}, "listeners[0]: "},
		{Config{Listeners: []string{"tcp://127.0.0.1:0"}, DiscoveryListeners: []string{taken}, Subsystems: sub}, "discovery_listeners[0]: "},
	} {
		srv, err := Start(&c.cfg, Options{Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			srv.Shutdown(context.Background())
		}
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !strings.Contains(err.Error(), "choose another port") {
			t.Errorf("%s taken: %v; want an error naming %s and what to do", taken, err, c.want)
		}
	}
}
