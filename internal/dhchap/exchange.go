package dhchap

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/flashpath/flashpath/nvmeof"
)

// The two ends of a DH-HMAC-CHAP transaction as state machines without I/O
// (NVMe Base 2.0 §8.13.5): the target's queue feeds Authentication Send
// payloads to a Controller and answers Authentication Receive with what it
// returns; the host drives a Host the same way. Each step returns the next
// message to send, so a transaction is a transcript, testable without a
// connection.

// DefaultHashes and DefaultDHGroups are the choices offered and accepted
// when none are configured, in order of preference. A controller picks
// the first of its list that the host offers. ffdhe2048 comes first among
// the groups because every queue of every connection pays for two
// exponentiations in it (see BenchmarkDH); NULL (no DH exchange) is
// accepted last, for hosts that offer nothing else.
var (
	DefaultHashes   = []Hash{SHA512, SHA384, SHA256}
	DefaultDHGroups = []DHGroup{FFDHE2048, FFDHE3072, FFDHE4096, FFDHE6144, FFDHE8192, DHNull}
)

// Failure is a transaction that failed: Explanation is the Failure1/2
// reason (nvmeof.AuthFail*), Remote says whether the peer reported it.
type Failure struct {
	Explanation uint8
	Remote      bool
	Detail      string
}

func (f *Failure) Error() string {
	who := "local"
	if f.Remote {
		who = "peer"
	}
	s := fmt.Sprintf("DH-HMAC-CHAP failed (%s: %s)", who, nvmeof.AuthFailName(f.Explanation))
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

func fail(rce uint8, format string, args ...any) *Failure {
	return &Failure{Explanation: rce, Detail: fmt.Sprintf(format, args...)}
}

// Choices are the hashes and DH groups one end offers (host) or accepts
// (controller), in order of preference, and its source of randomness.
type Choices struct {
	Hashes   []Hash    // nil: DefaultHashes
	DHGroups []DHGroup // nil: DefaultDHGroups
	Rand     io.Reader // nil: crypto/rand
}

func (c Choices) withDefaults() Choices {
	if c.Hashes == nil {
		c.Hashes = DefaultHashes
	}
	if c.DHGroups == nil {
		c.DHGroups = DefaultDHGroups
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	return c
}

// ControllerConfig configures the controller's side for one host.
type ControllerConfig struct {
	HostNQN, SubNQN string
	HostKey         Secret  // the host proves it holds this
	CtrlKey         *Secret // the controller proves it holds this when the host asks; nil: it cannot
	Choices
}

// Controller steps (what the next Authentication command must be).
const (
	stepNegotiate = iota // Send: Negotiate
	stepChallenge        // Receive: Challenge
	stepReply            // Send: Reply
	stepSuccess1         // Receive: Success1
	stepSuccess2         // Send: Success2 (bidirectional) or Failure2
	stepFailure1         // Receive: Failure1
)

// Controller is the controller's side of DH-HMAC-CHAP on one queue.
type Controller struct {
	cfg  ControllerConfig
	step int
	tid  uint16
	auth bool // the queue may run other commands
	wins int  // transactions that succeeded
	err  *Failure

	hash  Hash
	group DHGroup
	dh    *DHKey
	s1    uint32
	c1    []byte
	c2    []byte // the host's challenge, nil when unidirectional
	s2    uint32
	sess  []byte
}

// NewController returns a controller side that has not authenticated the host.
func NewController(cfg ControllerConfig) *Controller {
	cfg.Choices = cfg.withDefaults()
	return &Controller{cfg: cfg}
}

// SetKeys replaces the secrets from the next transaction on: a key
// rotated while the queue is connected applies when the host
// re-authenticates.
func (c *Controller) SetKeys(host Secret, ctrl *Secret) {
	c.cfg.HostKey, c.cfg.CtrlKey = host, ctrl
}

// Authenticated reports whether the host has authenticated (and, when it
// asked, accepted the controller's response).
func (c *Controller) Authenticated() bool { return c.auth }

// Successes counts the transactions that succeeded (re-authentications
// included).
func (c *Controller) Successes() int { return c.wins }

// Err is the last failure, for the log: nil when none.
func (c *Controller) Err() error {
	if c.err == nil {
		return nil
	}
	return c.err
}

// Negotiation reports the hash and DH group of the last negotiation.
func (c *Controller) Negotiation() (Hash, DHGroup) { return c.hash, c.group }

// ExpectSend reports whether the next command must be an Authentication
// Send (true) or Receive (false).
func (c *Controller) ExpectSend() bool {
	return c.step == stepNegotiate || c.step == stepReply || c.step == stepSuccess2
}

// Send takes the payload of an Authentication Send. fatal reports a
// Failure2 from the host or a message out of sequence after the host
// authenticated: the controller must be torn down (as Linux nvmet does).
func (c *Controller) Send(b []byte) (fatal bool) {
	m, err := nvmeof.ParseAuthMessage(b)
	if err != nil {
		c.failed(fail(nvmeof.AuthFailIncorrectPayload, "%v", err))
		return false
	}
	if n, ok := m.(*nvmeof.AuthNegotiateMsg); ok {
		// A negotiation (re)starts a transaction at any step.
		c.tid = n.TID
		c.negotiate(n)
		return false
	}
	if m.Transaction() != c.tid {
		c.failed(fail(nvmeof.AuthFailIncorrectPayload, "transaction %d, expected %d", m.Transaction(), c.tid))
		return false
	}
	switch m := m.(type) {
	case *nvmeof.AuthReplyMsg:
		if c.step != stepReply {
			break
		}
		c.reply(m)
		return false
	case *nvmeof.AuthSuccess2Msg:
		if c.step != stepSuccess2 {
			break
		}
		c.auth, c.step = true, stepNegotiate
		c.wins++
		c.forget()
		return false
	case *nvmeof.AuthFailureMsg:
		if m.ID == nvmeof.AuthFailure2 {
			c.err = &Failure{Explanation: m.Explanation, Remote: true, Detail: "the host rejected the controller's response"}
			c.auth, c.step = false, stepNegotiate
			c.forget()
			return true
		}
	}
	c.err = fail(nvmeof.AuthFailIncorrectMessage, "AUTH_ID %#x out of sequence", m.AuthID())
	c.auth, c.step = false, stepNegotiate
	c.forget()
	return true
}

func (c *Controller) failed(f *Failure) {
	c.err, c.auth, c.step = f, false, stepFailure1
	c.forget()
}

func (c *Controller) forget() {
	c.dh, c.c1, c.c2, c.sess = nil, nil, nil, nil
}

func (c *Controller) negotiate(n *nvmeof.AuthNegotiateMsg) {
	if n.SCC != 0 {
		c.failed(fail(nvmeof.AuthFailConcatMismatch, "secure channel concatenation %d is not supported", n.SCC))
		return
	}
	c.hash, c.group = 0, 0
	i := slices.IndexFunc(c.cfg.Hashes, func(h Hash) bool { return slices.Contains(n.Hashes, uint8(h)) })
	if i < 0 {
		c.failed(fail(nvmeof.AuthFailHashUnusable, "host offers hashes %v, the target accepts %v", n.Hashes, c.cfg.Hashes))
		return
	}
	c.hash = c.cfg.Hashes[i]
	i = slices.IndexFunc(c.cfg.DHGroups, func(g DHGroup) bool { return slices.Contains(n.DHGroups, uint8(g)) })
	if i < 0 {
		c.failed(fail(nvmeof.AuthFailDHGroupUnusable, "host offers DH groups %v, the target accepts %v", n.DHGroups, c.cfg.DHGroups))
		return
	}
	c.group = c.cfg.DHGroups[i]
	c.step = stepChallenge
}

// Receive returns the message for an Authentication Receive, or nil when
// none is due (the command fails with Command Sequence Error).
func (c *Controller) Receive() []byte {
	switch c.step {
	case stepChallenge:
		m := &nvmeof.AuthChallengeMsg{TID: c.tid, HashID: uint8(c.hash), DHGroup: uint8(c.group)}
		c.c1 = make([]byte, c.hash.Size())
		if _, err := io.ReadFull(c.cfg.Rand, c.c1); err != nil {
			c.failed(fail(nvmeof.AuthFailFailed, "random challenge: %v", err))
			return c.Receive()
		}
		c.s1 = nonzeroSeq(c.cfg.Rand)
		m.C, m.Seq = c.c1, c.s1
		if c.group != DHNull {
			k, err := c.group.GenerateKey(c.cfg.Rand)
			if err != nil {
				c.failed(fail(nvmeof.AuthFailFailed, "DH key: %v", err))
				return c.Receive()
			}
			c.dh, m.DHV = k, k.Public
		}
		c.step = stepReply
		return m.Append(nil)
	case stepSuccess1:
		m := &nvmeof.AuthSuccess1Msg{TID: c.tid, HL: uint8(c.hash.Size())}
		if c.c2 != nil {
			key := c.cfg.CtrlKey.Transform(c.cfg.SubNQN)
			m.RValid = true
			m.R = ControllerResponse(c.hash, key, c.augment(c.c2), c.s2, c.tid, 0, c.cfg.SubNQN, c.cfg.HostNQN)
			c.step = stepSuccess2
		} else {
			c.step = stepNegotiate
			c.forget()
		}
		return m.Append(nil)
	case stepFailure1:
		c.step = stepNegotiate
		return (&nvmeof.AuthFailureMsg{TID: c.tid, ID: nvmeof.AuthFailure1, Reason: nvmeof.AuthFailReason, Explanation: c.err.Explanation}).Append(nil)
	}
	return nil
}

func (c *Controller) augment(ch []byte) []byte {
	if c.sess == nil {
		return ch
	}
	return Augment(c.hash, c.sess, ch)
}

func (c *Controller) reply(m *nvmeof.AuthReplyMsg) {
	hl := c.hash.Size()
	if len(m.R) != hl {
		c.failed(fail(nvmeof.AuthFailIncorrectPayload, "HL %d, the negotiated %v has %d", len(m.R), c.hash, hl))
		return
	}
	if (c.dh == nil) != (len(m.DHV) == 0) {
		c.failed(fail(nvmeof.AuthFailIncorrectPayload, "DH value of %d bytes with group %v", len(m.DHV), c.group))
		return
	}
	if c.dh != nil {
		s, err := c.dh.Shared(m.DHV)
		if err != nil {
			c.failed(fail(nvmeof.AuthFailDHGroupUnusable, "host DH value: %v", err))
			return
		}
		c.sess = s
	}
	if len(c.cfg.HostKey.Key) == 0 {
		c.failed(fail(nvmeof.AuthFailFailed, "no DH-HMAC-CHAP key is configured for host %s on this subsystem", c.cfg.HostNQN))
		return
	}
	key := c.cfg.HostKey.Transform(c.cfg.HostNQN)
	want := HostResponse(c.hash, key, c.augment(c.c1), c.s1, c.tid, 0, c.cfg.HostNQN, c.cfg.SubNQN)
	if !hmac.Equal(want, m.R) {
		c.failed(fail(nvmeof.AuthFailFailed, "the host's response does not match its key (is the host's dhchap secret the one configured for it?)"))
		return
	}
	if m.CValid {
		if c.cfg.CtrlKey == nil {
			c.failed(fail(nvmeof.AuthFailFailed, "the host asks the controller to authenticate, but no controller key is configured for it (dhchap_ctrl_key)"))
			return
		}
		if m.Seq == 0 {
			c.failed(fail(nvmeof.AuthFailIncorrectPayload, "bidirectional reply with sequence number 0"))
			return
		}
		c.c2, c.s2 = slices.Clone(m.C), m.Seq
	} else {
		c.c2 = nil
		c.auth = true
		c.wins++
	}
	c.err = nil
	c.step = stepSuccess1
}

// nonzeroSeq returns a nonzero sequence number.
func nonzeroSeq(r io.Reader) uint32 {
	var b [4]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 1
		}
		if v := binary.LittleEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

// HostConfig configures the host's side.
type HostConfig struct {
	HostNQN, SubNQN string
	Key             Secret
	CtrlKey         *Secret // set: the controller must prove it holds this (bidirectional)
	Choices
}

// Host is the host's side of one transaction.
type Host struct {
	cfg   HostConfig
	tid   uint16
	hash  Hash
	group DHGroup
	sess  []byte
	c2    []byte
	s2    uint32
	done  bool
}

// NewHost starts a transaction with identifier tid.
func NewHost(cfg HostConfig, tid uint16) *Host {
	cfg.Choices = cfg.withDefaults()
	return &Host{cfg: cfg, tid: tid}
}

// Negotiation reports the hash and DH group the controller chose.
func (h *Host) Negotiation() (Hash, DHGroup) { return h.hash, h.group }

// Negotiate is the first message.
func (h *Host) Negotiate() []byte {
	m := &nvmeof.AuthNegotiateMsg{TID: h.tid, NAPD: 1}
	for _, x := range h.cfg.Hashes {
		m.Hashes = append(m.Hashes, uint8(x))
	}
	for _, g := range h.cfg.DHGroups {
		m.DHGroups = append(m.DHGroups, uint8(g))
	}
	return m.Append(nil)
}

// receive parses a controller message, turning Failure1 into an error.
func (h *Host) receive(b []byte, id uint8) (nvmeof.AuthMessage, error) {
	m, err := nvmeof.ParseAuthMessage(b)
	if err != nil {
		return nil, fail(nvmeof.AuthFailIncorrectPayload, "%v", err)
	}
	if f, ok := m.(*nvmeof.AuthFailureMsg); ok && f.ID == nvmeof.AuthFailure1 {
		return nil, &Failure{Explanation: f.Explanation, Remote: true, Detail: "the target refused the host's credentials"}
	}
	if m.AuthID() != id {
		return nil, fail(nvmeof.AuthFailIncorrectMessage, "AUTH_ID %#x, expected %#x", m.AuthID(), id)
	}
	if m.Transaction() != h.tid {
		return nil, fail(nvmeof.AuthFailIncorrectMessage, "transaction %d, expected %d", m.Transaction(), h.tid)
	}
	return m, nil
}

// Challenge answers the controller's challenge with a Reply. On an error
// the host should send Failure2 (see Failure2) and give up.
func (h *Host) Challenge(b []byte) ([]byte, error) {
	mm, err := h.receive(b, nvmeof.AuthChallenge)
	if err != nil {
		return nil, err
	}
	m := mm.(*nvmeof.AuthChallengeMsg)
	h.hash, h.group = Hash(m.HashID), DHGroup(m.DHGroup)
	if !slices.Contains(h.cfg.Hashes, h.hash) || len(m.C) != h.hash.Size() {
		return nil, fail(nvmeof.AuthFailHashUnusable, "hash %v with HL %d was not offered", h.hash, len(m.C))
	}
	if !slices.Contains(h.cfg.DHGroups, h.group) {
		return nil, fail(nvmeof.AuthFailDHGroupUnusable, "DH group %v was not offered", h.group)
	}
	reply := &nvmeof.AuthReplyMsg{TID: h.tid}
	if h.group != DHNull {
		k, err := h.group.GenerateKey(h.cfg.Rand)
		if err != nil {
			return nil, fail(nvmeof.AuthFailFailed, "DH key: %v", err)
		}
		s, err := k.Shared(m.DHV)
		if err != nil {
			return nil, fail(nvmeof.AuthFailDHGroupUnusable, "controller DH value: %v", err)
		}
		h.sess, reply.DHV = s, k.Public
	} else if len(m.DHV) != 0 {
		return nil, fail(nvmeof.AuthFailIncorrectPayload, "DH value with the NULL group")
	}
	key := h.cfg.Key.Transform(h.cfg.HostNQN)
	reply.R = HostResponse(h.hash, key, h.augment(m.C), m.Seq, h.tid, 0, h.cfg.HostNQN, h.cfg.SubNQN)
	reply.C = make([]byte, h.hash.Size())
	if h.cfg.CtrlKey != nil {
		if _, err := io.ReadFull(h.cfg.Rand, reply.C); err != nil {
			return nil, fail(nvmeof.AuthFailFailed, "random challenge: %v", err)
		}
		h.c2, h.s2 = reply.C, nonzeroSeq(h.cfg.Rand)
		reply.CValid, reply.Seq = true, h.s2
	}
	return reply.Append(nil), nil
}

func (h *Host) augment(ch []byte) []byte {
	if h.sess == nil {
		return ch
	}
	return Augment(h.hash, h.sess, ch)
}

// Success1 checks the controller's verdict. It returns the Success2 to
// send when the controller authenticated itself, nil when there is
// nothing more to send, or an error (then send Failure2 if the error is
// not Remote).
func (h *Host) Success1(b []byte) ([]byte, error) {
	mm, err := h.receive(b, nvmeof.AuthSuccess1)
	if err != nil {
		return nil, err
	}
	m := mm.(*nvmeof.AuthSuccess1Msg)
	if int(m.HL) != h.hash.Size() {
		return nil, fail(nvmeof.AuthFailHashUnusable, "success1 HL %d, the negotiated %v has %d", m.HL, h.hash, h.hash.Size())
	}
	if h.c2 == nil {
		h.done = true
		return nil, nil
	}
	if !m.RValid {
		return nil, fail(nvmeof.AuthFailFailed, "the controller did not answer the host's challenge")
	}
	key := h.cfg.CtrlKey.Transform(h.cfg.SubNQN)
	want := ControllerResponse(h.hash, key, h.augment(h.c2), h.s2, h.tid, 0, h.cfg.SubNQN, h.cfg.HostNQN)
	if !hmac.Equal(want, m.R) {
		return nil, fail(nvmeof.AuthFailFailed, "the controller's response does not match the controller key: this target does not hold the expected key")
	}
	h.done = true
	return (&nvmeof.AuthSuccess2Msg{TID: h.tid}).Append(nil), nil
}

// Done reports whether the transaction succeeded.
func (h *Host) Done() bool { return h.done }

// Failure2 is the message that tells the controller the host gave up
// because of err.
func (h *Host) Failure2(err error) []byte {
	rce := uint8(nvmeof.AuthFailFailed)
	var f *Failure
	if errors.As(err, &f) {
		rce = f.Explanation
	}
	return (&nvmeof.AuthFailureMsg{TID: h.tid, ID: nvmeof.AuthFailure2, Reason: nvmeof.AuthFailReason, Explanation: rce}).Append(nil)
}
