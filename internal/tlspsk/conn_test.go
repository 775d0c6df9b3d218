package tlspsk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

const testIdentity = "NVMe0R01 nqn.2014-08.org.nvmexpress:uuid:host nqn.2024-01.io.flashpath:subsys"

// testKey is a key for suite with a secret of the suite's hash length,
// derived from seed.
func testKey(suite uint16, seed string) Key {
	sum := sha256.Sum256([]byte(seed))
	secret := append(sum[:], sum[:]...)[:suiteByID(suite).hashLen]
	return Key{Identity: testIdentity, Secret: secret, Suite: suite}
}

func lookupOf(keys ...Key) func(string) (Key, bool) {
	return func(id string) (Key, bool) {
		for _, k := range keys {
			if k.Identity == id {
				return k, true
			}
		}
		return Key{}, false
	}
}

// recConn records what is written and read through it.
type recConn struct {
	net.Conn
	mu            sync.Mutex
	written, read bytes.Buffer
}

func (c *recConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.read.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recConn) readBytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.read.Bytes())
}

func (c *recConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.written.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *recConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.written.Bytes())
}

// tcpPipe returns the two ends of a loopback TCP connection.
func tcpPipe(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}

// handshakePair runs Client on one end and Server on the other.
func handshakePair(cc, sc net.Conn, ccfg, scfg *Config) (client, server *Conn, cerr, serr error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		server, serr = Server(sc, scfg)
		if serr != nil {
			sc.Close() // unblock a client waiting on us
		}
	}()
	client, cerr = Client(cc, ccfg)
	if cerr != nil {
		cc.Close()
	}
	<-done
	return client, server, cerr, serr
}

// mustPair is handshakePair that must succeed; nil conns mean net.Pipe.
func mustPair(t testing.TB, cc, sc net.Conn, ccfg, scfg *Config) (*Conn, *Conn) {
	t.Helper()
	if cc == nil {
		cc, sc = net.Pipe()
	}
	c, s, cerr, serr := handshakePair(cc, sc, ccfg, scfg)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client: %v; server: %v", cerr, serr)
	}
	// Close the server's socket first: over net.Pipe a close_notify nobody
	// reads would wait out its deadline.
	t.Cleanup(func() { s.conn.Close(); c.Close(); s.Close() })
	return c, s
}

// exchange writes data one way and checks it arrives whole.
func exchange(t testing.TB, from, to *Conn, data []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := from.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(to, got); err != nil {
		t.Fatalf("read %d bytes: %v", len(data), err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write %d bytes: %v", len(data), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%d bytes arrived changed", len(data))
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// Client and Server agree on each suite and each group, over net.Pipe and
// loopback TCP, and carry data both ways.
func TestHandshake(t *testing.T) {
	for _, suite := range []uint16{TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384} {
		for _, group := range []uint16{groupX25519, groupP256} {
			for _, transport := range []string{"pipe", "tcp"} {
				t.Run(fmt.Sprintf("%04x/%04x/%s", suite, group, transport), func(t *testing.T) {
					var cc, sc net.Conn
					if transport == "pipe" {
						cc, sc = net.Pipe()
					} else {
						cc, sc = tcpPipe(t)
					}
					key := testKey(suite, "k")
					c, s := mustPair(t, cc, sc, &Config{Keys: []Key{key}, shareGroup: group}, &Config{Lookup: lookupOf(key)})
					for _, conn := range []*Conn{c, s} {
						if conn.Identity() != testIdentity || conn.Suite() != suite {
							t.Errorf("%s: identity %q, suite %#04x", conn.side(), conn.Identity(), conn.Suite())
						}
					}
					exchange(t, c, s, []byte("from the host"))
					exchange(t, s, c, []byte("from the target"))
				})
			}
		}
	}
}

// A client offering several keys: the server takes the first it knows,
// and the client the suite and identity the server selected.
func TestHandshakeSeveralKeys(t *testing.T) {
	k1 := testKey(TLS_AES_128_GCM_SHA256, "one")
	k1.Identity = "unknown to the server"
	k2 := testKey(TLS_AES_256_GCM_SHA384, "two")
	cc, sc := net.Pipe()
	c, s := mustPair(t, cc, sc, &Config{Keys: []Key{k1, k2}}, &Config{Lookup: lookupOf(k2)})
	if c.Suite() != TLS_AES_256_GCM_SHA384 || s.Identity() != k2.Identity || c.Identity() != k2.Identity {
		t.Fatalf("client %q %#04x, server %q", c.Identity(), c.Suite(), s.Identity())
	}
	exchange(t, c, s, []byte("x"))
}

// A client whose key share is in a group the server does not accept gets
// a HelloRetryRequest (RFC 8446 §4.1.4) and answers it; also when the
// retry drops a key of another hash from the second ClientHello.
func TestHelloRetryRequest(t *testing.T) {
	k128 := testKey(TLS_AES_128_GCM_SHA256, "a")
	k128.Identity = "a 128 key the server does not have"
	k256 := testKey(TLS_AES_256_GCM_SHA384, "b")
	for _, tc := range []struct {
		name   string
		keys   []Key
		server []Key
		groups []uint16
		share  uint16
	}{
		{"x25519 to p256", []Key{k256}, []Key{k256}, []uint16{groupP256}, groupX25519},
		{"p256 to x25519", []Key{k256}, []Key{k256}, []uint16{groupX25519}, groupP256},
		{"second key, other hash", []Key{k128, k256}, []Key{k256}, []uint16{groupP256}, groupX25519},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := net.Pipe()
			rec := &recConn{Conn: sc}
			c, s := mustPair(t, cc, rec, &Config{Keys: tc.keys, shareGroup: tc.share},
				&Config{Lookup: lookupOf(tc.server...), serverGroups: tc.groups})
			if !bytes.Contains(rec.bytes(), helloRetryRandom) {
				t.Fatal("the server sent no HelloRetryRequest")
			}
			if c.Identity() != k256.Identity || s.Suite() != TLS_AES_256_GCM_SHA384 {
				t.Fatalf("identity %q, suite %#04x", c.Identity(), s.Suite())
			}
			exchange(t, c, s, []byte("after a retry"))
			exchange(t, s, c, []byte("and back"))
		})
	}
}

// A server whose key for the identity differs from the client's fails the
// binder: it sends decrypt_error, and both errors say the PSK differs.
func TestWrongKey(t *testing.T) {
	for _, suite := range []uint16{TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384} {
		cc, sc := net.Pipe()
		_, _, cerr, serr := handshakePair(cc, sc,
			&Config{Keys: []Key{testKey(suite, "client's")}},
			&Config{Lookup: lookupOf(testKey(suite, "server's"))})
		var sa, ca *AlertError
		if !errors.Is(serr, ErrPSKMismatch) || !errors.As(serr, &sa) || !sa.Sent || sa.Alert != uint8(alertDecryptError) {
			t.Errorf("server: %v; want ErrPSKMismatch after sending decrypt_error", serr)
		}
		if !errors.Is(cerr, ErrPSKMismatch) || !errors.As(cerr, &ca) || ca.Sent || ca.Alert != uint8(alertDecryptError) {
			t.Errorf("client: %v; want ErrPSKMismatch from a received decrypt_error", cerr)
		}
		for _, err := range []error{cerr, serr} {
			if err != nil && !strings.Contains(err.Error(), "differs") {
				t.Errorf("error %q does not say the PSK differs", err)
			}
		}
	}
}

// A server that knows none of the identities sends unknown_psk_identity;
// its error names the identity.
func TestUnknownIdentity(t *testing.T) {
	cc, sc := net.Pipe()
	key := testKey(TLS_AES_128_GCM_SHA256, "k")
	_, _, cerr, serr := handshakePair(cc, sc, &Config{Keys: []Key{key}}, &Config{Lookup: lookupOf()})
	var sa, ca *AlertError
	if !errors.Is(serr, ErrUnknownIdentity) || !errors.As(serr, &sa) || sa.Alert != uint8(alertUnknownPSKIdentity) || !strings.Contains(serr.Error(), testIdentity) {
		t.Errorf("server: %v; want ErrUnknownIdentity naming %q", serr, testIdentity)
	}
	if !errors.Is(cerr, ErrUnknownIdentity) || !errors.As(cerr, &ca) || ca.Sent || ca.Alert != uint8(alertUnknownPSKIdentity) {
		t.Errorf("client: %v; want a received unknown_psk_identity", cerr)
	}
	t.Logf("server: %v", serr)
	t.Logf("client: %v", cerr)
}

// A key for a suite the client does not offer is handshake_failure.
func TestSuiteMismatch(t *testing.T) {
	cc, sc := net.Pipe()
	_, _, cerr, serr := handshakePair(cc, sc,
		&Config{Keys: []Key{testKey(TLS_AES_128_GCM_SHA256, "k")}},
		&Config{Lookup: lookupOf(testKey(TLS_AES_256_GCM_SHA384, "k"))})
	var sa *AlertError
	if !errors.As(serr, &sa) || sa.Alert != uint8(alertHandshakeFailure) || cerr == nil {
		t.Fatalf("server: %v; client: %v", serr, cerr)
	}
}

func TestConfigErrors(t *testing.T) {
	cc, _ := net.Pipe()
	for _, cfg := range []*Config{
		nil,
		{},
		{Keys: []Key{{Identity: "", Secret: []byte{1}, Suite: TLS_AES_128_GCM_SHA256}}},
		{Keys: []Key{{Identity: "x", Suite: TLS_AES_128_GCM_SHA256}}},
		{Keys: []Key{{Identity: "x", Secret: []byte{1}, Suite: 0x1303}}},
	} {
		if _, err := Client(cc, cfg); err == nil || !strings.HasPrefix(err.Error(), "tlspsk: client: Config") {
			t.Errorf("Client(%+v) = %v", cfg, err)
		}
	}
	if _, err := Server(cc, &Config{}); err == nil || !strings.Contains(err.Error(), "Lookup") {
		t.Errorf("Server without Lookup: %v", err)
	}
}

// A peer that is not speaking TLS (a plain NVMe/TCP ICReq, whose first
// five bytes pass for a record header with a length longer than what
// follows) fails the handshake at once, not at its timeout.
func TestNotTLS(t *testing.T) {
	cc, sc := net.Pipe()
	defer cc.Close()
	icreq := make([]byte, 128)
	icreq[2], icreq[4] = 128, 128 // type 0x00 ICReq, HLEN 128, PLEN 128
	go func() {
		cc.Write(icreq)
		io.Copy(io.Discard, cc)
	}()
	_, err := Server(sc, &Config{Lookup: lookupOf(), HandshakeTimeout: time.Hour})
	var ae *AlertError
	if !errors.As(err, &ae) || ae.Alert != uint8(alertUnexpectedMessage) || !strings.Contains(err.Error(), "not speaking TLS") {
		t.Fatalf("Server: %v", err)
	}
}

// A peer that says nothing fails the handshake at HandshakeTimeout, and
// the error says so.
func TestHandshakeTimeout(t *testing.T) {
	cc, sc := net.Pipe()
	defer cc.Close()
	go io.Copy(io.Discard, cc)
	start := time.Now()
	_, err := Server(sc, &Config{Lookup: lookupOf(), HandshakeTimeout: 100 * time.Millisecond})
	if !isTimeout(err) || !strings.Contains(err.Error(), "HandshakeTimeout") {
		t.Fatalf("Server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the handshake ran %v", d)
	}
	// The deadline is cleared after the handshake.
	key := testKey(TLS_AES_128_GCM_SHA256, "k")
	c, s := mustPair(t, nil, nil, &Config{Keys: []Key{key}, HandshakeTimeout: 50 * time.Millisecond},
		&Config{Lookup: lookupOf(key), HandshakeTimeout: 50 * time.Millisecond})
	time.Sleep(100 * time.Millisecond)
	exchange(t, c, s, []byte("after the handshake deadline"))
}

// Data of many sizes both ways, small reads, a concurrent reader and
// writer on each side.
func TestData(t *testing.T) {
	for _, transport := range []string{"pipe", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			var cc, sc net.Conn
			if transport == "pipe" {
				cc, sc = net.Pipe()
			} else {
				cc, sc = tcpPipe(t)
			}
			key := testKey(TLS_AES_128_GCM_SHA256, "k")
			c, s := mustPair(t, cc, sc, &Config{Keys: []Key{key}}, &Config{Lookup: lookupOf(key)})
			for _, n := range []int{1, maxPlaintext - 1, maxPlaintext, maxPlaintext + 1, 16 << 10, 1 << 20, maxWriteBatch + 3} {
				exchange(t, c, s, pattern(n))
				exchange(t, s, c, pattern(n))
			}

			// Small reads of a large record.
			go c.Write(pattern(5000))
			got := make([]byte, 0, 5000)
			one := make([]byte, 1)
			for len(got) < 5000 {
				n, err := s.Read(one)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, one[:n]...)
			}
			if !bytes.Equal(got, pattern(5000)) {
				t.Fatal("byte-at-a-time reads changed the data")
			}

			// Both sides write 4 MiB while reading 4 MiB.
			const total = 4 << 20
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for _, pair := range [][2]*Conn{{c, s}, {s, c}} {
				from, to := pair[0], pair[1]
				wg.Add(2)
				go func() {
					defer wg.Done()
					data := pattern(100_000)
					for sent := 0; sent < total; {
						n := min(len(data), total-sent)
						if _, err := from.Write(data[:n]); err != nil {
							errs <- err
							return
						}
						sent += n
					}
				}()
				go func() {
					defer wg.Done()
					buf := make([]byte, 70_000)
					want := pattern(100_000)
					for got := 0; got < total; {
						n, err := to.Read(buf)
						if err != nil {
							errs <- err
							return
						}
						for i := range n {
							if buf[i] != want[(got+i)%100_000] {
								errs <- fmt.Errorf("byte %d changed", got+i)
								return
							}
						}
						got += n
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

// KeyUpdate both ways, with and without update_requested, and the one a
// writer sends on its own after rekeyAfter records (RFC 8446 §4.6.3, §5.5).
func TestKeyUpdate(t *testing.T) {
	key := testKey(TLS_AES_256_GCM_SHA384, "k")
	cc, sc := tcpPipe(t) // buffered: a KeyUpdate is sent before the peer reads
	c, s := mustPair(t, cc, sc, &Config{Keys: []Key{key}}, &Config{Lookup: lookupOf(key)})
	secret := func(cs *cipherState, mu *sync.Mutex) []byte {
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(cs.secret)
	}
	cOut, sOut := secret(&c.out.cipherState, &c.out.mu), secret(&s.out.cipherState, &s.out.mu)

	// The client updates and asks the server to: the server answers with its
	// own KeyUpdate when it reads the client's.
	if err := c.sendKeyUpdate(true); err != nil {
		t.Fatal(err)
	}
	exchange(t, c, s, []byte("after the client's update"))
	exchange(t, s, c, []byte("after the server's answer"))
	if bytes.Equal(secret(&c.out.cipherState, &c.out.mu), cOut) || bytes.Equal(secret(&s.out.cipherState, &s.out.mu), sOut) {
		t.Fatal("a write secret did not change")
	}
	if !bytes.Equal(secret(&s.in.cipherState, &s.in.mu), secret(&c.out.cipherState, &c.out.mu)) ||
		!bytes.Equal(secret(&c.in.cipherState, &c.in.mu), secret(&s.out.cipherState, &s.out.mu)) {
		t.Fatal("the two sides' secrets differ after the update")
	}

	// The server updates without asking.
	sOut = secret(&s.out.cipherState, &s.out.mu)
	cOut = secret(&c.out.cipherState, &c.out.mu)
	if err := s.sendKeyUpdate(false); err != nil {
		t.Fatal(err)
	}
	exchange(t, s, c, []byte("after the server's update"))
	exchange(t, c, s, []byte("client key unchanged"))
	if bytes.Equal(secret(&s.out.cipherState, &s.out.mu), sOut) || !bytes.Equal(secret(&c.out.cipherState, &c.out.mu), cOut) {
		t.Fatal("update_not_requested: wrong secrets changed")
	}

	// Automatic: every 3 records.
	c.out.mu.Lock()
	c.out.rekeyAfter = 3
	c.out.mu.Unlock()
	exchange(t, c, s, pattern(10*maxPlaintext))
	exchange(t, c, s, pattern(100))
	if bytes.Equal(secret(&c.out.cipherState, &c.out.mu), cOut) {
		t.Fatal("no automatic update")
	}
}

// Close sends close_notify: the peer reads the data before it, then
// io.EOF, and again io.EOF.
func TestCloseNotify(t *testing.T) {
	key := testKey(TLS_AES_128_GCM_SHA256, "k")
	cc, sc := tcpPipe(t)
	c, s := mustPair(t, cc, sc, &Config{Keys: []Key{key}}, &Config{Lookup: lookupOf(key)})
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "last words" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if n, err := s.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after close_notify = %d, %v", n, err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// A record that was altered fails with bad_record_mac; a change_cipher_spec
// after the handshake with unexpected_message; a fatal alert from the peer
// is an AlertError naming it; a NewSessionTicket is dropped.
func TestRecordErrors(t *testing.T) {
	key := testKey(TLS_AES_128_GCM_SHA256, "k")
	setup := func(t *testing.T) (*Conn, *Conn) {
		return mustPair(t, nil, nil, &Config{Keys: []Key{key}}, &Config{Lookup: lookupOf(key)})
	}
	readErr := func(t *testing.T, c *Conn) error {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 100))
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Read did not return")
			return nil
		}
	}
	wantAlert := func(t *testing.T, err error, a alert, sent bool) {
		t.Helper()
		var ae *AlertError
		if !errors.As(err, &ae) || ae.Alert != uint8(a) || ae.Sent != sent {
			t.Fatalf("error %v; want alert %s (sent %v)", err, a, sent)
		}
	}
	// Write raw bytes to the peer from the client's socket, draining what
	// the server sends back (its alert).
	raw := func(c *Conn, b []byte) {
		go func() {
			c.conn.Write(b)
			io.Copy(io.Discard, c.conn)
		}()
	}

	t.Run("altered", func(t *testing.T) {
		c, s := setup(t)
		c.out.mu.Lock()
		rec, _ := c.out.appendRecord(nil, recordApplicationData, []byte("hello"))
		c.out.mu.Unlock()
		rec[len(rec)-1] ^= 1
		raw(c, rec)
		wantAlert(t, readErr(t, s), alertBadRecordMAC, true)
		if _, err := s.Write([]byte("x")); err == nil {
			t.Fatal("Write after a fatal alert succeeded")
		}
	})
	t.Run("ccs after handshake", func(t *testing.T) {
		c, s := setup(t)
		raw(c, []byte{recordChangeCipherSpec, 3, 3, 0, 1, 1})
		wantAlert(t, readErr(t, s), alertUnexpectedMessage, true)
	})
	t.Run("oversized", func(t *testing.T) {
		c, s := setup(t)
		raw(c, []byte{recordApplicationData, 3, 3, 0xff, 0xff})
		wantAlert(t, readErr(t, s), alertRecordOverflow, true)
	})
	t.Run("peer alert", func(t *testing.T) {
		c, s := setup(t)
		go c.sendAlert(alertInternalError)
		err := readErr(t, s)
		wantAlert(t, err, alertInternalError, false)
		if !strings.Contains(err.Error(), "internal_error") {
			t.Fatalf("error %q does not name the alert", err)
		}
	})
	t.Run("ticket dropped", func(t *testing.T) {
		c, s := setup(t)
		nst := []byte{typeNewSessionTicket, 0, 0, 14, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 1, 0xaa, 0, 0}
		s.out.mu.Lock()
		rec, _ := s.out.appendRecord(nil, recordHandshake, nst)
		rec, _ = s.out.appendRecord(rec, recordApplicationData, []byte("data"))
		s.out.mu.Unlock()
		go s.conn.Write(rec)
		buf := make([]byte, 10)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "data" {
			t.Fatalf("Read = %q, %v", buf[:n], err)
		}
	})
	t.Run("padding and split handshake", func(t *testing.T) {
		// A KeyUpdate split over two records, then padded data.
		c, s := setup(t)
		s.out.mu.Lock()
		ku := []byte{typeKeyUpdate, 0, 0, 1, 0}
		rec, _ := s.out.appendRecord(nil, recordHandshake, ku[:2])
		rec, _ = s.out.appendRecord(rec, recordHandshake, ku[2:])
		s.out.update()
		// Padding: seal data || type || zeros by hand.
		padded := append([]byte("padded"), recordApplicationData, 0, 0, 0, 0)
		n := len(padded) + tagLen
		hdr := []byte{recordApplicationData, 3, 3, byte(n >> 8), byte(n)}
		rec = append(rec, hdr...)
		rec = s.out.aead.Seal(rec, s.out.nextNonce(), padded, hdr)
		s.out.seq++
		s.out.mu.Unlock()
		go s.conn.Write(rec)
		buf := make([]byte, 10)
		got, err := c.Read(buf)
		if err != nil || string(buf[:got]) != "padded" {
			t.Fatalf("Read = %q, %v", buf[:got], err)
		}
	})
}

// TestWriteBuffers: WriteBuffers carries the concatenation of its parts,
// empty ones and ones over a record included, and fills each record
// across parts: a PDU header, its data and a response of 24 + 4096 + 16
// bytes go as one record, not three.
func TestWriteBuffers(t *testing.T) {
	cc, sc := net.Pipe()
	rec := &recConn{Conn: cc}
	key := testKey(TLS_AES_128_GCM_SHA256, "k")
	c, s := mustPair(t, rec, sc, &Config{Keys: []Key{key}}, &Config{Lookup: lookupOf(key)})
	p := pattern(maxWriteBatch + 5000)
	for _, tc := range []struct {
		name    string
		parts   [][]byte
		records int
	}{
		{"pdu", [][]byte{p[:24], p[24 : 24+4096], p[5000 : 5000+16]}, 1},
		{"empty parts, one over a record", [][]byte{{}, p[:24], p[100 : 100+20000], nil, p[:9]}, 2},
		{"over one write", [][]byte{p[:7], p[7:maxPlaintext], p[maxPlaintext:]}, (len(p) + maxPlaintext - 1) / maxPlaintext},
		{"nothing", [][]byte{nil, {}}, 0},
	} {
		var want []byte
		for _, part := range tc.parts {
			want = append(want, part...)
		}
		before := len(rec.bytes())
		errc := make(chan error, 1)
		go func() {
			n, err := c.WriteBuffers(tc.parts)
			if err == nil && n != int64(len(want)) {
				err = fmt.Errorf("wrote %d of %d bytes", n, len(want))
			}
			errc <- err
		}()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(s, got); err != nil {
			t.Fatalf("%s: read: %v", tc.name, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: the data differs", tc.name)
		}
		if sent, wantSent := len(rec.bytes())-before, len(want)+tc.records*(recordHeaderLen+1+tagLen); sent != wantSent {
			t.Errorf("%s: %d bytes on the wire, want %d (%d records)", tc.name, sent, wantSent, tc.records)
		}
	}
	// The automatic key update runs between records, as in Write.
	c.out.mu.Lock()
	c.out.rekeyAfter = 3
	c.out.mu.Unlock()
	errc := make(chan error, 1)
	go func() { _, err := c.WriteBuffers([][]byte{p[:100], p[100 : 10*maxPlaintext]}); errc <- err }()
	got := make([]byte, 10*maxPlaintext)
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, p[:10*maxPlaintext]) {
		t.Fatalf("across key updates: %v, or the data differs", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
