package target

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"strings"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/nvmeof"
)

// TLS for NVMe/TCP (NVMe/TCP Transport 1.0c §3.6): the transport runs the
// TLS 1.3 handshake and asks the core for the key behind the PSK identity
// the host offers (TLSKey); the host names itself and the subsystem in that
// identity, so the core can check the Connect against it (Queue.SetTLS).
// The keys are a host's configured PSKs on a subsystem (SubsystemConfig
// TLSKeys, nvme gen-tls-key's interchange format), from which the TLS PSK
// is derived as nvme-cli and the Linux host derive it (dhchap.PSK.TLS).
//
// A queue that came over TLS does not run DH-HMAC-CHAP: its PSK already
// proved the host, as on the Linux target (nvmet_setup_auth skips hosts
// with a TLS key on the queue). Generated PSKs ("NVMe0G…", secure channel
// concatenation) are not supported.

// TLSIdentity is an NVMe/TCP TLS PSK identity, as a host offers it:
//
//	NVMe0R01 <host NQN> <subsystem NQN>                  version 0 (NVMe/TCP 1.0c)
//	NVMe1R02 <host NQN> <subsystem NQN> <base64 digest>  version 1 (TP 8018)
//
// R says the PSK is a retained one (configured), 01 and 02 the hash of the
// TLS cipher suite: SHA-256 (TLS_AES_128_GCM_SHA256) or SHA-384
// (TLS_AES_256_GCM_SHA384).
type TLSIdentity struct {
	Version int
	Hash    dhchap.Hash // dhchap.SHA256 or dhchap.SHA384
	HostNQN string
	SubNQN  string
	Digest  string // version 1 only: base64 of an HMAC of the NQNs under the retained PSK
}

// ParseTLSIdentity parses an NVMe/TCP TLS PSK identity.
func ParseTLSIdentity(s string) (TLSIdentity, error) {
	var id TLSIdentity
	f := strings.Split(s, " ")
	p := f[0]
	if len(p) != 8 || !strings.HasPrefix(p, "NVMe") {
		return id, fmt.Errorf("TLS PSK identity %.80q: not an NVMe/TCP identity (want \"NVMe0R01 <host NQN> <subsystem NQN>\")", s)
	}
	switch p[4] {
	case '0':
		id.Version = 0
	case '1':
		id.Version = 1
	default:
		return id, fmt.Errorf("TLS PSK identity %.80q: version %q, want 0 or 1", s, p[4])
	}
	switch p[5] {
	case 'R':
	case 'G':
		return id, fmt.Errorf("TLS PSK identity %.80q: a generated PSK (secure channel concatenation, SC_C) is not supported: use a configured PSK (nvme gen-tls-key)", s)
	default:
		return id, fmt.Errorf("TLS PSK identity %.80q: PSK type %q, want R (retained)", s, p[5])
	}
	switch p[6:] {
	case "01":
		id.Hash = dhchap.SHA256
	case "02":
		id.Hash = dhchap.SHA384
	default:
		return id, fmt.Errorf("TLS PSK identity %.80q: hash %q, want 01 (SHA-256) or 02 (SHA-384)", s, p[6:])
	}
	want := 3 + id.Version
	if len(f) != want {
		return id, fmt.Errorf("TLS PSK identity %.80q: %d fields, want %d separated by single spaces", s, len(f), want)
	}
	id.HostNQN, id.SubNQN = f[1], f[2]
	if id.Version == 1 {
		id.Digest = f[3]
		if id.Digest == "" {
			return id, fmt.Errorf("TLS PSK identity %.80q: empty digest", s)
		}
	}
	for _, n := range []string{id.HostNQN, id.SubNQN} {
		if err := ValidateNQN(n); err != nil {
			return id, fmt.Errorf("TLS PSK identity %.80q: %w", s, err)
		}
	}
	return id, nil
}

// String is the identity as a host sends it.
func (id TLSIdentity) String() string {
	s := fmt.Sprintf("NVMe%dR%02d %s %s", id.Version, uint8(id.Hash), id.HostNQN, id.SubNQN)
	if id.Version == 1 {
		s += " " + id.Digest
	}
	return s
}

// TLSKey is the TLS PSK behind an identity a host offered.
type TLSKey struct {
	Identity TLSIdentity
	Hash     dhchap.Hash // of the cipher suite: 32-byte keys SHA-256, 48-byte SHA-384
	Key      []byte      // the TLS PSK: secret
}

// ErrTLSIdentity says why the target knows no key for an offered
// identity; its message never holds key material.
var ErrTLSIdentity = errors.New("no TLS key for this PSK identity")

// TLSKey returns the TLS PSK for a PSK identity a host offered, derived
// from the key configured for that host on that subsystem (for the
// discovery subsystem: on any subsystem, the first by NQN whose key
// derives the identity). For a version 1 identity the whole identity,
// digest included, must be the one the configured key derives. Errors
// wrap ErrTLSIdentity and say what to fix.
func (t *Target) TLSKey(identity string) (TLSKey, error) {
	id, err := ParseTLSIdentity(identity)
	if err != nil {
		return TLSKey{}, fmt.Errorf("%w: %w", ErrTLSIdentity, err)
	}
	var cands []dhchap.PSK
	if id.SubNQN == nvmeof.DiscoveryNQN {
		for _, s := range t.Subsystems() {
			if p, ok := s.hostTLS(id.HostNQN); ok {
				cands = append(cands, p)
			}
		}
		if len(cands) == 0 {
			return TLSKey{}, fmt.Errorf("%w: host %q has a tls_key on no subsystem, so it cannot reach the discovery controller over TLS", ErrTLSIdentity, id.HostNQN)
		}
	} else {
		s := t.Subsystem(id.SubNQN)
		if s == nil {
			return TLSKey{}, fmt.Errorf("%w: subsystem %q (named in the identity) not found", ErrTLSIdentity, id.SubNQN)
		}
		p, ok := s.hostTLS(id.HostNQN)
		if !ok {
			return TLSKey{}, fmt.Errorf("%w: host %q has no tls_key on %s: add one to its allowed_hosts entry", ErrTLSIdentity, id.HostNQN, id.SubNQN)
		}
		cands = append(cands, p)
	}
	err = nil
	for _, p := range cands {
		if c := p.Cipher(); c != id.Hash {
			err = fmt.Errorf("%w: the identity is for %v (%02d) but host %q's tls_key is a %v key: the host holds another key", ErrTLSIdentity, id.Hash, uint8(id.Hash), id.HostNQN, c)
			continue
		}
		derived, key, derr := p.TLS(id.HostNQN, id.SubNQN, id.Version)
		if derr != nil {
			err = fmt.Errorf("%w: %w", ErrTLSIdentity, derr)
			continue
		}
		if !hmac.Equal([]byte(derived), []byte(identity)) {
			// Only version 1 gets here: its digest comes from the key.
			err = fmt.Errorf("%w: the identity's digest is not the one host %q's tls_key gives: the host holds another key", ErrTLSIdentity, id.HostNQN)
			continue
		}
		return TLSKey{Identity: id, Hash: p.Cipher(), Key: key}, nil
	}
	return TLSKey{}, err
}

// SetTLS tells the core that the queue's connection is TLS-secured with a
// PSK of identity id (the transport calls it after the handshake, before
// any command). Connect must then name the identity's host and subsystem,
// and DH-HMAC-CHAP is not asked for.
func (q *Queue) SetTLS(id TLSIdentity) { q.tls = &id }

// TLS returns the PSK identity of the queue's TLS connection, if any.
func (q *Queue) TLS() (TLSIdentity, bool) {
	if q.tls == nil {
		return TLSIdentity{}, false
	}
	return *q.tls, true
}
