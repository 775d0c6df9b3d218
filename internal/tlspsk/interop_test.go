package tlspsk

import (
	"bytes"
	"context"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Interop with OpenSSL (s_server, s_client) and GnuTLS (gnutls-serv,
// gnutls-cli; Linux's tlshd does the NVMe/TCP handshake with GnuTLS). Each
// test skips when its tool is not in PATH.

// proc is an external program under test, killed at cleanup.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	out   bytes.Buffer // stdout and stderr
	done  chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the output holds s.
func (p *proc) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.output(), s) {
		select {
		case <-p.done:
			if strings.Contains(p.output(), s) {
				return
			}
			t.Fatalf("%s exited before printing %q; its output:\n%s", p.cmd.Path, s, p.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q; its output:\n%s", p.cmd.Path, s, p.output())
		}
	}
}

// start runs name with args for at most 60 s.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not in PATH (install openssl / gnutls-bin to run this interop test)", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p := &proc{cmd: exec.CommandContext(ctx, path, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("%s %s:\n%s", name, strings.Join(args, " "), p.output())
		}
	})
	t.Logf("%s %s", name, strings.Join(args, " "))
	return p
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func toolVersion(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// dialRetry dials until the server listens.
// serveOnFreePort starts the server tool name with args(port) on a free
// port, waits for it to print ready and dials it. Another process can take
// the port between freePort and the tool's bind (gnutls-serv then listens
// on IPv6 only), so a server that cannot be dialled is stopped and started
// again on another port, a few times.
func serveOnFreePort(t *testing.T, name, ready string, args func(port string) []string) (*proc, net.Conn) {
	t.Helper()
	for try := 1; ; try++ {
		port := freePort(t)
		p := start(t, name, args(port)...)
		p.waitFor(t, ready)
		c, err := dialFor(time.Second, "127.0.0.1:"+port)
		if err == nil {
			return p, c
		}
		if try == 5 {
			t.Fatalf("dial %s on port %s: %v", name, port, err)
		}
		t.Logf("%s on port %s: %v; trying another port", name, port, err)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// dialFor dials addr until it answers or d has passed.
func dialFor(d time.Duration, addr string) (net.Conn, error) {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// readUntil reads from c until what it read holds want.
func readUntil(t *testing.T, c *Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read (got %q so far, want %q): %v", got, want, err)
		}
	}
}

// serveOne accepts one connection on a fresh port and runs our Server and
// then handle on it in the background; wait returns their error.
func serveOne(t *testing.T, cfg *Config, handle func(*Conn) error) (port string, wait func() error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var serr error
	go func() {
		defer close(done)
		raw, err := ln.Accept()
		if err != nil {
			serr = err
			return
		}
		defer raw.Close()
		c, err := Server(&recConn{Conn: raw}, cfg)
		if err != nil {
			serr = err
			return
		}
		defer c.Close()
		serr = handle(c)
	}()
	wait = func() error {
		select {
		case <-done:
			return serr
		case <-time.After(30 * time.Second):
			return errors.New("our server did not finish in 30 s")
		}
	}
	t.Cleanup(func() {
		ln.Close()
		if err := wait(); err != nil && t.Failed() {
			t.Logf("our server: %v", err)
		}
	})
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), wait
}

// sentHRR says whether our server c sent a HelloRetryRequest.
func sentHRR(c *Conn) bool {
	return bytes.Contains(c.conn.(*recConn).bytes(), helloRetryRandom)
}

// opensslPSKArgs are the s_server / s_client arguments that give it key:
// -psk makes a SHA-256 PSK only, so a TLS_AES_256_GCM_SHA384 key goes in
// as a PSK session file (an SSL_SESSION whose master key is the PSK and
// whose cipher is the suite, as OpenSSL's -psk_session reads it).
func opensslPSKArgs(t *testing.T, key Key) []string {
	args := []string{"-psk_identity", key.Identity}
	if key.Suite == TLS_AES_128_GCM_SHA256 {
		return append(args, "-psk", hex.EncodeToString(key.Secret))
	}
	// ssl/ssl_asn1.c SSL_SESSION_ASN1: version 1, ssl_version, cipher,
	// session_id, master_key, [1] time, [2] timeout.
	der, err := asn1.Marshal(struct {
		Version, SSLVersion int
		Cipher, ID, Master  []byte
		Time                int64 `asn1:"explicit,tag:1"`
		Timeout             int64 `asn1:"explicit,tag:2"`
	}{1, int(versionTLS13), []byte{byte(key.Suite >> 8), byte(key.Suite)}, []byte{}, key.Secret, time.Now().Unix(), 86400})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "psk.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "SSL SESSION PARAMETERS", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return append(args, "-psk_session", file)
}

// Our client against openssl s_server: data both ways, a key update each
// way; the server sends session tickets, which the client drops.
// "-groups P-256" makes it answer our X25519 share with a
// HelloRetryRequest.
func TestInteropOpenSSLServer(t *testing.T) {
	t.Logf("openssl: %s", toolVersion("openssl", "version"))
	for _, tc := range []struct {
		name   string
		suite  uint16
		groups string
	}{
		{"aes128", TLS_AES_128_GCM_SHA256, ""},
		{"aes128-hrr", TLS_AES_128_GCM_SHA256, "P-256"},
		{"aes256", TLS_AES_256_GCM_SHA384, ""},
		{"aes256-hrr", TLS_AES_256_GCM_SHA384, "P-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(tc.suite, "openssl")
			p, raw := serveOnFreePort(t, "openssl", "ACCEPT", func(port string) []string {
				args := append([]string{"s_server", "-tls1_3", "-nocert", "-accept", "127.0.0.1:" + port, "-naccept", "1"},
					opensslPSKArgs(t, key)...)
				if tc.groups != "" {
					args = append(args, "-groups", tc.groups)
				}
				return args
			})
			defer raw.Close()
			rec := &recConn{Conn: raw}
			c, err := Client(rec, &Config{Keys: []Key{key}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if hrr := bytes.Contains(rec.readBytes(), helloRetryRandom); hrr != (tc.groups != "") {
				t.Errorf("HelloRetryRequest: %v", hrr)
			}
			if c.Suite() != tc.suite {
				t.Errorf("suite %#04x", c.Suite())
			}
			if _, err := c.Write([]byte("hello from go\n")); err != nil {
				t.Fatal(err)
			}
			p.waitFor(t, "hello from go")
			io.WriteString(p.stdin, "hello from openssl\n")
			readUntil(t, c, "hello from openssl")
			if err := c.sendKeyUpdate(true); err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("after a key update\n"))
			p.waitFor(t, "after a key update")
			io.WriteString(p.stdin, "its answer\n")
			readUntil(t, c, "its answer")
		})
	}
}

// openssl s_client against our server: X25519, P-256, and X448 first (no
// share we accept: our server asks for P-256 with a HelloRetryRequest).
func TestInteropOpenSSLClient(t *testing.T) {
	for _, tc := range []struct {
		name   string
		suite  uint16
		groups string
	}{
		{"aes128", TLS_AES_128_GCM_SHA256, ""},
		{"aes128-p256", TLS_AES_128_GCM_SHA256, "P-256"},
		{"aes128-hrr", TLS_AES_128_GCM_SHA256, "X448:P-256"},
		{"aes256", TLS_AES_256_GCM_SHA384, ""},
		// No aes256-hrr: s_client 3.0 leaves a SHA-384 PSK session out of
		// its second ClientHello (against openssl s_server as well), and
		// the server, left without a PSK, fails.
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(tc.suite, "openssl")
			port, wait := serveOne(t, &Config{Lookup: lookupOf(key)}, func(c *Conn) error {
				readUntil(t, c, "hello from openssl")
				if c.Suite() != tc.suite {
					return fmt.Errorf("suite %#04x", c.Suite())
				}
				if hrr := sentHRR(c); hrr != strings.HasPrefix(tc.groups, "X448") {
					return fmt.Errorf("HelloRetryRequest sent: %v", hrr)
				}
				_, err := c.Write([]byte("hello from go\n"))
				return err
			})
			args := append([]string{"s_client", "-tls1_3", "-connect", "127.0.0.1:" + port, "-quiet"}, opensslPSKArgs(t, key)...)
			if tc.groups != "" {
				args = append(args, "-groups", tc.groups)
			}
			p := start(t, "openssl", args...)
			io.WriteString(p.stdin, "hello from openssl\n")
			p.waitFor(t, "hello from go")
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			<-p.done
		})
	}
}

func gnutlsPriority(extra string) string {
	return "NORMAL:-VERS-ALL:+VERS-TLS1.3:+ECDHE-PSK:+PSK" + extra
}

// GnuTLS before gnutls_psk_allocate_*_credentials2 (3.8.x, 2025) computes
// every PSK binder with SHA-256, and gnutls-cli / gnutls-serv have no
// option for another hash: a TLS_AES_256_GCM_SHA384 key cannot be tried
// with them. A 48-byte NVMe key used as a SHA-256 PSK, which is what such
// a GnuTLS does with it, is.

// Our client against gnutls-serv --echo (GnuTLS, as tlshd uses): both
// groups, a HelloRetryRequest (the server takes only secp256r1), a key
// update.
func TestInteropGnuTLSServer(t *testing.T) {
	t.Logf("gnutls-serv: %s", toolVersion("gnutls-serv", "--version"))
	for _, tc := range []struct {
		name     string
		suite    uint16
		priority string
	}{
		{"aes128", TLS_AES_128_GCM_SHA256, ""},
		{"aes128-hrr", TLS_AES_128_GCM_SHA256, ":-GROUP-ALL:+GROUP-SECP256R1"},
		{"aes128-48-byte-key", TLS_AES_128_GCM_SHA256, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(tc.suite, "gnutls")
			if strings.Contains(tc.name, "48-byte") {
				key.Secret = testKey(TLS_AES_256_GCM_SHA384, "gnutls").Secret
			}
			// gnutls-serv's --pskpasswd file is "identity:hexkey", and it
			// cuts at the first colon: an identity with NQNs (which hold
			// colons) cannot be written there. tlshd looks PSKs up in the
			// kernel keyring instead.
			key.Identity = "NVMe0R01 nqn.2014-08.org.nvmexpress.uuid.host nqn.2024-01.io.flashpath.subsys"
			dir := t.TempDir()
			pskFile := filepath.Join(dir, "psk")
			if err := os.WriteFile(pskFile, []byte(key.Identity+":"+hex.EncodeToString(key.Secret)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			// gnutls-serv has no option to listen on 127.0.0.1 only.
			_, raw := serveOnFreePort(t, "gnutls-serv", "listening", func(port string) []string {
				return []string{"--echo", "--nodb", "--pskpasswd", pskFile, "--priority", gnutlsPriority(tc.priority), "-p", port}
			})
			defer raw.Close()
			rec := &recConn{Conn: raw}
			c, err := Client(rec, &Config{Keys: []Key{key}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Suite() != tc.suite {
				t.Errorf("suite %#04x", c.Suite())
			}
			if hrr := bytes.Contains(rec.readBytes(), helloRetryRandom); hrr != strings.HasSuffix(tc.name, "hrr") {
				t.Errorf("HelloRetryRequest: %v", hrr)
			}
			for _, msg := range []string{"hello from go\n", strings.Repeat("x", 40000) + "\n"} {
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				readUntil(t, c, msg)
			}
			if err := c.sendKeyUpdate(true); err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("after a key update\n"))
			readUntil(t, c, "after a key update\n")
		})
	}
}

// gnutls-cli against our server: X25519, secp256r1, and secp384r1 first
// (its only share then, in a group our server does not take: it asks for
// secp256r1 with a HelloRetryRequest).
func TestInteropGnuTLSClient(t *testing.T) {
	t.Logf("gnutls-cli: %s", toolVersion("gnutls-cli", "--version"))
	for _, tc := range []struct {
		name     string
		suite    uint16
		priority string
	}{
		{"aes128", TLS_AES_128_GCM_SHA256, ""},
		{"aes128-p256", TLS_AES_128_GCM_SHA256, ":-GROUP-ALL:+GROUP-SECP256R1"},
		{"aes128-hrr", TLS_AES_128_GCM_SHA256, ":-GROUP-ALL:+GROUP-SECP384R1:+GROUP-SECP256R1"},
		{"aes128-48-byte-key", TLS_AES_128_GCM_SHA256, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := testKey(tc.suite, "gnutls")
			if strings.Contains(tc.name, "48-byte") {
				key.Secret = testKey(TLS_AES_256_GCM_SHA384, "gnutls").Secret
			}
			port, wait := serveOne(t, &Config{Lookup: lookupOf(key)}, func(c *Conn) error {
				readUntil(t, c, "hello from gnutls")
				if hrr := sentHRR(c); hrr != strings.HasSuffix(tc.name, "hrr") {
					return fmt.Errorf("HelloRetryRequest sent: %v", hrr)
				}
				if _, err := c.Write([]byte("hello from go\n")); err != nil {
					return err
				}
				// gnutls-cli sends close_notify when its stdin closes.
				rest, err := io.ReadAll(c)
				if err != nil {
					return fmt.Errorf("read to close_notify: %w (after %q)", err, rest)
				}
				if c.Suite() != tc.suite {
					return fmt.Errorf("suite %#04x", c.Suite())
				}
				return nil
			})
			p := start(t, "gnutls-cli", "--priority", gnutlsPriority(tc.priority), "--pskusername", key.Identity,
				"--pskkey", hex.EncodeToString(key.Secret), "-p", port, "127.0.0.1")
			io.WriteString(p.stdin, "hello from gnutls\n")
			p.waitFor(t, "hello from go")
			p.stdin.Close()
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			<-p.done
		})
	}
}
