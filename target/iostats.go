package target

import (
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// What the target counts for its metrics, kept where the I/O path finds
// it without a lookup: per namespace and operation a few atomic counters
// and a latency histogram's bucket array, per host a byte counter the
// controller points to. The I/O path adds to them and allocates nothing;
// the metrics collector (target/server) reads snapshots at scrape time.

// Op is a kind of namespace command, as the statistics count them.
type Op uint8

// Namespace operations.
const (
	OpRead Op = iota
	OpWrite
	OpCompare
	OpFlush
	OpWriteZeroes // Write Zeroes, with or without DEAC
	OpDeallocate  // Dataset Management with the Deallocate attribute
	OpOther       // Dataset Management without it: hints only
	NumOps
)

// String returns the operation's metric label: "read", "write",
// "compare", "flush", "write_zeroes", "deallocate" or "other".
func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpCompare:
		return "compare"
	case OpFlush:
		return "flush"
	case OpWriteZeroes:
		return "write_zeroes"
	case OpDeallocate:
		return "deallocate"
	case OpOther:
		return "other"
	}
	return "unknown"
}

// LatencyBuckets are the upper bounds of the latency histograms' buckets:
// 1, 2 and 5 of each decade from 1 µs to 10 s, so that an SLO such as
// "99% under 1 ms" has a bucket boundary to count against. A last bucket
// holds what took longer.
var LatencyBuckets = [...]time.Duration{
	1 * time.Microsecond, 2 * time.Microsecond, 5 * time.Microsecond,
	10 * time.Microsecond, 20 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	1 * time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	1 * time.Second, 2 * time.Second, 5 * time.Second,
	10 * time.Second,
}

// NumLatencyBuckets is the histograms' bucket count: LatencyBuckets and
// the one above them.
const NumLatencyBuckets = len(LatencyBuckets) + 1

// bucketBound is LatencyBuckets in nanoseconds, with the last bucket's
// bound the largest value; octaveBucket[o] is the first bucket whose bound
// is at least 2^(o-1), the smallest value of o bits. Two bounds are at
// least a factor of 2 apart, so an octave holds at most one: a value's
// bucket is octaveBucket[its bit length], or the next.
var (
	bucketBound  [NumLatencyBuckets]uint64
	octaveBucket [65]uint8
)

func init() {
	for i, b := range LatencyBuckets {
		bucketBound[i] = uint64(b)
	}
	bucketBound[NumLatencyBuckets-1] = math.MaxUint64
	for o := range octaveBucket {
		var lo uint64
		if o > 0 {
			lo = 1 << (o - 1)
		}
		i := 0
		for bucketBound[i] < lo {
			i++
		}
		octaveBucket[o] = uint8(i)
	}
}

// bucketOf returns the bucket of a latency in nanoseconds.
func bucketOf(ns uint64) int {
	i := int(octaveBucket[bits.Len64(ns)])
	if ns > bucketBound[i] {
		i++
	}
	return i
}

// clockBase anchors nanotime: time.Since of a time with a monotonic
// reading reads only the monotonic clock (one vDSO call).
var clockBase = time.Now()

// nanotime is a monotonic clock in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockBase)) }

// latencyHist is a histogram of latencies: counts by bucket (not
// cumulative) and their sum.
type latencyHist struct {
	counts [NumLatencyBuckets]atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
}

func (h *latencyHist) observe(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[bucketOf(uint64(ns))].Add(1)
	h.sum.Add(uint64(ns))
}

// opStats are one operation's counters on a namespace. The commands that
// succeeded are the histogram's count.
type opStats struct {
	lat    latencyHist
	bytes  atomic.Uint64
	errors atomic.Uint64 // failed by the backend
}

type nsStats struct {
	ops [NumOps]opStats
}

// done counts a command of op that succeeded, moved or covered n bytes
// and started at start (nanotime).
func (s *nsStats) done(op Op, n int64, start int64) { s.count(op, n, nanotime()-start) }

// count counts a command of op that succeeded after lat nanoseconds.
func (s *nsStats) count(op Op, n int64, lat int64) {
	o := &s.ops[op]
	o.lat.observe(lat)
	if n > 0 {
		o.bytes.Add(uint64(n))
	}
}

// batchClock spares the I/O path two clock readings per command (on a
// VM's kvm-clock they were 40% of a 4 KiB read's time in the core): a
// transport that runs what one receive gave it and then sends the
// completions together (NVMe/TCP) calls BatchClock once and EndBatch
// after each batch. Each command of a batch then starts at the batch's
// first clock reading, and the successful reads, writes and compares run
// on the queue's goroutine are counted at EndBatch with one more: their
// latency runs to the moment the batch's completions are handed to the
// transport. Without BatchClock the clock is read per command.
type batchClock struct {
	on   bool
	now  int64 // the batch's start (nanotime); 0 until read
	n    int
	pend [maxPendingStats]pendingStat
}

// maxPendingStats bounds the commands a batch counts at its end; a batch
// with more counts them as they come.
const maxPendingStats = 64

type pendingStat struct {
	ns       *Namespace
	op       Op
	n, start int64
}

// BatchClock makes the queue read the clock for its statistics once per
// batch; the transport then calls EndBatch after each batch, on the
// goroutine that runs Execute.
func (q *Queue) BatchClock() { q.clk.on = true }

// EndBatch counts the batch's commands with one clock reading and starts
// the next batch (see BatchClock).
func (q *Queue) EndBatch() {
	k := &q.clk
	if k.n > 0 {
		now := nanotime()
		for i := range k.pend[:k.n] {
			p := &k.pend[i]
			p.ns.stats.count(p.op, p.n, now-p.start)
			p.ns = nil
		}
		k.n = 0
	}
	k.now = 0
}

// startTime is when a command starts: the batch's start under
// BatchClock, else now.
func (q *Queue) startTime() int64 {
	k := &q.clk
	if !k.on {
		return nanotime()
	}
	if k.now == 0 {
		k.now = nanotime()
	}
	return k.now
}

// stat counts a successful command on ns, at the batch's end under
// BatchClock.
func (q *Queue) stat(ns *Namespace, op Op, n, start int64) {
	k := &q.clk
	if !k.on || k.n == len(k.pend) {
		ns.stats.done(op, n, start)
		return
	}
	k.pend[k.n] = pendingStat{ns: ns, op: op, n: n, start: start}
	k.n++
}

// OpStats is a snapshot of one operation's counters on a namespace.
type OpStats struct {
	// Commands succeeded; Errors failed on the backend. Bytes is what the
	// successful commands moved (Read, Write, Compare) or covered (Write
	// Zeroes, Deallocate).
	Commands, Bytes, Errors uint64
	// Latency counts the successful commands by LatencyBuckets, the last
	// element those above them (not cumulative); LatencySum is their
	// total. The latency runs from the command's execution on the
	// target, its data received, to its completion handed to the
	// transport.
	Latency    [NumLatencyBuckets]uint64
	LatencySum time.Duration
}

func (o *opStats) snapshot() OpStats {
	var s OpStats
	for i := range o.lat.counts {
		s.Latency[i] = o.lat.counts[i].Load()
		s.Commands += s.Latency[i]
	}
	s.LatencySum = time.Duration(o.lat.sum.Load())
	s.Bytes, s.Errors = o.bytes.Load(), o.errors.Load()
	return s
}

// DefaultMaxHostMetrics is Options.MaxHostMetrics where none is given.
const DefaultMaxHostMetrics = 100

// OtherHosts is the host label of hosts beyond Options.MaxHostMetrics.
const OtherHosts = "other"

// hostStats are the counters of one host NQN, or of every host beyond
// the cap (OtherHosts). Controllers point to theirs.
type hostStats struct {
	label                   string
	bytesRead, bytesWritten atomic.Uint64
	controllers, queues     atomic.Uint64 // created, connected
	reconnects              atomic.Uint64
}

// pathKey is a host's path to a subsystem: a controller created again on
// one it had before is a reconnect.
type pathKey struct {
	host, subsys string
	local        netip.AddrPort
}

// maxPaths bounds the paths remembered for counting reconnects (a flood
// of made-up host NQNs must not grow memory): beyond it, new paths are
// not remembered and their controllers not counted as reconnects.
const maxPaths = 1 << 16

// hostFor returns the counters of a host NQN: its own among the first
// MaxHostMetrics hosts, the shared OtherHosts counters after.
// Called with t.mu held.
func (t *Target) hostFor(hostNQN string) *hostStats {
	if h := t.hosts[hostNQN]; h != nil {
		return h
	}
	if len(t.hosts) >= t.opts.MaxHostMetrics {
		return &t.otherHosts
	}
	if t.hosts == nil {
		t.hosts = map[string]*hostStats{}
	}
	h := &hostStats{label: hostNQN}
	t.hosts[hostNQN] = h
	return h
}

// controllerCreated counts a new controller of hostNQN reached at local
// on s, and reports its host counters. Called with t.mu held.
func (t *Target) controllerCreated(s *Subsystem, hostNQN string, local netip.AddrPort) *hostStats {
	h := t.hostFor(hostNQN)
	h.controllers.Add(1)
	if s.discovery {
		return h
	}
	k := pathKey{hostNQN, s.cfg.NQN, local}
	if _, seen := t.paths[k]; seen {
		h.reconnects.Add(1)
		t.Stats.Reconnects.Add(1)
	} else if len(t.paths) < maxPaths {
		if t.paths == nil {
			t.paths = map[pathKey]struct{}{}
		}
		t.paths[k] = struct{}{}
	}
	return h
}

// HostStats is a snapshot of one host's counters (Target.HostStats).
type HostStats struct {
	// Host is the host NQN, or OtherHosts for those beyond the cap.
	Host string
	// Controllers and Queues are connected now (queues that completed
	// Connect; discovery controllers included).
	Controllers, Queues int
	// ControllersCreated and QueuesConnected count since the start;
	// Reconnects the controllers created on a path (subsystem and target
	// address) where the host had one before.
	ControllersCreated, QueuesConnected, Reconnects uint64
	// BytesRead and BytesWritten are the data the host read and wrote
	// (Compare's data counts as written).
	BytesRead, BytesWritten uint64
}

// HostStats returns the hosts' counters by host NQN, OtherHosts last
// (when a host was counted there).
func (t *Target) HostStats() []HostStats {
	t.mu.Lock()
	hosts := make([]*hostStats, 0, len(t.hosts)+1)
	for _, h := range t.hosts {
		hosts = append(hosts, h)
	}
	if t.otherHosts.controllers.Load() > 0 {
		hosts = append(hosts, &t.otherHosts)
	}
	ctrls := make([]*Controller, 0, len(t.ctrls))
	for _, c := range t.ctrls {
		ctrls = append(ctrls, c)
	}
	t.mu.Unlock()
	live := map[*hostStats][2]int{}
	for _, c := range ctrls {
		n := live[c.host]
		n[0]++
		n[1] += c.connectedQueues()
		live[c.host] = n
	}
	out := make([]HostStats, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, HostStats{
			Host: h.label, Controllers: live[h][0], Queues: live[h][1],
			ControllersCreated: h.controllers.Load(), QueuesConnected: h.queues.Load(), Reconnects: h.reconnects.Load(),
			BytesRead: h.bytesRead.Load(), BytesWritten: h.bytesWritten.Load(),
		})
	}
	slices.SortFunc(out, func(a, b HostStats) int {
		if (a.Host == OtherHosts) != (b.Host == OtherHosts) {
			if a.Host == OtherHosts {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Host, b.Host)
	})
	return out
}

// connectedQueues is the number of the controller's queues that completed
// Connect and are not closed.
func (c *Controller) connectedQueues() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, q := range c.queues {
		switch QueueState(q.state.Load()) {
		case QueueAuthenticating, QueueEnabled:
			n++
		}
	}
	return n
}

// HostLabel is the host label of the controller's counters: its host NQN,
// or OtherHosts where the host is beyond Options.MaxHostMetrics.
func (c *Controller) HostLabel() string { return c.host.label }

// DeleteReason says why a controller was deleted.
type DeleteReason uint8

// Reasons for deleting a controller.
const (
	// DeletedShutdown: the host shut the controller down (CC.SHN) or
	// disabled it (CC.EN cleared) before its connection went.
	DeletedShutdown DeleteReason = iota
	// DeletedKeepAlive: the keep-alive timer expired.
	DeletedKeepAlive
	// DeletedConnectionLost: the admin queue's connection went without a
	// shutdown.
	DeletedConnectionLost
	// DeletedRemoved: its subsystem was removed, or the target stopped.
	DeletedRemoved
	NumDeleteReasons
)

// String returns the reason's metric label: "shutdown", "keep_alive",
// "connection_lost" or "removed".
func (r DeleteReason) String() string {
	switch r {
	case DeletedShutdown:
		return "shutdown"
	case DeletedKeepAlive:
		return "keep_alive"
	case DeletedConnectionLost:
		return "connection_lost"
	case DeletedRemoved:
		return "removed"
	}
	return "unknown"
}

// ProtocolErrorKind is the kind of transport protocol error a connection
// was ended for.
type ProtocolErrorKind uint8

// Protocol error kinds: the NVMe/TCP fatal error statuses (NVMe/TCP 1.0
// §3.6.2.9, FES), and the data digest error.
const (
	// ProtoInvalidPDU: a malformed PDU header (FES 01h), or an NVMe/RDMA
	// command capsule too short to hold a command.
	ProtoInvalidPDU ProtocolErrorKind = iota
	// ProtoPDUSequence: a PDU out of sequence (FES 02h), or more NVMe/RDMA
	// commands than the queue holds.
	ProtoPDUSequence
	ProtoHeaderDigest     // FES 03h
	ProtoDataOutOfRange   // FES 04h
	ProtoDataLimit        // FES 05h: more data than allowed
	ProtoUnsupportedParam // FES 06h
	ProtoDataDigest       // the data digest did not match
	NumProtocolErrorKinds
)

// String returns the kind's metric label.
func (k ProtocolErrorKind) String() string {
	switch k {
	case ProtoInvalidPDU:
		return "invalid_pdu"
	case ProtoPDUSequence:
		return "pdu_sequence"
	case ProtoHeaderDigest:
		return "header_digest"
	case ProtoDataOutOfRange:
		return "data_out_of_range"
	case ProtoDataLimit:
		return "data_limit_exceeded"
	case ProtoUnsupportedParam:
		return "unsupported_parameter"
	case ProtoDataDigest:
		return "data_digest"
	}
	return "unknown"
}

// ProtocolError counts a connection ended for a protocol error of kind k
// (Stats.ProtocolErrors and Stats.ProtocolErrorKinds).
func (t *Target) ProtocolError(k ProtocolErrorKind) {
	if k >= NumProtocolErrorKinds {
		k = ProtoInvalidPDU
	}
	t.Stats.ProtocolErrorKinds[k].Add(1)
	t.Stats.ProtocolErrors.Add(1)
}

// OutstandingReporter is implemented by a QueueTransport that can tell
// how many of its queue's commands are outstanding: received from the
// host and not yet completed (waiting for data, on the backend, or
// waiting to be sent). Controller.Queues reports it; it is read at
// report time, never per I/O.
type OutstandingReporter interface {
	Outstanding() int
}
