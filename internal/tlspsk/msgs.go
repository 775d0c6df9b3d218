package tlspsk

import (
	"bytes"
	"errors"
	"fmt"
)

// Handshake message types (RFC 8446 §4).
const (
	typeClientHello         uint8 = 1
	typeServerHello         uint8 = 2
	typeNewSessionTicket    uint8 = 4
	typeEndOfEarlyData      uint8 = 5
	typeEncryptedExtensions uint8 = 8
	typeCertificate         uint8 = 11
	typeCertificateRequest  uint8 = 13
	typeCertificateVerify   uint8 = 15
	typeFinished            uint8 = 20
	typeKeyUpdate           uint8 = 24
	typeMessageHash         uint8 = 254
)

// Extension types (RFC 8446 §4.2).
const (
	extServerName          uint16 = 0
	extSupportedGroups     uint16 = 10
	extPreSharedKey        uint16 = 41
	extEarlyData           uint16 = 42
	extSupportedVersions   uint16 = 43
	extCookie              uint16 = 44
	extPSKKeyExchangeModes uint16 = 45
	extKeyShare            uint16 = 51
)

const (
	versionTLS12 uint16 = 0x0303 // legacy_version (§4.1.2)
	versionTLS13 uint16 = 0x0304 // supported_versions (§4.2.1)

	pskModeKE    uint8 = 0 // psk_ke (§4.2.9)
	pskModeDHEKE uint8 = 1 // psk_dhe_ke

	handshakeHeaderLen = 4        // msg_type, uint24 length (§4)
	maxHandshakeLen    = 64 << 10 // largest handshake message body accepted
	maxIdentityLen     = 0xffff - 6
	maxOfferLen        = 16 << 10 // identities and binders a client sends
)

// helloRetryRandom is ServerHello.random of a HelloRetryRequest: SHA-256 of
// "HelloRetryRequest" (RFC 8446 §4.1.3).
var helloRetryRandom = []byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}

// reader reads big-endian fields off a byte slice, checking the length
// before every read: each method returns false, consuming nothing, when the
// bytes are not there.
type reader []byte

func (r *reader) empty() bool { return len(*r) == 0 }

func (r *reader) u8(v *uint8) bool {
	if len(*r) < 1 {
		return false
	}
	*v = (*r)[0]
	*r = (*r)[1:]
	return true
}

func (r *reader) u16(v *uint16) bool {
	if len(*r) < 2 {
		return false
	}
	*v = uint16((*r)[0])<<8 | uint16((*r)[1])
	*r = (*r)[2:]
	return true
}

func (r *reader) u24(v *int) bool {
	if len(*r) < 3 {
		return false
	}
	*v = int((*r)[0])<<16 | int((*r)[1])<<8 | int((*r)[2])
	*r = (*r)[3:]
	return true
}

func (r *reader) u32(v *uint32) bool {
	if len(*r) < 4 {
		return false
	}
	*v = uint32((*r)[0])<<24 | uint32((*r)[1])<<16 | uint32((*r)[2])<<8 | uint32((*r)[3])
	*r = (*r)[4:]
	return true
}

func (r *reader) bytes(n int, v *[]byte) bool {
	if n < 0 || len(*r) < n {
		return false
	}
	*v = (*r)[:n:n]
	*r = (*r)[n:]
	return true
}

// vec8 and vec16 read an opaque vector with a 1- or 2-byte length.
func (r *reader) vec8(v *[]byte) bool {
	save := *r
	var n uint8
	if !r.u8(&n) || !r.bytes(int(n), v) {
		*r = save
		return false
	}
	return true
}

func (r *reader) vec16(v *[]byte) bool {
	save := *r
	var n uint16
	if !r.u16(&n) || !r.bytes(int(n), v) {
		*r = save
		return false
	}
	return true
}

// builder appends big-endian fields; lengths are patched in when a vector
// closes, and one that overflows its length field marks the builder bad.
type builder struct {
	b   []byte
	bad bool
}

func (b *builder) u8(v uint8)       { b.b = append(b.b, v) }
func (b *builder) u16(v uint16)     { b.b = append(b.b, byte(v>>8), byte(v)) }
func (b *builder) u32(v uint32)     { b.b = append(b.b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v)) }
func (b *builder) raw(p []byte)     { b.b = append(b.b, p...) }
func (b *builder) vec8(f func())    { b.vec(1, f) }
func (b *builder) vec16(f func())   { b.vec(2, f) }
func (b *builder) vec24(f func())   { b.vec(3, f) }
func (b *builder) bytes8(p []byte)  { b.vec8(func() { b.raw(p) }) }
func (b *builder) bytes16(p []byte) { b.vec16(func() { b.raw(p) }) }

func (b *builder) vec(size int, f func()) {
	at := len(b.b)
	b.b = append(b.b, make([]byte, size)...)
	f()
	n := len(b.b) - at - size
	if n >= 1<<(8*size) {
		b.bad = true
		return
	}
	for i := range size {
		b.b[at+i] = byte(n >> (8 * (size - 1 - i)))
	}
}

// ext appends one extension (§4.2: type, opaque extension_data<0..2^16-1>).
func (b *builder) ext(typ uint16, f func()) {
	b.u16(typ)
	b.vec16(f)
}

// handshakeMsg appends a handshake message (§4: msg_type, uint24 length,
// body).
func (b *builder) handshakeMsg(typ uint8, body func()) {
	b.u8(typ)
	b.vec24(body)
}

func (b *builder) done() ([]byte, error) {
	if b.bad {
		return nil, errors.New("a length overflows its field")
	}
	return b.b, nil
}

// keyShare is a KeyShareEntry (§4.2.8).
type keyShare struct {
	group uint16
	data  []byte
}

// pskIdentity is a PskIdentity (§4.2.11).
type pskIdentity struct {
	identity []byte
	age      uint32
}

// clientHello is a parsed ClientHello (§4.1.2); its slices point into raw.
type clientHello struct {
	raw               []byte // the whole message, header included
	random            []byte
	sessionID         []byte
	suites            []uint16
	compression       []byte
	versions          []uint16
	hasVersions       bool
	groups            []uint16
	hasGroups         bool
	shares            []keyShare
	hasShares         bool
	pskModes          []byte
	hasPSKModes       bool
	identities        []pskIdentity
	binders           [][]byte
	bindersAt         int // offset in raw of the binders list: the binder transcript stops there
	hasPSK            bool
	earlyData         bool
	cookie            []byte
	legacyVersion     uint16
	compressionIsNull bool
}

// parseError is a decoding failure with the alert it calls for.
type parseError struct {
	alert alert
	msg   string
}

func (e *parseError) Error() string { return e.msg }

func decodeErr(format string, args ...any) error {
	return &parseError{alertDecodeError, fmt.Sprintf(format, args...)}
}

func illegalErr(format string, args ...any) error {
	return &parseError{alertIllegalParameter, fmt.Sprintf(format, args...)}
}

// parseClientHello parses msg, a whole ClientHello message (header
// included):
//
//	struct {
//	    ProtocolVersion legacy_version = 0x0303;
//	    Random random;                              // 32 bytes
//	    opaque legacy_session_id<0..32>;
//	    CipherSuite cipher_suites<2..2^16-2>;
//	    opaque legacy_compression_methods<1..2^8-1>;
//	    Extension extensions<8..2^16-1>;
//	} ClientHello;
func parseClientHello(msg []byte) (*clientHello, error) {
	ch := &clientHello{raw: msg}
	r := reader(msg)
	var typ uint8
	var n int
	if !r.u8(&typ) || !r.u24(&n) || typ != typeClientHello || n != len(r) {
		return nil, decodeErr("ClientHello: bad message header")
	}
	var suites, exts []byte
	if !r.u16(&ch.legacyVersion) || !r.bytes(32, &ch.random) || !r.vec8(&ch.sessionID) ||
		!r.vec16(&suites) || !r.vec8(&ch.compression) {
		return nil, decodeErr("ClientHello: truncated before its extensions")
	}
	if len(ch.sessionID) > 32 {
		return nil, decodeErr("ClientHello: legacy_session_id of %d bytes, over 32", len(ch.sessionID))
	}
	if len(suites) == 0 || len(suites)%2 != 0 {
		return nil, decodeErr("ClientHello: cipher_suites of %d bytes", len(suites))
	}
	for s := reader(suites); !s.empty(); {
		var v uint16
		s.u16(&v)
		ch.suites = append(ch.suites, v)
	}
	ch.compressionIsNull = len(ch.compression) == 1 && ch.compression[0] == 0
	if r.empty() {
		return ch, nil // no extensions: the caller finds supported_versions missing
	}
	if !r.vec16(&exts) || !r.empty() {
		return nil, decodeErr("ClientHello: extensions do not fill the message")
	}
	extsAt := len(msg) - len(exts)
	seen := map[uint16]bool{}
	for e := reader(exts); !e.empty(); {
		var et uint16
		var data []byte
		if !e.u16(&et) || !e.vec16(&data) {
			return nil, decodeErr("ClientHello: truncated extension")
		}
		if seen[et] {
			return nil, illegalErr("ClientHello: extension %d twice", et)
		}
		seen[et] = true
		if ch.hasPSK {
			// §4.2.11: pre_shared_key MUST be the last extension.
			return nil, illegalErr("ClientHello: pre_shared_key is not the last extension")
		}
		d := reader(data)
		switch et {
		case extSupportedVersions: // §4.2.1: ProtocolVersion versions<2..254>
			var list []byte
			if !d.vec8(&list) || !d.empty() || len(list) < 2 || len(list)%2 != 0 {
				return nil, decodeErr("ClientHello: malformed supported_versions")
			}
			ch.hasVersions = true
			for l := reader(list); !l.empty(); {
				var v uint16
				l.u16(&v)
				ch.versions = append(ch.versions, v)
			}
		case extSupportedGroups: // §4.2.7: NamedGroup named_group_list<2..2^16-1>
			var list []byte
			if !d.vec16(&list) || !d.empty() || len(list) < 2 || len(list)%2 != 0 {
				return nil, decodeErr("ClientHello: malformed supported_groups")
			}
			ch.hasGroups = true
			for l := reader(list); !l.empty(); {
				var v uint16
				l.u16(&v)
				ch.groups = append(ch.groups, v)
			}
		case extKeyShare: // §4.2.8: KeyShareEntry client_shares<0..2^16-1>
			var list []byte
			if !d.vec16(&list) || !d.empty() {
				return nil, decodeErr("ClientHello: malformed key_share")
			}
			ch.hasShares = true
			for l := reader(list); !l.empty(); {
				var ks keyShare
				if !l.u16(&ks.group) || !l.vec16(&ks.data) || len(ks.data) == 0 {
					return nil, decodeErr("ClientHello: malformed KeyShareEntry")
				}
				for _, o := range ch.shares {
					if o.group == ks.group {
						return nil, illegalErr("ClientHello: two key shares for group %#04x", ks.group)
					}
				}
				ch.shares = append(ch.shares, ks)
			}
		case extPSKKeyExchangeModes: // §4.2.9: PskKeyExchangeMode ke_modes<1..255>
			if !d.vec8(&ch.pskModes) || !d.empty() || len(ch.pskModes) == 0 {
				return nil, decodeErr("ClientHello: malformed psk_key_exchange_modes")
			}
			ch.hasPSKModes = true
		case extCookie: // §4.2.2: opaque cookie<1..2^16-1>
			if !d.vec16(&ch.cookie) || !d.empty() || len(ch.cookie) == 0 {
				return nil, decodeErr("ClientHello: malformed cookie")
			}
		case extEarlyData:
			ch.earlyData = true
		case extPreSharedKey:
			// §4.2.11:
			//   struct { opaque identity<1..2^16-1>; uint32 obfuscated_ticket_age; } PskIdentity;
			//   opaque PskBinderEntry<32..255>;
			//   struct { PskIdentity identities<7..2^16-1>; PskBinderEntry binders<33..2^16-1>; } OfferedPsks;
			var ids, binders []byte
			if !d.vec16(&ids) {
				return nil, decodeErr("ClientHello: malformed pre_shared_key identities")
			}
			ch.bindersAt = extsAt + (len(exts) - len(e)) - len(d)
			if !d.vec16(&binders) || !d.empty() {
				return nil, decodeErr("ClientHello: malformed pre_shared_key binders")
			}
			for l := reader(ids); !l.empty(); {
				var id pskIdentity
				if !l.vec16(&id.identity) || !l.u32(&id.age) || len(id.identity) == 0 {
					return nil, decodeErr("ClientHello: malformed PskIdentity")
				}
				ch.identities = append(ch.identities, id)
			}
			for l := reader(binders); !l.empty(); {
				var b []byte
				if !l.vec8(&b) || len(b) < 32 {
					return nil, decodeErr("ClientHello: malformed PskBinderEntry")
				}
				ch.binders = append(ch.binders, b)
			}
			if len(ch.identities) == 0 {
				return nil, decodeErr("ClientHello: pre_shared_key offers no identity")
			}
			if len(ch.binders) != len(ch.identities) {
				return nil, illegalErr("ClientHello: %d PSK identities but %d binders", len(ch.identities), len(ch.binders))
			}
			ch.hasPSK = true
		}
	}
	return ch, nil
}

// serverHello is a parsed ServerHello or HelloRetryRequest (§4.1.3,
// §4.1.4); its slices point into raw.
type serverHello struct {
	raw            []byte
	legacyVersion  uint16
	random         []byte
	sessionID      []byte
	suite          uint16
	compression    uint8
	version        uint16 // supported_versions.selected_version; 0 if absent
	share          keyShare
	hasShare       bool
	selectedGroup  uint16 // HelloRetryRequest key_share; 0 if absent
	selectedID     uint16
	hasPSK         bool
	cookie         []byte
	isHRR          bool
	unexpectedExts []uint16
}

// parseServerHello parses msg, a whole ServerHello message:
//
//	struct {
//	    ProtocolVersion legacy_version = 0x0303;
//	    Random random;
//	    opaque legacy_session_id_echo<0..32>;
//	    CipherSuite cipher_suite;
//	    uint8 legacy_compression_method = 0;
//	    Extension extensions<6..2^16-1>;
//	} ServerHello;
func parseServerHello(msg []byte) (*serverHello, error) {
	sh := &serverHello{raw: msg}
	r := reader(msg)
	var typ uint8
	var n int
	if !r.u8(&typ) || !r.u24(&n) || typ != typeServerHello || n != len(r) {
		return nil, decodeErr("ServerHello: bad message header")
	}
	var exts []byte
	if !r.u16(&sh.legacyVersion) || !r.bytes(32, &sh.random) || !r.vec8(&sh.sessionID) ||
		!r.u16(&sh.suite) || !r.u8(&sh.compression) {
		return nil, decodeErr("ServerHello: truncated before its extensions")
	}
	sh.isHRR = bytes.Equal(sh.random, helloRetryRandom)
	if r.empty() {
		return sh, nil // no supported_versions: TLS 1.2 or older; the caller refuses it
	}
	if !r.vec16(&exts) || !r.empty() {
		return nil, decodeErr("ServerHello: extensions do not fill the message")
	}
	seen := map[uint16]bool{}
	for e := reader(exts); !e.empty(); {
		var et uint16
		var data []byte
		if !e.u16(&et) || !e.vec16(&data) {
			return nil, decodeErr("ServerHello: truncated extension")
		}
		if seen[et] {
			return nil, illegalErr("ServerHello: extension %d twice", et)
		}
		seen[et] = true
		d := reader(data)
		switch {
		case et == extSupportedVersions:
			if !d.u16(&sh.version) || !d.empty() {
				return nil, decodeErr("ServerHello: malformed supported_versions")
			}
		case et == extKeyShare && sh.isHRR:
			if !d.u16(&sh.selectedGroup) || !d.empty() {
				return nil, decodeErr("HelloRetryRequest: malformed key_share")
			}
		case et == extKeyShare:
			if !d.u16(&sh.share.group) || !d.vec16(&sh.share.data) || !d.empty() || len(sh.share.data) == 0 {
				return nil, decodeErr("ServerHello: malformed key_share")
			}
			sh.hasShare = true
		case et == extPreSharedKey && !sh.isHRR:
			if !d.u16(&sh.selectedID) || !d.empty() {
				return nil, decodeErr("ServerHello: malformed pre_shared_key")
			}
			sh.hasPSK = true
		case et == extCookie && sh.isHRR:
			if !d.vec16(&sh.cookie) || !d.empty() || len(sh.cookie) == 0 {
				return nil, decodeErr("HelloRetryRequest: malformed cookie")
			}
		default:
			sh.unexpectedExts = append(sh.unexpectedExts, et)
		}
	}
	return sh, nil
}

// marshalServerHello builds a ServerHello, or a HelloRetryRequest when
// random is helloRetryRandom (then share.data is empty and share.group is
// the selected group, and selectedID is ignored).
func marshalServerHello(random, sessionID []byte, suite uint16, share keyShare, selectedID uint16) ([]byte, error) {
	hrr := bytes.Equal(random, helloRetryRandom)
	var b builder
	b.handshakeMsg(typeServerHello, func() {
		b.u16(versionTLS12)
		b.raw(random)
		b.bytes8(sessionID)
		b.u16(suite)
		b.u8(0)
		b.vec16(func() {
			b.ext(extSupportedVersions, func() { b.u16(versionTLS13) })
			b.ext(extKeyShare, func() {
				b.u16(share.group)
				if !hrr {
					b.bytes16(share.data)
				}
			})
			if !hrr {
				b.ext(extPreSharedKey, func() { b.u16(selectedID) })
			}
		})
	})
	return b.done()
}

// parseEncryptedExtensions checks an EncryptedExtensions message (§4.3.1:
// Extension extensions<0..2^16-1>). It refuses extensions that may not
// appear there (§4.2's table) and accepts the others without acting on
// them: this client asks for none.
func parseEncryptedExtensions(msg []byte) error {
	r := reader(msg[handshakeHeaderLen:])
	var exts []byte
	if !r.vec16(&exts) || !r.empty() {
		return decodeErr("EncryptedExtensions: extensions do not fill the message")
	}
	for e := reader(exts); !e.empty(); {
		var et uint16
		var data []byte
		if !e.u16(&et) || !e.vec16(&data) {
			return decodeErr("EncryptedExtensions: truncated extension")
		}
		switch et {
		case extPreSharedKey, extSupportedVersions, extKeyShare, extCookie, extPSKKeyExchangeModes:
			return illegalErr("EncryptedExtensions: extension %d does not belong there (RFC 8446 §4.2)", et)
		case extEarlyData:
			return &parseError{alertUnsupportedExtension, "EncryptedExtensions: early_data, which this client did not offer"}
		}
	}
	return nil
}

// parseNewSessionTicket checks a NewSessionTicket (§4.6.1); the ticket is
// then dropped, as this package never resumes.
func parseNewSessionTicket(msg []byte) error {
	r := reader(msg[handshakeHeaderLen:])
	var lifetime, ageAdd uint32
	var nonce, ticket, exts []byte
	if !r.u32(&lifetime) || !r.u32(&ageAdd) || !r.vec8(&nonce) || !r.vec16(&ticket) ||
		!r.vec16(&exts) || !r.empty() || len(ticket) == 0 {
		return decodeErr("malformed NewSessionTicket")
	}
	return nil
}
