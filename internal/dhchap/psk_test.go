package dhchap

import (
	"bytes"
	"strings"
	"testing"
)

// Known answers from nvme-cli 2.13 / libnvme 1.13 (the trixie lab guest):
// `nvme gen-tls-key --hostnqn H --subsysnqn S --secret 000102... --hmac N
// --identity 1 --insert` printed the interchange string and put the key in
// the .nvme keyring under the identity below (keyctl show %:.nvme); the
// digest in it is an HMAC under the retained PSK, so it checks the
// retained PSK's derivation too.
const (
	pskHost = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
	pskSub  = "nqn.2026-12.io.flashpath:tls"
)

func TestPSKKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		hash     Hash
		key      []byte
		text     string
		identity string // version 1
	}{
		{SHA256, seq(32), "NVMeTLSkey-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:",
			"NVMe1R01 " + pskHost + " " + pskSub + " kRnkLOxj8zEVOG/Uo8kHipMcilYhVsZErHNP3+TNdps="},
		{SHA384, seq(48), "NVMeTLSkey-1:02:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vcSEgBQ==:",
			"NVMe1R02 " + pskHost + " " + pskSub + " 47SBnIbB2gEzZJInN2/8KmJPwVM5kbBizP6a/8XCgY+ccvNbn+6rzCCIMbC7RNT4"},
	} {
		p := PSK{Hash: tc.hash, Key: tc.key}
		if got := p.String(); got != tc.text {
			t.Errorf("%v: String %q, want %q", tc.hash, got, tc.text)
		}
		q, err := ParsePSK(tc.text)
		if err != nil || q.Hash != tc.hash || !bytes.Equal(q.Key, tc.key) {
			t.Fatalf("%v: ParsePSK: %+v, %v", tc.hash, q, err)
		}
		id, key, err := p.TLS(pskHost, pskSub, 1)
		if err != nil || id != tc.identity || len(key) != tc.hash.Size() {
			t.Errorf("%v: identity %q (%d-byte key, %v), want %q", tc.hash, id, len(key), err, tc.identity)
		}
		id0, key0, _ := p.TLS(pskHost, pskSub, 0)
		if want := "NVMe0R0" + string('0'+byte(tc.hash)) + " " + pskHost + " " + pskSub; id0 != want {
			t.Errorf("%v: version 0 identity %q, want %q", tc.hash, id0, want)
		}
		if bytes.Equal(key0, key) {
			t.Errorf("%v: version 0 and 1 give the same TLS PSK", tc.hash)
		}
	}
}

func TestParsePSKErrors(t *testing.T) {
	good := PSK{Hash: SHA256, Key: seq(32)}.String()
	for name, s := range map[string]string{
		"wrong prefix":        strings.Replace(good, "NVMeTLSkey-1", "DHHC-1", 1),
		"hash 03":             PSK{Hash: SHA512, Key: seq(64)}.String(),
		"length for the hash": PSK{Hash: SHA384, Key: seq(32)}.String(),
		"bad crc":             good[:20] + "B" + good[21:],
		"64 bytes":            PSK{Key: seq(64)}.String(),
	} {
		_, err := ParsePSK(s)
		if err == nil || !strings.Contains(err.Error(), "nvme gen-tls-key") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if p, err := ParsePSK(PSK{Key: seq(48)}.String()); err != nil || p.Cipher() != SHA384 || !bytes.Equal(p.Retained(pskHost), seq(48)) {
		t.Errorf("hash 00: %+v %v", p, err)
	}
}

func FuzzParsePSK(f *testing.F) {
	f.Add(PSK{Hash: SHA256, Key: seq(32)}.String())
	f.Add(PSK{Hash: SHA384, Key: seq(48)}.String())
	f.Add("NVMeTLSkey-1:00:AAAA:")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePSK(s)
		if err != nil {
			return
		}
		q, err := ParsePSK(p.String())
		if err != nil || q.Hash != p.Hash || !bytes.Equal(q.Key, p.Key) {
			t.Fatalf("round trip %q: %+v %v", s, q, err)
		}
		if _, _, err := p.TLS("h", "s", 1); err != nil {
			t.Fatal(err)
		}
	})
}
