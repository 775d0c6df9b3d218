package server

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// TestDiscoveryFor: the discovery service that goes with listeners by
// default is port 8009 beside each tcp:// listener on 4420, with its TLS
// mode.
func TestDiscoveryFor(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{DefaultListen}, []string{DefaultDiscoveryListen}},
		{[]string{"tcp://0.0.0.0:4420", "rdma://192.168.1.10:4420"}, []string{"tcp://0.0.0.0:8009"}},
		{[]string{"tcp://[::]:4420?tls=required", "10.0.0.5"}, []string{"tcp://[::]:8009?tls=required", "tcp://10.0.0.5:8009"}},
		{[]string{"tcp://127.0.0.1:0", "tcp://0.0.0.0:4421"}, nil},
		{[]string{"tcp://127.0.0.1:4420", "tcp://127.0.0.1"}, []string{"tcp://127.0.0.1:8009"}},
	} {
		if got := DiscoveryFor(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("DiscoveryFor(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDiscoveryListenersConfig(t *testing.T) {
	const subs = "\nsubsystems: [{nqn: nqn.a, namespaces: [{backend: mem:1M}]}]"
	for _, tc := range []struct{ cfg, want string }{
		{"listeners: [tcp://h:4420]\ndiscovery_listeners: [rdma://h:8009]", "discovery_listeners[0]: listener \"rdma://h:8009\": the discovery service listens on NVMe/TCP"},
		{"listeners: [tcp://h:4420]\ndiscovery_listeners: [tcp://h:8009, tcp://h:8009]", "discovery_listeners[1]: tcp://h:8009 appears twice"},
		{"listeners: [tcp://h:8009]\ndiscovery_listeners: [tcp://h]", "discovery_listeners[0]: tcp://h is also a listener"},
		{"listeners: [tcp://h:4420]\ndiscovery_listeners: ['tcp://h:8009?tls=sometimes']", "discovery_listeners[0]"},
	} {
		_, err := Parse([]byte(tc.cfg + subs))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	spec, err := parseDiscoveryListener("tcp://127.0.0.1")
	if err != nil || spec.addr != "127.0.0.1:8009" {
		t.Errorf("tcp://127.0.0.1: %+v, %v: want port 8009", spec, err)
	}
}

// TestDiscoveryListenerRuns: a discovery listener runs beside the
// listeners as a discovery-only port, which Ports reports, the core's
// discovery log leaves out, and a reload keeps (a change needs a
// restart).
func TestDiscoveryListenerRuns(t *testing.T) {
	cfg := &Config{
		Listeners:          []string{"tcp://127.0.0.1:0"},
		DiscoveryListeners: []string{"127.0.0.1:0"}, // a free port too
		Subsystems:         []SubsystemConfig{{NQN: reloadNQN, Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}}}},
	}
	srv, err := Start(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ports := srv.Ports()
	if len(ports) != 2 || ports[0].Discovery || !ports[1].Discovery || ports[0].Addr == ports[1].Addr {
		t.Fatalf("Ports %+v: want an I/O port, then a discovery port", ports)
	}
	var only int
	for _, p := range srv.Target.Ports() {
		if p.DiscoveryOnly {
			only++
		}
	}
	if only != 1 {
		t.Fatalf("the core has %d discovery-only ports, want 1: %+v", only, srv.Target.Ports())
	}
	next := cloneConfig(cfg)
	next.DiscoveryListeners = nil
	if err := srv.Reload(next); err != nil {
		t.Fatal(err)
	}
	if got := srv.Applied().DiscoveryListeners; !slices.Equal(got, cfg.DiscoveryListeners) || len(srv.Ports()) != 2 {
		t.Fatalf("after a reload without it: discovery_listeners %q, %d ports: want it kept until a restart", got, len(srv.Ports()))
	}
}
