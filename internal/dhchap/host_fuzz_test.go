package dhchap

import (
	"io"
	"math/rand/v2"
	"testing"
)

// hostFuzzRand is FuzzHost's randomness: the same bytes in every run, so
// that the keys are the same and a host's DH key, challenge and sequence
// number are those of the host that recorded the seeds. A recorded
// Challenge and Success1 then complete the transaction again, and an
// input that fails fails again.
func hostFuzzRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func hostFuzzSecret(tb testing.TB, h Hash, seed byte) Secret {
	tb.Helper()
	s, err := GenerateSecret(hostFuzzRand(seed), h, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// hostFuzzHost is FuzzHost's host for sel: bit 0 set, bidirectional (with
// the controller key); sel>>1 an FFDHE group up to ffdhe3072 offers that
// group and the NULL group, anything else the NULL group and ffdhe2048.
func hostFuzzHost(sel uint8, key, ckey Secret) *Host {
	var ck *Secret
	if sel&1 != 0 {
		ck = &ckey
	}
	groups := []DHGroup{DHNull, FFDHE2048}
	if g := DHGroup(sel >> 1); g.Valid() && g != DHNull && g <= FFDHE3072 {
		groups = []DHGroup{g, DHNull}
	}
	return NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key, CtrlKey: ck,
		Choices: Choices{DHGroups: groups, Rand: hostFuzzRand(3)}}, 1)
}

// FuzzHost feeds the host's side (what the initiator runs against a target
// it does not yet trust) an arbitrary Challenge and Success1: an error or
// the next message, never a panic; with a controller key, the host never
// calls the transaction done unless the controller proved the key. The
// seeds, recorded here against our controller, complete the transaction
// (checked below), with and without DH and a controller key.
func FuzzHost(f *testing.F) {
	key, ckey := hostFuzzSecret(f, SHA256, 1), hostFuzzSecret(f, SHA384, 2)
	for _, g := range []DHGroup{DHNull, FFDHE2048} {
		for _, bidi := range []uint8{0, 1} {
			sel := bidi | uint8(g)<<1
			var ck *Secret
			if bidi != 0 {
				ck = &ckey
			}
			c := NewController(ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, HostKey: key, CtrlKey: ck,
				Choices: Choices{DHGroups: []DHGroup{g}, Rand: hostFuzzRand(4)}})
			h := hostFuzzHost(sel, key, ckey)
			c.Send(h.Negotiate())
			ch := c.Receive()
			reply, err := h.Challenge(ch)
			if err != nil {
				f.Fatal(err)
			}
			c.Send(reply)
			s1 := c.Receive()
			// Played again to a new host, the recording completes.
			h = hostFuzzHost(sel, key, ckey)
			if _, err := h.Challenge(ch); err != nil {
				f.Fatalf("group %v, bidirectional %d: the recorded challenge: %v", g, bidi, err)
			}
			if next, err := h.Success1(s1); err != nil || !h.Done() || (next != nil) != (bidi != 0) {
				f.Fatalf("group %v, bidirectional %d: the recorded success1: %x, %v (done %v)", g, bidi, next, err, h.Done())
			}
			f.Add(sel, ch, s1)
		}
	}
	f.Fuzz(func(t *testing.T, sel uint8, challenge, success1 []byte) {
		h := hostFuzzHost(sel, key, ckey)
		if _, err := h.Challenge(challenge); err != nil {
			_ = h.Failure2(err)
			return
		}
		next, err := h.Success1(success1)
		if err != nil {
			_ = h.Failure2(err)
			return
		}
		if sel&1 != 0 && (next == nil || !h.Done()) {
			t.Fatalf("bidirectional: Success1 accepted without a Success2 (done %v)", h.Done())
		}
	})
}
