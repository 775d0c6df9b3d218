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

// TestParseURLHost: each host is a host name, an IPv4 address or an IPv6
// address in brackets, each port a number; anything else (such as the
// fuzzer's "0[0", which became the address "0[0:4420" that no dialer
// takes) is refused with an error that gives the forms wanted.
func TestParseURLHost(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://localhost/nqn.a:b/1":                 "localhost:4420",
		"tcp://host.example.com.:4421/nqn.a:b/1":    "host.example.com.:4421",
		"tcp://node_1-a.lab:4420/nqn.a:b/1":         "node_1-a.lab:4420",
		"tcp://[fd00::1]:4421/nqn.a:b/1":            "[fd00::1]:4421",
		"tcp://[fe80::1%eth0]/nqn.a:b/1":            "[fe80::1%eth0]:4420",
		"rdma://[::ffff:10.0.0.1]:4420/nqn.a:b/1":   "[::ffff:10.0.0.1]:4420",
		"tcp://10.0.0.1:65535,h2:1/nqn.a:b/1":       "10.0.0.1:65535,h2:1",
		"tcp://0x1f.example/nqn.a:b/1":              "0x1f.example:4420",
		"tcp://1.2.3.4.example.com:4420/nqn.a:b/99": "1.2.3.4.example.com:4420",
	} {
		got, err := ParseURL(in, "")
		if err != nil || got.Addr != want {
			t.Errorf("ParseURL(%q) = %+v, %v; want Addr %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"tcp://0[0/0/1", // the fuzzer's
		"tcp://[10.0.0.1]/nqn.a/1", "tcp://[h]:4420/nqn.a/1", "tcp://[::1/nqn.a/1", "tcp://::1]/nqn.a/1",
		"tcp://fd00::1/nqn.a/1", "tcp://fd00::1:4420/nqn.a/1", // IPv6 without brackets
		"tcp://h:x/nqn.a/1", "tcp://h:/nqn.a/1", "tcp://h:0/nqn.a/1", "tcp://h:65536/nqn.a/1", "tcp://h:1:2/nqn.a/1",
		"tcp://:4420/nqn.a/1", "tcp://-h/nqn.a/1", "tcp://h-/nqn.a/1", "tcp://a..b/nqn.a/1", "tcp://h%20/nqn.a/1", "tcp://h~/nqn.a/1",
		"tcp://0/nqn.a/1", "tcp://10.1/nqn.a/1", "tcp://1.2.3.256/nqn.a/1", "tcp://010.0.0.1/nqn.a/1", // numbers, no IPv4 address
		"tcp://[fe80::1%a]b]/nqn.a/1", "tcp://[fe80::1%]/nqn.a/1", "tcp://" + strings.Repeat("a", 64) + "/nqn.a/1",
	} {
		_, err := ParseURL(bad, "")
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded", bad)
		} else if !strings.Contains(err.Error(), "want ") {
			t.Errorf("ParseURL(%q): %v: the error gives no form wanted", bad, err)
		}
	}
	_, err := ParseURL("tcp://0[0/0/1", "")
	if err == nil || !strings.Contains(err.Error(), `bad host "0[0"`) || !strings.Contains(err.Error(), "an IPv6 address in brackets ([fd00::1])") {
		t.Errorf("ParseURL of a bad host: %v", err)
	}
}

// TestSplitAddrHost: SplitAddr checks hosts and ports as ParseURL does,
// and still takes an IPv6 address without brackets when no port follows.
func TestSplitAddrHost(t *testing.T) {
	for in, want := range map[string]string{
		"fd00::1":               "[fd00::1]:4420",
		"rdma://fe80::1%ib0":    "[fe80::1%ib0]:4420",
		"tcp://[fe80::1%ib0]:1": "[fe80::1%ib0]:1",
		"node-7.lab":            "node-7.lab:4420",
	} {
		if _, got, err := SplitAddr(in, DefaultPort); err != nil || got != want {
			t.Errorf("SplitAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"0[0", "tcp://0[0:4420", "[h]:1", "[10.0.0.1]", "h:x", "h:0", "h:", "0", "a b", "h:1:2:x", "tcp://h/x"} {
		if _, got, err := SplitAddr(bad, DefaultPort); err == nil {
			t.Errorf("SplitAddr(%q) = %q", bad, got)
		} else if !strings.Contains(err.Error(), "want ") {
			t.Errorf("SplitAddr(%q): %v: the error gives no form wanted", bad, err)
		}
	}
}
