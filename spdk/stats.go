package spdk

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/rdma"
	"github.com/flashpath/flashpath/target/tcp"
)

// pollGroupName stands for SPDK's thread and poll group names. SPDK
// polls its queue pairs from a few poll groups, one thread each;
// flashpath serves each queue pair on a goroutine of its own (the
// connection's: target/tcp, target/rdma), which the Go runtime runs on
// every CPU. So nvmf_get_stats reports the whole target as one poll
// group of this name, and nvmf_subsystem_get_qpairs gives it as every
// queue pair's thread: a jq join of the two matches up.
const pollGroupName = "flashpath"

// qpairInfo is one entry of nvmf_subsystem_get_qpairs, SPDK's
// dump_nvmf_qpair:
//
//   - cntlid, qid, hostnqn: the queue's controller, its queue ID and host.
//   - state: SPDK's name of the queue's state: "connecting",
//     "authenticating" (the host must still pass DH-HMAC-CHAP), "enabled",
//     "deactivating" (its connection is gone; it is leaving).
//   - thread: pollGroupName.
//   - listen_address: where the host connected, as SPDK's TCP transport
//     reports it: the connection's local address and port (on a wildcard
//     listener, the address the host reached).
//   - peer_address: the host's address and port.
//   - auth: only where the host must authenticate (DH-HMAC-CHAP): state
//     "negotiate" (not authenticated yet), "completed" or "failure1" (the
//     last transaction failed); digest and dhgroup once a transaction
//     negotiated them. flashpath does not report the steps in between
//     (SPDK's challenge, reply, success1, success2).
//
// An address the transport did not give is left out, as SPDK does.
type qpairInfo struct {
	CntlID        uint16         `json:"cntlid"`
	QID           uint16         `json:"qid"`
	State         string         `json:"state"`
	Thread        string         `json:"thread"`
	HostNQN       string         `json:"hostnqn"`
	ListenAddress *listenAddress `json:"listen_address,omitempty"`
	PeerAddress   *listenAddress `json:"peer_address,omitempty"`
	Auth          *qpairAuth     `json:"auth,omitempty"`
}

type qpairAuth struct {
	State   string `json:"state"`
	Digest  string `json:"digest,omitempty"`
	DHGroup string `json:"dhgroup,omitempty"`
}

// getQpairs is nvmf_subsystem_get_qpairs: the admin and I/O queues of
// every controller of the subsystem (the discovery subsystem's too), by
// controller ID and queue ID.
func (s *Server) getQpairs(params json.RawMessage) (any, *Error) {
	var p nqnParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if p.NQN == "discovery" {
		p.NQN = nvmeof.DiscoveryNQN // rpc.py's shortcut
	}
	if p.NQN != nvmeof.DiscoveryNQN {
		if _, e := subsys(s.srv.Applied(), p.NQN); e != nil {
			return nil, e
		}
	}
	out := []qpairInfo{}
	ss := s.srv.Target.Subsystem(p.NQN)
	if ss == nil {
		return out, nil
	}
	for _, c := range ss.Controllers() {
		for _, q := range c.Queues() {
			qi := qpairInfo{CntlID: c.ID(), QID: q.QID, State: q.State.String(), Thread: pollGroupName, HostNQN: c.HostNQN()}
			tr := strings.ToUpper(nvmeof.TrType(q.TrType).String())
			if q.Local.IsValid() {
				qi.ListenAddress = addressOf(tr, q.Local)
			}
			if q.Peer.IsValid() {
				qi.PeerAddress = addressOf(tr, q.Peer)
			}
			if a := q.Auth; a != nil {
				qi.Auth = &qpairAuth{State: a.State.String()}
				if a.Hash.Valid() {
					qi.Auth.Digest, qi.Auth.DHGroup = a.Hash.String(), a.DHGroup.String()
				}
			}
			out = append(out, qi)
		}
	}
	return out, nil
}

// addressOf renders a queue's address as SPDK's transport ID.
func addressOf(trtype string, ap netip.AddrPort) *listenAddress {
	fam := "IPv4"
	if !ap.Addr().Is4() {
		fam = "IPv6"
	}
	return &listenAddress{Trtype: trtype, Adrfam: fam, Traddr: ap.Addr().String(), Trsvcid: strconv.Itoa(int(ap.Port()))}
}

// statsResult is nvmf_get_stats' result.
type statsResult struct {
	// TickRate is the rate of the ticks that SPDK's counters of time are
	// in; flashpath reports none here, and gives nanoseconds, as in
	// bdev_get_iostat.
	TickRate   uint64           `json:"tick_rate"`
	PollGroups []pollGroupStats `json:"poll_groups"`
}

// pollGroupStats is the whole target as SPDK's one poll group (see
// pollGroupName):
//
//   - admin_qpairs, io_qpairs: the admin and I/O queues that connected
//     since the target started (a Connect that succeeded; SPDK counts the
//     Connects it received), discovery controllers' admin queues included.
//   - current_admin_qpairs, current_io_qpairs: those connected now.
//   - pending_bdev_io: the commands running on the namespaces' backends
//     now. (SPDK counts the I/Os that had to wait for a bdev_io;
//     flashpath's never wait for one: a command that finds no data buffer
//     fails, and the metrics endpoint counts it in
//     flashpath_target_buffer_shortages_total.)
//   - completed_nvme_io: the I/O commands the namespaces' backends
//     completed, summed over the namespaces that exist now: reads
//     (compares included), writes (write zeroes included), and those the
//     backend failed. It is the sum of bdev_get_iostat's operations and of
//     flashpath_target_namespace_commands_total and _errors_total on the
//     metrics endpoint, and starts again for a namespace attached again.
//     (SPDK counts every completion on an I/O queue: flashpath also
//     completes flushes, deallocations and refused commands that are not
//     in it.)
//   - transports: one entry for each transport created or listening.
type pollGroupStats struct {
	Name               string           `json:"name"`
	AdminQpairs        uint64           `json:"admin_qpairs"`
	IOQpairs           uint64           `json:"io_qpairs"`
	CurrentAdminQpairs int              `json:"current_admin_qpairs"`
	CurrentIOQpairs    int              `json:"current_io_qpairs"`
	PendingBdevIO      int64            `json:"pending_bdev_io"`
	CompletedNVMeIO    uint64           `json:"completed_nvme_io"`
	Transports         []transportStats `json:"transports"`
}

// transportStats is one transport's entry in a poll group. SPDK's TCP
// transport reports nothing but its trtype, its RDMA transport its
// devices' work requests, which flashpath does not count. flashpath's
// counters are its listeners', summed over the transport's listeners
// running now (a listener removed takes its counts with it), as the
// metrics endpoint has them by listener:
//
//   - listeners: how many.
//   - connections_accepted, connections_rejected: transport connections
//     accepted, and refused at once (NVMe/RDMA connection requests whose
//     private data is wrong; NVMe/TCP connections over the listener's
//     connection limits).
//   - protocol_errors: connections closed for a transport protocol error.
//   - tls_handshakes, tls_handshake_failures, tls_plain_refused: NVMe/TCP
//     only: TLS handshakes that completed and that failed, and plain
//     connections closed by a listener that requires TLS.
type transportStats struct {
	Trtype              string  `json:"trtype"`
	Listeners           int     `json:"listeners"`
	ConnectionsAccepted uint64  `json:"connections_accepted"`
	ConnectionsRejected uint64  `json:"connections_rejected"`
	ProtocolErrors      uint64  `json:"protocol_errors"`
	TLSHandshakes       *uint64 `json:"tls_handshakes,omitempty"`
	TLSFailures         *uint64 `json:"tls_handshake_failures,omitempty"`
	TLSPlainRefused     *uint64 `json:"tls_plain_refused,omitempty"`
}

// getStats is nvmf_get_stats.
func (s *Server) getStats(params json.RawMessage) (any, *Error) {
	var p struct{ tgtName }
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	t := s.srv.Target
	tot := t.QueueTotals()
	pg := pollGroupStats{
		Name:        pollGroupName,
		AdminQpairs: tot.AdminQueues, IOQpairs: tot.IOQueues,
		CurrentAdminQpairs: tot.CurrentAdmin, CurrentIOQpairs: tot.CurrentIO,
	}
	for _, ss := range t.Subsystems() {
		for _, ns := range ss.Namespaces() {
			st := ns.Stats()
			pg.CompletedNVMeIO += st.Reads + st.Writes + st.Errors
			pg.PendingBdevIO += ns.InFlight()
		}
	}
	trs := map[string]*transportStats{}
	get := func(tr string) *transportStats {
		if trs[tr] == nil {
			trs[tr] = &transportStats{Trtype: tr}
			if tr == "TCP" {
				trs[tr].TLSHandshakes, trs[tr].TLSFailures, trs[tr].TLSPlainRefused = new(uint64(0)), new(uint64(0)), new(uint64(0))
			}
		}
		return trs[tr]
	}
	for tr := range s.transports {
		get(tr)
	}
	s.srv.ListenersLocked(func(tl []*tcp.Listener, rl []*rdma.Listener) {
		for _, ln := range tl {
			ts := get("TCP")
			ts.Listeners++
			ts.ConnectionsAccepted += ln.Accepted.Load()
			ts.ConnectionsRejected += ln.Rejected.Load()
			ts.ProtocolErrors += ln.ProtocolErrors.Load()
			*ts.TLSHandshakes += ln.TLSHandshakes.Load()
			*ts.TLSFailures += ln.TLSFailures.Load()
			*ts.TLSPlainRefused += ln.PlainRefused.Load()
		}
		for _, ln := range rl {
			ts := get("RDMA")
			ts.Listeners++
			ts.ConnectionsAccepted += ln.Accepted.Load()
			ts.ConnectionsRejected += ln.Rejected.Load()
			ts.ProtocolErrors += ln.ProtocolErrors.Load()
		}
	})
	pg.Transports = []transportStats{}
	for _, tr := range sortedKeys(trs) {
		pg.Transports = append(pg.Transports, *trs[tr])
	}
	return statsResult{TickRate: uint64(time.Second), PollGroups: []pollGroupStats{pg}}, nil
}
