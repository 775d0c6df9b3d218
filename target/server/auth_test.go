package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/dhchap"
)

func secret(t *testing.T) string {
	t.Helper()
	s, err := dhchap.GenerateSecret(rand.Reader, dhchap.SHA256, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s.String()
}

// TestAllowedHostsWithKeys: allowed_hosts mixes bare NQNs and entries with
// secrets, inline or in files; the target gets the keys.
func TestAllowedHostsWithKeys(t *testing.T) {
	dir := t.TempDir()
	key, ctrl := secret(t), secret(t)
	keyFile := filepath.Join(dir, "host.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte(`
listeners: [tcp://127.0.0.1:4420]
dhchap_hashes: [sha256]
dhchap_dhgroups: [ffdhe3072, "null"]
subsystems:
  - nqn: ` + reloadNQN + `
    allowed_hosts:
      - ` + hostA + `
      - nqn: ` + hostB + `
        dhchap_key_file: ` + keyFile + `
        dhchap_ctrl_key: "` + ctrl + `"
    namespaces: [{backend: "mem:1MiB"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	anyHost, hosts, keys := hostsOf(cfg.Subsystems[0])
	if anyHost || len(hosts) != 2 || len(keys) != 1 {
		t.Fatalf("any %v, hosts %v, keys for %d hosts", anyHost, hosts, len(keys))
	}
	k := keys[hostB]
	if k.Key.String() != key || k.CtrlKey == nil || k.CtrlKey.String() != ctrl {
		t.Fatalf("keys of %s not as configured", hostB)
	}
	hs, gs, err := cfg.authOptions()
	if err != nil || len(hs) != 1 || hs[0] != dhchap.SHA256 || len(gs) != 2 || gs[1] != dhchap.DHNull {
		t.Fatalf("auth options %v %v %v", hs, gs, err)
	}
}

func TestAllowedHostsKeyErrors(t *testing.T) {
	good := secret(t)
	for _, tc := range []struct{ entry, want string }{
		{`{nqn: ` + hostA + `, dhchap_key: "DHHC-1:01:bm90IGEga2V5:"}`, "dhchap_key"},
		{`{nqn: ` + hostA + `, dhchap_ctrl_key: "` + good + `"}`, "without dhchap_key"},
		{`{nqn: ` + hostA + `, dhchap_key: "` + good + `", dhchap_key_file: /x}`, "choose one"},
		{`{nqn: ` + hostA + `, dhchap_key_file: /nonexistent/key}`, "dhchap_key_file"},
		{`{nqn: ` + hostA + `, dhchap_secret: "` + good + `"}`, "unknown field"},
	} {
		_, err := Parse([]byte(`
listeners: [tcp://127.0.0.1:4420]
subsystems:
  - nqn: ` + reloadNQN + `
    allowed_hosts: [` + tc.entry + `]
    namespaces: [{backend: "mem:1MiB"}]
`))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.entry, err, tc.want)
		}
	}
	_, err := Parse([]byte("listeners: [tcp://127.0.0.1:4420]\ndhchap_dhgroups: [null]\nsubsystems: [{nqn: " + reloadNQN + "}]\n"))
	if err == nil || !strings.Contains(err.Error(), `"null" in quotes`) {
		t.Errorf("bare null: %v", err)
	}
}

// TestReloadKeyChange: a reload that changes only a host's key applies it.
func TestReloadKeyChange(t *testing.T) {
	conf := func(key string) *Config {
		cfg, err := Parse([]byte(`
listeners: [tcp://127.0.0.1:4420]
subsystems:
  - nqn: ` + reloadNQN + `
    allowed_hosts: [{nqn: ` + hostA + `, dhchap_key: "` + key + `"}]
    namespaces: [{backend: "mem:1MiB"}]
`))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cur := resolveNSIDs(conf(secret(t)))
	if p := planReload(cur, conf(cur.Subsystems[0].AllowedHosts[0].DHCHAPKey)); p.subsystems[0].hosts {
		t.Fatal("same key planned as a change")
	}
	if p := planReload(cur, conf(secret(t))); !p.subsystems[0].hosts {
		t.Fatal("a new key is not applied")
	}
}

func TestLimitsConfig(t *testing.T) {
	cfg, err := Parse([]byte("listeners: [tcp://127.0.0.1:4420]\nbuffer_memory: 64MiB\nmax_host_buffer: 8MiB\nmax_conns: 100\nmax_conns_per_host: 10\nsubsystems: [{nqn: " + reloadNQN + "}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if mem, per, err := cfg.limits(); mem != 64<<20 || per != 8<<20 || err != nil {
		t.Fatalf("limits %d %d %v", mem, per, err)
	}
	for _, bad := range []string{"buffer_memory: 1MiB", "max_host_buffer: lots", "max_conns: -1", "send_timeout: -1s"} {
		if _, err := Parse([]byte("listeners: [tcp://127.0.0.1:4420]\n" + bad + "\nsubsystems: [{nqn: " + reloadNQN + "}]\n")); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestLooseKeyFileWarnsOnce: a key file others can read is warned about
// once, on the server's logger (JSON when the daemon logs JSON), though
// the configuration is validated several times (parse, the CLI, Start);
// nothing goes to the default logger, which may not be set up yet.
func TestLooseKeyFileWarnsOnce(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "host.key")
	if err := os.WriteFile(keyFile, []byte(secret(t)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var def bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&def, nil)))
	defer slog.SetDefault(old)
	cfg, err := Parse([]byte(`
listeners: [tcp://127.0.0.1:0]
subsystems:
  - nqn: ` + reloadNQN + `
    allowed_hosts:
      - {nqn: ` + hostA + `, dhchap_key_file: ` + keyFile + `}
      - {nqn: ` + hostB + `, dhchap_key_file: ` + keyFile + `}
    namespaces: [{backend: "mem:1MiB"}]
`))
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	srv, err := Start(cfg, Options{Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	if n := strings.Count(log.String(), "readable by others"); n != 1 || !strings.Contains(log.String(), `"file":"`+keyFile+`"`) || !strings.Contains(log.String(), `"mode":"-rw-r--r--"`) {
		t.Errorf("%d warnings on the server's log, want 1 naming the file and its mode:\n%s", n, log.String())
	}
	if def.Len() != 0 {
		t.Errorf("the default logger got:\n%s", def.String())
	}
}
