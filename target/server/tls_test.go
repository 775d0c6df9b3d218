package server

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/target/tcp"
)

func tlsKey(t *testing.T, h dhchap.Hash) string {
	t.Helper()
	k := make([]byte, h.Size())
	rand.Read(k)
	return dhchap.PSK{Hash: h, Key: k}.String()
}

func TestParseListenerTLS(t *testing.T) {
	for in, want := range map[string]struct {
		addr string
		tls  tcp.TLSMode
	}{
		"tcp://127.0.0.1:4420?tls=required": {"127.0.0.1:4420", tcp.TLSRequired},
		"127.0.0.1:4421?tls=optional":       {"127.0.0.1:4421", tcp.TLSOptional},
		"tcp://[::1]:4420?tls=off":          {"[::1]:4420", tcp.TLSOff},
		"tcp://localhost?tls=required":      {"localhost:4420", tcp.TLSRequired},
		"tcp://10.0.0.1:4420":               {"10.0.0.1:4420", tcp.TLSOff},
	} {
		l, err := parseListener(in)
		if err != nil || l.addr != want.addr || l.tls != want.tls || l.trtype != "tcp" {
			t.Errorf("parseListener(%q) = %+v, %v; want %+v", in, l, err, want)
		}
	}
	for in, msg := range map[string]string{
		"tcp://127.0.0.1:4420?tls=yes":              "want required, optional or off",
		"tcp://127.0.0.1:4420?tls=required&tls=off": "the one option",
		"tcp://127.0.0.1:4420?psk=x":                "the one option",
		"rdma://10.0.0.1:4420?tls=required":         "NVMe/TCP listeners",
	} {
		if _, _, err := ParseListener(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseListener(%q): %v, want an error saying %q", in, err, msg)
		}
	}
}

// TestAllowedHostsWithTLSKeys: tls_key inline or in a file reaches the
// target's subsystem configuration; a host may have a DH-HMAC-CHAP key
// too.
func TestAllowedHostsWithTLSKeys(t *testing.T) {
	dir := t.TempDir()
	inline, inFile := tlsKey(t, dhchap.SHA256), tlsKey(t, dhchap.SHA384)
	keyFile := filepath.Join(dir, "host.psk")
	if err := os.WriteFile(keyFile, []byte(inFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte(`
listeners: ["tcp://127.0.0.1:4420?tls=optional"]
subsystems:
  - nqn: ` + reloadNQN + `
    allowed_hosts:
      - nqn: ` + hostA + `
        tls_key: "` + inline + `"
        dhchap_key: "` + secret(t) + `"
      - nqn: ` + hostB + `
        tls_key_file: ` + keyFile + `
    namespaces: [{backend: "mem:1MiB"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	tc := subsystemConfig(cfg.Subsystems[0])
	if len(tc.TLSKeys) != 2 || tc.TLSKeys[hostA].String() != inline || tc.TLSKeys[hostB].String() != inFile {
		t.Fatalf("TLS keys of the subsystem not as configured (%d hosts)", len(tc.TLSKeys))
	}
	if len(tc.Keys) != 1 || len(tc.AllowedHosts) != 2 {
		t.Fatalf("DH-HMAC-CHAP keys for %d hosts, %d hosts allowed; want 1 and 2", len(tc.Keys), len(tc.AllowedHosts))
	}
}

func TestTLSKeyErrors(t *testing.T) {
	good := tlsKey(t, dhchap.SHA256)
	for _, tc := range []struct{ listener, entry, want string }{
		{"tcp://127.0.0.1:4420?tls=required", `{nqn: ` + hostA + `, tls_key: "NVMeTLSkey-1:01:bm90IGEga2V5:"}`, "tls_key"},
		{"tcp://127.0.0.1:4420?tls=required", `{nqn: ` + hostA + `, tls_key: "` + secret(t) + `"}`, "tls_key"},
		{"tcp://127.0.0.1:4420?tls=required", `{nqn: ` + hostA + `, tls_key: "` + good + `", tls_key_file: /x}`, "choose one"},
		{"tcp://127.0.0.1:4420?tls=required", `{nqn: ` + hostA + `, tls_key_file: /nonexistent/psk}`, "tls_key_file"},
		{"tcp://127.0.0.1:4420", `{nqn: ` + hostA + `, tls_key: "` + good + `"}`, "no listener has TLS"},
	} {
		_, err := Parse([]byte(`
listeners: ["` + tc.listener + `"]
subsystems:
  - nqn: ` + reloadNQN + `
    allowed_hosts: [` + tc.entry + `]
    namespaces: [{backend: "mem:1MiB"}]
`))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.entry, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), good[len("NVMeTLSkey-1:01:"):]) {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
}

// TestReloadTLSKeyChange: a reload that changes only a host's TLS key
// applies it.
func TestReloadTLSKeyChange(t *testing.T) {
	conf := func(key string) *Config {
		cfg, err := Parse([]byte(`
listeners: ["tcp://127.0.0.1:4420?tls=required"]
subsystems:
  - nqn: ` + reloadNQN + `
    allowed_hosts: [{nqn: ` + hostA + `, tls_key: "` + key + `"}]
    namespaces: [{backend: "mem:1MiB"}]
`))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cur := resolveNSIDs(conf(tlsKey(t, dhchap.SHA256)))
	if p := planReload(cur, conf(cur.Subsystems[0].AllowedHosts[0].TLSKey)); p.subsystems[0].hosts {
		t.Fatal("same key planned as a change")
	}
	if p := planReload(cur, conf(tlsKey(t, dhchap.SHA256))); !p.subsystems[0].hosts {
		t.Fatal("a new TLS key is not applied")
	}
}
