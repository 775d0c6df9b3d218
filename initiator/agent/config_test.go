package agent

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cfg, err := Parse([]byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.Interval) != time.Hour || len(cfg.Discovery) != 1 || len(cfg.Connect) != 1 ||
		cfg.Defaults.NrIOQueues != 4 || *cfg.Discovery[0].CtrlLossTmo != -1 || !*cfg.Connect[0].HdrDigest {
		t.Fatalf("parsed %+v", cfg)
	}
	// JSON is YAML; the interval defaults to 30 s.
	cfg, err = Parse([]byte(`{"connect":[{"address":"tcp://[fe80::1]:4420","nqn":"nqn.x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.Interval) != DefaultInterval {
		t.Fatalf("interval %v, want %v", time.Duration(cfg.Interval), DefaultInterval)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"interval: 1s\n", "nothing to connect"},
		{"connect: [{address: tcp://h, nqn: nqn.x}]\nintervall: 1s\n", `unknown field "intervall"`},
		{"connect: [{address: fc://h, nqn: nqn.x}]\n", `connect[0].address: address "fc://h": transport "fc" not supported`},
		{"connect: [{address: tcp://h}]\n", "connect[0].nqn: missing"},
		{"connect: [{address: tcp://h, nqn: nqn.x, ctrl_loss_tmo: -2}]\n", `connect.ctrl_loss_tmo: duration "-2": want seconds (600)`},
		{"connect: [{address: tcp://h, nqn: nqn.x, ctrl_loss_tmo: 1500ms}]\n", "connect[0].ctrl_loss_tmo 1.5s: want whole seconds"},
		{"connect: [{address: tcp://h, nqn: nqn.x, reconnect_delay: -1}]\n", "connect[0].reconnect_delay -1: want a duration of 0 or more"},
		{"connect: [{address: tcp://h, nqn: nqn.x}]\ninterval: -1\n", "interval -1: want a duration more than 0"},
		{"discovery: [{address: fc://h}]\n", `discovery[0].address: address "fc://h": transport "fc" not supported`},
		{"discovery: [{address: tcp://h, nr_io_queues: -1}]\n", "discovery[0].nr_io_queues -1"},
		{"connect: [{address: tcp://h, nqn: nqn.x}]\ninterval: soon\n", `interval: duration "soon": want seconds (600), a number and a unit (600s, 10m`},
		{"connect: [{address: tcp://h, nqn: nqn.x}]\nhostid: not-a-uuid\n", "hostid: host ID"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.yaml, err, tc.want)
		}
	}
}

func TestSplitAddress(t *testing.T) {
	for _, tc := range []struct{ in, tr, host, port string }{
		{"tcp://10.0.0.5", "tcp", "10.0.0.5", "4420"},
		{"10.0.0.5:4421", "tcp", "10.0.0.5", "4421"},
		{"rdma://169.254.42.1:4420", "rdma", "169.254.42.1", "4420"},
		{"tcp://[fe80::1]:4420", "tcp", "fe80::1", "4420"},
		{"tcp://[fe80::1]", "tcp", "fe80::1", "4420"},
	} {
		tr, h, p, err := splitAddress(tc.in, "4420")
		if err != nil || tr != tc.tr || h != tc.host || p != tc.port {
			t.Errorf("%s: %s %s %s %v", tc.in, tr, h, p, err)
		}
	}
	for _, bad := range []string{"", "tcp://", "tcp://:4420", "udp://h", "tcp://a/b"} {
		if _, _, _, err := splitAddress(bad, "4420"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParse feeds arbitrary bytes to the configuration parser: an error or
// a configuration that validates, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(baseConfig))
	f.Add([]byte(`{"discovery":[{"address":"tcp://[::1]:8009"}],"metrics":"127.0.0.1:9421","interval":"5s"}`))
	f.Add([]byte("connect: 7\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that does not validate: %v", err)
		}
	})
}

// TestDeployExample: the example configuration shipped in deploy/ parses.
func TestDeployExample(t *testing.T) {
	b, err := os.ReadFile("../../deploy/initiator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("deploy/initiator.yaml: %v", err)
	}
}
