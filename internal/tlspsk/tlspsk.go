// Package tlspsk is a TLS 1.3 (RFC 8446) client and server that
// authenticate with an external pre-shared key only, as NVMe/TCP secures its
// connections (NVMe/TCP Transport 1.0c §3.6; the Linux host does this
// handshake with GnuTLS through tlshd). Go's crypto/tls has no external PSKs
// (golang/go#6379), hence this package.
//
// What it does: the psk_dhe_ke key exchange mode (§4.2.9) over X25519 or
// secp256r1, the cipher suites TLS_AES_128_GCM_SHA256 and
// TLS_AES_256_GCM_SHA384, HelloRetryRequest (§4.1.4) both ways, the
// middlebox compatibility mode (§D.4), KeyUpdate (§4.6.3) both ways and on
// its own after 2^24 records (§5.5), close_notify. What it does not: no
// certificates, no session tickets issued (those received are ignored), no
// 0-RTT (a server skips early data it declined, §4.2.10), no post-handshake
// authentication, no other TLS version.
//
// One flight of the handshake (PSK only, no certificates, §2):
//
//	Client                                      Server
//	ClientHello
//	  + supported_versions [0x0304]
//	  + supported_groups, key_share
//	  + psk_key_exchange_modes [psk_dhe_ke]
//	  + pre_shared_key (last: identities, binders)
//	                                  -------->
//	                                            ServerHello
//	                                              + supported_versions, key_share
//	                                              + pre_shared_key (selected_identity)
//	                                            [change_cipher_spec]
//	                                            {EncryptedExtensions}
//	                                  <-------- {Finished}
//	[change_cipher_spec]
//	{Finished}                        -------->
//	[Application Data]                <-------> [Application Data]
//
// A record (§5.1, §5.2) on the wire:
//
//	+------+-----------+--------+--------------------------------------+
//	| type | 0x03 0x03 | length | fragment (length bytes)              |
//	+------+-----------+--------+--------------------------------------+
//	  1       2           2       protected: AEAD(content || type || zeros)
package tlspsk

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Cipher suites, RFC 8446 §B.4.
const (
	TLS_AES_128_GCM_SHA256 uint16 = 0x1301
	TLS_AES_256_GCM_SHA384 uint16 = 0x1302
)

// Key is one external PSK (RFC 8446 §4.2.11).
type Key struct {
	// Identity is sent in the pre_shared_key extension: 1 to 65535 bytes.
	Identity string
	// Secret is the PSK itself.
	Secret []byte
	// Suite is the cipher suite the key is for; its hash is the PSK's hash
	// (RFC 8446 §4.2.11): 32-byte NVMe keys go with TLS_AES_128_GCM_SHA256,
	// 48-byte ones with TLS_AES_256_GCM_SHA384.
	Suite uint16
}

// Config configures Client and Server.
type Config struct {
	// Keys are the keys a client offers, in order (usually one).
	Keys []Key
	// Lookup finds a server's key for an identity a client offers; it
	// returns false for an identity it does not know. The server takes the
	// first offered identity whose key is for a suite the client offers;
	// the returned Key's Identity is not used.
	Lookup func(identity string) (Key, bool)
	// Rand is the source of randomness (hello random, session id, ECDHE
	// private keys); nil means crypto/rand.
	Rand io.Reader
	// HandshakeTimeout bounds the whole handshake, as a deadline on the
	// connection that is cleared afterwards; 0 means 10 s.
	HandshakeTimeout time.Duration

	// Test knobs. shareGroup is the group of a client's first key share
	// (0: X25519). serverGroups are the groups a server accepts, in order
	// of preference (nil: X25519, secp256r1).
	shareGroup   uint16
	serverGroups []uint16
}

// ErrPSKMismatch says the two sides hold different secrets for the PSK
// identity they agreed on: a binder or a Finished did not verify.
var ErrPSKMismatch = errors.New("tlspsk: the peer's PSK differs from ours")

// ErrUnknownIdentity says the server knows none of the PSK identities the
// client offered.
var ErrUnknownIdentity = errors.New("tlspsk: PSK identity unknown to the server")

// AlertError reports a TLS alert (RFC 8446 §6) that ended the connection or
// its handshake: one this side sent before failing (Sent), or one the peer
// sent.
type AlertError struct {
	// Alert is the AlertDescription, such as 51 (decrypt_error).
	Alert uint8
	// Sent says this side sent the alert; otherwise the peer did.
	Sent bool
	// Msg says what failed and, where it can, what to do.
	Msg string
	// Err is the cause, if any: ErrPSKMismatch, ErrUnknownIdentity, or
	// nil.
	Err error
}

func (e *AlertError) Error() string {
	who := "peer sent"
	if e.Sent {
		who = "sent"
	}
	return fmt.Sprintf("tlspsk: %s (%s alert %s)", e.Msg, who, alertName(e.Alert))
}

func (e *AlertError) Unwrap() error { return e.Err }

// defaultHandshakeTimeout is Config.HandshakeTimeout's zero value.
const defaultHandshakeTimeout = 10 * time.Second

// Client performs the client handshake on c and returns the protected
// connection. On error c is left open; the caller closes it.
func Client(c net.Conn, cfg *Config) (*Conn, error) {
	if err := cfg.checkClient(); err != nil {
		return nil, err
	}
	tc := newConn(c, true)
	if err := tc.handshake(cfg, tc.clientHandshake); err != nil {
		return nil, err
	}
	return tc, nil
}

// Server performs the server handshake on c and returns the protected
// connection. On error c is left open; the caller closes it.
func Server(c net.Conn, cfg *Config) (*Conn, error) {
	if cfg == nil || cfg.Lookup == nil {
		return nil, errors.New("tlspsk: server: Config.Lookup is nil: a server needs a function that finds the key for a PSK identity")
	}
	tc := newConn(c, false)
	if err := tc.handshake(cfg, tc.serverHandshake); err != nil {
		return nil, err
	}
	return tc, nil
}

// handshake runs run under the handshake deadline.
func (c *Conn) handshake(cfg *Config, run func(*Config) error) error {
	timeout := cfg.HandshakeTimeout
	if timeout <= 0 {
		timeout = defaultHandshakeTimeout
	}
	if err := c.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("tlspsk: %s: set handshake deadline: %w", c.side(), err)
	}
	err := run(cfg)
	if err != nil && isTimeout(err) {
		err = fmt.Errorf("%w (the handshake took longer than HandshakeTimeout %v: is the peer speaking TLS 1.3 with a PSK?)", err, timeout)
	}
	if derr := c.conn.SetDeadline(time.Time{}); derr != nil && err == nil {
		err = fmt.Errorf("tlspsk: %s: clear handshake deadline: %w", c.side(), derr)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkKey reports what is wrong with k, if anything.
func checkKey(k Key) error {
	if len(k.Identity) == 0 || len(k.Identity) > maxIdentityLen {
		return fmt.Errorf("identity is %d bytes; want 1 to %d", len(k.Identity), maxIdentityLen)
	}
	if len(k.Secret) == 0 {
		return fmt.Errorf("identity %q has an empty Secret", k.Identity)
	}
	if suiteByID(k.Suite) == nil {
		return fmt.Errorf("identity %q: Suite %#04x is not TLS_AES_128_GCM_SHA256 (0x1301) or TLS_AES_256_GCM_SHA384 (0x1302)", k.Identity, k.Suite)
	}
	return nil
}

func (cfg *Config) checkClient() error {
	if cfg == nil || len(cfg.Keys) == 0 {
		return errors.New("tlspsk: client: Config.Keys is empty: a client needs at least one PSK to offer")
	}
	total := 0
	for i, k := range cfg.Keys {
		if err := checkKey(k); err != nil {
			return fmt.Errorf("tlspsk: client: Config.Keys[%d]: %w", i, err)
		}
		total += 2 + len(k.Identity) + 4 + 1 + suiteByID(k.Suite).hashLen
	}
	if total > maxOfferLen {
		return fmt.Errorf("tlspsk: client: Config.Keys: %d identities take %d bytes in the ClientHello, over the %d this client sends: offer fewer or shorter identities", len(cfg.Keys), total, maxOfferLen)
	}
	switch cfg.shareGroup {
	case 0, groupX25519, groupP256:
	default:
		return fmt.Errorf("tlspsk: client: key share group %#04x not supported", cfg.shareGroup)
	}
	return nil
}
