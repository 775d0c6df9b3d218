package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDiscoveryConf(t *testing.T) {
	conf := `# Used for extracting default controller discovery parameters
--transport=tcp --traddr=10.0.0.5 --trsvcid=8009
  -t tcp -a 10.0.0.6 -s 4420 -i 4 -l -1 -g   # digests too
--traddr=fe80::1 --nr-poll-queues=2 --reconnect-delay=5 --data-digest
-t rdma -a 10.0.1.5

`
	ds, err := ParseDiscoveryConf([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 4 || ds[3].Address != "rdma://10.0.1.5" {
		t.Fatalf("%d entries: %+v", len(ds), ds)
	}
	if ds[0].Address != "tcp://10.0.0.5:8009" || ds[1].Address != "tcp://10.0.0.6:4420" || ds[2].Address != "tcp://[fe80::1]" {
		t.Errorf("addresses %s %s %s", ds[0].Address, ds[1].Address, ds[2].Address)
	}
	if ds[1].NrIOQueues != 4 || ds[1].CtrlLossTmo == nil || *ds[1].CtrlLossTmo != -1 || ds[1].HdrDigest == nil || ds[1].DataDigest != nil {
		t.Errorf("line 3 options %+v", ds[1].ConnectOptions)
	}
	if ds[2].NrPollQueues != 2 || ds[2].ReconnectDelay.Duration() != 5*time.Second || ds[2].DataDigest == nil {
		t.Errorf("line 4 options %+v", ds[2].ConnectOptions)
	}
	for _, bad := range []struct{ line, want string }{
		{"-t fc -a 10.0.0.5", "tcp and rdma only"},
		{"--trsvcid=8009", "no --traddr"},
		{"-a 10.0.0.5 -x 1", "unknown flag -x"},
		{"-a 10.0.0.5 --hostnqn=nqn.x", "--hostnqn is not supported here"},
		{"-a 10.0.0.5 -i", "--nr-io-queues needs a value"},
		{"-a 10.0.0.5 -i zero", "--nr-io-queues"},
		{"-a 10.0.0.5 -l forever", `--ctrl-loss-tmo: duration "forever"`},
		{"-a 10.0.0.5 -c -1", "-1 is for --ctrl-loss-tmo only"},
		{"-a0 -c00.1", "--reconnect-delay: 100ms: want whole seconds"},
		{"-a 10.0.0.5 -k 2.5", "--keep-alive-tmo: 2.5s: want whole seconds"},
		{"10.0.0.5", "is not a flag"},
	} {
		_, err := ParseDiscoveryConf([]byte("# c\n" + bad.line + "\n"))
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v, want an error naming line 2 with %q", bad.line, err, bad.want)
		}
	}
}

// TestLoadDiscoveryConf: discovery_conf in the configuration file adds the
// controllers of an nvme-cli discovery.conf.
func TestLoadDiscoveryConf(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "discovery.conf")
	must(t, os.WriteFile(conf, []byte("-t tcp -a 10.0.0.9 -s 8009\n"), 0o644))
	cfgFile := filepath.Join(dir, "initiator.yaml")
	must(t, os.WriteFile(cfgFile, []byte("discovery_conf: "+conf+"\n"), 0o644))
	cfg, err := Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Discovery) != 1 || cfg.Discovery[0].Address != "tcp://10.0.0.9:8009" {
		t.Fatalf("discovery %+v", cfg.Discovery)
	}
	must(t, os.WriteFile(cfgFile, []byte("discovery_conf: "+filepath.Join(dir, "missing")+"\n"), 0o644))
	if _, err := Load(cfgFile); err == nil || !strings.Contains(err.Error(), "discovery_conf") {
		t.Fatalf("missing discovery.conf: %v", err)
	}
}

// FuzzDiscoveryConf: any file gives entries that validate, or an error;
// never a panic.
func FuzzDiscoveryConf(f *testing.F) {
	f.Add([]byte("--transport=tcp --traddr=10.0.0.5 --trsvcid=8009\n"))
	f.Add([]byte("-t tcp -a 10.0.0.6 -s 4420 -i 4 -l -1 -g # c\n\n-a fe80::1 -P 2\n"))
	f.Add([]byte("-a\n--=\n-\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := ParseDiscoveryConf(b)
		if err != nil || len(ds) == 0 {
			return
		}
		cfg := Config{Discovery: ds}
		if err := cfg.Validate(); err != nil && !strings.Contains(err.Error(), "address") {
			t.Fatalf("entries %+v do not validate: %v", ds, err)
		}
	})
}
