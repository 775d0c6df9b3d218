package e2e

// TLS on the target daemon's NVMe/TCP listeners, driven by flashpath's
// host: keys from the configuration file, reloads, plain hosts refused,
// metrics.

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/target/server"
)

const tlsTargetNQN = "nqn.2026-12.io.flashpath:tls"

// tlsTargetConfig is a daemon configuration with one TLS listener in
// mode and a subsystem on which tlsHost connects with the PSK in keyFile
// and hostA without a key.
func tlsTargetConfig(t *testing.T, mode, keyFile string) *server.Config {
	t.Helper()
	cfg, err := server.Parse([]byte(`
listeners: ["tcp://127.0.0.1:0?tls=` + mode + `"]
metrics: 127.0.0.1:0
subsystems:
  - nqn: ` + tlsTargetNQN + `
    allowed_hosts:
      - ` + hostA + `
      - nqn: ` + tlsHost + `
        tls_key_file: ` + keyFile + `
    namespaces: [{backend: "mem:16MiB"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func writeKeyFile(t *testing.T, path string, psk dhchap.PSK) {
	t.Helper()
	if err := os.WriteFile(path, []byte(psk.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// connectTLS connects flashpath's host as hostnqn, with key ("" none).
func connectTLS(srv *server.Server, hostnqn, key string) (*initiator.Controller, error) {
	return initiator.Connect(context.Background(), initiator.Config{
		Addr: "tcp://" + srv.Listeners[0].Addr().String(), SubNQN: tlsTargetNQN, IOQueues: 2, CtrlLossTimeout: -1,
		Options: initiator.Options{HostNQN: hostnqn, TLSKey: key, Logger: slog.New(slog.DiscardHandler)},
	})
}

// TestTargetTLS: the daemon with a tls=required listener serves a host
// holding its configured PSK over TLS (data written reads back) and
// refuses it without TLS and with another key; a reload that changes the
// key file changes the key new connections need; the metrics count it.
func TestTargetTLS(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "host.psk")
	psk := testPSK(dhchap.SHA384, 7)
	writeKeyFile(t, keyFile, psk)
	cfg := tlsTargetConfig(t, "required", keyFile)
	var logs logBuffer
	srv, err := server.Start(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())

	ctrl, err := connectTLS(srv, tlsHost, psk.String())
	if err != nil {
		t.Fatalf("connect over TLS: %v", err)
	}
	defer ctrl.Close()
	ns, err := ctrl.Namespace(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, ns, 0, 4096, 1)
	roundTrip(t, ns, 1<<20, 1<<20, 2)

	if _, err := connectTLS(srv, tlsHost, ""); err == nil {
		t.Error("a plain connect of a host with a TLS key succeeded")
	}
	if _, err := connectTLS(srv, hostA, ""); err == nil {
		t.Error("a plain connect to a tls=required listener succeeded")
	}
	if _, err := connectTLS(srv, tlsHost, testPSK(dhchap.SHA384, 8).String()); err == nil {
		t.Error("a connect with another key succeeded")
	}

	// Rotate the key: new connections need the new one; the host that
	// connected with the old one stays.
	next := testPSK(dhchap.SHA384, 9)
	writeKeyFile(t, keyFile, next)
	if err := srv.Reload(tlsTargetConfig(t, "required", keyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := connectTLS(srv, tlsHost, psk.String()); err == nil {
		t.Error("the rotated-out key still connects")
	}
	c2, err := connectTLS(srv, tlsHost, next.String())
	if err != nil {
		t.Fatalf("connect with the new key: %v", err)
	}
	c2.Close()
	roundTrip(t, ns, 2<<20, 8192, 3)

	ln := srv.Listeners[0]
	resp, err := http.Get("http://" + srv.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"flashpath_target_tls_handshakes_total{", "flashpath_target_tls_handshake_failures_total{", "flashpath_target_tls_plain_refused_total{"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The refusals are counted and logged by the connections' goroutines,
	// after the host saw the connection end: Shutdown waits for them.
	ctrl.Close()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 3 queues (admin, 2 I/O) for each of the two good connects; failures:
	// another key, the old key after the reload (each at least once).
	if ln.TLSHandshakes.Load() < 6 || ln.TLSFailures.Load() < 2 || ln.PlainRefused.Load() < 2 {
		t.Errorf("handshakes %d, failures %d, plain refused %d", ln.TLSHandshakes.Load(), ln.TLSFailures.Load(), ln.PlainRefused.Load())
	}
	if !strings.Contains(logs.String(), "TLS handshake failed") || !strings.Contains(logs.String(), "requires TLS") {
		t.Errorf("the target did not log the refusals:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), psk.String()[len("NVMeTLSkey-1:02:"):]) {
		t.Error("the log holds the key")
	}
}

// TestTargetTLSOptional: on a tls=optional listener a host with a TLS key
// connects over TLS and one without over plain TCP, side by side; the host
// with the key is refused plain.
func TestTargetTLSOptional(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "host.psk")
	psk := testPSK(dhchap.SHA256, 5)
	writeKeyFile(t, keyFile, psk)
	srv, err := server.Start(tlsTargetConfig(t, "optional", keyFile), server.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	secure, err := connectTLS(srv, tlsHost, psk.String())
	if err != nil {
		t.Fatalf("connect over TLS: %v", err)
	}
	defer secure.Close()
	plain, err := connectTLS(srv, hostA, "")
	if err != nil {
		t.Fatalf("plain connect: %v", err)
	}
	defer plain.Close()
	for i, c := range []*initiator.Controller{secure, plain} {
		ns, err := c.Namespace(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, ns, int64(i)<<20, 128<<10, byte(i))
	}
	if _, err := connectTLS(srv, tlsHost, ""); err == nil || !strings.Contains(err.Error(), "host") {
		t.Errorf("plain connect of a host with a TLS key: %v, want it refused", err)
	}
}
