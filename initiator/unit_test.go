package initiator

import (
	"strings"
	"testing"
)

func TestDefaultHostNQNStable(t *testing.T) {
	a, err := DefaultHostNQN()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DefaultHostNQN()
	if a != b || !strings.HasPrefix(a, "nqn.") {
		t.Fatalf("DefaultHostNQN: %q then %q", a, b)
	}
	if id := defaultHostID(a); id == [16]byte{} {
		t.Fatalf("host ID of %q is zero", a)
	}
}

func TestSplitAddr(t *testing.T) {
	for in, want := range map[string][2]string{
		"rdma://169.254.42.1":   {"rdma", "169.254.42.1:4420"},
		"rdma://[fe80::1]:4421": {"rdma", "[fe80::1]:4421"},
		"tcp://10.0.0.5:8009/":  {"tcp", "10.0.0.5:8009"},
		"host.example.com":      {"tcp", "host.example.com:4420"},
		"127.0.0.1:4420":        {"tcp", "127.0.0.1:4420"},
		"tcp://127.0.0.1:4420":  {"tcp", "127.0.0.1:4420"},
		"tcp://10.0.0.1":        {"tcp", "10.0.0.1:4420"},
		"tcp://[::1]:4421/":     {"tcp", "[::1]:4421"},
		"::1":                   {"tcp", "[::1]:4420"},
	} {
		tr, a, err := SplitAddr(in, DefaultPort)
		if err != nil || tr != want[0] || a != want[1] {
			t.Errorf("SplitAddr(%q) = %q %q %v; want %q", in, tr, a, err, want)
		}
	}
	for _, bad := range []string{"", "tcp://", "rdma://", "tcp://:4420", "fc://h", "tcp://a/b"} {
		if _, _, err := SplitAddr(bad, DefaultPort); err == nil {
			t.Errorf("SplitAddr(%q) succeeded", bad)
		}
	}
}
