package dhchap

import (
	"crypto/hkdf"
	"crypto/hmac"
	"encoding/base64"
	"encoding/binary"
	"fmt"
)

// TLS pre-shared keys for NVMe/TCP (NVMe/TCP Transport 1.0c §3.6.1.3,
// and TP 8018 for PSK identity version 1), derived as nvme-cli and libnvme
// derive them before they put the key in the kernel's .nvme keyring, where
// the Linux host (through tlshd) finds it by its identity:
//
//	configured PSK ── HKDF ("HostNQN", host NQN) ──▶ retained PSK
//	retained PSK ── HKDF ("nvme-tls-psk", identity or digest) ──▶ TLS PSK
//
// The HKDF info is libnvme's: the output length as a 2-byte
// little-endian integer, then "tls13 ", the label and the context, with no
// length bytes between them (not RFC 8446's HkdfLabel); what matters is
// that both ends derive the same key.

const pskPrefix = "NVMeTLSkey-1:"

const errPSKHint = "; make a valid key with `nvme gen-tls-key`"

// PSK is a configured TLS PSK in the PSK interchange format:
//
//	NVMeTLSkey-1:XX:<base64 of key || CRC-32(key), little-endian>:
//
// XX is the hash of the retained PSK's derivation: 00 none (the key is
// the retained PSK), 01 SHA-256 (32-byte key, TLS_AES_128_GCM_SHA256), 02
// SHA-384 (48-byte key, TLS_AES_256_GCM_SHA384).
type PSK struct {
	Hash Hash
	Key  []byte
}

// ParsePSK parses a configured PSK in the PSK interchange format. Errors
// never quote the key.
func ParsePSK(s string) (PSK, error) {
	h, key, err := decodeKeyString(s, pskPrefix, "TLS PSK", errPSKHint, []int{32, 48})
	if err != nil {
		return PSK{}, err
	}
	switch {
	case h > SHA384:
		return PSK{}, fmt.Errorf("TLS PSK: hash %02d, want 00 (none), 01 (SHA-256) or 02 (SHA-384)"+errPSKHint, uint8(h))
	case h != 0 && len(key) != h.Size():
		return PSK{}, fmt.Errorf("TLS PSK: a %d-byte key with hash %02d, which takes %d bytes"+errPSKHint, len(key), uint8(h), h.Size())
	}
	return PSK{Hash: h, Key: key}, nil
}

// String returns the PSK in the interchange format. It is the key: do not
// log it.
func (p PSK) String() string { return encodeKeyString(pskPrefix, p.Hash, p.Key) }

// Cipher is the hash of the TLS cipher suite the PSK serves: Hash, or
// by the key's length when Hash is 00.
func (p PSK) Cipher() Hash {
	switch {
	case p.Hash != 0:
		return p.Hash
	case len(p.Key) == SHA384.Size():
		return SHA384
	}
	return SHA256
}

// nvmeHKDF is HKDF-Extract (zero salt) then Expand with libnvme's info.
func nvmeHKDF(h Hash, secret []byte, label string, context ...string) []byte {
	info := binary.LittleEndian.AppendUint16(nil, uint16(len(secret)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	for _, c := range context {
		info = append(info, c...)
	}
	k, err := hkdf.Key(h.New, secret, nil, string(info), len(secret))
	if err != nil {
		panic(err) // the lengths are 32 or 48: HKDF allows 255 blocks
	}
	return k
}

// Retained is the retained PSK of a host (libnvme derive_retained_key).
func (p PSK) Retained(hostNQN string) []byte {
	if p.Hash == 0 {
		return append([]byte{}, p.Key...)
	}
	return nvmeHKDF(p.Hash, p.Key, "HostNQN", hostNQN)
}

// TLS returns the PSK identity a host with hostNQN offers to subNQN and
// the TLS PSK behind it. Identity version 0 is NVMe/TCP 1.0c's "NVMe0R0X
// <host NQN> <subsystem NQN>"; version 1 (TP 8018) appends a digest of the
// retained PSK.
func (p PSK) TLS(hostNQN, subNQN string, version int) (identity string, key []byte, err error) {
	c := p.Cipher()
	retained := p.Retained(hostNQN)
	switch version {
	case 0:
		identity = fmt.Sprintf("NVMe0R%02d %s %s", uint8(c), hostNQN, subNQN)
		return identity, nvmeHKDF(c, retained, "nvme-tls-psk", identity), nil
	case 1:
		mac := hmac.New(c.New, retained)
		mac.Write([]byte(hostNQN + " " + subNQN + " NVMe-over-Fabrics"))
		digest := base64.StdEncoding.EncodeToString(mac.Sum(nil))
		identity = fmt.Sprintf("NVMe1R%02d %s %s %s", uint8(c), hostNQN, subNQN, digest)
		return identity, nvmeHKDF(c, retained, "nvme-tls-psk", fmt.Sprintf("%02d ", uint8(c)), digest), nil
	}
	return "", nil, fmt.Errorf("TLS PSK identity version %d: want 0 (NVMe/TCP 1.0c) or 1 (TP 8018)", version)
}
