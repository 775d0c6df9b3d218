package tcp

import (
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/internal/tlspsk"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

// newPSK makes a configured PSK as nvme gen-tls-key does: random bytes of
// the hash's size.
func newPSK(t testing.TB, h dhchap.Hash) dhchap.PSK {
	t.Helper()
	k := make([]byte, h.Size())
	rand.Read(k)
	p, err := dhchap.ParsePSK(dhchap.PSK{Hash: h, Key: k}.String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startTLSTarget starts a target whose subsystem allows hostNQN with
// psk (over TLS only) and strangerN without a key, on a listener in mode.
func startTLSTarget(t testing.TB, mode TLSMode, psk dhchap.PSK) *testTarget {
	t.Helper()
	tgt := target.New(target.Options{Logger: quietLogger(), MaxQueueDepth: 128})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowedHosts: []string{strangerN},
		TLSKeys: map[string]dhchap.PSK{hostNQN: psk}})
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.NewMem(16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(tgt, "127.0.0.1:0", Options{Logger: quietLogger(), TLS: mode, ICTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ln.Close()
		tgt.Close()
	})
	return &testTarget{tgt: tgt, ss: ss, ln: ln}
}

// tlsHost is a host that offers the PSK identity (version) psk derives
// for hostnqn and subnqn, as the Linux host does through tlshd.
type tlsHost struct {
	psk             dhchap.PSK
	hostnqn, subnqn string
	version         int
	secret          []byte // nil: the derived TLS PSK; else this one (a wrong key)
}

func (th tlsHost) key(t testing.TB) tlspsk.Key {
	t.Helper()
	id, key, err := th.psk.TLS(th.hostnqn, th.subnqn, th.version)
	if err != nil {
		t.Fatal(err)
	}
	if th.secret != nil {
		key = th.secret
	}
	return tlspsk.Key{Identity: id, Secret: key, Suite: suiteFor(th.psk.Cipher())}
}

// dialTLS connects and runs the TLS handshake; the raw connection comes
// back too, to see the target close it after a failed handshake.
func dialTLS(t testing.TB, addr string, th tlsHost) (*tcppeer.Host, net.Conn, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	// A safety net against a hung target, not a synchronisation device.
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	tc, err := tlspsk.Client(nc, &tlspsk.Config{Keys: []tlspsk.Key{th.key(t)}})
	if err != nil {
		return nil, nc, err
	}
	return &tcppeer.Host{T: t, NC: tc}, nc, nil
}

func mustDialTLS(t testing.TB, addr string, th tlsHost) *tcppeer.Host {
	t.Helper()
	h, _, err := dialTLS(t, addr, th)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return h
}

// tlsSession brings up an admin and an I/O queue over TLS, as
// tcppeer.Connect does over plain TCP.
func tlsSession(t testing.TB, addr string, th tlsHost, hdgst, ddgst bool) *tcppeer.Session {
	t.Helper()
	s := &tcppeer.Session{Admin: mustDialTLS(t, addr, th), IO: mustDialTLS(t, addr, th)}
	s.Admin.Init(hdgst, ddgst)
	id, st := s.Admin.ConnectAdmin(th.subnqn, th.hostnqn, hostID, 0)
	if !st.OK() {
		t.Fatalf("connect admin queue over TLS: %v", st)
	}
	s.CntlID = id
	s.SetEnabled(true)
	s.IO.Init(hdgst, ddgst)
	if st := s.IO.ConnectIO(1, 31, id, th.subnqn, th.hostnqn, hostID); !st.OK() {
		t.Fatalf("connect I/O queue over TLS: %v", st)
	}
	return s
}

// expectClosed reads the raw connection until the target closes it.
func expectClosed(t testing.TB, nc net.Conn) {
	t.Helper()
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the target did not close the connection: %v", err)
	}
}

// TestTLSReadWrite: a host with a configured PSK connects over TLS with
// identities of version 0 and 1 and both key sizes, and writes and reads
// back data in capsules, through R2T and in large C2HData PDUs, with and
// without digests.
func TestTLSReadWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hash    dhchap.Hash
		version int
		digests bool
	}{
		{"v0-sha256", dhchap.SHA256, 0, false},
		{"v1-sha256", dhchap.SHA256, 1, false},
		{"v0-sha384-digests", dhchap.SHA384, 0, true},
		{"v1-sha384", dhchap.SHA384, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			psk := newPSK(t, tc.hash)
			tt := startTLSTarget(t, TLSRequired, psk)
			s := tlsSession(t, tt.addr(), tlsHost{psk: psk, hostnqn: hostNQN, subnqn: testNQN, version: tc.version}, tc.digests, tc.digests)
			s.RoundTrip(0, 4096, 1)
			s.RoundTrip(1<<20, 128<<10, 2)
			// Commands queued back to back: responses batched into one flush.
			for i := range 8 {
				s.RoundTrip(int64(i)*8192, 8192, byte(i))
			}
			if n := tt.ln.TLSHandshakes.Load(); n != 2 {
				t.Errorf("TLSHandshakes %d, want 2 (admin and I/O queue)", n)
			}
		})
	}
}

// TestTLSWrongKey: a host whose PSK differs from the configured one, or
// that has none configured, fails the handshake; the target closes the
// connection and counts it.
func TestTLSWrongKey(t *testing.T) {
	psk := newPSK(t, dhchap.SHA256)
	tt := startTLSTarget(t, TLSRequired, psk)

	wrong := make([]byte, 32)
	rand.Read(wrong)
	_, nc, err := dialTLS(t, tt.addr(), tlsHost{psk: psk, hostnqn: hostNQN, subnqn: testNQN, secret: wrong})
	if err == nil {
		t.Fatal("handshake with a wrong key succeeded")
	}
	expectClosed(t, nc)

	// Another key whose version 1 identity carries its own digest.
	other := newPSK(t, dhchap.SHA256)
	if _, nc, err = dialTLS(t, tt.addr(), tlsHost{psk: other, hostnqn: hostNQN, subnqn: testNQN, version: 1}); err == nil {
		t.Fatal("handshake with another key's v1 identity succeeded")
	}
	if !errors.Is(err, tlspsk.ErrUnknownIdentity) {
		t.Errorf("v1 identity with a wrong digest: %v, want the identity refused", err)
	}
	expectClosed(t, nc)

	// A host without a key, an unknown subsystem, a SHA-384 identity for a SHA-256 key.
	for _, th := range []tlsHost{
		{psk: psk, hostnqn: strangerN, subnqn: testNQN},
		{psk: psk, hostnqn: hostNQN, subnqn: "nqn.2026-11.io.flashpath:nothing"},
		{psk: newPSK(t, dhchap.SHA384), hostnqn: hostNQN, subnqn: testNQN},
	} {
		if _, nc, err = dialTLS(t, tt.addr(), th); !errors.Is(err, tlspsk.ErrUnknownIdentity) {
			t.Errorf("%s on %s: %v, want the identity refused", th.hostnqn, th.subnqn, err)
		}
		expectClosed(t, nc)
	}
	if n := tt.ln.TLSFailures.Load(); n != 5 {
		t.Errorf("TLSFailures %d, want 5", n)
	}
	if n := tt.ln.TLSHandshakes.Load(); n != 0 {
		t.Errorf("TLSHandshakes %d, want 0", n)
	}
}

// TestTLSRequiredRefusesPlain: a plain ICReq on a TLS-only listener ends
// the connection.
func TestTLSRequiredRefusesPlain(t *testing.T) {
	psk := newPSK(t, dhchap.SHA256)
	tt := startTLSTarget(t, TLSRequired, psk)
	h := tcppeer.Dial(t, tt.addr())
	h.Write(tcppeer.ICReqBytes(nvmeof.ICReq{}))
	h.ExpectEOF()
	if n := tt.ln.PlainRefused.Load(); n != 1 {
		t.Errorf("PlainRefused %d, want 1", n)
	}
	// The discovery log says TLS 1.3 is required: read
	// over TLS, with an identity that names the discovery subsystem.
	d := mustDialTLS(t, tt.addr(), tlsHost{psk: psk, hostnqn: hostNQN, subnqn: nvmeof.DiscoveryNQN, version: 1})
	d.Init(false, false)
	if _, st := d.ConnectAdmin(nvmeof.DiscoveryNQN, hostNQN, hostID, 0); !st.OK() {
		t.Fatalf("connect to discovery over TLS: %v", st)
	}
	assertDiscoveryTLS(t, d, nvmeof.TReqSecureChannelRequired)
}

// assertDiscoveryTLS enables the discovery controller on d and checks
// that its log entry says TLS 1.3, required or not as treq says.
func assertDiscoveryTLS(t *testing.T, d *tcppeer.Host, treq nvmeof.TReq) {
	t.Helper()
	(&tcppeer.Session{Admin: d}).SetEnabled(true)
	e := discoveryEntry(t, d)
	if nvmeof.TReq(e.TReq)&nvmeof.TReqSecureChannelMask != treq || e.SecType != nvmeof.SecTypeTLS13 {
		t.Errorf("discovery entry TREQ %v, TSAS sectype %v; want %v, TLS 1.3", nvmeof.TReq(e.TReq), nvmeof.SecType(e.SecType), treq)
	}
}

// TestTLSOptional: an optional listener serves TLS and plain connections
// side by side; a host with a TLS key may not connect plain.
func TestTLSOptional(t *testing.T) {
	psk := newPSK(t, dhchap.SHA384)
	tt := startTLSTarget(t, TLSOptional, psk)

	s := tlsSession(t, tt.addr(), tlsHost{psk: psk, hostnqn: hostNQN, subnqn: testNQN, version: 1}, false, false)
	plain := tcppeer.Connect(t, tt.addr(), false, false, testNQN, strangerN, [16]byte{9})
	s.RoundTrip(0, 64<<10, 1)
	plain.RoundTrip(64<<10, 64<<10, 2)
	s.RoundTrip(128<<10, 4096, 3)

	h := tcppeer.Dial(t, tt.addr())
	h.Init(false, false)
	if _, st := h.ConnectAdmin(testNQN, hostNQN, hostID, 0); st.Code() != nvmeof.StatusConnectInvalidHost.Code() {
		t.Errorf("plain Connect of a host with a TLS key: %v, want Connect Invalid Host", st)
	}
	// Plain discovery stays open to it, and says TLS is not required.
	d := tcppeer.Dial(t, tt.addr())
	d.Init(false, false)
	if _, st := d.ConnectAdmin(nvmeof.DiscoveryNQN, hostNQN, hostID, 0); !st.OK() {
		t.Fatalf("plain Connect to discovery: %v", st)
	}
	assertDiscoveryTLS(t, d, nvmeof.TReqSecureChannelNotRequired)
	if n := tt.ln.TLSHandshakes.Load(); n != 2 {
		t.Errorf("TLSHandshakes %d, want 2", n)
	}
}

// TestTLSIdentityMustMatchConnect: the Connect over a TLS connection must
// name the host and subsystem of the PSK identity.
func TestTLSIdentityMustMatchConnect(t *testing.T) {
	psk := newPSK(t, dhchap.SHA256)
	tt := startTLSTarget(t, TLSRequired, psk)
	th := tlsHost{psk: psk, hostnqn: hostNQN, subnqn: testNQN}
	for _, tc := range []struct{ name, host, sub string }{
		{"another host", strangerN, testNQN},
		{"another subsystem", hostNQN, nvmeof.DiscoveryNQN},
	} {
		h := mustDialTLS(t, tt.addr(), th)
		h.Init(false, false)
		_, st := h.ConnectAdmin(tc.sub, tc.host, hostID, 0)
		if st.Code() != nvmeof.StatusConnectInvalidHost.Code() {
			t.Errorf("%s: Connect %v, want Connect Invalid Host", tc.name, st)
		}
	}
	if n := tt.tgt.Controllers(); n != 0 {
		t.Errorf("%d controllers, want none", n)
	}
}

// TestTLSKeyChange: a new key set on the subsystem (a reload) is the one
// new connections need.
func TestTLSKeyChange(t *testing.T) {
	old := newPSK(t, dhchap.SHA256)
	tt := startTLSTarget(t, TLSRequired, old)
	s := tlsSession(t, tt.addr(), tlsHost{psk: old, hostnqn: hostNQN, subnqn: testNQN}, false, false)

	next := newPSK(t, dhchap.SHA256)
	tt.ss.SetHostsTLS(false, []string{strangerN}, nil, map[string]dhchap.PSK{hostNQN: next})
	if _, nc, err := dialTLS(t, tt.addr(), tlsHost{psk: old, hostnqn: hostNQN, subnqn: testNQN}); err == nil {
		t.Error("handshake with the replaced key succeeded")
	} else {
		expectClosed(t, nc)
	}
	tlsSession(t, tt.addr(), tlsHost{psk: next, hostnqn: hostNQN, subnqn: testNQN, version: 1}, false, false).RoundTrip(0, 4096, 1)
	s.RoundTrip(4096, 4096, 2) // connected with the old key: stays
}

// TestTLSHandshakeTimeout: a host that starts a handshake and stops is
// closed after the IC timeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	psk := newPSK(t, dhchap.SHA256)
	tgt := target.New(target.Options{Logger: quietLogger()})
	if _, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, TLSKeys: map[string]dhchap.PSK{hostNQN: psk}}); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(tgt, "127.0.0.1:0", Options{Logger: quietLogger(), TLS: TLSOptional, ICTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	nc.Write([]byte{0x16, 3, 1}) // the start of a record header
	expectClosed(t, nc)
	if n := ln.TLSFailures.Load(); n != 1 {
		t.Errorf("TLSFailures %d, want 1", n)
	}
}

// discoveryEntry reads the discovery log over h, connected to the
// discovery controller and enabled, and returns its one entry.
func discoveryEntry(t testing.TB, h *tcppeer.Host) nvmeof.DiscoveryEntry {
	t.Helper()
	n := nvmeof.DiscoveryLogSize(4)
	var sqe nvmeof.SQE
	sqe.SetGetLogPage(nvmeof.LogDiscovery, 0, uint32(n), 0)
	sqe.SetCID(h.NextCID())
	sqe.SetFlags(nvmeof.FlagsSGL)
	sqe.SGL().SetDataBlock(nvmeof.SGLTransport, 0, uint32(n))
	h.Write(h.Capsule(sqe, nil))
	var data []byte
	for range 100 {
		hd, b := h.ReadPDU()
		switch hd.Type {
		case nvmeof.PDUC2HData:
			data = append(data, b[hd.PDO:hd.PLen]...)
			continue
		case nvmeof.PDUCapsuleRsp:
			if st := nvmeof.CQEView(b[nvmeof.CHSize:]).Status(); !st.OK() {
				t.Fatalf("discovery log: %v", st)
			}
		}
		break
	}
	log, err := nvmeof.DecodeDiscoveryLog(data)
	if err != nil || len(log.Entries) != 1 {
		t.Fatalf("discovery log: %d entries (%v), want 1", len(log.Entries), err)
	}
	return log.Entries[0]
}
