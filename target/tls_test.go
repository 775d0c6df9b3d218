package target

import (
	"errors"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/nvmeof"
)

const (
	tlsHostNQN = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
	tlsSubNQN  = "nqn.2026-12.io.flashpath:tls"
)

// testPSK is a configured PSK of hash h with a fixed key.
func testPSK(t testing.TB, h dhchap.Hash) dhchap.PSK {
	t.Helper()
	k := make([]byte, h.Size())
	for i := range k {
		k[i] = byte(i * 7)
	}
	p, err := dhchap.ParsePSK(dhchap.PSK{Hash: h, Key: k}.String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseTLSIdentity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want TLSIdentity
		err  string
	}{
		{in: "NVMe0R01 " + tlsHostNQN + " " + tlsSubNQN, want: TLSIdentity{Version: 0, Hash: dhchap.SHA256, HostNQN: tlsHostNQN, SubNQN: tlsSubNQN}},
		{in: "NVMe1R02 " + tlsHostNQN + " " + tlsSubNQN + " abc=", want: TLSIdentity{Version: 1, Hash: dhchap.SHA384, HostNQN: tlsHostNQN, SubNQN: tlsSubNQN, Digest: "abc="}},
		{in: "NVMe0G01 " + tlsHostNQN + " " + tlsSubNQN, err: "secure channel concatenation"},
		{in: "NVMe2R01 " + tlsHostNQN + " " + tlsSubNQN, err: "version"},
		{in: "NVMe0R03 " + tlsHostNQN + " " + tlsSubNQN, err: "hash"},
		{in: "NVMe0R01 " + tlsHostNQN + " " + tlsSubNQN + " extra", err: "fields"},
		{in: "NVMe1R01 " + tlsHostNQN + " " + tlsSubNQN, err: "fields"},
		{in: "NVMe1R01 " + tlsHostNQN + " " + tlsSubNQN + " ", err: "digest"},
		{in: "NVMe0R01 host " + tlsSubNQN, err: "nqn."},
		{in: "client1", err: "not an NVMe/TCP identity"},
		{in: "", err: "not an NVMe/TCP identity"},
	} {
		got, err := ParseTLSIdentity(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseTLSIdentity(%q): %v, want an error saying %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("ParseTLSIdentity(%q): %v", tc.in, err)
		case tc.err == "" && (got != tc.want || got.String() != tc.in):
			t.Errorf("ParseTLSIdentity(%q) = %+v (%q), want %+v", tc.in, got, got.String(), tc.want)
		}
	}
}

// TestTLSKey: the target derives the key for identities of both versions
// from the configured PSK of the host on the subsystem, the discovery
// subsystem included, and refuses identities it cannot back.
func TestTLSKey(t *testing.T) {
	tgt := New(Options{Logger: quietLogger()})
	psk := testPSK(t, dhchap.SHA384)
	other := testPSK(t, dhchap.SHA256)
	if _, err := tgt.AddSubsystem(SubsystemConfig{NQN: tlsSubNQN, TLSKeys: map[string]dhchap.PSK{tlsHostNQN: psk}}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{tlsSubNQN, nvmeof.DiscoveryNQN} {
		for v := range 2 {
			id, want, err := psk.TLS(tlsHostNQN, sub, v)
			if err != nil {
				t.Fatal(err)
			}
			k, err := tgt.TLSKey(id)
			if err != nil {
				t.Fatalf("TLSKey(%q): %v", id, err)
			}
			if string(k.Key) != string(want) || k.Hash != dhchap.SHA384 || k.Identity.String() != id {
				t.Errorf("TLSKey(%q): key or hash %v not the host's", id, k.Hash)
			}
		}
	}
	// v1 with the digest of another key of the same hash.
	wrongDigest := func() string {
		p := testPSK(t, dhchap.SHA384)
		p.Key[0] ^= 1
		id, _, _ := p.TLS(tlsHostNQN, tlsSubNQN, 1)
		return id
	}()
	v0 := func(p dhchap.PSK, host, sub string) string {
		id, _, _ := p.TLS(host, sub, 0)
		return id
	}
	for _, tc := range []struct{ id, why string }{
		{wrongDigest, "digest"},
		{v0(other, tlsHostNQN, tlsSubNQN), "sha384 key"},
		{v0(psk, "nqn.2014-08.org.nvmexpress:uuid:other", tlsSubNQN), "no tls_key"},
		{v0(psk, tlsHostNQN, "nqn.2026-12.io.flashpath:none"), "not found"},
		{v0(psk, "nqn.2014-08.org.nvmexpress:uuid:other", nvmeof.DiscoveryNQN), "on no subsystem"},
		{"NVMe0G02 " + tlsHostNQN + " " + tlsSubNQN, "concatenation"},
	} {
		_, err := tgt.TLSKey(tc.id)
		if !errors.Is(err, ErrTLSIdentity) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("TLSKey(%q): %v, want ErrTLSIdentity saying %q", tc.id, err, tc.why)
		}
	}
}

// FuzzParseTLSIdentity: an error or an identity that prints back as the
// input and parses again to itself.
func FuzzParseTLSIdentity(f *testing.F) {
	f.Add("NVMe0R01 " + tlsHostNQN + " " + tlsSubNQN)
	f.Add("NVMe1R02 " + tlsHostNQN + " " + nvmeof.DiscoveryNQN + " OcGUubyANmb+RYeFT/H8zjqCVpNGpW/Ai4ctVuR1oyaB0LgrbB+mYwpQ7FU2JDHR")
	f.Add("NVMe0G01 nqn.a nqn.b")
	f.Add("NVMe1R01  nqn.a nqn.b x")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseTLSIdentity(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseTLSIdentity(%q).String() = %q", s, id.String())
		}
		again, err := ParseTLSIdentity(id.String())
		if err != nil || again != id {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}
