package tlspsk

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
)

// clientHS is the state of a client handshake.
type clientHS struct {
	c         *Conn
	cfg       *Config
	rand      io.Reader
	random    [32]byte
	sessionID [32]byte // non-empty: the middlebox compatibility mode (§D.4)
	group     uint16   // of the key share sent
	priv      *ecdh.PrivateKey
	cookie    []byte
	offered   []Key  // the keys in the ClientHello last sent, in order
	hello     []byte // the ClientHello last sent
	// transcript is what precedes the ClientHello last sent in the
	// transcript (§4.4.1): nothing, or message_hash and the
	// HelloRetryRequest.
	transcript []byte
	retried    *suiteInfo // the HelloRetryRequest's suite, if there was one
}

func (c *Conn) clientHandshake(cfg *Config) error {
	hs := &clientHS{c: c, cfg: cfg, rand: cfg.Rand, offered: cfg.Keys, group: cfg.shareGroup}
	if hs.rand == nil {
		hs.rand = rand.Reader
	}
	if hs.group == 0 {
		hs.group = groupX25519
	}
	if _, err := io.ReadFull(hs.rand, hs.random[:]); err != nil {
		return fmt.Errorf("tlspsk: client handshake: read random bytes: %w", err)
	}
	if _, err := io.ReadFull(hs.rand, hs.sessionID[:]); err != nil {
		return fmt.Errorf("tlspsk: client handshake: read random bytes: %w", err)
	}
	if err := hs.sendHello(false); err != nil {
		return err
	}
	c.in.mu.Lock()
	c.in.ccsOK = true
	c.in.mu.Unlock()

	msg, err := c.readHandshake("ServerHello")
	if err != nil {
		return hs.explain(err)
	}
	sh, err := hs.parseServerHello(msg)
	if err != nil {
		return err
	}
	if sh.isHRR {
		if err := hs.retry(sh); err != nil {
			return err
		}
		if msg, err = c.readHandshake("ServerHello"); err != nil {
			return hs.explain(err)
		}
		if sh, err = hs.parseServerHello(msg); err != nil {
			return err
		}
		if sh.isHRR {
			return c.fail(alertUnexpectedMessage, nil, "client handshake: a second HelloRetryRequest (RFC 8446 §4.1.4)")
		}
	}
	return hs.finish(sh)
}

// sendHello builds a ClientHello with the binders of hs.offered and sends
// it, after a change_cipher_spec if it follows a HelloRetryRequest (§D.4).
func (hs *clientHS) sendHello(afterRetry bool) error {
	c := hs.c
	var err error
	if hs.priv, err = generateKey(hs.group, hs.rand); err != nil {
		return fmt.Errorf("tlspsk: client handshake: %w", err)
	}
	msg, bindersAt, err := hs.marshalHello()
	if err != nil {
		return fmt.Errorf("tlspsk: client handshake: build ClientHello: %w", err)
	}
	// §4.2.11.2: each binder is over the transcript up to the binders list.
	at := bindersAt + 2
	for _, k := range hs.offered {
		s := suiteByID(k.Suite)
		b, err := s.binder(k.Secret, "ext binder", s.hashOf(hs.transcript, msg[:bindersAt]))
		if err != nil {
			return fmt.Errorf("tlspsk: client handshake: PSK binder for identity %q: %w", k.Identity, err)
		}
		msg[at] = byte(len(b))
		copy(msg[at+1:], b)
		at += 1 + len(b)
	}
	hs.hello = msg
	c.out.mu.Lock()
	if !afterRetry {
		c.out.version = 0x0301 // an initial ClientHello's record may say TLS 1.0 (§5.1)
	}
	c.out.mu.Unlock()
	if afterRetry && hs.sessionID != [32]byte{} {
		if err := c.queue(recordChangeCipherSpec, []byte{1}); err != nil {
			return err
		}
	}
	err = c.queue(recordHandshake, msg)
	c.out.mu.Lock()
	c.out.version = versionTLS12
	c.out.mu.Unlock()
	if err == nil {
		err = c.flush()
	}
	if err != nil {
		return fmt.Errorf("tlspsk: client handshake: send ClientHello: %w", err)
	}
	return nil
}

// marshalHello builds the ClientHello (§4.1.2) with zero binders of the
// right lengths; bindersAt is where the binders list starts.
func (hs *clientHS) marshalHello() (msg []byte, bindersAt int, err error) {
	var suites []uint16
	for _, k := range hs.offered {
		if !slices.Contains(suites, k.Suite) {
			suites = append(suites, k.Suite)
		}
	}
	var b builder
	b.handshakeMsg(typeClientHello, func() {
		b.u16(versionTLS12)
		b.raw(hs.random[:])
		b.bytes8(hs.sessionID[:])
		b.vec16(func() {
			for _, s := range suites {
				b.u16(s)
			}
		})
		b.bytes8([]byte{0}) // legacy_compression_methods: null
		b.vec16(func() {
			b.ext(extSupportedVersions, func() { b.vec8(func() { b.u16(versionTLS13) }) })
			b.ext(extSupportedGroups, func() { b.vec16(func() { b.u16(groupX25519); b.u16(groupP256) }) })
			b.ext(extKeyShare, func() {
				b.vec16(func() {
					b.u16(hs.group)
					b.bytes16(hs.priv.PublicKey().Bytes())
				})
			})
			b.ext(extPSKKeyExchangeModes, func() { b.bytes8([]byte{pskModeDHEKE}) })
			if hs.cookie != nil {
				b.ext(extCookie, func() { b.bytes16(hs.cookie) })
			}
			// pre_shared_key is last (§4.2.11); obfuscated_ticket_age is 0
			// for external PSKs.
			b.ext(extPreSharedKey, func() {
				b.vec16(func() {
					for _, k := range hs.offered {
						b.bytes16([]byte(k.Identity))
						b.u32(0)
					}
				})
				bindersAt = len(b.b)
				b.vec16(func() {
					for _, k := range hs.offered {
						b.bytes8(make([]byte, suiteByID(k.Suite).hashLen))
					}
				})
			})
		})
	})
	msg, err = b.done()
	return msg, bindersAt, err
}

// parseServerHello parses a ServerHello or HelloRetryRequest and checks
// what both must satisfy (§4.1.3, §4.1.4).
func (hs *clientHS) parseServerHello(msg []byte) (*serverHello, error) {
	c := hs.c
	if msg[0] != typeServerHello {
		return nil, c.fail(alertUnexpectedMessage, nil, "client handshake: handshake message of type %d where the ServerHello belongs", msg[0])
	}
	sh, err := parseServerHello(msg)
	if err != nil {
		return nil, c.failParse(err, "client handshake")
	}
	what := "ServerHello"
	if sh.isHRR {
		what = "HelloRetryRequest"
	}
	switch {
	case sh.version != versionTLS13:
		return nil, c.fail(alertProtocolVersion, nil, "client handshake: the server chose version %#04x, not TLS 1.3 (a server without TLS 1.3, or without PSK support for it)", sh.version)
	case sh.legacyVersion != versionTLS12:
		return nil, c.fail(alertProtocolVersion, nil, "client handshake: %s legacy_version %#04x (want 0x0303)", what, sh.legacyVersion)
	case string(sh.sessionID) != string(hs.sessionID[:]):
		return nil, c.fail(alertIllegalParameter, nil, "client handshake: %s does not echo the legacy_session_id", what)
	case sh.compression != 0:
		return nil, c.fail(alertIllegalParameter, nil, "client handshake: %s compression method %d", what, sh.compression)
	case len(sh.unexpectedExts) > 0:
		return nil, c.fail(alertUnsupportedExtension, nil, "client handshake: %s carries extension %d, which this client did not offer", what, sh.unexpectedExts[0])
	}
	offered := false
	for _, k := range hs.offered {
		offered = offered || k.Suite == sh.suite
	}
	if !offered {
		return nil, c.fail(alertIllegalParameter, nil, "client handshake: %s chose cipher suite %#04x, which this client did not offer", what, sh.suite)
	}
	return sh, nil
}

// retry answers a HelloRetryRequest with a second ClientHello (§4.1.4).
func (hs *clientHS) retry(hrr *serverHello) error {
	c := hs.c
	switch g := hrr.selectedGroup; {
	case g == 0 && hrr.cookie == nil:
		return c.fail(alertIllegalParameter, nil, "client handshake: HelloRetryRequest asks for no change (RFC 8446 §4.1.4)")
	case g != 0 && curveOf(g) == nil:
		return c.fail(alertIllegalParameter, nil, "client handshake: HelloRetryRequest asks for group %#04x, which this client did not offer", g)
	case g == hs.group:
		return c.fail(alertIllegalParameter, nil, "client handshake: HelloRetryRequest asks for group %#04x, whose key share this client sent", g)
	case g != 0:
		hs.group = g
	}
	s := suiteByID(hrr.suite)
	hs.retried = s
	// §4.4.1: ClientHello1 is replaced by message_hash, Hash(ClientHello1).
	hs.transcript = append(messageHash(s, hs.hello), hrr.raw...)
	// §4.1.4: the second ClientHello SHOULD NOT offer PSKs of another hash.
	var keep []Key
	for _, k := range hs.offered {
		if k.Suite == hrr.suite {
			keep = append(keep, k)
		}
	}
	hs.offered = keep
	hs.cookie = hrr.cookie
	return hs.sendHello(true)
}

// messageHash is the synthetic handshake message that stands for
// ClientHello1 after a HelloRetryRequest (§4.4.1).
func messageHash(s *suiteInfo, hello []byte) []byte {
	return append([]byte{typeMessageHash, 0, 0, byte(s.hashLen)}, s.hashOf(hello)...)
}

// finish takes the handshake from the ServerHello to the client's Finished.
func (hs *clientHS) finish(sh *serverHello) error {
	c := hs.c
	switch {
	case hs.retried != nil && sh.suite != hs.retried.id:
		return c.fail(alertIllegalParameter, nil, "client handshake: ServerHello chose cipher suite %#04x after the HelloRetryRequest chose %#04x", sh.suite, hs.retried.id)
	case !sh.hasPSK:
		return c.fail(alertMissingExtension, nil, "client handshake: the server accepted none of the offered PSKs (no pre_shared_key in its ServerHello)")
	case int(sh.selectedID) >= len(hs.offered):
		return c.fail(alertIllegalParameter, nil, "client handshake: the server selected PSK %d of the %d offered", sh.selectedID, len(hs.offered))
	case !sh.hasShare:
		return c.fail(alertMissingExtension, nil, "client handshake: ServerHello without a key_share (psk_ke, which this client does not allow)")
	case sh.share.group != hs.group:
		return c.fail(alertIllegalParameter, nil, "client handshake: the server's key share is for group %#04x; this client's is for %#04x", sh.share.group, hs.group)
	}
	key := hs.offered[sh.selectedID]
	s := suiteByID(sh.suite)
	if key.Suite != sh.suite {
		return c.fail(alertIllegalParameter, nil, "client handshake: the server chose cipher suite %s with PSK identity %q, which is for %s", s.name, key.Identity, suiteByID(key.Suite).name)
	}
	pub, err := curveOf(hs.group).NewPublicKey(sh.share.data)
	if err != nil {
		return c.fail(alertIllegalParameter, nil, "client handshake: the server's key share: %v", err)
	}
	shared, err := hs.priv.ECDH(pub)
	if err != nil {
		return c.fail(alertIllegalParameter, nil, "client handshake: ECDHE with the server's key share: %v", err)
	}
	if c.hsPending() {
		return c.fail(alertUnexpectedMessage, nil, "client handshake: ServerHello is not the last message of its record (RFC 8446 §5.1)")
	}
	transcript := slices.Concat(hs.transcript, hs.hello, sh.raw)
	k := &schedule{s: s}
	if err := k.handshakeSecrets(key.Secret, shared, s.hashOf(transcript)); err != nil {
		return c.fail(alertInternalError, err, "client handshake: derive handshake secrets: %v", err)
	}
	c.in.mu.Lock()
	err = c.in.set(s, k.serverHS)
	c.in.mu.Unlock()
	if err != nil {
		return c.fail(alertInternalError, err, "client handshake: install handshake keys: %v", err)
	}

	msg, err := c.readHandshake("EncryptedExtensions")
	if err != nil {
		return hs.explain(err)
	}
	if msg[0] != typeEncryptedExtensions {
		return c.fail(alertUnexpectedMessage, nil, "client handshake: handshake message of type %d where EncryptedExtensions belongs", msg[0])
	}
	if err := parseEncryptedExtensions(msg); err != nil {
		return c.failParse(err, "client handshake")
	}
	transcript = append(transcript, msg...)

	if msg, err = c.readHandshake("server Finished"); err != nil {
		return hs.explain(err)
	}
	if msg[0] == typeCertificate || msg[0] == typeCertificateRequest {
		return c.fail(alertUnexpectedMessage, nil, "client handshake: the server sent a certificate message (type %d) in a PSK handshake", msg[0])
	}
	if err := c.checkFinished(s, msg, k.serverHS, transcript, "client handshake", "server",
		fmt.Sprintf("the server's PSK for identity %q differs from this client's", key.Identity)); err != nil {
		return err
	}
	transcript = append(transcript, msg...)
	if err := k.applicationSecrets(s.hashOf(transcript)); err != nil {
		return c.fail(alertInternalError, err, "client handshake: derive application secrets: %v", err)
	}
	verify, err := s.finishedMAC(k.clientHS, s.hashOf(transcript))
	if err != nil {
		return c.fail(alertInternalError, err, "client handshake: %v", err)
	}

	// Second flight: change_cipher_spec unless it went before the second
	// ClientHello (§D.4), then Finished under the handshake key.
	if hs.retried == nil && hs.sessionID != [32]byte{} {
		if err := c.queue(recordChangeCipherSpec, []byte{1}); err != nil {
			return err
		}
	}
	c.out.mu.Lock()
	err = c.out.set(s, k.clientHS)
	c.out.mu.Unlock()
	if err != nil {
		return c.fail(alertInternalError, err, "client handshake: install handshake keys: %v", err)
	}
	fin := append([]byte{typeFinished, 0, 0, byte(s.hashLen)}, verify...)
	if err := c.queue(recordHandshake, fin); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return fmt.Errorf("tlspsk: client handshake: send Finished: %w", err)
	}
	c.out.mu.Lock()
	err = c.out.set(s, k.clientAP)
	c.out.mu.Unlock()
	if err == nil {
		c.in.mu.Lock()
		err = c.in.set(s, k.serverAP)
		c.in.ccsOK = false
		c.in.mu.Unlock()
	}
	if err != nil {
		return c.fail(alertInternalError, err, "client handshake: install application keys: %v", err)
	}
	c.identity, c.suite = key.Identity, s
	c.hsDone.Store(true)
	return nil
}

// explain adds to an alert the server sent what it most likely means here.
func (hs *clientHS) explain(err error) error {
	var ae *AlertError
	if !errors.As(err, &ae) || ae.Sent {
		return err
	}
	ids := identities(hs.offered)
	switch alert(ae.Alert) {
	case alertUnknownPSKIdentity:
		ae.Msg = fmt.Sprintf("client handshake: the server knows none of the PSK identities %s: check the identity (host NQN, subsystem NQN, hash) and the keys the server holds", ids)
		ae.Err = ErrUnknownIdentity
	case alertDecryptError:
		ae.Msg = fmt.Sprintf("client handshake: the server could not verify the binder of PSK %s: its PSK for that identity differs from this client's", ids)
		ae.Err = ErrPSKMismatch
	case alertHandshakeFailure:
		ae.Msg = fmt.Sprintf("client handshake: the server refused the handshake: check that it holds a PSK for %s, for the same cipher suite, and allows TLS 1.3 with ECDHE", ids)
	case alertProtocolVersion:
		ae.Msg = "client handshake: the server does not speak TLS 1.3"
	}
	return err
}

// identities formats the identities of keys for an error message.
func identities(keys []Key) string {
	var ids []string
	for _, k := range keys {
		ids = append(ids, k.Identity)
	}
	return quoteList(ids)
}

// quoteList quotes up to four strings, each cut at 200 bytes.
func quoteList(list []string) string {
	out := ""
	for i, s := range list {
		if i == 4 {
			return out + fmt.Sprintf(" and %d more", len(list)-4)
		}
		if i > 0 {
			out += ", "
		}
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		out += fmt.Sprintf("%q", s)
	}
	return out
}
