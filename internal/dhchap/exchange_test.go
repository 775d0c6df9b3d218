package dhchap

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
)

const (
	testHostNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"
	testSubNQN  = "nqn.2026-12.io.flashpath:auth"
)

func mustSecret(t testing.TB, h Hash) Secret {
	t.Helper()
	s, err := GenerateSecret(rand.Reader, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run plays a transaction between h and c the way the two ends' queues
// do, and returns the host's error.
func run(t testing.TB, h *Host, c *Controller) error {
	t.Helper()
	if c.Send(h.Negotiate()) {
		t.Fatal("negotiate was fatal")
	}
	reply, err := h.Challenge(c.Receive())
	if err != nil {
		return err
	}
	if c.Send(reply) {
		t.Fatal("reply was fatal")
	}
	next, err := h.Success1(c.Receive())
	if err != nil {
		if f := (*Failure)(nil); errors.As(err, &f) && !f.Remote {
			c.Send(h.Failure2(err))
		}
		return err
	}
	if next != nil && c.Send(next) {
		t.Fatal("success2 was fatal")
	}
	return nil
}

// TestTransaction: every hash with several DH groups, one way and both
// ways, with and without key transformation.
func TestTransaction(t *testing.T) {
	groups := []DHGroup{DHNull, FFDHE2048, FFDHE3072}
	if !testing.Short() {
		groups = append(groups, FFDHE4096, FFDHE6144, FFDHE8192)
	}
	for _, hash := range []Hash{SHA256, SHA384, SHA512} {
		for _, g := range groups {
			for _, bidi := range []bool{false, true} {
				key, ctrl := mustSecret(t, Hash(g)%4), mustSecret(t, hash)
				cc := ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, HostKey: key, CtrlKey: &ctrl, Choices: Choices{Hashes: []Hash{hash}, DHGroups: []DHGroup{g}}}
				hc := HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key}
				if bidi {
					hc.CtrlKey = &ctrl
				}
				c := NewController(cc)
				h := NewHost(hc, 5)
				if err := run(t, h, c); err != nil {
					t.Fatalf("%v %v bidi %v: %v", hash, g, bidi, err)
				}
				if !c.Authenticated() || !h.Done() {
					t.Fatalf("%v %v bidi %v: controller authenticated %v, host done %v", hash, g, bidi, c.Authenticated(), h.Done())
				}
				if gh, gg := h.Negotiation(); gh != hash || gg != g {
					t.Fatalf("negotiated %v %v, want %v %v", gh, gg, hash, g)
				}
			}
		}
	}
}

func TestPreference(t *testing.T) {
	key := mustSecret(t, SHA256)
	c := NewController(ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, HostKey: key})
	h := NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key, Choices: Choices{Hashes: []Hash{SHA256, SHA384}}}, 1)
	if err := run(t, h, c); err != nil {
		t.Fatal(err)
	}
	if hash, g := c.Negotiation(); hash != SHA384 || g != FFDHE2048 {
		t.Fatalf("controller chose %v %v, want sha384 (its first the host offers) and ffdhe2048", hash, g)
	}
}

func TestWrongKeys(t *testing.T) {
	key, ctrl := mustSecret(t, SHA256), mustSecret(t, SHA256)
	cfg := ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, HostKey: key, CtrlKey: &ctrl}

	// A host with another key is refused with Failure1 (failed).
	c := NewController(cfg)
	err := run(t, NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: mustSecret(t, SHA256)}, 1), c)
	var f *Failure
	if !errors.As(err, &f) || !f.Remote || f.Explanation != nvmeof.AuthFailFailed || c.Authenticated() {
		t.Fatalf("wrong host key: %v, authenticated %v", err, c.Authenticated())
	}
	if c.Err() == nil || !strings.Contains(c.Err().Error(), "does not match") {
		t.Fatalf("controller error %v", c.Err())
	}

	// The same key under another NQN is another key (transformation).
	c = NewController(cfg)
	if err := run(t, NewHost(HostConfig{HostNQN: testHostNQN + "x", SubNQN: testSubNQN, Key: key}, 1), c); err == nil {
		t.Fatal("a host claiming another NQN authenticated")
	}

	// A controller without the controller key the host expects: the host
	// refuses it and tells it (Failure2, fatal for the controller).
	c = NewController(cfg)
	other := mustSecret(t, SHA256)
	h := NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key, CtrlKey: &other}, 1)
	err = run(t, h, c)
	if !errors.As(err, &f) || f.Remote || c.Authenticated() {
		t.Fatalf("wrong controller key: %v, controller authenticated %v", err, c.Authenticated())
	}

	// No controller key configured, host asks for one: Failure1.
	c = NewController(ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, HostKey: key})
	err = run(t, NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key, CtrlKey: &ctrl}, 1), c)
	if !errors.As(err, &f) || !f.Remote || c.Authenticated() {
		t.Fatalf("no controller key: %v", err)
	}

	// No host key configured at all: nothing authenticates.
	c = NewController(ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN})
	if err := run(t, NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key}, 1), c); err == nil || c.Authenticated() {
		t.Fatalf("authenticated against a controller with no key: %v", err)
	}
}

func TestProtocolErrors(t *testing.T) {
	key := mustSecret(t, SHA256)
	cfg := ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, HostKey: key}
	expect := func(c *Controller, rce uint8) {
		t.Helper()
		m, err := nvmeof.ParseAuthMessage(c.Receive())
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := m.(*nvmeof.AuthFailureMsg); !ok || f.ID != nvmeof.AuthFailure1 || f.Explanation != rce {
			t.Fatalf("got %#v, want Failure1 %s", m, nvmeof.AuthFailName(rce))
		}
	}
	// Secure channel concatenation is not offered.
	c := NewController(cfg)
	c.Send((&nvmeof.AuthNegotiateMsg{TID: 1, SCC: 1, Hashes: []uint8{1}, DHGroups: []uint8{0}}).Append(nil))
	expect(c, nvmeof.AuthFailConcatMismatch)
	// No common DH group.
	c = NewController(ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, HostKey: key, Choices: Choices{DHGroups: []DHGroup{FFDHE8192}}})
	c.Send((&nvmeof.AuthNegotiateMsg{TID: 1, Hashes: []uint8{1}, DHGroups: []uint8{0, 1}}).Append(nil))
	expect(c, nvmeof.AuthFailDHGroupUnusable)
	// Garbage.
	c = NewController(cfg)
	c.Send([]byte{1, 2, 3})
	expect(c, nvmeof.AuthFailIncorrectPayload)
	// A reply from another transaction.
	c = NewController(cfg)
	h := NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key}, 7)
	c.Send(h.Negotiate())
	reply, err := h.Challenge(c.Receive())
	if err != nil {
		t.Fatal(err)
	}
	reply[4] = 8 // T_ID
	c.Send(reply)
	expect(c, nvmeof.AuthFailIncorrectPayload)
	// A DH value that is not in the group.
	c = NewController(cfg)
	h = NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key}, 7)
	c.Send(h.Negotiate())
	reply, _ = h.Challenge(c.Receive())
	m, _ := nvmeof.ParseAuthMessage(reply)
	r := m.(*nvmeof.AuthReplyMsg)
	r.DHV = bytes.Repeat([]byte{0xFF}, len(r.DHV))
	c.Send(r.Append(nil))
	expect(c, nvmeof.AuthFailDHGroupUnusable)
	// Success2 out of sequence is fatal, as on Linux nvmet.
	c = NewController(cfg)
	if !c.Send((&nvmeof.AuthSuccess2Msg{}).Append(nil)) {
		t.Fatal("success2 before anything was not fatal")
	}
	// Nothing to receive before a negotiation.
	if NewController(cfg).Receive() != nil {
		t.Fatal("a message before negotiate")
	}
}

// TestReauthentication: a second transaction on an authenticated queue
// succeeds; a failed one revokes the queue's authentication.
func TestReauthentication(t *testing.T) {
	key := mustSecret(t, SHA512)
	c := NewController(ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, HostKey: key})
	for i := range 2 {
		if err := run(t, NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key}, uint16(i)), c); err != nil || !c.Authenticated() {
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	if err := run(t, NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: mustSecret(t, SHA512)}, 3), c); err == nil || c.Authenticated() {
		t.Fatalf("failed re-authentication left the queue authenticated (%v)", err)
	}
}

// FuzzController feeds a controller a sequence of Authentication Sends
// and Receives: it never panics, and never authenticates a host that does
// not hold the key.
func FuzzController(f *testing.F) {
	key := mustSecret(f, SHA256)
	h := NewHost(HostConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, Key: key, Choices: Choices{DHGroups: []DHGroup{DHNull}}}, 1)
	f.Add(h.Negotiate(), []byte{0, 1, 0x10}, uint8(3))
	f.Add((&nvmeof.AuthSuccess2Msg{TID: 1}).Append(nil), []byte{}, uint8(1))
	f.Fuzz(func(t *testing.T, msg, tail []byte, ops uint8) {
		c := NewController(ControllerConfig{HostNQN: testHostNQN, SubNQN: testSubNQN, HostKey: key, Choices: Choices{DHGroups: []DHGroup{DHNull}}})
		for i := range int(ops % 8) {
			if i%2 == 0 {
				c.Send(append(msg, tail...))
			} else {
				c.Receive()
			}
			if c.Authenticated() {
				t.Fatal("authenticated without a response")
			}
		}
	})
}
