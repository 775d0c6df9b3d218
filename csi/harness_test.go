package csi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flashpath/flashpath/spdk"
	"github.com/flashpath/flashpath/target/server"
)

const testToken = "0123456789abcdef-test-token"

// testTarget is a real in-process flashpath target with its JSON-RPC on a
// Unix socket and over HTTP, and a volume directory.
type testTarget struct {
	srv    *server.Server
	rpc    *spdk.Server
	sock   string
	dir    string // volumes
	http   string // HOST:PORT
	tokenF string
	tls    bool // HTTPS, its certificate in caFile
	caFile string
	addr   string // where hosts connect: tcp://127.0.0.1:PORT, its listener
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newController is a controller-only driver of cfg's targets, quiet.
func newController(t testing.TB, cfg *Config) *Driver {
	t.Helper()
	d, err := New(Options{Logger: quietLog(), Controller: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func startTarget(t testing.TB) *testTarget { return startTargetTLS(t, false) }

// startTargetTLS is startTarget with, if tls, its HTTP listener on TLS
// (a self-signed certificate for 127.0.0.1).
func startTargetTLS(t testing.TB, tls bool) *testTarget {
	t.Helper()
	tt := &testTarget{dir: t.TempDir(), tls: tls}
	base := t.TempDir()
	tt.sock = filepath.Join(base, "spdk.sock")
	tt.tokenF = filepath.Join(base, "token")
	if err := os.WriteFile(tt.tokenF, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(&server.Config{RPCSocket: tt.sock, Listeners: []string{"tcp://127.0.0.1:0"}}, server.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	tt.srv = srv
	tt.addr = "tcp://" + srv.Ports()[0].Addr
	tt.serveRPC(t)
	return tt
}

// serveRPC starts the JSON-RPC (again, after restartRPC: a target
// restarted keeps its files, not what its RPC made).
func (tt *testTarget) serveRPC(t testing.TB) {
	t.Helper()
	rs := spdk.New(tt.srv, spdk.Options{Logger: quietLog(), Version: "test", VolumeDir: tt.dir})
	if err := rs.Serve(tt.sock); err != nil {
		t.Fatal(err)
	}
	var tc *tls.Config
	if tt.tls {
		tc, tt.caFile = selfSigned(t)
	}
	if err := rs.ListenHTTP("127.0.0.1:0", testToken, tc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	tt.rpc, tt.http = rs, rs.HTTPAddr()
}

// allowed returns the hosts allowed on subsystem nqn, and whether the
// running target has that subsystem with a namespace.
func (tt *testTarget) allowed(nqn string) (hosts []string, exported bool) {
	for _, sc := range tt.srv.Applied().Subsystems {
		if sc.NQN == nqn {
			for _, h := range sc.AllowedHosts {
				hosts = append(hosts, h.NQN)
			}
			return hosts, len(sc.Namespaces) == 1
		}
	}
	return nil, false
}

func (tt *testTarget) config(name string, http bool, topo map[string]string) TargetConfig {
	c := TargetConfig{Name: name, RPC: "unix://" + tt.sock, Addresses: []string{tt.addr}, Topology: topo}
	switch {
	case http && tt.tls:
		c.RPC, c.TokenFile, c.CAFile = "https://"+tt.http, tt.tokenF, tt.caFile
	case http:
		c.RPC, c.TokenFile = "http://"+tt.http, tt.tokenF
	}
	return c
}

// selfSigned returns a TLS configuration with a new self-signed
// certificate for 127.0.0.1, and a file holding that certificate.
func selfSigned(t testing.TB) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flashpath test target"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, f
}

// fakeOS is NodeOS without a kernel: it checks a connect against the
// running targets (the host must be allowed on an exported subsystem),
// and keeps devices, file systems and mounts in maps.
type fakeOS struct {
	targets []*testTarget

	mu      sync.Mutex
	devs    map[string]string // nqn → /dev/nvmeXn1
	addrs   map[string][]string
	fs      map[string]string    // dev → fstype
	mounts  map[string]fakeMount // target path →
	formats int
	next    int
}

type fakeMount struct {
	source, fstype string
	ro             bool
}

func newFakeOS(targets ...*testTarget) *fakeOS {
	return &fakeOS{targets: targets, devs: map[string]string{}, addrs: map[string][]string{}, fs: map[string]string{}, mounts: map[string]fakeMount{}}
}

var _ NodeOS = (*fakeOS)(nil)

func (f *fakeOS) Connect(_ context.Context, nqn string, addrs []string, hostNQN string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.devs[nqn]; d != "" {
		return d, nil
	}
	for _, a := range addrs {
		if _, _, _, err := ParseAddress(a); err != nil {
			return "", err
		}
	}
	ok := false
	for _, tt := range f.targets {
		if hosts, exported := tt.allowed(nqn); exported && slices.Contains(hosts, hostNQN) {
			ok = true
		}
	}
	if !ok {
		return "", fmt.Errorf("connect %s as %s: the target refused the connect (not allowed, or no such subsystem)", nqn, hostNQN)
	}
	f.next++
	f.devs[nqn] = fmt.Sprintf("/dev/nvme%dn1", f.next)
	f.addrs[nqn] = addrs
	return f.devs[nqn], nil
}

func (f *fakeOS) Device(nqn string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.devs[nqn], nil
}

func (f *fakeOS) Disconnect(nqn string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, m := range f.mounts {
		if m.source == f.devs[nqn] && f.devs[nqn] != "" {
			return fmt.Errorf("disconnect %s: %s is still mounted on %s", nqn, m.source, p)
		}
	}
	delete(f.devs, nqn)
	delete(f.addrs, nqn)
	return nil
}

func (f *fakeOS) Format(_ context.Context, dev, fstype string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(mapValues(f.devs), dev) {
		return "", fmt.Errorf("format %s: no such device", dev)
	}
	if have := f.fs[dev]; have != "" {
		return have, nil
	}
	f.fs[dev] = fstype
	f.formats++
	return fstype, nil
}

func (f *fakeOS) Mount(source, target, fstype string, ro bool, _ []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := os.Stat(target); err != nil {
		return fmt.Errorf("mount on %s: %w", target, err)
	}
	if _, on := f.mounts[target]; on {
		return fmt.Errorf("mount on %s: already a mount point", target)
	}
	isDev := slices.Contains(mapValues(f.devs), source)
	_, isMount := f.mounts[source]
	switch {
	case fstype != "" && (!isDev || f.fs[source] != fstype):
		return fmt.Errorf("mount %s (%s): not a device with that file system", source, fstype)
	case fstype == "" && !isDev && !isMount:
		return fmt.Errorf("bind %s: neither a device nor a mount point", source)
	}
	f.mounts[target] = fakeMount{source, fstype, ro}
	return nil
}

func (f *fakeOS) Unmount(target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, m := range f.mounts {
		if m.source == target {
			return fmt.Errorf("unmount %s: %s is bound from it", target, p)
		}
	}
	delete(f.mounts, target)
	return nil
}

func (f *fakeOS) Mounted(target string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, on := f.mounts[target]
	return on, nil
}

func (f *fakeOS) mountAt(p string) (fakeMount, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.mounts[p]
	return m, ok
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
