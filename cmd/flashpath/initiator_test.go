package main

import (
	"os"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator/kernel/kerneltest"
)

// TestInitiatorOnce: --discover reads the discovery log of a target on
// 127.0.0.1 (flashpath's user-space discovery client, real TCP) and
// connects what it lists through the kernel host (a fake sysfs here; the
// lab runs the real one); a second pass finds it connected; --connect
// adds one directly.
func TestInitiatorOnce(t *testing.T) {
	addr := startIOTarget(t)
	fs := kerneltest.New(t.TempDir())
	old := kernelHost
	kernelHost = fs
	t.Cleanup(func() { kernelHost = old })

	port := addr[strings.LastIndex(addr, ":")+1:]
	out, err := runCLI(t, nil, "initiator", "--discover", addr, "--once", "--nr-io-queues", "2", "--ctrl-loss-tmo", "-1",
		"--hostnqn", "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4697-8879-aabbccddee01", "--hostid", "0f1e2d3c-4b5a-4697-8879-aabbccddee01",
		"--log-level", "warn")
	if err != nil {
		t.Fatalf("initiator --once: %v\n%s", err, out)
	}
	if !strings.Contains(out, "connected nvme0") || !strings.Contains(out, "1 subsystems: 1 connected now") {
		t.Fatalf("output:\n%s", out)
	}
	o, err := fs.Params[0].Options()
	if err != nil {
		t.Fatal(err)
	}
	want := "nqn=" + ioTestNQN + ",transport=tcp,traddr=127.0.0.1,trsvcid=" + port +
		",hostnqn=nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4697-8879-aabbccddee01,hostid=0f1e2d3c-4b5a-4697-8879-aabbccddee01,nr_io_queues=2,ctrl_loss_tmo=-1"
	if o != want {
		t.Fatalf("connect options\n got %s\nwant %s", o, want)
	}

	out, err = runCLI(t, nil, "initiator", "--discover", addr, "--connect", "tcp://127.0.0.1:"+port+"/nqn.2026-11.io.example:other", "--once")
	if err != nil {
		t.Fatalf("second pass: %v\n%s", err, out)
	}
	if !strings.Contains(out, "2 subsystems: 1 connected now, 1 already connected") {
		t.Fatalf("second pass output:\n%s", out)
	}
}

// TestInitiatorDiscoveryConf: nvme-cli's discovery.conf is read when given
// (--discovery-conf), and by default, as nvme connect-all does, when
// nothing else is.
func TestInitiatorDiscoveryConf(t *testing.T) {
	addr := startIOTarget(t)
	fs := kerneltest.New(t.TempDir())
	oldHost, oldConf := kernelHost, discoveryConf
	t.Cleanup(func() { kernelHost, discoveryConf = oldHost, oldConf })
	kernelHost = fs
	hostport := strings.TrimPrefix(addr, "tcp://")
	i := strings.LastIndex(hostport, ":")
	conf := t.TempDir() + "/discovery.conf"
	if err := os.WriteFile(conf, []byte("# test\n--transport=tcp --traddr="+hostport[:i]+" --trsvcid="+hostport[i+1:]+" --nr-io-queues=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	discoveryConf = conf
	out, err := runCLI(t, nil, "initiator", "--once", "--log-level", "warn")
	if err != nil || !strings.Contains(out, "1 subsystems: 1 connected now") {
		t.Fatalf("initiator --once with the default discovery.conf: %v\n%s", err, out)
	}
	if fs.Params[0].NrIOQueues != 2 || fs.Params[0].NQN != ioTestNQN {
		t.Fatalf("connect params %+v", fs.Params[0])
	}
	discoveryConf = t.TempDir() + "/none"
	out, err = runCLI(t, nil, "initiator", "--once", "--discovery-conf", conf, "--log-level", "warn")
	if err != nil || !strings.Contains(out, "1 subsystems: 0 connected now, 1 already connected") {
		t.Fatalf("initiator --discovery-conf: %v\n%s", err, out)
	}
}

func TestInitiatorFlagErrors(t *testing.T) {
	old := discoveryConf
	discoveryConf = t.TempDir() + "/none" // hermetic: not the machine's /etc/nvme/discovery.conf
	t.Cleanup(func() { discoveryConf = old })
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"initiator", "--once"}, "nothing to connect: give --discover"},
		{[]string{"initiator", "--connect", "tcp://h:4420", "--once"}, "want tcp://HOST[:PORT]/NQN"},
		{[]string{"initiator", "--config", "/nonexistent.yaml", "--discover", "tcp://h"}, "--config cannot be combined with --discover"},
		{[]string{"initiator", "--config", "/nonexistent.yaml"}, "read config"},
		{[]string{"initiator", "--discover", "udp://h", "--once"}, `transport "udp"`},
	} {
		out, err := runCLI(t, nil, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v (%s), want an error with %q", tc.args, err, out, tc.want)
		}
	}
}
