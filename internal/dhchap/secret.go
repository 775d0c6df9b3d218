package dhchap

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
)

// Secret is a DH-HMAC-CHAP secret in the representation of NVMe Base 2.0
// §8.13.5.8 as nvme-cli (gen-dhchap-key) and the kernel (nvme connect
// --dhchap-secret, nvmet's configfs dhchap_key) write it:
//
//	DHHC-1:XX:<base64 of key || CRC-32(key), little-endian>:
//
// XX is the transformation hash: 00 none, 01 SHA-256, 02 SHA-384, 03
// SHA-512. The kernel accepts any key length with any hash; nvme-cli's
// check-dhchap-key and gen-dhchap-key insist that a key transformed with a
// hash has that hash's length.
//
// nvme-cli's gen-dhchap-key writes a key that it has already transformed
// with the NQN it was given when XX is not 00, and the kernel transforms
// the key again when it uses it; Transform does what the kernel does.
type Secret struct {
	Hash Hash   // transformation hash; 0 for none
	Key  []byte // 32, 48 or 64 bytes
}

const secretPrefix = "DHHC-1:"

// errSecretHint ends every ParseSecret error.
const errSecretHint = "; make a valid secret with `nvme gen-dhchap-key`"

// ParseSecret parses a secret in the DHHC-1 representation (NVMe Base 2.0
// §8.13.5.8), as the kernel's nvme_auth_extract_key does. The trailing ":"
// and the base64 padding may be missing, as the kernel allows; white space
// around the secret, such as the newline of a key file, is ignored. Errors
// never quote the key.
func ParseSecret(s string) (Secret, error) {
	h, key, err := decodeKeyString(s, secretPrefix, "DH-HMAC-CHAP secret", errSecretHint, []int{32, 48, 64})
	if err != nil {
		return Secret{}, err
	}
	if h != 0 && !h.Valid() {
		return Secret{}, fmt.Errorf("DH-HMAC-CHAP secret: transformation hash %02d, want 00 (none), 01 (SHA-256), 02 (SHA-384) or 03 (SHA-512)"+errSecretHint, uint8(h))
	}
	return Secret{Hash: h, Key: key}, nil
}

// decodeKeyString decodes the representation NVMe gives key material in
// text (DH-HMAC-CHAP secrets, TLS PSKs): prefix, a two-digit hash number
// and ":", base64 of the key and its CRC-32 (little-endian), and ":". what
// names the key in errors, which end with hint and never quote the key.
func decodeKeyString(s, prefix, what, hint string, lengths []int) (Hash, []byte, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0, nil, fmt.Errorf("%s: does not start with %q%s", what, prefix, hint)
	}
	if len(rest) < 3 || !isDigit(rest[0]) || !isDigit(rest[1]) || rest[2] != ':' {
		return 0, nil, fmt.Errorf("%s: %q is not followed by a two-digit hash number and \":\"%s", what, prefix, hint)
	}
	h := Hash((rest[0]-'0')*10 + rest[1] - '0')
	b64 := strings.TrimSuffix(rest[3:], ":")
	if strings.Contains(b64, ":") {
		return 0, nil, fmt.Errorf("%s: unexpected text after the key's closing \":\"%s", what, hint)
	}
	for i := 0; i < len(b64); i++ {
		if !isBase64(b64[i]) {
			return 0, nil, fmt.Errorf("%s: character %d after \"%s%02d:\" is not base64%s", what, i+1, prefix, uint8(h), hint)
		}
	}
	enc := base64.StdEncoding.Strict()
	if len(b64)%4 != 0 {
		enc = base64.RawStdEncoding.Strict() // the kernel does not need the padding either
	}
	raw, err := enc.DecodeString(b64)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: the key is not valid base64 (truncated, or badly padded)%s", what, hint)
	}
	if !slices.Contains(lengths, len(raw)-4) {
		return 0, nil, fmt.Errorf("%s: the key decodes to %d bytes, want a key of %v bytes and its CRC-32%s", what, len(raw), lengths, hint)
	}
	key := raw[: len(raw)-4 : len(raw)-4]
	if binary.LittleEndian.Uint32(raw[len(key):]) != crc32.ChecksumIEEE(key) {
		return 0, nil, fmt.Errorf("%s: CRC-32 mismatch, the key is corrupted or mistyped%s", what, hint)
	}
	return h, key, nil
}

// encodeKeyString is decodeKeyString's inverse.
func encodeKeyString(prefix string, h Hash, key []byte) string {
	raw := make([]byte, len(key)+4)
	copy(raw, key)
	binary.LittleEndian.PutUint32(raw[len(key):], crc32.ChecksumIEEE(key))
	return fmt.Sprintf("%s%02d:%s:", prefix, uint8(h), base64.StdEncoding.EncodeToString(raw))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isBase64 reports whether c is in the standard base64 alphabet or is the
// padding "=".
func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}

// GenerateSecret returns a new secret of n random bytes read from rand
// (crypto/rand.Reader when nil) with transformation hash h (0 for none). n
// is 32, 48 or 64; 0 means h.Size(), or 32 when h is 0. Unlike `nvme
// gen-dhchap-key --hmac N --nqn NQN` it does not pre-transform the random
// key with an NQN, which makes no difference to its strength.
func GenerateSecret(rand io.Reader, h Hash, n int) (Secret, error) {
	if h != 0 && !h.Valid() {
		return Secret{}, fmt.Errorf("generate DH-HMAC-CHAP secret: transformation hash %d, want 0 (none), 1 (SHA-256), 2 (SHA-384) or 3 (SHA-512)", uint8(h))
	}
	if n == 0 {
		n = max(h.Size(), 32)
	}
	if n != 32 && n != 48 && n != 64 {
		return Secret{}, fmt.Errorf("generate DH-HMAC-CHAP secret: key length %d bytes, want 32, 48 or 64", n)
	}
	key := make([]byte, n)
	if _, err := io.ReadFull(randOrDefault(rand), key); err != nil {
		return Secret{}, fmt.Errorf("generate DH-HMAC-CHAP secret: read random bytes: %w", err)
	}
	return Secret{Hash: h, Key: key}, nil
}

// randOrDefault returns r, or crypto/rand.Reader when r is nil.
func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// String returns the secret in the DHHC-1 representation, with the
// trailing ":" that nvme-cli writes and its check-dhchap-key requires. It
// is the secret itself: do not log it.
func (s Secret) String() string { return encodeKeyString(secretPrefix, s.Hash, s.Key) }

// Transform returns the key that DH-HMAC-CHAP uses for the responses (NVMe
// Base 2.0 §8.13.5.8; the kernel's nvme_auth_transform_key): a copy of Key
// when Hash is 0, else HMAC-Hash(Key, nqn || "NVMe-over-Fabrics"). nqn is
// the host NQN for a host secret and the subsystem NQN for a controller
// secret. It returns nil when Hash is neither 0 nor valid, which
// ParseSecret never yields.
func (s Secret) Transform(nqn string) []byte {
	if s.Hash == 0 {
		return append([]byte{}, s.Key...)
	}
	return hmacOf(s.Hash, s.Key, []byte(nqn), []byte("NVMe-over-Fabrics"))
}
