package dhchap

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"
	"testing/iotest"
)

var allHashes = []Hash{SHA256, SHA384, SHA512}

var allGroups = []DHGroup{FFDHE2048, FFDHE3072, FFDHE4096, FFDHE6144, FFDHE8192}

// skipSlow skips the two largest groups under -short: their
// exponentiations and primality tests take most of the package's time.
func skipSlow(t *testing.T, g DHGroup) {
	t.Helper()
	if testing.Short() && g >= FFDHE6144 {
		t.Skipf("%v is slow; run without -short", g)
	}
}

// refCRC32 is CRC-32/IEEE (reflected polynomial 0xEDB88320, initial and
// final XOR 0xFFFFFFFF) computed bit by bit, independently of hash/crc32.
func refCRC32(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c ^= uint32(x)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xEDB88320
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

// refDigest and refBlock are each hash function and its block size (FIPS
// 180-4), written out so that refHMAC does not go through Hash.New.
func refDigest(h Hash, b []byte) []byte {
	switch h {
	case SHA256:
		s := sha256.Sum256(b)
		return s[:]
	case SHA384:
		s := sha512.Sum384(b)
		return s[:]
	case SHA512:
		s := sha512.Sum512(b)
		return s[:]
	}
	panic("refDigest: bad hash")
}

func refBlock(h Hash) int {
	if h == SHA256 {
		return 64
	}
	return 128
}

// refHMAC is RFC 2104's HMAC written out step by step:
// H((K0 ^ opad) || H((K0 ^ ipad) || msg)).
func refHMAC(h Hash, key, msg []byte) []byte {
	bs := refBlock(h)
	if len(key) > bs {
		key = refDigest(h, key)
	}
	k0 := make([]byte, bs)
	copy(k0, key)
	inner := make([]byte, 0, bs+len(msg))
	outer := make([]byte, 0, bs+64)
	for _, k := range k0 {
		inner = append(inner, k^0x36)
		outer = append(outer, k^0x5c)
	}
	inner = append(inner, msg...)
	outer = append(outer, refDigest(h, inner)...)
	return refDigest(h, outer)
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// The reference HMAC itself must be right: RFC 4231 test case 2.
func TestRefHMAC(t *testing.T) {
	got := refHMAC(SHA256, []byte("Jefe"), []byte("what do ya want for nothing?"))
	want := "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if hex.EncodeToString(got) != want {
		t.Fatalf("refHMAC = %x, want %s", got, want)
	}
	long := bytes.Repeat([]byte{0xaa}, 131) // RFC 4231 test case 6: a key longer than the block
	got = refHMAC(SHA512, long, []byte("Test Using Larger Than Block-Size Key - Hash Key First"))
	want = "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"
	if hex.EncodeToString(got) != want {
		t.Fatalf("refHMAC(SHA-512, long key) = %x, want %s", got, want)
	}
}

func TestHash(t *testing.T) {
	for _, c := range []struct {
		h    Hash
		size int
		name string
	}{{SHA256, 32, "sha256"}, {SHA384, 48, "sha384"}, {SHA512, 64, "sha512"}} {
		if !c.h.Valid() || c.h.Size() != c.size || c.h.String() != c.name {
			t.Errorf("%d: Valid %v Size %d String %q, want true %d %q", uint8(c.h), c.h.Valid(), c.h.Size(), c.h.String(), c.size, c.name)
		}
		d := c.h.New()
		if d == nil || d.Size() != c.size {
			t.Errorf("%v.New() = %v, want a %d-byte hash", c.h, d, c.size)
		} else if d.Write([]byte("abc")); !bytes.Equal(d.Sum(nil), refDigest(c.h, []byte("abc"))) {
			t.Errorf("%v.New() computes the wrong function", c.h)
		}
	}
	for _, h := range []Hash{0, 4, 255} {
		if h.Valid() || h.Size() != 0 || h.New() != nil || h.String() != fmt.Sprintf("hash(%d)", h) {
			t.Errorf("invalid %d: Valid %v Size %d New %v String %q", uint8(h), h.Valid(), h.Size(), h.New(), h.String())
		}
	}
}

func TestParseHash(t *testing.T) {
	for s, want := range map[string]Hash{
		"sha256": SHA256, "SHA256": SHA256, "SHA-256": SHA256, "hmac(sha256)": SHA256, " sha256\n": SHA256,
		"sha384": SHA384, "HMAC(SHA384)": SHA384, "sha-384": SHA384, "hmac(sha-384)": SHA384,
		"sha512": SHA512, "Sha-512": SHA512, "hmac(sha512)": SHA512,
	} {
		if got, err := ParseHash(s); err != nil || got != want {
			t.Errorf("ParseHash(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "md5", "sha1", "sha224", "sha3-256", "hmac(sha256", "sha256)", "hmac()", "1", "sha--256"} {
		_, err := ParseHash(s)
		if err == nil {
			t.Errorf("ParseHash(%q) succeeded", s)
		} else if !strings.Contains(err.Error(), "sha256, sha384 or sha512") {
			t.Errorf("ParseHash(%q) error %q does not list the accepted names", s, err)
		}
	}
}

func TestDHGroup(t *testing.T) {
	for _, c := range []struct {
		g    DHGroup
		name string
		size int
	}{{DHNull, "null", 0}, {FFDHE2048, "ffdhe2048", 256}, {FFDHE3072, "ffdhe3072", 384}, {FFDHE4096, "ffdhe4096", 512}, {FFDHE6144, "ffdhe6144", 768}, {FFDHE8192, "ffdhe8192", 1024}} {
		if !c.g.Valid() || c.g.String() != c.name || c.g.Size() != c.size {
			t.Errorf("%d: Valid %v String %q Size %d, want true %q %d", uint8(c.g), c.g.Valid(), c.g.String(), c.g.Size(), c.name, c.size)
		}
		for _, s := range []string{c.name, strings.ToUpper(c.name), " " + c.name + "\n"} {
			if g, err := ParseDHGroup(s); err != nil || g != c.g {
				t.Errorf("ParseDHGroup(%q) = %v, %v; want %v", s, g, err, c.g)
			}
		}
	}
	if DHNull.Prime() != nil {
		t.Error("DHNull.Prime() is not nil")
	}
	for _, g := range []DHGroup{6, 255} {
		if g.Valid() || g.Size() != 0 || g.Prime() != nil || g.String() != fmt.Sprintf("dhgroup(%d)", g) {
			t.Errorf("invalid %d: Valid %v Size %d Prime %v String %q", uint8(g), g.Valid(), g.Size(), g.Prime(), g.String())
		}
	}
	for _, s := range []string{"", "ffdhe1024", "2048", "ffdhe2048(dh)", "none", "modp2048"} {
		_, err := ParseDHGroup(s)
		if err == nil {
			t.Errorf("ParseDHGroup(%q) succeeded", s)
		} else if !strings.Contains(err.Error(), "null, ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144 or ffdhe8192") {
			t.Errorf("ParseDHGroup(%q) error %q does not list the accepted names", s, err)
		}
	}
}

// rfc7919Prime computes p = 2^b - 2^(b-64) + (floor(2^(b-130) e) + X) 2^64 - 1
// (RFC 7919 Appendix A), with e from its series sum 1/k! in fixed point.
func rfc7919Prime(b uint, x int64) *big.Int {
	// E approximates e·2^w from below by at most a few hundred units, and
	// w exceeds b-130 by more than 300 bits, so the floor is exact unless e
	// has 300 consecutive one bits there; the checks against RFC 7919's own
	// digits and the primality tests would catch that.
	const w = 8500
	term := new(big.Int).Lsh(big.NewInt(1), w)
	e := new(big.Int).Set(term)
	for k := int64(1); term.Sign() > 0; k++ {
		term.Quo(term, big.NewInt(k))
		e.Add(e, term)
	}
	f := e.Rsh(e, w-(b-130))
	f.Add(f, big.NewInt(x))
	p := new(big.Int).Lsh(big.NewInt(1), b)
	p.Sub(p, new(big.Int).Lsh(big.NewInt(1), b-64))
	p.Add(p, f.Lsh(f, 64))
	return p.Sub(p, big.NewInt(1))
}

func TestPrimes(t *testing.T) {
	xs := map[DHGroup]int64{FFDHE2048: 560316, FFDHE3072: 2625351, FFDHE4096: 5736041, FFDHE6144: 15705020, FFDHE8192: 10965728}
	ones64 := new(big.Int).SetUint64(^uint64(0))
	for _, g := range allGroups {
		t.Run(g.String(), func(t *testing.T) {
			p := g.Prime()
			b := g.Size() * 8
			if p == nil || p.BitLen() != b {
				t.Fatalf("Prime() = %v, want a %d-bit prime", p, b)
			}
			if p != g.Prime() {
				t.Error("Prime() returns a new value each call; want the shared one")
			}
			if top := new(big.Int).Rsh(p, uint(b-64)); top.Cmp(ones64) != 0 {
				t.Errorf("top 64 bits %x, want all ones", top)
			}
			if low := new(big.Int).And(p, ones64); low.Cmp(ones64) != 0 {
				t.Errorf("low 64 bits %x, want all ones", low)
			}
			if want := rfc7919Prime(uint(b), xs[g]); p.Cmp(want) != 0 {
				t.Errorf("the embedded prime differs from RFC 7919's formula:\n got %X\nwant %X", p, want)
			}
			skipSlow(t, g)
			q := new(big.Int).Rsh(p, 1)
			if !p.ProbablyPrime(1) || !q.ProbablyPrime(1) {
				t.Errorf("p or (p-1)/2 is not prime: p %v, q %v", p.ProbablyPrime(1), q.ProbablyPrime(1))
			}
		})
	}
	h := fmt.Sprintf("%X", FFDHE2048.Prime())
	if !strings.HasPrefix(h, "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695") ||
		!strings.HasSuffix(h, "886B423861285C97FFFFFFFFFFFFFFFF") {
		t.Errorf("ffdhe2048 prime %s does not have RFC 7919's first and last digits", h)
	}
}

// goldenKey is bytes 0..31; nvme-cli 2.3 writes it, with
// `nvme gen-dhchap-key --secret 000102...1f --hmac 0`, as goldenSecret.
const goldenSecret = "DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:"

func TestSecretString(t *testing.T) {
	key := seq(32)
	if got := (Secret{Key: key}).String(); got != goldenSecret {
		t.Errorf("String() = %q, want nvme-cli's %q", got, goldenSecret)
	}
	for _, h := range []Hash{0, SHA256, SHA384, SHA512} {
		for _, n := range []int{32, 48, 64} {
			key := seq(n)
			raw := binary.LittleEndian.AppendUint32(append([]byte{}, key...), refCRC32(key))
			want := fmt.Sprintf("DHHC-1:%02d:%s:", h, base64.StdEncoding.EncodeToString(raw))
			if got := (Secret{Hash: h, Key: key}).String(); got != want {
				t.Errorf("Secret{%v, %d bytes}.String() = %q, want %q", h, n, got, want)
			}
		}
	}
}

func TestSecretRoundTrip(t *testing.T) {
	for _, h := range []Hash{0, SHA256, SHA384, SHA512} {
		for _, n := range []int{0, 32, 48, 64} {
			s, err := GenerateSecret(rand.Reader, h, n)
			if err != nil {
				t.Fatalf("GenerateSecret(%v, %d): %v", h, n, err)
			}
			want := n
			if n == 0 {
				want = max(h.Size(), 32)
			}
			if s.Hash != h || len(s.Key) != want {
				t.Errorf("GenerateSecret(%v, %d) = hash %v, %d bytes; want %v, %d", h, n, s.Hash, len(s.Key), h, want)
			}
			text := s.String()
			if !strings.HasPrefix(text, fmt.Sprintf("DHHC-1:%02d:", h)) || !strings.HasSuffix(text, ":") {
				t.Errorf("String() = %q, want DHHC-1:%02d:...:", text, h)
			}
			got, err := ParseSecret(text)
			if err != nil || got.Hash != s.Hash || !bytes.Equal(got.Key, s.Key) {
				t.Errorf("ParseSecret(String()) = %v, %v; want the generated secret back", got.Hash, err)
			}
		}
	}
}

func TestParseSecretLenient(t *testing.T) {
	k48 := Secret{Hash: SHA384, Key: seq(48)}
	for name, c := range map[string]struct {
		in   string
		want Secret
	}{
		"no trailing colon":  {strings.TrimSuffix(goldenSecret, ":"), Secret{Key: seq(32)}},
		"newline of a file":  {goldenSecret + "\n", Secret{Key: seq(32)}},
		"surrounding blanks": {"  " + goldenSecret + "\t", Secret{Key: seq(32)}},
		"no base64 padding":  {strings.Replace(k48.String(), "==:", ":", 1), k48},
		"hash and length mismatch (the kernel allows it)": {Secret{Hash: SHA256, Key: seq(64)}.String(), Secret{Hash: SHA256, Key: seq(64)}},
	} {
		got, err := ParseSecret(c.in)
		if err != nil || got.Hash != c.want.Hash || !bytes.Equal(got.Key, c.want.Key) {
			t.Errorf("%s: ParseSecret(%q) = %v %x, %v; want %v %x", name, c.in, got.Hash, got.Key, err, c.want.Hash, c.want.Key)
		}
	}
}

func TestParseSecretErrors(t *testing.T) {
	key := seq(32)
	key[0] = 0xA5 // no base64 run of the key appears in the messages by accident
	good := Secret{Hash: SHA256, Key: key}.String()
	b64 := strings.TrimSuffix(strings.TrimPrefix(good, "DHHC-1:01:"), ":")
	enc := func(raw []byte) string { return base64.StdEncoding.EncodeToString(raw) }
	withCRC := func(k []byte) []byte { return binary.LittleEndian.AppendUint32(append([]byte{}, k...), refCRC32(k)) }
	badCRC := withCRC(key)
	badCRC[3] ^= 1
	for name, in := range map[string]string{
		"empty":              "",
		"no prefix":          b64,
		"wrong version":      "DHHC-2:01:" + b64 + ":",
		"lower-case prefix":  "dhhc-1:01:" + b64 + ":",
		"hash 04":            "DHHC-1:04:" + b64 + ":",
		"hash 99":            "DHHC-1:99:" + b64 + ":",
		"one-digit hash":     "DHHC-1:1:" + b64 + ":",
		"hex hash":           "DHHC-1:0a:" + b64 + ":",
		"three-digit hash":   "DHHC-1:001:" + b64 + ":",
		"negative hash":      "DHHC-1:-1:" + b64 + ":",
		"prefix only":        "DHHC-1:01",
		"no key":             "DHHC-1:01::",
		"bad character":      "DHHC-1:01:" + b64[:10] + "*" + b64[11:] + ":",
		"url-safe base64":    "DHHC-1:01:" + strings.NewReplacer("+", "-", "/", "_").Replace(enc(withCRC(seq(32)))) + ":",
		"newline inside":     "DHHC-1:01:" + b64[:20] + "\n" + b64[20:] + ":",
		"space inside":       "DHHC-1:01:" + b64[:20] + " " + b64[20:] + ":",
		"truncated base64":   "DHHC-1:01:" + b64[:len(b64)-1] + ":",
		"padding in middle":  "DHHC-1:01:" + b64[:8] + "=" + b64[9:] + ":",
		"nonzero pad bits":   "DHHC-1:02:" + strings.Replace(enc(withCRC(seq(48))), "==", "", 1)[:69] + "B==:",
		"short key":          "DHHC-1:00:" + enc(withCRC(seq(16))) + ":",
		"40-byte key":        "DHHC-1:00:" + enc(withCRC(seq(40))) + ":",
		"no CRC":             "DHHC-1:00:" + enc(seq(32)) + ":",
		"128-byte key":       "DHHC-1:00:" + enc(withCRC(seq(128))) + ":",
		"bad CRC":            "DHHC-1:01:" + enc(badCRC) + ":",
		"text after colon":   good + "x",
		"two trailing colon": good + ":",
	} {
		s, err := ParseSecret(in)
		if err == nil {
			t.Errorf("%s: ParseSecret(%q) succeeded", name, in)
			continue
		}
		if s.Key != nil || s.Hash != 0 {
			t.Errorf("%s: failed ParseSecret returned a non-zero Secret", name)
		}
		msg := err.Error()
		if !strings.Contains(msg, "nvme gen-dhchap-key") {
			t.Errorf("%s: error %q does not say how to make a valid secret", name, msg)
		}
		if strings.Contains(msg, b64[4:16]) || strings.Contains(strings.ToLower(msg), hex.EncodeToString(key[4:12])) {
			t.Errorf("%s: error %q quotes the key", name, msg)
		}
	}
}

func TestGenerateSecretErrors(t *testing.T) {
	for _, c := range []struct {
		h Hash
		n int
	}{{4, 0}, {255, 32}, {SHA256, 16}, {0, 33}, {SHA512, 128}, {0, -1}} {
		if _, err := GenerateSecret(rand.Reader, c.h, c.n); err == nil {
			t.Errorf("GenerateSecret(%v, %d) succeeded", c.h, c.n)
		}
	}
	boom := errors.New("boom")
	if _, err := GenerateSecret(iotest.ErrReader(boom), SHA256, 0); !errors.Is(err, boom) {
		t.Errorf("GenerateSecret with a failing reader: %v, want it to wrap the read error", err)
	}
	if _, err := GenerateSecret(bytes.NewReader(make([]byte, 31)), 0, 32); err == nil {
		t.Error("GenerateSecret with a short reader succeeded")
	}
	if s, err := GenerateSecret(nil, SHA384, 0); err != nil || len(s.Key) != 48 {
		t.Errorf("GenerateSecret(nil reader) = %d bytes, %v; want 48 from crypto/rand", len(s.Key), err)
	}
}

func TestTransform(t *testing.T) {
	const nqn = "nqn.2014-08.org.example:host1"
	// nvme-cli 2.3 (libnvme) and Python's hmac module agree on this value:
	// `nvme gen-dhchap-key --secret 000102...1f --hmac 1 --nqn <nqn>` writes it
	// as the key of its DHHC-1:01 secret.
	golden := unhex(t, "d705a10de191c53723bcb21c94c1ef566c8b178ac7f9a1bb02db8ea146662b02")
	if got := (Secret{Hash: SHA256, Key: seq(32)}).Transform(nqn); !bytes.Equal(got, golden) {
		t.Errorf("Transform = %x, want %x", got, golden)
	}

	s := Secret{Key: seq(48)}
	got := s.Transform(nqn)
	if !bytes.Equal(got, s.Key) {
		t.Errorf("Transform with hash 0 = %x, want the key itself", got)
	}
	got[0] ^= 0xff
	if s.Key[0] != 0 {
		t.Error("Transform with hash 0 returned the key's own storage, not a copy")
	}

	for _, h := range allHashes {
		for _, n := range []int{32, 48, 64} {
			s := Secret{Hash: h, Key: seq(n)}
			msg := append([]byte(nqn), "NVMe-over-Fabrics"...)
			want := refHMAC(h, s.Key, msg)
			if got := s.Transform(nqn); !bytes.Equal(got, want) || len(got) != h.Size() {
				t.Errorf("%v, %d-byte key: Transform = %x, want %x", h, n, got, want)
			}
		}
	}
	if got := (Secret{Hash: 9, Key: seq(32)}).Transform(nqn); got != nil {
		t.Errorf("Transform with hash 9 = %x, want nil", got)
	}
}

func TestAugment(t *testing.T) {
	for _, h := range allHashes {
		sk := make([]byte, FFDHE2048.Size())
		rand.Read(sk)
		c := seq(h.Size())
		want := refHMAC(h, refDigest(h, sk), c)
		if got := Augment(h, sk, c); !bytes.Equal(got, want) {
			t.Errorf("%v: Augment = %x, want %x", h, got, want)
		}
	}
	if got := Augment(0, seq(256), seq(32)); got != nil {
		t.Errorf("Augment with hash 0 = %x, want nil", got)
	}
}

func TestResponses(t *testing.T) {
	const (
		hostNQN = "nqn.2014-08.org.nvmexpress:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
		subNQN  = "nqn.2024-01.io.flashpath:sub1"
		seqNum  = uint32(0x01020304)
		tid     = uint16(0xabcd)
	)
	for _, h := range allHashes {
		for _, scc := range []uint8{0, 1} {
			key := Secret{Hash: h, Key: seq(h.Size())}.Transform(hostNQN)
			c := seq(h.Size())

			// The message of NVMe Base 2.0 §8.13.5, byte by byte.
			host := append([]byte{}, c...)
			host = append(host, 0x04, 0x03, 0x02, 0x01) // S1, little-endian
			host = append(host, 0xcd, 0xab)             // T_ID, little-endian
			host = append(host, scc)
			host = append(host, "HostHost"...)
			host = append(host, hostNQN...)
			host = append(host, 0)
			host = append(host, subNQN...)
			if len(host) != len(c)+4+2+1+8+len(hostNQN)+1+len(subNQN) {
				t.Fatal("bad reference message")
			}
			r1 := HostResponse(h, key, c, seqNum, tid, scc, hostNQN, subNQN)
			if want := refHMAC(h, key, host); !bytes.Equal(r1, want) || len(r1) != h.Size() {
				t.Errorf("%v scc %d: HostResponse = %x, want %x", h, scc, r1, want)
			}

			ctrl := append([]byte{}, c...)
			ctrl = binary.LittleEndian.AppendUint32(ctrl, seqNum)
			ctrl = binary.LittleEndian.AppendUint16(ctrl, tid)
			ctrl = append(ctrl, scc)
			ctrl = append(ctrl, "Controller"...)
			ctrl = append(ctrl, subNQN...)
			ctrl = append(ctrl, 0)
			ctrl = append(ctrl, hostNQN...)
			r2 := ControllerResponse(h, key, c, seqNum, tid, scc, subNQN, hostNQN)
			if want := refHMAC(h, key, ctrl); !bytes.Equal(r2, want) {
				t.Errorf("%v scc %d: ControllerResponse = %x, want %x", h, scc, r2, want)
			}

			if bytes.Equal(r1, r2) || bytes.Equal(r1, ControllerResponse(h, key, c, seqNum, tid, scc, hostNQN, subNQN)) {
				t.Errorf("%v: host and controller responses agree; the role string must tell them apart", h)
			}
			for name, other := range map[string][]byte{
				"NQNs swapped": HostResponse(h, key, c, seqNum, tid, scc, subNQN, hostNQN),
				"seq":          HostResponse(h, key, c, seqNum+1, tid, scc, hostNQN, subNQN),
				"tid":          HostResponse(h, key, c, seqNum, tid+1, scc, hostNQN, subNQN),
				"scc":          HostResponse(h, key, c, seqNum, tid, scc^1, hostNQN, subNQN),
				"NUL moved":    HostResponse(h, key, c, seqNum, tid, scc, hostNQN+"n", subNQN[1:]),
			} {
				if bytes.Equal(r1, other) {
					t.Errorf("%v: changing the %s does not change the response", h, name)
				}
			}
		}
	}
	if HostResponse(0, nil, nil, 0, 0, 0, "", "") != nil || ControllerResponse(7, nil, nil, 0, 0, 0, "", "") != nil {
		t.Error("responses with an invalid hash are not nil")
	}
}

func TestDHAgree(t *testing.T) {
	for _, g := range allGroups {
		t.Run(g.String(), func(t *testing.T) {
			skipSlow(t, g)
			a, err := g.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			b, err := g.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []*DHKey{a, b} {
				if k.Group != g || len(k.Public) != g.Size() {
					t.Fatalf("key: group %v, %d-byte public value; want %v, %d", k.Group, len(k.Public), g, g.Size())
				}
				if k.x.Cmp(big.NewInt(1)) <= 0 || k.x.BitLen() > 512 {
					t.Errorf("private exponent has %d bits, want 2 <= x < 2^512", k.x.BitLen())
				}
				want := new(big.Int).Exp(big.NewInt(2), k.x, g.Prime())
				if new(big.Int).SetBytes(k.Public).Cmp(want) != 0 {
					t.Error("Public is not 2^x mod p")
				}
			}
			if bytes.Equal(a.Public, b.Public) {
				t.Error("two keys have the same public value")
			}
			sa, err := a.Shared(b.Public)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := b.Shared(a.Public)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sa, sb) || len(sa) != g.Size() {
				t.Errorf("shared secrets differ or have the wrong length (%d, %d bytes)", len(sa), len(sb))
			}
		})
	}
}

// exponentReader reads as one private exponent of value x, then EOF.
func exponentReader(x int64) io.Reader {
	b := make([]byte, exponentBytes)
	binary.BigEndian.PutUint64(b[exponentBytes-8:], uint64(x))
	return bytes.NewReader(b)
}

// Small values have leading zero bytes that Public and Shared must keep.
func TestDHPadding(t *testing.T) {
	for _, g := range allGroups {
		k, err := g.GenerateKey(exponentReader(2))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, g.Size())
		want[len(want)-1] = 4
		if !bytes.Equal(k.Public, want) {
			t.Errorf("%v: Public for x = 2 is %x, want 4 left-padded to %d bytes", g, k.Public, g.Size())
		}
		peer := make([]byte, g.Size())
		peer[len(peer)-1] = 3
		z, err := k.Shared(peer)
		want[len(want)-1] = 9
		if err != nil || !bytes.Equal(z, want) {
			t.Errorf("%v: Shared(3) with x = 2 is %x, %v; want 9 left-padded to %d bytes", g, z, err, g.Size())
		}
	}
}

func TestSharedRejects(t *testing.T) {
	for _, g := range allGroups {
		k, err := g.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		n := g.Size()
		p := g.Prime()
		val := func(v *big.Int) []byte { return v.FillBytes(make([]byte, n)) }
		for name, peer := range map[string][]byte{
			"0":     make([]byte, n),
			"1":     val(big.NewInt(1)),
			"p-1":   val(new(big.Int).Sub(p, big.NewInt(1))),
			"p":     val(p),
			"p+1":   val(new(big.Int).Add(p, big.NewInt(1))),
			"2^b-1": bytes.Repeat([]byte{0xff}, n),
		} {
			if _, err := k.Shared(peer); err == nil || !strings.Contains(err.Error(), "out of range") {
				t.Errorf("%v: Shared(%s) = %v, want an out of range error", g, name, err)
			}
		}
		for _, l := range []int{0, 1, n - 1, n + 1, 2 * n} {
			peer := make([]byte, l)
			if l > 0 {
				peer[l-1] = 2
			}
			if _, err := k.Shared(peer); err == nil {
				t.Errorf("%v: Shared of a %d-byte value succeeded", g, l)
			}
		}
		if _, err := k.Shared(nil); err == nil {
			t.Errorf("%v: Shared(nil) succeeded", g)
		}
		for name, peer := range map[string][]byte{"2": val(big.NewInt(2)), "p-2": val(new(big.Int).Sub(p, big.NewInt(2)))} {
			if _, err := k.Shared(peer); err != nil {
				t.Errorf("%v: Shared(%s): %v", g, name, err)
			}
		}
	}
}

// alwaysZero reads as an endless run of zero bytes.
type alwaysZero struct{}

func (alwaysZero) Read(b []byte) (int, error) { clear(b); return len(b), nil }

func TestDHErrors(t *testing.T) {
	for _, g := range []DHGroup{DHNull, 6, 255} {
		if k, err := g.GenerateKey(nil); err == nil || k != nil {
			t.Errorf("%v.GenerateKey succeeded", g)
		}
	}
	boom := errors.New("boom")
	if _, err := FFDHE2048.GenerateKey(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("GenerateKey with a failing reader: %v, want it to wrap the read error", err)
	}
	if _, err := FFDHE2048.GenerateKey(alwaysZero{}); err == nil {
		t.Error("GenerateKey with an all-zero source succeeded")
	}
	if _, err := FFDHE2048.GenerateKey(exponentReader(1)); err == nil {
		t.Error("GenerateKey with exponent 1 (then EOF) succeeded")
	}
	peer := make([]byte, 256)
	peer[255] = 2
	for name, k := range map[string]*DHKey{
		"nil":        nil,
		"zero":       {},
		"no private": {Group: FFDHE2048, Public: peer},
		"bad group":  {Group: 9, x: big.NewInt(5)},
		"null group": {Group: DHNull, x: big.NewInt(5)},
	} {
		if _, err := k.Shared(peer); err == nil {
			t.Errorf("%s key: Shared succeeded", name)
		}
	}
}

// The private exponent must not leak through fmt.
func TestKeyFormatHidesExponent(t *testing.T) {
	k, err := FFDHE2048.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%v|%+v|%#v|%v|%+v|%#v", k, k, k, *k, *k, *k)
	for _, s := range []string{k.x.String(), k.x.Text(16), strings.ToUpper(k.x.Text(16))} {
		if strings.Contains(out, s) {
			t.Fatalf("fmt output of a DHKey contains its private exponent: %s", out)
		}
	}
}

// BenchmarkDH measures one side of a connect's key exchange: a key and a
// shared secret.
func BenchmarkDH(b *testing.B) {
	for _, g := range allGroups {
		b.Run(g.String(), func(b *testing.B) {
			peer, err := g.GenerateKey(nil)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				k, err := g.GenerateKey(nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := k.Shared(peer.Public); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
