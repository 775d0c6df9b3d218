package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/initiator/agent"
	"github.com/flashpath/flashpath/initiator/kernel/kerneltest"
	"github.com/flashpath/flashpath/target/server"
)

// TestDeployExamplesConnect: the shipped examples work together. The
// target of deploy/target.yaml serves discovery where the initiator of
// deploy/initiator.yaml looks for it (NVMe/TCP's 8009) and I/O on the port
// its discovery log gives (4420); run on loopback, with free ports in
// their place, the initiator finds the target's subsystem through
// discovery and has the kernel connect it (a fake sysfs here; the lab
// runs the real host against the files as they are), and the namespace
// is there at the address the kernel was given.
func TestDeployExamplesConnect(t *testing.T) {
	tcfg, err := server.Load("../../deploy/target.yaml")
	if err != nil {
		t.Fatal(err)
	}
	icfg, err := agent.Load("../../deploy/initiator.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// As shipped: the ports agree.
	port := func(a, def string) (host, port string) {
		_, hp, err := initiator.SplitAddr(a, def)
		if err != nil {
			t.Fatal(err)
		}
		host, port, _ = net.SplitHostPort(hp)
		return host, port
	}
	if len(icfg.Discovery) != 1 || len(icfg.Connect) != 0 {
		t.Fatalf("deploy/initiator.yaml: %d discovery and %d connect entries, want the one discovery entry", len(icfg.Discovery), len(icfg.Connect))
	}
	_, discPort := port(icfg.Discovery[0].Address, initiator.DefaultDiscoveryPort)
	if len(tcfg.DiscoveryListeners) != 1 {
		t.Fatalf("deploy/target.yaml: discovery_listeners %q, want one", tcfg.DiscoveryListeners)
	}
	if _, p := port(strings.TrimPrefix(tcfg.DiscoveryListeners[0], "tcp://"), server.DiscoveryPort); p != discPort || p != "8009" {
		t.Fatalf("the target's discovery service is on port %s, the initiator looks on %s: want both on 8009", p, discPort)
	}
	if _, p := port(tcfg.Listeners[0], initiator.DefaultPort); p != "4420" {
		t.Fatalf("the target's first listener is on port %s, want 4420", p)
	}

	// On loopback, free ports.
	loop := func(l string) string {
		scheme, rest, _ := strings.Cut(l, "://")
		_, query, _ := strings.Cut(rest, "?")
		out := scheme + "://127.0.0.1:0"
		if query != "" {
			out += "?" + query
		}
		return out
	}
	for i, l := range tcfg.Listeners {
		tcfg.Listeners[i] = loop(l)
	}
	tcfg.DiscoveryListeners[0] = "127.0.0.1:0" // unlike the listener's string: each names one listener
	tcfg.Metrics = ""
	dir := t.TempDir()
	tfile := filepath.Join(dir, "target.json")
	writeConfigJSON(t, tfile, tcfg)
	serving, discovery := startConfigTarget(t, tfile)

	fs := kerneltest.New(t.TempDir())
	old := kernelHost
	kernelHost = fs
	t.Cleanup(func() { kernelHost = old })
	icfg.Discovery[0].Address = "tcp://" + discovery
	icfg.HostNQN, icfg.HostID = "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4697-8879-aabbccddee01", "0f1e2d3c-4b5a-4697-8879-aabbccddee01"
	icfg.Metrics = ""
	ifile := filepath.Join(dir, "initiator.json")
	writeConfigJSON(t, ifile, icfg)
	out, err := runCLI(t, nil, "initiator", "--config", ifile, "--once", "--log-level", "warn")
	if err != nil || !strings.Contains(out, "1 subsystems: 1 connected now") {
		t.Fatalf("initiator --config (deploy/initiator.yaml) --once: %v\n%s", err, out)
	}
	p := fs.Params[0]
	if p.NQN != tcfg.Subsystems[0].NQN || p.Transport != "tcp" || "127.0.0.1:"+p.TrSvcID != serving || p.CtrlLossTmo != 600 || p.ReconnectDelay != 10 {
		t.Fatalf("the kernel was asked to connect %+v: want %s at %s (the I/O port, not discovery's %s), ctrl_loss_tmo 600, reconnect_delay 10", p, tcfg.Subsystems[0].NQN, serving, discovery)
	}
	// What the kernel was given reaches the namespace.
	out, err = runCLI(t, nil, "io", "--addr", "tcp://"+p.TrAddr+":"+p.TrSvcID, "--nqn", p.NQN, "identify", "--output", "json")
	if err != nil {
		t.Fatalf("identify at %s:%s: %v\n%s", p.TrAddr, p.TrSvcID, err, out)
	}
	var id struct {
		NSID      uint32 `json:"nsid"`
		SizeBytes int64  `json:"size_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &id); err != nil || id.NSID != 1 || id.SizeBytes != 1<<30 {
		t.Fatalf("namespace %+v, %v: want NSID 1 of 1 GiB (deploy/target.yaml's mem:1GiB)\n%s", id, err, out)
	}
}

func writeConfigJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// startConfigTarget runs `flashpath target --config file` until the test
// ends and returns the addresses its first serving line and its discovery
// line name.
func startConfigTarget(t *testing.T, file string) (serving, discovery string) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd()
	root.SetOut(pw)
	root.SetArgs([]string{"target", "--config", file, "--rpc-socket", "off", "--log-level", "warn"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("target exited with %v", err)
		}
	})
	serve := regexp.MustCompile(`^serving \S+ on nvme/tcp (\S+)$`)
	disc := regexp.MustCompile(`^discovery on nvme/tcp (\S+)$`)
	sc := bufio.NewScanner(pr)
	for (serving == "" || discovery == "") && sc.Scan() {
		if m := serve.FindStringSubmatch(sc.Text()); m != nil && serving == "" {
			serving = m[1]
		}
		if m := disc.FindStringSubmatch(sc.Text()); m != nil {
			discovery = m[1]
		}
	}
	if serving == "" || discovery == "" {
		cancel()
		t.Fatalf("target printed serving %q, discovery %q: %v", serving, discovery, <-done)
	}
	go io.Copy(io.Discard, pr)
	return serving, discovery
}
