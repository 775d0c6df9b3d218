package tlspsk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
)

// suiteInfo is what a cipher suite fixes (RFC 8446 §B.4): the AEAD
// (AES-GCM with a keyLen-byte key, 12-byte nonce and 16-byte tag) and the
// hash of the key schedule.
type suiteInfo struct {
	id      uint16
	name    string
	hash    func() hash.Hash
	hashLen int
	keyLen  int
}

var (
	suiteAES128 = &suiteInfo{TLS_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256", sha256.New, sha256.Size, 16}
	suiteAES256 = &suiteInfo{TLS_AES_256_GCM_SHA384, "TLS_AES_256_GCM_SHA384", sha512.New384, sha512.Size384, 32}
)

func suiteByID(id uint16) *suiteInfo {
	switch id {
	case TLS_AES_128_GCM_SHA256:
		return suiteAES128
	case TLS_AES_256_GCM_SHA384:
		return suiteAES256
	}
	return nil
}

// Sizes of the AEAD (RFC 8446 §5.3, RFC 5116 AES-GCM).
const (
	ivLen  = 12
	tagLen = 16
)

// extract is HKDF-Extract(salt, ikm) (RFC 5869 §2.2); a nil ikm or salt is
// hashLen zero bytes, as RFC 8446 §7.1 writes "0".
func (s *suiteInfo) extract(ikm, salt []byte) ([]byte, error) {
	if ikm == nil {
		ikm = make([]byte, s.hashLen)
	}
	if salt == nil {
		salt = make([]byte, s.hashLen)
	}
	return hkdf.Extract(s.hash, ikm, salt)
}

// expandLabel is HKDF-Expand-Label (RFC 8446 §7.1):
//
//	struct {
//	    uint16 length = Length;
//	    opaque label<7..255> = "tls13 " + Label;
//	    opaque context<0..255> = Context;
//	} HkdfLabel;
func (s *suiteInfo) expandLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	const prefix = "tls13 "
	if len(prefix)+len(label) > 255 || len(context) > 255 {
		return nil, fmt.Errorf("HKDF-Expand-Label %q: label or context over 255 bytes", label)
	}
	info := make([]byte, 0, 4+len(prefix)+len(label)+len(context))
	info = append(info, byte(length>>8), byte(length), byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, byte(len(context)))
	info = append(info, context...)
	return hkdf.Expand(s.hash, secret, string(info), length)
}

// deriveSecret is Derive-Secret(secret, label, messages) (RFC 8446 §7.1),
// given transcriptHash = Transcript-Hash(messages).
func (s *suiteInfo) deriveSecret(secret []byte, label string, transcriptHash []byte) ([]byte, error) {
	return s.expandLabel(secret, label, transcriptHash, s.hashLen)
}

// hashOf is Transcript-Hash over the concatenation of parts (RFC 8446
// §4.4.1).
func (s *suiteInfo) hashOf(parts ...[]byte) []byte {
	h := s.hash()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// finishedMAC is the verify_data of a Finished message or a PSK binder
// (RFC 8446 §4.4.4, §4.2.11.2): HMAC(finished_key, transcriptHash) with
// finished_key = HKDF-Expand-Label(baseKey, "finished", "", Hash.length).
func (s *suiteInfo) finishedMAC(baseKey, transcriptHash []byte) ([]byte, error) {
	fk, err := s.expandLabel(baseKey, "finished", nil, s.hashLen)
	if err != nil {
		return nil, err
	}
	m := hmac.New(s.hash, fk)
	m.Write(transcriptHash)
	return m.Sum(nil), nil
}

// binder computes a PSK binder (RFC 8446 §4.2.11.2, §7.1): the Finished MAC
// keyed by binder_key = Derive-Secret(Extract(0, psk), label, "") over
// transcriptHash, the hash of the transcript up to the binders list. label
// is "ext binder" for external PSKs ("res binder" for resumption ones).
func (s *suiteInfo) binder(psk []byte, label string, transcriptHash []byte) ([]byte, error) {
	early, err := s.extract(psk, nil)
	if err != nil {
		return nil, err
	}
	bk, err := s.deriveSecret(early, label, s.hashOf())
	if err != nil {
		return nil, err
	}
	return s.finishedMAC(bk, transcriptHash)
}

// schedule holds the secrets of one handshake (RFC 8446 §7.1):
//
//	0 -> Extract(PSK) = Early Secret -> Derive-Secret(., "derived", "")
//	  -> Extract(ECDHE) = Handshake Secret -> c/s hs traffic
//	  -> Derive-Secret(., "derived", "") -> Extract(0) = Master Secret
//	  -> c/s ap traffic
type schedule struct {
	s                  *suiteInfo
	handshakeSecret    []byte
	clientHS, serverHS []byte // handshake traffic secrets
	clientAP, serverAP []byte // application traffic secrets
}

// handshakeSecrets derives the handshake traffic secrets from the PSK, the
// ECDHE shared secret and the hash of ClientHello..ServerHello.
func (k *schedule) handshakeSecrets(psk, shared, helloHash []byte) error {
	s := k.s
	early, err := s.extract(psk, nil)
	if err != nil {
		return err
	}
	derived, err := s.deriveSecret(early, "derived", s.hashOf())
	if err != nil {
		return err
	}
	if k.handshakeSecret, err = s.extract(shared, derived); err != nil {
		return err
	}
	if k.clientHS, err = s.deriveSecret(k.handshakeSecret, "c hs traffic", helloHash); err != nil {
		return err
	}
	k.serverHS, err = s.deriveSecret(k.handshakeSecret, "s hs traffic", helloHash)
	return err
}

// applicationSecrets derives the application traffic secrets from the hash
// of ClientHello..server Finished.
func (k *schedule) applicationSecrets(finishedHash []byte) error {
	s := k.s
	derived, err := s.deriveSecret(k.handshakeSecret, "derived", s.hashOf())
	if err != nil {
		return err
	}
	master, err := s.extract(nil, derived)
	if err != nil {
		return err
	}
	if k.clientAP, err = s.deriveSecret(master, "c ap traffic", finishedHash); err != nil {
		return err
	}
	k.serverAP, err = s.deriveSecret(master, "s ap traffic", finishedHash)
	return err
}

// trafficKeys derives a traffic secret's AEAD (RFC 8446 §7.3):
// key = Expand-Label(secret, "key", "", key_length),
// iv = Expand-Label(secret, "iv", "", iv_length).
func (s *suiteInfo) trafficKeys(secret []byte) (cipher.AEAD, [ivLen]byte, error) {
	var iv [ivLen]byte
	key, err := s.expandLabel(secret, "key", nil, s.keyLen)
	if err != nil {
		return nil, iv, err
	}
	ivb, err := s.expandLabel(secret, "iv", nil, ivLen)
	if err != nil {
		return nil, iv, err
	}
	copy(iv[:], ivb)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, iv, err
	}
	aead, err := cipher.NewGCM(block)
	return aead, iv, err
}

// nextSecret is application_traffic_secret_N+1 (RFC 8446 §7.2).
func (s *suiteInfo) nextSecret(secret []byte) ([]byte, error) {
	return s.expandLabel(secret, "traffic upd", nil, s.hashLen)
}

// Named groups (RFC 8446 §4.2.7).
const (
	groupP256   uint16 = 0x0017 // secp256r1
	groupX25519 uint16 = 0x001d
)

func curveOf(group uint16) ecdh.Curve {
	switch group {
	case groupX25519:
		return ecdh.X25519()
	case groupP256:
		return ecdh.P256()
	}
	return nil
}

// generateKey makes an ECDHE private key for group from rand's bytes (so
// that a test's Config.Rand decides it), drawing again for the rare
// secp256r1 scalar out of range.
func generateKey(group uint16, rand io.Reader) (*ecdh.PrivateKey, error) {
	curve := curveOf(group)
	if curve == nil {
		return nil, fmt.Errorf("group %#04x not supported", group)
	}
	var b [32]byte
	defer clear(b[:])
	for range 16 {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return nil, fmt.Errorf("read random bytes for an ECDHE key: %w", err)
		}
		if k, err := curve.NewPrivateKey(b[:]); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("no valid ECDHE key from 16 draws of Config.Rand: is it random?")
}
