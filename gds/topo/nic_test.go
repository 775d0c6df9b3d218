package topo

import (
	"runtime"
	"testing"
)

func TestNICForLoopback(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("routes come from netlink")
	}
	for _, addr := range []string{"127.0.0.1:4420", "127.0.0.1", "localhost:4420"} {
		if got := NICFor("tcp", addr); got != "lo" {
			t.Errorf("NICFor(tcp, %s) = %q, want lo", addr, got)
		}
	}
	// No RDMA device sits on lo: the net device alone.
	if got := NICFor("rdma", "127.0.0.1:4420"); got != "lo" {
		t.Errorf("NICFor(rdma, 127.0.0.1:4420) = %q, want lo", got)
	}
}
