// Package dhchap is NVMe's key material and the cryptography of in-band
// authentication, DH-HMAC-CHAP (NVMe Base 2.0 §8.13.5, TP 8006): secrets,
// key transformation, FFDHE, and the two ends' state machines
// (exchange.go); and the TLS PSKs of NVMe/TCP (psk.go). Everything is
// computed byte for byte as the Linux kernel and nvme-cli compute it (drivers/nvme/common/auth.c, host/auth.c,
// target/auth.c), so that flashpath authenticates to and is authenticated
// by the Linux host and target. The wire messages are in nvmeof (auth.go);
// the host's and the controller's state machines build on these
// primitives.
//
// One transaction, with hash H and DH group g negotiated (§8.13.5):
//
//	controller                               host
//	C1, S1, g^y  ─── Challenge ────────────▶  Ca = Augment(H, (g^y)^x, C1) when g is not null
//	                                          R1 = HostResponse(H, Kh, Ca, S1, ...)
//	             ◀── Reply: R1, g^x, C2, S2 ─
//	R2 = ControllerResponse(H, Kc, Augment(H, (g^x)^y, C2), S2, ...)
//	             ─── Success1: R2 ─────────▶  check R2
//
// Kh is the host secret transformed with the host NQN and Kc the
// controller secret transformed with the subsystem NQN (Secret.Transform).
//
// # Side channels
//
// math/big's Exp is not constant-time, so the timing of GenerateKey and
// Shared depends on the private exponent. That is acceptable here because
// the exponent is ephemeral: a DHKey is made for one transaction, used for
// one Shared, and dropped, so an observer gets two timing samples per
// exponent, not the many that a timing attack needs. Do not keep a DHKey
// across transactions. The exponent is never part of any String or fmt
// output.
//
// Shared checks that the peer's value lies in 1 < y < p-1 but not that it
// is in the prime-order subgroup (y^q = 1; the kernel checks either only
// in FIPS mode, crypto/dh.c dh_is_pubkey_valid): that check costs a
// full-size exponentiation, and a value outside the subgroup can reveal at
// most the low bit of an exponent that is thrown away afterwards.
package dhchap

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"
)

// Hash is an NVMe DH-HMAC-CHAP hash function identifier (NVMe Base 2.0
// §8.13.5; the kernel's NVME_AUTH_HASH_*).
type Hash uint8

// Hash function identifiers.
const (
	SHA256 Hash = 1
	SHA384 Hash = 2
	SHA512 Hash = 3
)

// Size is the digest length in bytes, which is also the length of a
// challenge and of a response; 0 when h is not valid.
func (h Hash) Size() int {
	switch h {
	case SHA256:
		return sha256.Size
	case SHA384:
		return sha512.Size384
	case SHA512:
		return sha512.Size
	}
	return 0
}

// Valid reports whether h is SHA256, SHA384 or SHA512.
func (h Hash) Valid() bool { return h.Size() != 0 }

// String returns "sha256", "sha384" or "sha512", or "hash(N)" for an
// identifier this package does not know.
func (h Hash) String() string {
	switch h {
	case SHA256:
		return "sha256"
	case SHA384:
		return "sha384"
	case SHA512:
		return "sha512"
	}
	return fmt.Sprintf("hash(%d)", uint8(h))
}

// New returns a new hash.Hash computing h; nil when h is not valid.
func (h Hash) New() hash.Hash {
	switch h {
	case SHA256:
		return sha256.New()
	case SHA384:
		return sha512.New384()
	case SHA512:
		return sha512.New()
	}
	return nil
}

// ParseHash parses a hash name, case-insensitively: "sha256", "sha-256"
// (as in "SHA-256") or "hmac(sha256)", the spelling of nvmet's configfs
// attribute dhchap_hash; likewise for SHA-384 and SHA-512.
func ParseHash(s string) (Hash, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	if in, ok := strings.CutPrefix(n, "hmac("); ok {
		if in, ok = strings.CutSuffix(in, ")"); ok {
			n = in
		}
	}
	n = strings.Replace(n, "sha-", "sha", 1)
	for h := SHA256; h <= SHA512; h++ {
		if n == h.String() {
			return h, nil
		}
	}
	return 0, fmt.Errorf("unknown DH-HMAC-CHAP hash %q: want sha256, sha384 or sha512 (also written SHA-256 or hmac(sha256))", s)
}

// hmacOf returns HMAC-h(key, parts...), or nil when h is not valid.
func hmacOf(h Hash, key []byte, parts ...[]byte) []byte {
	if !h.Valid() {
		return nil
	}
	m := hmac.New(h.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// Augment returns the augmented challenge of a transaction whose DH group
// is not null (NVMe Base 2.0 §8.13.5; the kernel's
// nvme_auth_augmented_challenge): HMAC-h(key = h(sessionKey), challenge),
// where sessionKey is DHKey.Shared's result. It returns nil when h is not
// valid.
func Augment(h Hash, sessionKey, challenge []byte) []byte {
	if !h.Valid() {
		return nil
	}
	d := h.New()
	d.Write(sessionKey)
	return hmacOf(h, d.Sum(nil), challenge)
}

// HostResponse returns R1, the host's response in the DH-HMAC-CHAP Reply
// (NVMe Base 2.0 §8.13.5; the kernel's
// nvme_auth_dhchap_setup_host_response):
//
//	HMAC-h(key, challenge || le32(seq) || le16(tid) || scc ||
//	            "HostHost" || hostNQN || 0x00 || subNQN)
//
// key is the host secret transformed with hostNQN, challenge is C1
// (augmented when the DH group is not null), seq is S1, tid the
// transaction identifier and scc the secure channel concatenation byte of
// the Challenge. It returns nil when h is not valid.
//
// Linux hosts before commit 7e091add9c43 ("nvme-auth: update sc_c in host
// response"), and targets until the matching fix, hash 0 instead of scc;
// when scc is 0, as it is without secure channel concatenation, every
// version agrees.
func HostResponse(h Hash, key, challenge []byte, seq uint32, tid uint16, scc uint8, hostNQN, subNQN string) []byte {
	return response(h, key, challenge, seq, tid, scc, "HostHost", hostNQN, subNQN)
}

// ControllerResponse returns R2, the controller's response in the
// DH-HMAC-CHAP Success1 message (NVMe Base 2.0 §8.13.5; the kernel's
// nvme_auth_dhchap_setup_ctrl_response and nvmet_auth_ctrl_hash):
//
//	HMAC-h(key, challenge || le32(seq) || le16(tid) || scc ||
//	            "Controller" || subNQN || 0x00 || hostNQN)
//
// key is the controller secret transformed with subNQN, challenge is C2
// (augmented when the DH group is not null) and seq is S2. It returns nil
// when h is not valid.
//
// Linux, host and target alike, hashes 0 in the scc position of R2 even
// when secure channel concatenation is on (it puts SC_C only into R1):
// pass 0 to interoperate with it.
func ControllerResponse(h Hash, key, challenge []byte, seq uint32, tid uint16, scc uint8, subNQN, hostNQN string) []byte {
	return response(h, key, challenge, seq, tid, scc, "Controller", subNQN, hostNQN)
}

// response is the HMAC shared by HostResponse and ControllerResponse; role
// is "HostHost" or "Controller", first and second the NQNs in that role's
// order.
func response(h Hash, key, challenge []byte, seq uint32, tid uint16, scc uint8, role, first, second string) []byte {
	var hdr [7]byte
	binary.LittleEndian.PutUint32(hdr[0:], seq)
	binary.LittleEndian.PutUint16(hdr[4:], tid)
	hdr[6] = scc
	return hmacOf(h, key, challenge, hdr[:], []byte(role), []byte(first), []byte{0}, []byte(second))
}
