package e2e

import (
	"context"
	"log/slog"
	"testing"

	"github.com/flashpath/flashpath/initiator/agent"
	"github.com/flashpath/flashpath/initiator/kernel"
	"github.com/flashpath/flashpath/initiator/kernel/kerneltest"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/tcp"
)

// TestRunPersistentDiscovery: with a persistent discovery connection to
// flashpath's target (real TCP on 127.0.0.1), a subsystem added on the
// target is connected by a pass the change notice triggers, with the
// interval an hour away; subsystems the host may not see are not.
const (
	agentHostNQN = "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4697-8879-aabbccddee01"
	agentHostID  = "0f1e2d3c-4b5a-4697-8879-aabbccddee01"
)

func TestAgentPersistentDiscovery(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tgt := target.New(target.Options{Logger: log})
	if _, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: "nqn.2026-11.io.flashpath:p-a", AllowAnyHost: true}); err != nil {
		t.Fatal(err)
	}
	ln, err := tcp.Listen(tgt, "127.0.0.1:0", tcp.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	defer ln.Close()

	cfg, err := agent.Parse([]byte("hostnqn: " + agentHostNQN + "\nhostid: " + agentHostID + "\ninterval: 1h\ndiscovery: [{address: tcp://" + ln.Addr().String() + "}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	fs := kerneltest.New(t.TempDir())
	fs.Connected = make(chan kernel.Params, 8)
	a := agent.New(cfg, fs, nil, log)
	passes := make(chan string, 16)
	a.OnPass(func(why string, _ agent.Result) { passes <- why })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx, nil, nil)
	}()
	defer func() { cancel(); <-done }()

	if p := <-fs.Connected; p.NQN != "nqn.2026-11.io.flashpath:p-a" {
		t.Fatalf("first connect %s", p.NQN)
	}
	// Once the persistent connection is up (its notices enabled) it asks
	// for a pass of its own.
	for why := <-passes; why != "discovery log change"; why = <-passes {
	}
	if _, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: "nqn.2026-11.io.flashpath:p-hidden", AllowedHosts: []string{"nqn.2014-08.org.nvmexpress:uuid:someone-else"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: "nqn.2026-11.io.flashpath:p-b", AllowAnyHost: true}); err != nil {
		t.Fatal(err)
	}
	if p := <-fs.Connected; p.NQN != "nqn.2026-11.io.flashpath:p-b" {
		t.Fatalf("connected %s after the change, want p-b", p.NQN)
	}
	cancel()
	<-done
	select {
	case p := <-fs.Connected:
		t.Fatalf("also connected %s", p.NQN)
	default:
	}
	if n := len(fs.Params); n != 2 {
		t.Fatalf("%d connects, want 2", n)
	}
}
