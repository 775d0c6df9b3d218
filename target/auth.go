package target

import (
	"errors"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/nvmeof"
)

// In-band authentication (DH-HMAC-CHAP, NVMe Base 2.0 §8.13.5). A host
// with keys on a subsystem must authenticate every queue it connects:
// Connect answers with ATR set in DW0, and until the transaction succeeds
// the queue runs nothing but Authentication Send/Receive (everything else
// fails with Authentication Required), as on Linux nvmet and SPDK.

// HostKeys are one host's DH-HMAC-CHAP secrets on a subsystem (nvmet's
// hosts/NQN/dhchap_key and dhchap_ctrl_key; SPDK's nvmf_subsystem_add_host
// --dhchap-key and --dhchap-ctrlr-key).
type HostKeys struct {
	Key     dhchap.Secret  // the host must prove it holds this
	CtrlKey *dhchap.Secret // the target proves it holds this when the host asks
}

// maxAuthFailures is how many failed transactions a queue may have, and
// how many it may start before it has authenticated, before the target
// drops its connection: each costs the target a DH exponentiation, so a
// host cannot make it spin on wrong keys.
const maxAuthFailures = 3

// startAuth readies q's side of DH-HMAC-CHAP for the host's keys (none:
// the host is not asked to authenticate, and a transaction it starts
// anyway fails).
func (q *Queue) startAuth(subNQN, hostNQN string, keys *HostKeys) {
	var k HostKeys
	if keys != nil {
		k = *keys
	}
	q.authRequired = keys != nil
	q.auth = dhchap.NewController(dhchap.ControllerConfig{
		HostNQN: hostNQN, SubNQN: subNQN,
		HostKey: k.Key, CtrlKey: k.CtrlKey,
		Choices: dhchap.Choices{Hashes: q.t.opts.AuthHashes, DHGroups: q.t.opts.AuthDHGroups},
	})
	q.setAuthInfo()
}

// authenticated reports whether the queue may run commands other than
// authentication.
func (q *Queue) authenticated() bool { return !q.authRequired || q.auth.Authenticated() }

// Ready reports whether the queue connected and, where it must,
// authenticated: it can run commands.
func (q *Queue) Ready() bool { return q.connected && q.authenticated() }

// admitAuth checks an Authentication Send or Receive before its data
// buffer is taken.
func (q *Queue) admitAuth(r *Request, dlen uint64) nvmeof.Status {
	if !q.connected {
		return nvmeof.StatusCommandSequenceError | nvmeof.StatusDNR
	}
	n := uint64(r.Cmd.AuthLength())
	if n == 0 || n > nvmeof.AuthMaxLength || dlen != n {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	}
	return nvmeof.StatusSuccess
}

// execAuth runs an Authentication Send or Receive.
func (q *Queue) execAuth(r *Request) nvmeof.Status {
	if st := q.admitAuth(r, uint64(len(r.Data))); !st.OK() {
		return st
	}
	if s0, s1 := r.Cmd.SPSP(); r.Cmd.SECP() != nvmeof.AuthSECPDHCHAP || s0 != nvmeof.AuthSPSP || s1 != nvmeof.AuthSPSP {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	}
	a := q.auth
	wins := a.Successes()
	defer func() {
		if a.Successes() > wins {
			if q.id == 0 {
				q.ctrl.keepAliveSeen() // paused while the admin queue authenticated
			}
			h, g := a.Negotiation()
			q.log.Info("host authenticated", "hash", h.String(), "dhgroup", g.String())
			q.t.Stats.Authentications.Add(1)
			q.state.Store(uint32(QueueEnabled))
		}
		q.setAuthInfo()
	}()
	if r.Cmd.FCType() == nvmeof.FabricsAuthSend {
		if len(r.Data) > 1 && r.Data[0] == nvmeof.AuthTypeCommon && r.Data[1] == nvmeof.AuthNegotiate {
			if !a.Authenticated() {
				// Each transaction costs the target a DH exponentiation:
				// a host that has not authenticated gets a few.
				if q.authAttempts++; q.authAttempts > maxAuthFailures {
					q.t.PeerWarn(q.log, "too many authentication attempts: closing the connection", "attempts", q.authAttempts)
					r.CloseAfter = errors.New("too many authentication attempts")
					return nvmeof.StatusAuthRequired | nvmeof.StatusDNR
				}
			}
			// A new transaction (re-authentication) uses the keys
			// configured now: a reload may have rotated them.
			if _, keys := q.ctrl.subsys.hostAccess(q.ctrl.hostNQN); keys != nil {
				a.SetKeys(keys.Key, keys.CtrlKey)
			}
		}
		if fatal := a.Send(r.Data); fatal {
			// The host gave up on the controller (Failure2) or broke the
			// protocol: as Linux nvmet, end the controller, once this
			// command's response is out (closing the admin queue's
			// connection deletes the controller).
			q.authFailed(a)
			r.CloseAfter = a.Err()
		}
		return nvmeof.StatusSuccess
	}
	msg := a.Receive()
	if msg == nil {
		return nvmeof.StatusCommandSequenceError | nvmeof.StatusDNR
	}
	n := copy(r.Data, msg)
	clear(r.Data[n:])
	if msg[1] == nvmeof.AuthFailure1 {
		q.authFailed(a)
		if q.authFailures >= maxAuthFailures {
			q.t.PeerWarn(q.log, "too many failed authentications: closing the connection", "failures", q.authFailures)
			r.CloseAfter = a.Err()
		}
	}
	return nvmeof.StatusSuccess
}

func (q *Queue) authFailed(a *dhchap.Controller) {
	q.authFailures++
	q.t.Stats.AuthFailures.Add(1)
	q.t.PeerWarn(q.log, "authentication failed", "err", a.Err())
}
