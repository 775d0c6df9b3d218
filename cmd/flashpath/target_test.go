package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/testutil"
)

// startCLITarget runs `flashpath target` with args (plus a listener on
// 127.0.0.1:0) as a user would, returns the NQN and address its serving
// line names, and stops it the way SIGTERM does (its context ends) when
// the test ends, failing the test if it does not exit cleanly.
func startCLITarget(t *testing.T, args ...string) (nqn, addr string) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd()
	root.SetOut(pw)
	root.SetArgs(append([]string{"target", "--listen", "tcp://127.0.0.1:0", "--log-level", "warn", "--rpc-socket", filepath.Join(t.TempDir(), "spdk.sock")}, args...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("target exited with %v", err)
		}
	})
	re := regexp.MustCompile(`^serving (\S+) on nvme/tcp (\S+)$`)
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			nqn, addr = m[1], m[2]
			break
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("target printed no serving line: %v", <-done)
	}
	go io.Copy(io.Discard, pr)
	return nqn, addr
}

// TestTargetCommand runs `flashpath target` and checks what it serves
// with `flashpath io identify`.
func TestTargetCommand(t *testing.T) {
	nqn, addr := startCLITarget(t, "--nqn", "nqn.2026-11.io.flashpath:cli", "--namespace", "mem:8MiB", "--namespace", "null:1GiB")
	out, err := runCLI(t, nil, "io", "--addr", addr, "--nqn", nqn, "identify", "--output", "json")
	if err != nil {
		t.Fatalf("identify: %v\n%s", err, out)
	}
	var id struct {
		Namespaces []uint32 `json:"namespaces"`
	}
	if err := json.Unmarshal([]byte(out), &id); err != nil || !slices.Equal(id.Namespaces, []uint32{1, 2}) {
		t.Fatalf("active namespaces %v, %v; want [1 2]\n%s", id.Namespaces, err, out)
	}
}

func TestTargetFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"target", "--config", "x.yaml", "--nqn", "nqn.a"},
		{"target", "--nqn", "bad"},
		{"target", "--log-level", "loud"},
		{"target", "--listen", "udp://1.2.3.4:1"},
		{"target", "--tls", "maybe"},
		{"target", "--tls", "required", "--tls-key-file", "x.psk"},
		{"target", "--config", "x.yaml", "--tls", "required"},
	} {
		root := newRootCmd()
		root.SetOut(io.Discard)
		root.SetArgs(args)
		if err := root.Execute(); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestTargetTLSFlags: --tls required with a host's --tls-key-file serves
// TLS only: the serving lines say to connect with --tls, and a plain
// connect is refused.
func TestTargetTLSFlags(t *testing.T) {
	const host = "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0000-1000-8000-00000000c1c1"
	key := filepath.Join(t.TempDir(), "host.psk")
	if err := os.WriteFile(key, []byte("NVMeTLSkey-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"target", "--listen", "tcp://127.0.0.1:0", "--tls", "required", "--allow-host", host, "--tls-key-file", key, "--log-level", "warn", "--rpc-socket", "off"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // serve, print the serving lines, stop
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("target: %v", err)
	}
	if !regexp.MustCompile(`(?m)^  connect:  nvme connect -t tcp .* --hostnqn ` + host + ` --tls$`).MatchString(out.String()) {
		t.Errorf("serving lines do not say --hostnqn and --tls:\n%s", out.String())
	}
	// The bench line works as printed: the allowed host, its PSK read
	// from its file.
	if !strings.Contains(out.String(), `/1 --hostnqn `+host+` --tls_key "$(cat `+key+`)" --rw randread`) {
		t.Errorf("the bench line lacks --hostnqn and --tls_key:\n%s", out.String())
	}
	nqn, addr := startCLITarget(t, "--tls", "required", "--allow-host", host, "--tls-key-file", key)
	if out, err := runCLI(t, nil, "io", "--addr", addr, "--nqn", nqn, "--hostnqn", host, "identify"); err == nil {
		t.Errorf("a plain connect to a TLS-only target succeeded:\n%s", out)
	}
}

// startRPCTarget runs `flashpath target` with args until the test ends
// and returns once its JSON-RPC socket sock is served.
func startRPCTarget(t *testing.T, sock string, args ...string) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd()
	root.SetOut(pw)
	root.SetArgs(append([]string{"target", "--log-level", "warn"}, args...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	sc := bufio.NewScanner(pr)
	ready := false
	for !ready && sc.Scan() {
		ready = bytes.HasPrefix(sc.Bytes(), []byte("SPDK JSON-RPC on "+sock))
	}
	go io.Copy(io.Discard, pr)
	if !ready {
		cancel()
		t.Fatalf("no JSON-RPC line: %v", <-done)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("target exited with %v", err)
		}
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left behind: %v", err)
		}
	})
}

// subsystemsOver returns the NQNs nvmf_get_subsystems lists on sock.
func subsystemsOver(t *testing.T, sock string) []string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, `{"jsonrpc":"2.0","method":"nvmf_get_subsystems","id":1}`)
	var resp struct {
		Result []struct {
			NQN string `json:"nqn"`
		} `json:"result"`
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range resp.Result {
		out = append(out, r.NQN)
	}
	return out
}

// TestTargetRPCSocket: `flashpath target --rpc-socket PATH` alone starts
// an empty target, like nvmf_tgt, that answers SPDK's JSON-RPC and
// removes the socket when it stops; rpc_socket in a configuration file
// serves the file's subsystems.
func TestTargetRPCSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "spdk.sock")
	startRPCTarget(t, sock, "--rpc-socket", sock)
	if got := subsystemsOver(t, sock); !slices.Equal(got, []string{"nqn.2014-08.org.nvmexpress.discovery"}) {
		t.Errorf("nvmf_get_subsystems on an empty target: %v", got)
	}

	dir := t.TempDir()
	sock2 := filepath.Join(dir, "file.sock")
	cfg := filepath.Join(dir, "target.yaml")
	os.WriteFile(cfg, []byte("rpc_socket: "+sock2+"\nlisteners: [tcp://127.0.0.1:0]\nsubsystems:\n  - nqn: nqn.2026-11.io.flashpath:file\n    namespaces: [{backend: \"mem:1MiB\"}]\n"), 0o600)
	startRPCTarget(t, sock2, "--config", cfg)
	if got := subsystemsOver(t, sock2); !slices.Equal(got, []string{"nqn.2014-08.org.nvmexpress.discovery", "nqn.2026-11.io.flashpath:file"}) {
		t.Errorf("nvmf_get_subsystems with rpc_socket in the file: %v", got)
	}
}

// TestTargetRPCSocketInConfig: rpc_socket: off in a configuration file
// turns the socket off (as --rpc-socket off does, root or not), and a
// relative rpc_socket is refused naming the field, not the flag.
func TestTargetRPCSocketInConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, sock string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("rpc_socket: "+sock+"\nlisteners: [tcp://127.0.0.1:0]\nsubsystems:\n  - nqn: nqn.2026-12.io.flashpath:off\n    namespaces: [{backend: \"mem:1MiB\"}]\n"), 0o600)
		return p
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd()
	root.SetOut(pw)
	root.SetArgs([]string{"target", "--config", write("off.yaml", `"off"`), "--log-level", "warn"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); pw.Close() }()
	served := false
	sc := bufio.NewScanner(pr)
	for !served && sc.Scan() {
		served = strings.HasPrefix(sc.Text(), "serving ")
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if err := <-done; err != nil || !served {
		t.Fatalf("rpc_socket: off: the target did not serve (%v)", err)
	}

	_, err := runCLI(t, nil, "target", "--config", write("rel.yaml", "spdk.sock"))
	if err == nil || !strings.Contains(err.Error(), `rpc_socket "spdk.sock": give an absolute path`) {
		t.Errorf("relative rpc_socket: %v, want an error naming rpc_socket", err)
	}
}

// TestRPCCommand: flashpath rpc against a running target.
func TestRPCCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "spdk.sock")
	startCLITarget(t, "--rpc-socket", sock)
	out, err := runCLI(t, nil, "rpc", "-s", sock, "bdev_null_create", `{"name": "N0", "num_blocks": 1024, "block_size": 512}`)
	if err != nil || out != "\"N0\"\n" {
		t.Fatalf("bdev_null_create: %q %v", out, err)
	}
	out, err = runCLI(t, nil, "rpc", "-s", sock, "nvmf_get_subsystems")
	if err != nil || !bytes.Contains([]byte(out), []byte(`"subtype": "NVMe"`)) {
		t.Errorf("nvmf_get_subsystems: %s %v", out, err)
	}
	if _, err := runCLI(t, nil, "rpc", "-s", sock, "bdev_null_delete", `{"name": "nope"}`); err == nil || !bytes.Contains([]byte(err.Error()), []byte("No such device")) {
		t.Errorf("deleting a missing bdev: %v", err)
	}
	if _, err := runCLI(t, nil, "rpc", "-s", sock, "bdev_get_bdevs", `{oops`); err == nil {
		t.Error("params that are not JSON: no error")
	}
	if _, err := runCLI(t, nil, "rpc", "-s", filepath.Join(t.TempDir(), "none.sock"), "spdk_get_version"); err == nil {
		t.Error("a socket nobody serves: no error")
	}
}

// TestTargetSPDKConfig: a target configured over `flashpath rpc
// load_config`, saved with `flashpath rpc save_config`, starts again from
// that file with `flashpath target --config saved.json` (as nvmf_tgt
// --json does): a host sees its namespaces, and its save_config is the
// same file.
func TestTargetSPDKConfig(t *testing.T) {
	dir := t.TempDir()
	sockA := filepath.Join(dir, "a.sock")
	startRPCTarget(t, sockA, "--rpc-socket", sockA)
	portA := testutil.FreePort(t)
	const nqn = "nqn.2016-06.io.spdk:saved"
	setup := `{"subsystems": [
  {"subsystem": "bdev", "config": [
    {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 2048, "block_size": 512}},
    {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 1024, "block_size": 4096}}]},
  {"subsystem": "nvmf", "config": [
    {"method": "nvmf_create_transport", "params": {"trtype": "TCP"}},
    {"method": "nvmf_create_subsystem", "params": {"nqn": "` + nqn + `", "allow_any_host": true}},
    {"method": "nvmf_subsystem_add_ns", "params": {"nqn": "` + nqn + `", "namespace": {"bdev_name": "Malloc0"}}},
    {"method": "nvmf_subsystem_add_ns", "params": {"nqn": "` + nqn + `", "namespace": {"bdev_name": "Null0", "nsid": 7}}},
    {"method": "nvmf_subsystem_add_listener", "params": {"nqn": "` + nqn + `", "listen_address": {"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": "` + portA + `"}}}]}]}`
	if out, err := runCLI(t, []byte(setup), "rpc", "-s", sockA, "load_config"); err != nil {
		t.Fatalf("load_config: %v\n%s", err, out)
	}
	saved, err := runCLI(t, nil, "rpc", "-s", sockA, "save_config")
	if err != nil {
		t.Fatalf("save_config: %v\n%s", err, saved)
	}
	// The copy serves on another port, beside the first target.
	portB := testutil.FreePort(t)
	saved = strings.ReplaceAll(saved, `"trsvcid": "`+portA+`"`, `"trsvcid": "`+portB+`"`)
	file := filepath.Join(dir, "saved.json")
	os.WriteFile(file, []byte(saved), 0o600)
	sockB := filepath.Join(dir, "b.sock")
	startRPCTarget(t, sockB, "--config", file, "--rpc-socket", sockB)

	out, err := runCLI(t, nil, "io", "--addr", "127.0.0.1:"+portB, "--nqn", nqn, "identify", "--output", "json")
	if err != nil {
		t.Fatalf("identify: %v\n%s", err, out)
	}
	var id struct {
		Namespaces []uint32 `json:"namespaces"`
	}
	if err := json.Unmarshal([]byte(out), &id); err != nil || !slices.Equal(id.Namespaces, []uint32{1, 7}) {
		t.Fatalf("active namespaces %v, %v; want [1 7]\n%s", id.Namespaces, err, out)
	}
	again, err := runCLI(t, nil, "rpc", "-s", sockB, "save_config")
	if err != nil || again != saved {
		t.Errorf("save_config of the restored target: %v\n%s\nwant\n%s", err, again, saved)
	}
	if _, err := runCLI(t, []byte(`{"subsystems": [{"subsystem": "nvmf", "config": [{"method": "nvmf_create_subsystem", "params": {"nqn": "`+nqn+`"}}]}]}`), "rpc", "-s", sockB, "load_config"); err == nil || !strings.Contains(err.Error(), "subsystems[0] (nvmf).config[0] nvmf_create_subsystem") {
		t.Errorf("load_config of an existing subsystem: %v", err)
	}
}

// TestConnectHost: the banner's commands name an address a host can
// connect to: a listener on every address shows this machine's first
// global IPv4 address, or 127.0.0.1, never "::" or "0.0.0.0".
func TestConnectHost(t *testing.T) {
	addrs := func(ips ...string) func() ([]net.Addr, error) {
		return func() ([]net.Addr, error) {
			var out []net.Addr
			for _, s := range ips {
				_, n, err := net.ParseCIDR(s)
				if err != nil {
					t.Fatal(err)
				}
				n.IP, _, _ = net.ParseCIDR(s)
				out = append(out, n)
			}
			return out, nil
		}
	}
	for _, tc := range []struct {
		host  string
		addrs []string
		want  string
	}{
		{"10.0.0.5", []string{"192.0.2.7/24"}, "10.0.0.5"},
		{"::", []string{"127.0.0.1/8", "fe80::1/64", "2001:db8::5/64", "192.0.2.7/24"}, "192.0.2.7"},
		{"0.0.0.0", []string{"127.0.0.1/8"}, "127.0.0.1"},
		{"host.example", nil, "host.example"},
	} {
		if got := connectHost(tc.host, addrs(tc.addrs...)); got != tc.want {
			t.Errorf("connectHost(%q, %v) = %q, want %q", tc.host, tc.addrs, got, tc.want)
		}
	}
}
