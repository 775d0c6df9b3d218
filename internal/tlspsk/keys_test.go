package tlspsk

import (
	"bytes"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func checkHex(t *testing.T, what string, got []byte, err error, want string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if g := hex.EncodeToString(got); g != want {
		t.Errorf("%s = %s, RFC 8448 says %s", what, g, want)
	}
}

// RFC 8448 §3, "Simple 1-RTT Handshake" (no PSK: the early secret is
// Extract(0, 0)), SHA-256 and AES-128-GCM: the schedule from the x25519
// shared secret and the transcript hashes the trace prints.
func TestKeyScheduleRFC8448Simple(t *testing.T) {
	s := suiteAES128
	early, err := s.extract(nil, nil)
	checkHex(t, "early secret", early, err, "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
	derived, err := s.deriveSecret(early, "derived", s.hashOf())
	checkHex(t, `Derive-Secret(early, "derived", "")`, derived, err, "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba")

	k := &schedule{s: s}
	shared := unhex(t, "8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d")
	helloHash := unhex(t, "860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
	// The trace has no PSK: its early secret is Extract(0, 0), which a nil
	// PSK gives.
	err = k.handshakeSecrets(nil, shared, helloHash)
	checkHex(t, "handshake secret", k.handshakeSecret, err, "1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")
	checkHex(t, "client_handshake_traffic_secret", k.clientHS, nil, "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
	checkHex(t, "server_handshake_traffic_secret", k.serverHS, nil, "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")

	key, err := s.expandLabel(k.serverHS, "key", nil, 16)
	checkHex(t, "server handshake key", key, err, "3fce516009c21727d0f2e4e86ee403bc")
	iv, err := s.expandLabel(k.serverHS, "iv", nil, 12)
	checkHex(t, "server handshake iv", iv, err, "5d313eb2671276ee13000b30")
	key, err = s.expandLabel(k.clientHS, "key", nil, 16)
	checkHex(t, "client handshake key", key, err, "dbfaa693d1762c5b666af5d950258d01")
	iv, err = s.expandLabel(k.clientHS, "iv", nil, 12)
	checkHex(t, "client handshake iv", iv, err, "5bd3c71b836e0b76bb73265f")
	fk, err := s.expandLabel(k.serverHS, "finished", nil, 32)
	checkHex(t, "server finished_key", fk, err, "008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8")
	fk, err = s.expandLabel(k.clientHS, "finished", nil, 32)
	checkHex(t, "client finished_key", fk, err, "b80ad01015fb2f0bd65ff7d4da5d6bf83f84821d1f87fdc7d3c75b5a7b42d9c4")

	derived, err = s.deriveSecret(k.handshakeSecret, "derived", s.hashOf())
	checkHex(t, `Derive-Secret(handshake, "derived", "")`, derived, err, "43de77e0c77713859a944db9db2590b53190a65b3ee2e4f12dd7a0bb7ce254b4")
	master, err := s.extract(nil, derived)
	checkHex(t, "master secret", master, err, "18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919")
	finishedHash := unhex(t, "9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13")
	err = k.applicationSecrets(finishedHash)
	checkHex(t, "client_application_traffic_secret_0", k.clientAP, err, "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
	checkHex(t, "server_application_traffic_secret_0", k.serverAP, nil, "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
	key, err = s.expandLabel(k.serverAP, "key", nil, 16)
	checkHex(t, "server application key", key, err, "9f02283b6c9c07efc26bb9f2ac92e356")
	iv, err = s.expandLabel(k.clientAP, "iv", nil, 12)
	checkHex(t, "client application iv", iv, err, "5b78923dee08579033e523d9")
}

// The ClientHello of RFC 8448 §4 ("Resumed 0-RTT Handshake"), 512 bytes,
// its one PskBinderEntry last.
const rfc8448ResumedClientHello = `
010001fc03031bc3ceb6bbe39cff938355b5a50adb6db21b7a6af649d7b4bc419d7876487d9500000613011303130201
0001cd0000000b0009000006736572766572ff01000100000a00140012001d0017001800190100010101020103010400
3300260024001d0020e4ffb68ac05f8d96c99da26698346c6be16482badddafe051a66b4f18d668f0b002a0000002b00
03020304000d0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c
000240010015005700000000000000000000000000000000000000000000000000000000000000000000000000000000
000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
2900dd00b800b22c035d829359ee5ff7af4ec900000000262a6494dc486d2c8a34cb33fa90bf1b0070ad3c498883c936
7c09a2be785abc55cd226097a3a982117283f82a03a143efd3ff5dd36d64e861be7fd61d2827db279cce145077d454a3
664d4e6da4d29ee03725a6a4dafcd0fc67d2aea70529513e3da2677fa5906c5b3f7d8f92f228bda40dda721470f9fbf2
97b5aea617646fac5c03272e970727c621a79141ef5f7de6505e5bfbc388e93343694093934ae4d357fad6aacb002120
3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d`

// RFC 8448 §4 uses a resumption PSK, so its binder key has the label "res
// binder" where an external PSK's has "ext binder"; the rest of the
// construction is the same. The server side's parse finds the binders list
// where the RFC cuts the ClientHello (477 bytes in), and the binder
// verifies.
func TestBinderRFC8448Resumed(t *testing.T) {
	s := suiteAES128
	psk := unhex(t, "4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")
	early, err := s.extract(psk, nil)
	checkHex(t, "early secret", early, err, "9b2188e9b2fc6d64d71dc329900e20bb41915000f678aa839cbb797cb7d8332c")
	binderKey, err := s.deriveSecret(early, "res binder", s.hashOf())
	checkHex(t, "binder key", binderKey, err, "69fe131a3bbad5d63c64eebcc30e395b9d8107726a13d074e389dbc8a4e47256")
	fk, err := s.expandLabel(binderKey, "finished", nil, 32)
	checkHex(t, "binder finished_key", fk, err, "5588673e72cb59c87d220caffe94f2dea9a3b1609f7d50e90a48227db9ed7eaa")

	ch, err := parseClientHello(unhex(t, rfc8448ResumedClientHello))
	if err != nil {
		t.Fatalf("parse the RFC's ClientHello: %v", err)
	}
	if ch.bindersAt != 477 {
		t.Errorf("binders list at %d, the RFC truncates at 477", ch.bindersAt)
	}
	if len(ch.identities) != 1 || len(ch.identities[0].identity) != 0xb2 || !ch.hasPSKModes || !ch.earlyData {
		t.Errorf("parsed %d identities, psk modes %v, early data %v", len(ch.identities), ch.hasPSKModes, ch.earlyData)
	}
	truncHash := s.hashOf(ch.raw[:ch.bindersAt])
	checkHex(t, "truncated ClientHello hash", truncHash, nil, "63224b2e4573f2d3454ca84b9d009a04f6be9e05711a8396473aefa01e924a14")
	binder, err := s.binder(psk, "res binder", truncHash)
	checkHex(t, "binder", binder, err, "3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d")
	if !bytes.Equal(ch.binders[0], binder) {
		t.Errorf("parsed binder %x", ch.binders[0])
	}

	helloHash := s.hashOf(ch.raw)
	checkHex(t, "ClientHello hash", helloHash, nil, "08ad0fa05d7c7233b1775ba2ff9f4c5b8b59276b7f227f13a976245f5d960913")
	cet, err := s.deriveSecret(early, "c e traffic", helloHash)
	checkHex(t, "client_early_traffic_secret", cet, err, "3fbbe6a60deb66c30a32795aba0eff7eaa10105586e7be5c09678d63b6caab62")
	eem, err := s.deriveSecret(early, "e exp master", helloHash)
	checkHex(t, "early_exporter_master_secret", eem, err, "b2026866610937d7423e5be90862ccf24c0e6091186d34f812089ff5be2ef7df")
	key, err := s.expandLabel(cet, "key", nil, 16)
	checkHex(t, "early key", key, err, "920205a5b7bf2115e6fc5c2942834f54")
	iv, err := s.expandLabel(cet, "iv", nil, 12)
	checkHex(t, "early iv", iv, err, "6d475f0993c8e564610db2b9")
}

// scriptConn is a net.Conn that reads a script and keeps what is written.
type scriptConn struct {
	r io.Reader
	w bytes.Buffer
}

func (c *scriptConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)      { return c.w.Write(b) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// The record layer against RFC 8448 §4's 0-RTT record: sealing "ABCDEF"
// (application data, sequence number 0) under client_early_traffic_secret
// gives the trace's record byte for byte, and Read opens it.
func TestRecordRFC8448(t *testing.T) {
	secret := unhex(t, "3fbbe6a60deb66c30a32795aba0eff7eaa10105586e7be5c09678d63b6caab62")
	record := unhex(t, "1703030017ab1df420e75c457a7cc5d2844f76d5aee4b4edbf049be0")

	var o outState
	if err := o.set(suiteAES128, secret); err != nil {
		t.Fatal(err)
	}
	got, err := o.appendRecord(nil, recordApplicationData, []byte("ABCDEF"))
	if err != nil || !bytes.Equal(got, record) {
		t.Fatalf("sealed record %x (%v), RFC 8448 says %x", got, err, record)
	}

	sc := &scriptConn{r: bytes.NewReader(record)}
	c := newConn(sc, false)
	if err := c.in.set(suiteAES128, secret); err != nil {
		t.Fatal(err)
	}
	c.hsDone.Store(true)
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ABCDEF" {
		t.Fatalf("Read = %q, %v; want ABCDEF", buf[:n], err)
	}
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("Read at the end of the stream = %v, want io.EOF", err)
	}
}

// What the client builds, the server's parser reads back; the same for
// ServerHello and HelloRetryRequest.
func TestHelloRoundTrip(t *testing.T) {
	keys := []Key{testKey(TLS_AES_128_GCM_SHA256, "a"), testKey(TLS_AES_256_GCM_SHA384, "b")}
	keys[1].Identity = "second"
	hs := &clientHS{offered: keys, group: groupP256, cookie: []byte("cookie")}
	hs.random[0], hs.sessionID[31] = 1, 2
	var err error
	if hs.priv, err = generateKey(groupP256, fuzzRand(3)); err != nil {
		t.Fatal(err)
	}
	msg, bindersAt, err := hs.marshalHello()
	if err != nil {
		t.Fatal(err)
	}
	ch, err := parseClientHello(msg)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case ch.bindersAt != bindersAt || bindersAt+2+1+32+1+48 != len(msg):
		t.Errorf("binders at %d, built at %d, message %d bytes", ch.bindersAt, bindersAt, len(msg))
	case len(ch.identities) != 2 || string(ch.identities[1].identity) != "second" || len(ch.binders[1]) != 48:
		t.Errorf("identities %v", ch.identities)
	case len(ch.suites) != 2 || ch.suites[0] != TLS_AES_128_GCM_SHA256 || ch.suites[1] != TLS_AES_256_GCM_SHA384:
		t.Errorf("suites %04x", ch.suites)
	case len(ch.shares) != 1 || ch.shares[0].group != groupP256 || !bytes.Equal(ch.shares[0].data, hs.priv.PublicKey().Bytes()):
		t.Errorf("key shares %v", ch.shares)
	case string(ch.cookie) != "cookie" || ch.random[0] != 1 || ch.sessionID[31] != 2 || !ch.compressionIsNull:
		t.Errorf("cookie %q random %x session %x", ch.cookie, ch.random, ch.sessionID)
	case len(ch.pskModes) != 1 || ch.pskModes[0] != pskModeDHEKE || len(ch.versions) != 1 || ch.versions[0] != versionTLS13:
		t.Errorf("modes %v versions %v", ch.pskModes, ch.versions)
	case len(ch.groups) != 2 || ch.groups[0] != groupX25519 || ch.groups[1] != groupP256:
		t.Errorf("groups %v", ch.groups)
	}

	random := bytes.Repeat([]byte{9}, 32)
	msg, err = marshalServerHello(random, ch.sessionID, TLS_AES_256_GCM_SHA384, keyShare{groupX25519, bytes.Repeat([]byte{5}, 32)}, 1)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := parseServerHello(msg)
	if err != nil || sh.isHRR || sh.version != versionTLS13 || sh.suite != TLS_AES_256_GCM_SHA384 || !sh.hasPSK || sh.selectedID != 1 ||
		!sh.hasShare || sh.share.group != groupX25519 || len(sh.share.data) != 32 || !bytes.Equal(sh.sessionID, ch.sessionID) || len(sh.unexpectedExts) != 0 {
		t.Errorf("ServerHello: %+v, %v", sh, err)
	}
	msg, err = marshalServerHello(helloRetryRandom, nil, TLS_AES_128_GCM_SHA256, keyShare{group: groupP256}, 0)
	if err != nil {
		t.Fatal(err)
	}
	sh, err = parseServerHello(msg)
	if err != nil || !sh.isHRR || sh.selectedGroup != groupP256 || sh.hasPSK || sh.hasShare || len(sh.unexpectedExts) != 0 {
		t.Errorf("HelloRetryRequest: %+v, %v", sh, err)
	}
	// Every truncation of a ClientHello is an error, never a panic.
	full, _, _ := hs.marshalHello()
	for n := range len(full) {
		if _, err := parseClientHello(full[:n]); err == nil {
			t.Fatalf("a ClientHello cut at %d of %d bytes parsed", n, len(full))
		}
	}
}
