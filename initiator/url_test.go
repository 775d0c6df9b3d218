package initiator

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	got, err := ParseURL("tcp://127.0.0.1:4420/nqn.2026-11.io.flashpath:demo/1", "")
	if err != nil || got != (NamespaceURL{Transport: "tcp", Addr: "127.0.0.1:4420", NQN: "nqn.2026-11.io.flashpath:demo", NSID: 1}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if got.String() != "tcp://127.0.0.1:4420/nqn.2026-11.io.flashpath:demo/1" {
		t.Errorf("String() = %q", got.String())
	}
	if got, err := ParseURL("rdma://10.0.0.1/nqn.a:b/7", ""); err != nil || got.Addr != "10.0.0.1:4420" || got.NSID != 7 || got.Transport != "rdma" {
		t.Fatalf("default port: got %+v, %v", got, err)
	}
	if got, err := ParseURL("tcp://10.0.0.1,10.0.0.2:4421,[fd00::1]/nqn.a:b/7", ""); err != nil || got.Addr != "10.0.0.1:4420,10.0.0.2:4421,[fd00::1]:4420" ||
		len(got.Addrs()) != 3 || got.Addrs()[1] != "10.0.0.2:4421" {
		t.Fatalf("several paths: got %+v, %v", got, err)
	}
	for _, bad := range []string{"tcp://h:1,,h:2/nqn.a/1", "tcp://h:1,/nqn.a/1", "/dev/nvme0n1", "tcp://h:1/nqn.a", "tcp://h:1/nqn.a/0", "tcp://h:1/nqn.a/x", "fc://h:1/nqn.a/1", "tcp:///nqn.a/1"} {
		if _, err := ParseURL(bad, ""); err == nil {
			t.Errorf("ParseURL(%q) succeeded", bad)
		}
	}
	if _, err := ParseURL("tcp://10.0.0.1/nqn.a:b/7", "rdma"); err == nil || !strings.Contains(err.Error(), "rdma://HOST:PORT/NQN/NSID") {
		t.Fatalf("tcp:// where rdma:// is wanted: %v", err)
	}
}
