package nvmeof

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// authSeeds are valid DH-HMAC-CHAP messages, one of each kind.
func authSeeds() []AuthMessage {
	c := bytes.Repeat([]byte{0xC1}, 32)
	return []AuthMessage{
		// What the Linux host sends: SHA-256/384/512, NULL and ffdhe2048..8192.
		&AuthNegotiateMsg{TID: 7, NAPD: 1, Hashes: []uint8{1, 2, 3}, DHGroups: []uint8{0, 1, 2, 3, 4, 5}},
		&AuthChallengeMsg{TID: 7, HashID: 1, DHGroup: 1, Seq: 0x01020304, C: c, DHV: bytes.Repeat([]byte{0xD1}, 256)},
		&AuthChallengeMsg{TID: 8, HashID: 3, Seq: 1, C: bytes.Repeat([]byte{0xC2}, 64), DHV: []byte{}},
		&AuthReplyMsg{TID: 7, CValid: true, Seq: 9, R: bytes.Repeat([]byte{0xAA}, 32), C: bytes.Repeat([]byte{0xC3}, 32), DHV: bytes.Repeat([]byte{0xD2}, 256)},
		&AuthReplyMsg{TID: 7, R: bytes.Repeat([]byte{0xAB}, 48), C: make([]byte, 48), DHV: []byte{}},
		&AuthSuccess1Msg{TID: 7, HL: 32, RValid: true, R: bytes.Repeat([]byte{0xBB}, 32)},
		&AuthSuccess1Msg{TID: 7, HL: 64},
		&AuthSuccess2Msg{TID: 7},
		&AuthFailureMsg{TID: 7, ID: AuthFailure1, Reason: AuthFailReason, Explanation: AuthFailFailed},
		&AuthFailureMsg{TID: 7, ID: AuthFailure2, Reason: AuthFailReason, Explanation: AuthFailIncorrectMessage},
	}
}

func TestAuthMessageSizes(t *testing.T) {
	for _, tc := range []struct {
		m    AuthMessage
		size int
	}{
		// Sizes as the Linux host and target compute them (nvme-auth.h structs).
		{&AuthNegotiateMsg{Hashes: []uint8{1}, DHGroups: []uint8{0}}, 8 + 64},
		{&AuthChallengeMsg{C: make([]byte, 48), DHV: make([]byte, 384)}, 16 + 48 + 384},
		{&AuthReplyMsg{R: make([]byte, 64), DHV: make([]byte, 1024)}, 16 + 2*64 + 1024},
		{&AuthSuccess1Msg{HL: 32, RValid: true, R: make([]byte, 32)}, 16 + 32},
		{&AuthSuccess1Msg{HL: 32}, 16},
		{&AuthSuccess2Msg{}, 16},
		{&AuthFailureMsg{ID: AuthFailure1}, 8},
	} {
		if got := len(tc.m.Append(nil)); got != tc.size {
			t.Errorf("%T: %d bytes, want %d", tc.m, got, tc.size)
		}
	}
	if n := len((&AuthReplyMsg{R: make([]byte, 64), DHV: make([]byte, 1024)}).Append(nil)); n > AuthMaxLength {
		t.Errorf("largest reply %d bytes > AuthMaxLength %d", n, AuthMaxLength)
	}
}

func TestAuthNegotiateLayout(t *testing.T) {
	b := (&AuthNegotiateMsg{TID: 0x0102, Hashes: []uint8{1, 2, 3}, DHGroups: []uint8{0, 1, 5}}).Append(nil)
	want := make([]byte, 72)
	copy(want, []byte{0x00, 0x00, 0, 0, 0x02, 0x01, 0 /* SC_C */, 1 /* NAPD */})
	copy(want[8:], []byte{AuthIDDHCHAP, 0, 3, 3, 1, 2, 3})
	copy(want[8+4+30:], []byte{0, 1, 5})
	if !bytes.Equal(b, want) {
		t.Fatalf("negotiate\n% x\nwant\n% x", b, want)
	}
}

func TestAuthMessageRoundTrip(t *testing.T) {
	for _, m := range authSeeds() {
		b := m.Append(nil)
		// An Authentication Receive carries the message in AL bytes, zero padded.
		padded := append(bytes.Clone(b), make([]byte, 100)...)
		got, err := ParseAuthMessage(padded)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip\n%#v\n%#v", m, got)
		}
	}
}

func TestAuthMessageErrors(t *testing.T) {
	short := (&AuthChallengeMsg{C: make([]byte, 32), DHV: make([]byte, 256)}).Append(nil)
	wrongType := (&AuthSuccess2Msg{}).Append(nil)
	wrongType[0] = AuthTypeCommon
	noDesc := (&AuthNegotiateMsg{Hashes: []uint8{1}}).Append(nil)
	noDesc[8] = 0x02 // not DH-HMAC-CHAP
	longList := (&AuthNegotiateMsg{Hashes: []uint8{1}}).Append(nil)
	longList[10] = 31
	for name, b := range map[string][]byte{
		"empty":        nil,
		"truncated":    short[:len(short)-1],
		"wrong type":   wrongType,
		"unknown id":   {1, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"no protocol":  noDesc,
		"halen > 30":   longList,
		"napd 0":       {0, 0, 0, 0, 0, 0, 0, 0},
		"bad cvalid":   func() []byte { b := (&AuthReplyMsg{R: make([]byte, 32)}).Append(nil); b[8] = 2; return b }(),
		"short rvalid": (&AuthSuccess1Msg{HL: 32, RValid: true, R: make([]byte, 32)}).Append(nil)[:40],
	} {
		if _, err := ParseAuthMessage(b); !errors.Is(err, ErrAuthMessage) {
			t.Errorf("%s: err %v, want ErrAuthMessage", name, err)
		}
	}
}

func TestAuthCommand(t *testing.T) {
	var c SQE
	c.SetAuthReceive(4096)
	if c.Opcode() != OpFabrics || c.FCType() != FabricsAuthRecv || c.SECP() != AuthSECPDHCHAP || c.AuthLength() != 4096 {
		t.Fatalf("auth receive % x", c[:48])
	}
	if s0, s1 := c.SPSP(); s0 != 1 || s1 != 1 {
		t.Fatalf("SPSP %d %d", s0, s1)
	}
	c.SetAuthSend(72)
	if c.FCType() != FabricsAuthSend || c.AuthLength() != 72 {
		t.Fatalf("auth send % x", c[:48])
	}
}

// FuzzAuthMessage: an error or a message whose encoding parses to the same
// encoding again (extra descriptors of a Negotiate are dropped on encoding).
func FuzzAuthMessage(f *testing.F) {
	for _, m := range authSeeds() {
		f.Add(m.Append(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseAuthMessage(b)
		if err != nil {
			if !errors.Is(err, ErrAuthMessage) {
				t.Fatalf("error %v does not wrap ErrAuthMessage", err)
			}
			return
		}
		if m == nil {
			t.Fatal("nil message without an error")
		}
		enc := m.Append(nil)
		if len(enc) > len(b) {
			t.Fatalf("%T encodes to %d bytes from %d", m, len(enc), len(b))
		}
		m2, err := ParseAuthMessage(enc)
		if err != nil {
			t.Fatalf("re-parse of %T: %v", m, err)
		}
		if enc2 := m2.Append(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n% x\n% x", enc, enc2)
		}
	})
}
