package target

import (
	"crypto/rand"
	"testing"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/nvmeof"
)

// authTarget is a target whose subsystem testNQN admits hostA only with
// DH-HMAC-CHAP, and hostA's key.
func authTarget(t *testing.T) (*Target, dhchap.Secret) {
	t.Helper()
	tgt := newTestTarget(t)
	key, err := dhchap.GenerateSecret(rand.Reader, dhchap.SHA256, 0)
	if err != nil {
		t.Fatal(err)
	}
	ss := addSubsys(t, tgt, testNQN, hostA)
	ss.SetHosts(false, nil, map[string]HostKeys{hostA: {Key: key}})
	return tgt, key
}

// authSendSQE is an Authentication Send of n bytes in the capsule.
func authSendSQE(n int) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetAuthSend(uint32(n))
	sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, uint32(n))
	return sqe
}

// authRecvSQE is an Authentication Receive of AuthMaxLength bytes.
func authRecvSQE() nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetAuthReceive(nvmeof.AuthMaxLength)
	sqe.SGL().SetDataBlock(nvmeof.SGLTransport, 0, nvmeof.AuthMaxLength)
	return sqe
}

// authenticate runs a host's side of DH-HMAC-CHAP against p's queue.
func authenticate(t *testing.T, p *peer, h *dhchap.Host) error {
	t.Helper()
	send := func(msg []byte) { p.ok(authSendSQE(len(msg)), msg) }
	recv := func() []byte { return p.ok(authRecvSQE(), make([]byte, nvmeof.AuthMaxLength)).Data }
	send(h.Negotiate())
	reply, err := h.Challenge(recv())
	if err != nil {
		return err
	}
	send(reply)
	next, err := h.Success1(recv())
	if err != nil {
		return err
	}
	if next != nil {
		send(next)
	}
	return nil
}

// TestAuthKeepAlivePaused: the keep-alive timer does not run while the
// admin queue authenticates (the host cannot send Keep Alive before it
// has, and a DH exchange can outlast a short KATO), and runs once it has.
func TestAuthKeepAlivePaused(t *testing.T) {
	tgt, key := authTarget(t)
	p := newPeer(t, tgt)
	r := p.ok(connectSQE(0, 31, 60000), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
	if r.Rsp.DW0()&nvmeof.ConnectAuthATR == 0 {
		t.Fatalf("connect DW0 %#x without ATR", r.Rsp.DW0())
	}
	p.want(nvmeof.StatusAuthRequired, propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(true))), nil)
	c := p.q.Controller()
	c.mu.Lock()
	running := c.kaTimer.Stop()
	c.mu.Unlock()
	if running {
		t.Fatal("keep-alive timer running before the admin queue authenticated")
	}
	h := dhchap.NewHost(dhchap.HostConfig{HostNQN: hostA, SubNQN: testNQN, Key: key}, 1)
	if err := authenticate(t, p, h); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	running = c.kaTimer.Stop()
	c.mu.Unlock()
	if !running {
		t.Fatal("keep-alive timer not running after authentication")
	}
	p.ok(propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(true))), nil)
	if n := tgt.Stats.Authentications.Load(); n != 1 {
		t.Fatalf("%d authentications counted", n)
	}
}

// TestAuthAttemptsBounded: a host that keeps restarting transactions
// without finishing one (each challenge costs the target a DH
// exponentiation) is cut off after a few.
func TestAuthAttemptsBounded(t *testing.T) {
	tgt, key := authTarget(t)
	p := newPeer(t, tgt)
	p.ok(connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
	neg := dhchap.NewHost(dhchap.HostConfig{HostNQN: hostA, SubNQN: testNQN, Key: key}, 1).Negotiate()
	send, recv := authSendSQE(len(neg)), authRecvSQE()
	for i := range maxAuthFailures {
		if r := p.ok(send, neg); r.CloseAfter != nil {
			t.Fatalf("attempt %d closes the connection", i+1)
		}
		m, err := nvmeof.ParseAuthMessage(p.ok(recv, make([]byte, nvmeof.AuthMaxLength)).Data)
		if err != nil || m.AuthID() != nvmeof.AuthChallenge {
			t.Fatalf("attempt %d: %v %v", i+1, m, err)
		}
	}
	if r := p.want(nvmeof.StatusAuthRequired, send, neg); r.CloseAfter == nil {
		t.Fatal("one attempt too many, and the connection stays")
	}
}
