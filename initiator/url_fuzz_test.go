package initiator

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseURL feeds arbitrary text to the namespace-URL parser (the bench's
// filename=, the GPU loader's shard locations in index.json, the CLI), to
// SplitAddr (config addresses) and to ParseHostID: an error or a result
// whose addresses a dialer takes (host:port, the port a number), never a
// panic.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"tcp://127.0.0.1:4420/nqn.2026-11.io.flashpath:demo/1",
		"rdma://10.0.0.1/nqn.a:b/7",
		"tcp://10.0.0.1,10.0.0.2:4421,[fd00::1]/nqn.a:b/7",
		"tcp://h:1,,h:2/nqn.a/1", "tcp:///nqn.a/1", "tcp://[::1/%zz/1", "rdma://a/%2F/%2F/4294967295",
		"6b0f3a2e-5d1c-4e8f-9a7b-1c2d3e4f5a6b", "fe80::1%eth0", "[::1]:4420", "tcp://", "", "tcp://0[0/0/1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, scheme := range []string{"", "tcp", "rdma"} {
			u, err := ParseURL(s, scheme)
			if err != nil {
				continue
			}
			if u.NSID == 0 || u.NQN == "" {
				t.Fatalf("ParseURL(%q) = %+v", s, u)
			}
			// "tcp://0[0/0/1" once gave the address "0[0:4420".
			for _, a := range u.Addrs() {
				checkDialAddr(t, "ParseURL", s, a)
			}
			_ = u.String()
		}
		if tr, hp, err := SplitAddr(s, "4420"); err == nil {
			if tr != "tcp" && tr != "rdma" {
				t.Fatalf("SplitAddr(%q) transport %q", s, tr)
			}
			checkDialAddr(t, "SplitAddr", s, hp)
		}
		_, _ = ParseHostID(s)
		_ = nameUUID(s)
	})
}

// checkDialAddr fails t unless a, which fn returned for s, is host:port as
// net.JoinHostPort writes it, the host an IP address or a name without
// the characters of the address syntax, the port a number from 1 to
// 65535.
func checkDialAddr(t *testing.T, fn, s, a string) {
	t.Helper()
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		t.Fatalf("%s(%q): address %q: %v", fn, s, a, err)
	}
	if net.JoinHostPort(host, port) != a || host == "" || strings.ContainsAny(host, "[]/,@ ") && !strings.Contains(host, ":") {
		t.Fatalf("%s(%q): address %q: host %q", fn, s, a, host)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		t.Fatalf("%s(%q): address %q: port %q", fn, s, a, port)
	}
}
