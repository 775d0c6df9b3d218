package fabrics

import (
	"strings"
	"testing"
)

func TestParseFilename(t *testing.T) {
	got, err := ParseFilename("tcp://127.0.0.1:4420/nqn.2026-11.io.flashpath:demo/1")
	if err != nil || got != (Target{Addr: "127.0.0.1:4420", NQN: "nqn.2026-11.io.flashpath:demo", NSID: 1}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if got, err := ParseFilename("tcp://10.0.0.1/nqn.a:b/7"); err != nil || got.Addr != "10.0.0.1:4420" || got.NSID != 7 {
		t.Fatalf("default port: got %+v, %v", got, err)
	}
	for _, bad := range []string{"/dev/nvme0n1", "tcp://h:1/nqn.a", "tcp://h:1/nqn.a/0", "tcp://h:1/nqn.a/x", "rdma://h:1/nqn.a/1"} {
		if _, err := ParseFilename(bad); err == nil {
			t.Errorf("ParseFilename(%q) succeeded", bad)
		}
	}
}

func TestRDMAFilename(t *testing.T) {
	got, err := parseFilename("rdma://10.0.0.1/nqn.a:b/7", "rdma")
	if err != nil || got.Addr != "10.0.0.1:4420" || got.NSID != 7 {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := parseFilename("tcp://10.0.0.1/nqn.a:b/7", "rdma"); err == nil || !strings.Contains(err.Error(), "rdma://HOST:PORT/NQN/NSID") {
		t.Fatalf("tcp:// for nvme-rdma: %v", err)
	}
}
