package tlspsk

import (
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
)

// maxEarlySkip is how much early data a server skips when a client offers
// 0-RTT, which this server always declines (§4.2.10).
const maxEarlySkip = 64 << 10

// serverHS is the state of a server handshake.
type serverHS struct {
	c      *Conn
	cfg    *Config
	rand   io.Reader
	groups []uint16 // accepted, by preference
	key    Key
	name   string // the identity the client offered for key
	index  int    // of the key among the client's identities
	suite  *suiteInfo
	// transcript is what precedes the current ClientHello: nothing, or
	// message_hash and the HelloRetryRequest.
	transcript []byte
}

func (c *Conn) serverHandshake(cfg *Config) error {
	hs := &serverHS{c: c, cfg: cfg, rand: cfg.Rand, groups: cfg.serverGroups}
	if hs.rand == nil {
		hs.rand = rand.Reader
	}
	if hs.groups == nil {
		hs.groups = []uint16{groupX25519, groupP256}
	}
	ch, err := hs.readHello("ClientHello")
	if err != nil {
		return err
	}
	c.in.mu.Lock()
	c.in.ccsOK = true
	c.in.mu.Unlock()
	if err := hs.checkHello(ch, false); err != nil {
		return err
	}
	share, group := hs.pickShare(ch)
	retried := false
	if share == nil {
		if group = hs.pickGroup(ch); group == 0 {
			return c.fail(alertHandshakeFailure, nil, "server handshake: the client offers no group this server accepts (x25519, secp256r1)")
		}
		ch1 := ch
		if ch, err = hs.helloRetry(ch, group); err != nil {
			return err
		}
		if string(ch.sessionID) != string(ch1.sessionID) {
			return c.fail(alertIllegalParameter, nil, "server handshake: the second ClientHello changed legacy_session_id (RFC 8446 §4.1.2)")
		}
		if len(ch.shares) != 1 || ch.shares[0].group != group {
			return c.fail(alertIllegalParameter, nil, "server handshake: the second ClientHello lacks the one key share for group %#04x that the HelloRetryRequest asked for", group)
		}
		share, retried = ch.shares[0].data, true
	}
	if c.hsPending() {
		return c.fail(alertUnexpectedMessage, nil, "server handshake: ClientHello is not the last message of its record (RFC 8446 §5.1)")
	}

	priv, err := generateKey(group, hs.rand)
	if err != nil {
		return c.fail(alertInternalError, err, "server handshake: %v", err)
	}
	pub, err := curveOf(group).NewPublicKey(share)
	if err != nil {
		return c.fail(alertIllegalParameter, nil, "server handshake: the client's key share: %v", err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return c.fail(alertIllegalParameter, nil, "server handshake: ECDHE with the client's key share: %v", err)
	}
	var random [32]byte
	if _, err := io.ReadFull(hs.rand, random[:]); err != nil {
		return c.fail(alertInternalError, err, "server handshake: read random bytes: %v", err)
	}
	s := hs.suite
	sh, err := marshalServerHello(random[:], ch.sessionID, s.id, keyShare{group, priv.PublicKey().Bytes()}, uint16(hs.index))
	if err != nil {
		return c.fail(alertInternalError, err, "server handshake: build ServerHello: %v", err)
	}
	transcript := slices.Concat(hs.transcript, ch.raw, sh)
	k := &schedule{s: s}
	if err := k.handshakeSecrets(hs.key.Secret, shared, s.hashOf(transcript)); err != nil {
		return c.fail(alertInternalError, err, "server handshake: derive handshake secrets: %v", err)
	}

	// The flight: ServerHello, change_cipher_spec after the first
	// handshake message when the client asked for the compatibility mode
	// (§D.4), then EncryptedExtensions and Finished under the handshake
	// key, in one write.
	if err := c.queue(recordHandshake, sh); err != nil {
		return err
	}
	if !retried && len(ch.sessionID) > 0 {
		if err := c.queue(recordChangeCipherSpec, []byte{1}); err != nil {
			return err
		}
	}
	c.out.mu.Lock()
	err = c.out.set(s, k.serverHS)
	c.out.mu.Unlock()
	if err != nil {
		return c.fail(alertInternalError, err, "server handshake: install handshake keys: %v", err)
	}
	ee := []byte{typeEncryptedExtensions, 0, 0, 2, 0, 0}
	transcript = append(transcript, ee...)
	verify, err := s.finishedMAC(k.serverHS, s.hashOf(transcript))
	if err != nil {
		return c.fail(alertInternalError, err, "server handshake: %v", err)
	}
	fin := append([]byte{typeFinished, 0, 0, byte(s.hashLen)}, verify...)
	transcript = append(transcript, fin...)
	if err := c.queue(recordHandshake, slices.Concat(ee, fin)); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return fmt.Errorf("tlspsk: server handshake: send ServerHello..Finished: %w", err)
	}
	if err := k.applicationSecrets(s.hashOf(transcript)); err != nil {
		return c.fail(alertInternalError, err, "server handshake: derive application secrets: %v", err)
	}
	c.out.mu.Lock()
	err = c.out.set(s, k.serverAP)
	c.out.mu.Unlock()
	if err == nil {
		c.in.mu.Lock()
		err = c.in.set(s, k.clientHS)
		if ch.earlyData {
			c.in.skipEarly = maxEarlySkip
		}
		c.in.mu.Unlock()
	}
	if err != nil {
		return c.fail(alertInternalError, err, "server handshake: install keys: %v", err)
	}

	msg, err := c.readHandshake("client Finished")
	if err != nil {
		return hs.explain(err)
	}
	if err := c.checkFinished(s, msg, k.clientHS, transcript, "server handshake", "client",
		fmt.Sprintf("its PSK for identity %q differs from the one Lookup returned", hs.name)); err != nil {
		return err
	}
	c.in.mu.Lock()
	err = c.in.set(s, k.clientAP)
	c.in.ccsOK = false
	c.in.mu.Unlock()
	if err != nil {
		return c.fail(alertInternalError, err, "server handshake: install keys: %v", err)
	}
	c.identity, c.suite = hs.name, s
	c.hsDone.Store(true)
	return nil
}

// readHello reads and parses a ClientHello.
func (hs *serverHS) readHello(what string) (*clientHello, error) {
	c := hs.c
	msg, err := c.readHandshake(what)
	if err != nil {
		return nil, hs.explain(err)
	}
	if msg[0] != typeClientHello {
		return nil, c.fail(alertUnexpectedMessage, nil, "server handshake: handshake message of type %d where the %s belongs", msg[0], what)
	}
	ch, err := parseClientHello(msg)
	if err != nil {
		return nil, c.failParse(err, "server handshake")
	}
	return ch, nil
}

// checkHello checks a ClientHello (§4.1.2, §4.2), picks the PSK and
// verifies its binder (§4.2.11.2). A second ClientHello must pick the same.
func (hs *serverHS) checkHello(ch *clientHello, second bool) error {
	c := hs.c
	switch {
	case !slices.Contains(ch.versions, versionTLS13):
		return c.fail(alertProtocolVersion, nil, "server handshake: the client does not offer TLS 1.3 (supported_versions)")
	case !ch.compressionIsNull:
		return c.fail(alertIllegalParameter, nil, "server handshake: ClientHello compression methods are not just null")
	case !ch.hasPSK:
		return c.fail(alertHandshakeFailure, nil, "server handshake: the client offered no PSK (no pre_shared_key extension); this server authenticates with PSKs only: give the host a TLS PSK")
	case !ch.hasPSKModes:
		return c.fail(alertMissingExtension, nil, "server handshake: pre_shared_key without psk_key_exchange_modes (RFC 8446 §4.2.9)")
	case !slices.Contains(ch.pskModes, pskModeDHEKE):
		return c.fail(alertHandshakeFailure, nil, "server handshake: the client allows only psk_ke; this server requires psk_dhe_ke (PSK with ECDHE)")
	}
	index, key := -1, Key{}
	var offered, wrongSuite []string
	for i, id := range ch.identities {
		name := string(id.identity)
		offered = append(offered, name)
		k, ok := hs.cfg.Lookup(name)
		if !ok {
			continue
		}
		if err := checkKey(k); err != nil {
			return c.fail(alertInternalError, nil, "server handshake: Config.Lookup(%q) returned a bad key: %v", name, err)
		}
		if !slices.Contains(ch.suites, k.Suite) {
			wrongSuite = append(wrongSuite, name)
			continue
		}
		index, key = i, k
		break
	}
	switch {
	case index < 0 && wrongSuite != nil:
		return c.fail(alertHandshakeFailure, nil, "server handshake: the key for PSK identity %s is for a cipher suite the client does not offer (it offers %04x)", quoteList(wrongSuite), ch.suites)
	case index < 0:
		return c.fail(alertUnknownPSKIdentity, ErrUnknownIdentity, "server handshake: the client offered PSK identity %s, unknown to Config.Lookup: add the host's PSK, or check its identity", quoteList(offered))
	case second && (offered[index] != hs.name || key.Suite != hs.suite.id):
		return c.fail(alertIllegalParameter, nil, "server handshake: the second ClientHello offers other PSKs than the first")
	}
	s := suiteByID(key.Suite)
	binder := ch.binders[index]
	want, err := s.binder(key.Secret, "ext binder", s.hashOf(hs.transcript, ch.raw[:ch.bindersAt]))
	if err != nil {
		return c.fail(alertInternalError, err, "server handshake: PSK binder for identity %q: %v", key.Identity, err)
	}
	if !hmac.Equal(binder, want) {
		return c.fail(alertDecryptError, ErrPSKMismatch, "server handshake: the binder for PSK identity %q does not verify: the client's PSK differs from the one Config.Lookup returned", offered[index])
	}
	hs.index, hs.key, hs.name, hs.suite = index, key, offered[index], s
	return nil
}

// pickShare returns the client's key share in the group this server
// prefers, if there is one.
func (hs *serverHS) pickShare(ch *clientHello) ([]byte, uint16) {
	for _, g := range hs.groups {
		for _, ks := range ch.shares {
			if ks.group == g {
				return ks.data, g
			}
		}
	}
	return nil, 0
}

// pickGroup returns the group this server prefers among the client's
// supported_groups, or 0.
func (hs *serverHS) pickGroup(ch *clientHello) uint16 {
	for _, g := range hs.groups {
		if slices.Contains(ch.groups, g) {
			return g
		}
	}
	return 0
}

// helloRetry sends a HelloRetryRequest for group (§4.1.4) and returns the
// second ClientHello, its binder verified.
func (hs *serverHS) helloRetry(ch *clientHello, group uint16) (*clientHello, error) {
	c := hs.c
	s := hs.suite
	hrr, err := marshalServerHello(helloRetryRandom, ch.sessionID, s.id, keyShare{group: group}, 0)
	if err != nil {
		return nil, c.fail(alertInternalError, err, "server handshake: build HelloRetryRequest: %v", err)
	}
	hs.transcript = append(messageHash(s, ch.raw), hrr...)
	if err := c.queue(recordHandshake, hrr); err != nil {
		return nil, err
	}
	if len(ch.sessionID) > 0 {
		if err := c.queue(recordChangeCipherSpec, []byte{1}); err != nil {
			return nil, err
		}
	}
	if err := c.flush(); err != nil {
		return nil, fmt.Errorf("tlspsk: server handshake: send HelloRetryRequest: %w", err)
	}
	ch2, err := hs.readHello("second ClientHello")
	if err != nil {
		return nil, err
	}
	if err := hs.checkHello(ch2, true); err != nil {
		return nil, err
	}
	return ch2, nil
}

// explain adds to an alert the client sent what it most likely means here.
func (hs *serverHS) explain(err error) error {
	var ae *AlertError
	if !errors.As(err, &ae) || ae.Sent {
		return err
	}
	switch alert(ae.Alert) {
	case alertDecryptError, alertBadRecordMAC:
		if hs.suite != nil {
			ae.Msg = fmt.Sprintf("server handshake: the client could not verify this server's flight: its PSK for identity %q differs from the one Config.Lookup returned", hs.name)
			ae.Err = ErrPSKMismatch
		}
	}
	return err
}
