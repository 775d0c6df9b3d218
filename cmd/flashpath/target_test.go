package main

import (
	"bufio"
	"context"
	"io"
	"regexp"
	"testing"

	"github.com/flashpath/flashpath/initiator"
)

// TestTargetCommand runs `flashpath target` as a user would, connects to it
// and stops it the way SIGTERM does (its context ends).
func TestTargetCommand(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	root.SetOut(pw)
	root.SetArgs([]string{"target", "--listen", "tcp://127.0.0.1:0", "--nqn", "nqn.2026-11.io.flashpath:cli",
		"--namespace", "mem:8MiB", "--namespace", "null:1GiB", "--log-level", "warn"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()

	re := regexp.MustCompile(`^serving (\S+) on nvme/tcp (\S+)$`)
	sc := bufio.NewScanner(pr)
	var nqn, addr string
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			nqn, addr = m[1], m[2]
			break
		}
	}
	if addr == "" {
		t.Fatalf("target printed no serving line: %v", <-done)
	}
	go io.Copy(io.Discard, pr)
	c, err := initiator.Connect(ctx, initiator.Config{Addr: addr, SubNQN: nqn})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := c.ActiveNamespaces(ctx)
	if err != nil || len(ids) != 2 || ids[0] != 1 || ids[1] != 2 {
		t.Fatalf("active namespaces %v, %v; want [1 2]", ids, err)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("target exited with %v", err)
	}
}

func TestTargetFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"target", "--config", "x.yaml", "--nqn", "nqn.a"},
		{"target", "--nqn", "bad"},
		{"target", "--log-level", "loud"},
		{"target", "--listen", "udp://1.2.3.4:1"},
	} {
		root := newRootCmd()
		root.SetOut(io.Discard)
		root.SetArgs(args)
		if err := root.Execute(); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
