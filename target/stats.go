package target

import (
	"net/netip"
	"slices"

	"github.com/flashpath/flashpath/internal/dhchap"
)

// What the control plane reports about queues (SPDK's
// nvmf_subsystem_get_qpairs and nvmf_get_stats): snapshots of fields that
// change when a queue connects, authenticates or closes, never per I/O.

// QueueState is where a queue is in its life.
type QueueState uint32

// Queue states, as SPDK names the qpair states (nvmf_qpair_state_str).
const (
	// QueueConnecting: the connection is there, Connect not yet done.
	QueueConnecting QueueState = iota
	// QueueAuthenticating: connected; the host must authenticate
	// (DH-HMAC-CHAP) before the queue runs other commands.
	QueueAuthenticating
	// QueueEnabled: connected, and authenticated where it must be.
	QueueEnabled
	// QueueDeactivating: the connection is gone; the queue is leaving
	// its controller.
	QueueDeactivating
)

// String returns SPDK's name of the state: "connecting",
// "authenticating", "enabled" or "deactivating".
func (s QueueState) String() string {
	switch s {
	case QueueConnecting:
		return "connecting"
	case QueueAuthenticating:
		return "authenticating"
	case QueueEnabled:
		return "enabled"
	case QueueDeactivating:
		return "deactivating"
	}
	return "unknown"
}

// AuthState is where a queue's host is in DH-HMAC-CHAP.
type AuthState uint8

// Authentication states, named as SPDK's (nvmf_auth_get_state_name) where
// flashpath has them.
const (
	// AuthNegotiate: the host has not authenticated yet (no transaction,
	// or one under way).
	AuthNegotiate AuthState = iota
	// AuthCompleted: a transaction succeeded.
	AuthCompleted
	// AuthFailure1: the last transaction failed and the host has not
	// authenticated.
	AuthFailure1
)

// String returns "negotiate", "completed" or "failure1".
func (s AuthState) String() string {
	switch s {
	case AuthNegotiate:
		return "negotiate"
	case AuthCompleted:
		return "completed"
	case AuthFailure1:
		return "failure1"
	}
	return "unknown"
}

// AuthInfo is a queue's DH-HMAC-CHAP state.
type AuthInfo struct {
	State AuthState
	// Hash and DHGroup are the ones the last transaction negotiated;
	// Hash is not Valid before one has.
	Hash    dhchap.Hash
	DHGroup dhchap.DHGroup
}

// QueueInfo is a snapshot of one of a controller's queues.
type QueueInfo struct {
	QID    uint16
	State  QueueState
	TrType uint8 // nvmeof.TrTypeTCP, TrTypeRDMA
	// Local is the address and port the host connected to (the port's
	// own where it listens on one address, the one the host reached on
	// a wildcard port); Peer is the host's. Not valid where the
	// transport did not say (SetAddrs).
	Local, Peer netip.AddrPort
	// Auth is nil where the host need not authenticate.
	Auth *AuthInfo
	// Size is the queue's entries (its Connect's SQSIZE + 1);
	// Outstanding its commands received and not yet completed, or -1
	// where the transport does not say (OutstandingReporter).
	Size, Outstanding int
}

// SetAddrs records the addresses of the queue's connection: local, the
// address and port the host reached, and peer, the host's. A transport
// calls it before the queue's first command; Controller.Queues reports
// them.
func (q *Queue) SetAddrs(local, peer netip.AddrPort) {
	q.localAP = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	q.peerAP = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
}

// setAuthInfo publishes the queue's DH-HMAC-CHAP state after a change
// (on the queue's goroutine, never per I/O).
func (q *Queue) setAuthInfo() {
	if !q.authRequired {
		return
	}
	a := q.auth
	info := &AuthInfo{State: AuthNegotiate}
	info.Hash, info.DHGroup = a.Negotiation()
	switch {
	case a.Authenticated():
		info.State = AuthCompleted
	case q.authFailures > 0:
		info.State = AuthFailure1
	}
	q.authInfo.Store(info)
}

// Queues returns a snapshot of the controller's queues, by QID: the admin
// queue and the I/O queues connected now.
func (c *Controller) Queues() []QueueInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]QueueInfo, 0, len(c.queues))
	for qid, q := range c.queues {
		// q.id is written by Connect after the queue joined the
		// controller: the map's key is the QID. The other fields read
		// are set before the queue's goroutine starts, or atomics.
		out = append(out, QueueInfo{
			QID: qid, State: QueueState(q.state.Load()), TrType: q.info.TrType,
			Local: q.localAP, Peer: q.peerAP, Auth: q.authInfo.Load(),
			Size: int(q.entries.Load()), Outstanding: -1,
		})
		if or, ok := q.tr.(OutstandingReporter); ok {
			out[len(out)-1].Outstanding = or.Outstanding()
		}
	}
	slices.SortFunc(out, func(a, b QueueInfo) int { return int(a.QID) - int(b.QID) })
	return out
}

// QueueTotals are the target's queue counts: its controllers' queues,
// discovery controllers' included.
type QueueTotals struct {
	// AdminQueues and IOQueues count the queues that connected since the
	// target started.
	AdminQueues, IOQueues uint64
	// CurrentAdmin and CurrentIO count the queues connected now.
	CurrentAdmin, CurrentIO int
}

// QueueTotals returns the target's queue counts.
func (t *Target) QueueTotals() QueueTotals {
	var tot QueueTotals
	t.mu.Lock()
	ctrls := make([]*Controller, 0, len(t.ctrls))
	for _, c := range t.ctrls {
		ctrls = append(ctrls, c)
	}
	t.mu.Unlock()
	for _, c := range ctrls {
		c.mu.Lock()
		for qid, q := range c.queues {
			switch QueueState(q.state.Load()) {
			case QueueConnecting, QueueDeactivating:
				continue // not counted in AdminQueues or IOQueues yet; or closed
			}
			if qid == 0 {
				tot.CurrentAdmin++
			} else {
				tot.CurrentIO++
			}
		}
		c.mu.Unlock()
	}
	// After the walk: a queue counted connected above is counted here.
	tot.AdminQueues, tot.IOQueues = t.Stats.AdminQueues.Load(), t.Stats.IOQueues.Load()
	return tot
}

// InFlight is the number of commands running on the namespace's backend
// now (a synchronous one while it runs, an asynchronous one until its
// completion).
func (ns *Namespace) InFlight() int64 { return max(ns.refs.n.Load(), 0) }
