package target

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

// TestBucketOf: the table lookup puts every latency in the bucket a
// linear search over LatencyBuckets finds (Prometheus' le: the first bound
// not below the value).
func TestBucketOf(t *testing.T) {
	linear := func(ns uint64) int {
		for i, b := range LatencyBuckets {
			if ns <= uint64(b) {
				return i
			}
		}
		return len(LatencyBuckets)
	}
	vals := []uint64{0, 1, 2, 511, 512, 999, 1000, 1001, 1023, 1024, 1999, 2000, 2001, math.MaxInt64, math.MaxUint64}
	for _, b := range LatencyBuckets {
		vals = append(vals, uint64(b)-1, uint64(b), uint64(b)+1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		vals = append(vals, rng.Uint64()>>rng.IntN(64))
	}
	for _, v := range vals {
		if got, want := bucketOf(v), linear(v); got != want {
			t.Fatalf("bucketOf(%d) = %d, want %d", v, got, want)
		}
	}
}

// TestNamespaceOpStats: each command kind counts on its operation, with
// its bytes and a latency; failures count as errors, not commands; SMART
// keeps counting reads and writes as before.
func TestNamespaceOpStats(t *testing.T) {
	f := backend.NewFaulty(memBackend(t, 1<<20, 512))
	_, io := ioSetup(t, f)
	ns := io.q.Controller().subsys.Namespace(1)
	const n = 5
	for i := range n {
		io.ok(rwSQE(nvmeof.NVMWrite, 1, uint64(i*8), 8), make([]byte, 4096))
	}
	io.ok(rwSQE(nvmeof.NVMRead, 1, 0, 8), make([]byte, 4096))
	io.ok(rwSQE(nvmeof.NVMCompare, 1, 0, 1), make([]byte, 512))
	io.ok(rwSQE(nvmeof.NVMFlush, 1, 0, 1), nil)
	flushAll := rwSQE(nvmeof.NVMFlush, 0xFFFFFFFF, 0, 1)
	io.ok(flushAll, nil)
	io.ok(rwSQE(nvmeof.NVMWriteZeroes, 1, 100, 4), nil) // 4 blocks
	dsm, ranges := dsmSQE(1, []nvmeof.DSMRange{{SLBA: 200, NLB: 8}, {SLBA: 300, NLB: 2}})
	io.ok(dsm, ranges)
	hint, hranges := dsmSQE(1, []nvmeof.DSMRange{{SLBA: 0, NLB: 1}})
	hint.SetCDW(11, 0)
	io.ok(hint, hranges)
	f.FailNext(backend.OpWrite, syscall.EIO)
	io.want(nvmeof.StatusWriteFault, rwSQE(nvmeof.NVMWrite, 1, 0, 8), make([]byte, 4096))
	f.FailNext(backend.OpFlush, syscall.EIO)
	io.want(nvmeof.StatusWriteFault, rwSQE(nvmeof.NVMFlush, 1, 0, 1), nil)

	st := ns.Stats()
	want := [NumOps]struct{ cmds, bytes, errs uint64 }{
		OpRead:        {1, 4096, 0},
		OpWrite:       {n, n * 4096, 1},
		OpCompare:     {1, 512, 0},
		OpFlush:       {2, 0, 1},
		OpWriteZeroes: {1, 4 * 512, 0},
		OpDeallocate:  {1, 10 * 512, 0},
		OpOther:       {1, 0, 0},
	}
	for op := range NumOps {
		o := st.Ops[op]
		w := want[op]
		if o.Commands != w.cmds || o.Bytes != w.bytes || o.Errors != w.errs {
			t.Errorf("%s: %d commands, %d bytes, %d errors; want %d, %d, %d", op, o.Commands, o.Bytes, o.Errors, w.cmds, w.bytes, w.errs)
		}
		var hist uint64
		for _, c := range o.Latency {
			hist += c
		}
		if hist != w.cmds {
			t.Errorf("%s: histogram holds %d commands, want %d", op, hist, w.cmds)
		}
		if o.Latency[NumLatencyBuckets-1] != 0 {
			t.Errorf("%s: a command over %v", op, LatencyBuckets[len(LatencyBuckets)-1])
		}
	}
	if st.Reads != 2 || st.Writes != n+1 || st.BytesRead != 4096 || st.BytesWritten != n*4096 || st.Errors != 2 {
		t.Errorf("totals %+v", st)
	}
	h := io.q.t.HostStats()
	if len(h) != 1 || h[0].Host != hostA || h[0].BytesRead != 4096 || h[0].BytesWritten != n*4096+512 {
		t.Errorf("host stats %+v", h)
	}
}

// TestNamespaceOpStatsAsync: a read completed by an asynchronous backend
// counts when it completes, and the namespace's in-flight count covers it
// until then.
func TestNamespaceOpStatsAsync(t *testing.T) {
	be := &heldBackend{Backend: memBackend(t, 1<<20, 512), held: make(chan backend.Completer, 4)}
	_, io := ioSetup(t, be)
	ns := io.q.Controller().subsys.Namespace(1)
	r := &Request{Cmd: rwSQE(nvmeof.NVMRead, 1, 0, 8), Data: make([]byte, 4096)}
	io.q.Execute(r)
	if got := ns.Stats().Ops[OpRead].Commands; got != 0 || ns.InFlight() != 1 {
		t.Fatalf("before completion: %d reads counted, %d in flight", got, ns.InFlight())
	}
	be.complete()
	<-io.tr.deferred
	if o := ns.Stats().Ops[OpRead]; o.Commands != 1 || o.Bytes != 4096 || ns.InFlight() != 0 {
		t.Errorf("after completion: %+v, %d in flight", o, ns.InFlight())
	}
}

// TestHostStatsCap: the first MaxHostMetrics hosts have counters of their
// own, the others share OtherHosts'; controllers created again on the
// same path count as reconnects; controllers deleted count by reason.
func TestHostStatsCap(t *testing.T) {
	tgt := New(Options{Logger: quietLogger(), MaxHostMetrics: 1})
	t.Cleanup(func() { tgt.Close() })
	addSubsys(t, tgt, testNQN)
	local := mustAddrPort("127.0.0.1:4420")
	connect := func(host string, id [16]byte) *peer {
		p := newPeer(t, tgt)
		p.q.SetAddrs(local, mustAddrPort("127.0.0.1:50000"))
		p.ok(connectSQE(0, 31, 0), connectData(t, testNQN, host, id, nvmeof.CntlIDDynamic))
		p.ok(propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(true))), nil)
		return p
	}
	a := connect(hostA, hostIDA)
	connectIO(t, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1)
	b := connect(hostB, hostIDB)
	if got := b.q.Controller().HostLabel(); got != OtherHosts {
		t.Errorf("second host's label %q, want %q", got, OtherHosts)
	}
	hs := tgt.HostStats()
	if len(hs) != 2 || hs[0].Host != hostA || hs[0].Controllers != 1 || hs[0].Queues != 2 || hs[0].QueuesConnected != 2 ||
		hs[1].Host != OtherHosts || hs[1].Controllers != 1 || hs[1].Queues != 1 {
		t.Fatalf("host stats %+v", hs)
	}

	// Host A's connection drops; it connects again on the same path.
	a.q.Closed()
	a = connect(hostA, hostIDA)
	// Host B shuts its controller down, then closes the connection.
	b.ok(propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(true)|1<<14)), nil) // CC.SHN normal
	b.q.Closed()
	hs = tgt.HostStats()
	if hs[0].Reconnects != 1 || hs[0].ControllersCreated != 2 || hs[0].Controllers != 1 || hs[1].Controllers != 0 || hs[1].Reconnects != 0 {
		t.Errorf("after a reconnect: %+v", hs)
	}
	if n := tgt.Stats.Reconnects.Load(); n != 1 {
		t.Errorf("%d reconnects, want 1", n)
	}
	if got := tgt.Stats.ControllersDeleted[DeletedConnectionLost].Load(); got != 1 {
		t.Errorf("%d controllers lost, want 1", got)
	}
	if got := tgt.Stats.ControllersDeleted[DeletedShutdown].Load(); got != 1 {
		t.Errorf("%d controllers shut down, want 1", got)
	}
	// Another target address is another path: not a reconnect.
	p := newPeer(t, tgt)
	p.q.SetAddrs(mustAddrPort("127.0.0.1:4421"), netip.AddrPort{})
	p.ok(connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
	if n := tgt.Stats.Reconnects.Load(); n != 1 {
		t.Errorf("%d reconnects after a second path, want 1", n)
	}
	a.ok(adminSQE(nvmeof.AdminKeepAlive), nil)
	ss := a.q.Controller().subsys
	if err := tgt.RemoveSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	if got := tgt.Stats.ControllersDeleted[DeletedRemoved].Load(); got != 2 {
		t.Errorf("%d controllers removed, want 2", got)
	}
	if n := ss.AdminCommands(); n != 1 {
		t.Errorf("%d admin commands counted, want 1 (the Keep Alive; fabrics commands are not)", n)
	}
}

// TestKeepAliveExpiryCounted: a controller whose keep-alive timer fires
// is counted as deleted for it.
func TestKeepAliveExpiryCounted(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	a.q.Controller().keepAliveExpired()
	<-a.tr.closed
	if got := tgt.Stats.ControllersDeleted[DeletedKeepAlive].Load(); got != 1 {
		t.Errorf("%d controllers deleted for keep-alive, want 1", got)
	}
}

// TestProtocolErrorKinds: the target counts protocol errors in all and
// by kind.
func TestProtocolErrorKinds(t *testing.T) {
	tgt := newTestTarget(t)
	tgt.ProtocolError(ProtoHeaderDigest)
	tgt.ProtocolError(ProtoHeaderDigest)
	tgt.ProtocolError(ProtoDataDigest)
	if tgt.Stats.ProtocolErrors.Load() != 3 || tgt.Stats.ProtocolErrorKinds[ProtoHeaderDigest].Load() != 2 ||
		tgt.Stats.ProtocolErrorKinds[ProtoDataDigest].Load() != 1 {
		t.Errorf("protocol errors %d, kinds %v", tgt.Stats.ProtocolErrors.Load(), &tgt.Stats.ProtocolErrorKinds)
	}
	for k := range NumProtocolErrorKinds {
		if k.String() == "unknown" {
			t.Errorf("kind %d has no name", k)
		}
	}
}

// TestLatencyObserved: a command's latency lands in its bucket.
func TestLatencyObserved(t *testing.T) {
	var s nsStats
	s.done(OpRead, 0, nanotime()-int64(3*time.Millisecond))
	o := s.ops[OpRead].snapshot()
	// 3 ms and a little: the 5 ms bucket (index of 5ms in LatencyBuckets).
	i := 11
	if LatencyBuckets[i] != 5*time.Millisecond || o.Latency[i] != 1 || o.LatencySum < 3*time.Millisecond {
		t.Errorf("latency buckets %v, sum %v", o.Latency, o.LatencySum)
	}
}

// TestStatsWhileIO: reports read while commands run see counts that
// never go down, and all of them at the end (go test -race checks the
// reads race with nothing).
func TestStatsWhileIO(t *testing.T) {
	_, io := ioSetup(t, memBackend(t, 1<<20, 512))
	tgt := io.q.t
	ns := io.q.Controller().subsys.Namespace(1)
	const n = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := &Request{Cmd: rwSQE(nvmeof.NVMWrite, 1, 0, 8), Data: make([]byte, 4096)}
		for range n {
			io.q.Execute(r)
		}
	}()
	var last uint64
	check := func() {
		o := ns.Stats().Ops[OpWrite]
		if o.Commands < last {
			t.Fatalf("writes went down from %d to %d", last, o.Commands)
		}
		last = o.Commands
		tgt.HostStats()
		io.q.Controller().Queues()
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		check()
	}
	check()
	if last != n {
		t.Errorf("%d writes counted, want %d", last, n)
	}
}

// TestBatchClock: under BatchClock the reads and writes of a batch count
// at EndBatch, all of them, with their bytes and latencies from the
// batch's one start; a batch longer than the pending table counts the
// rest as they come; Closed counts what a last batch left.
func TestBatchClock(t *testing.T) {
	_, io := ioSetup(t, memBackend(t, 1<<20, 512))
	ns := io.q.Controller().subsys.Namespace(1)
	io.q.BatchClock()
	reads := func() OpStats { return ns.Stats().Ops[OpRead] }
	for range 3 {
		io.ok(rwSQE(nvmeof.NVMRead, 1, 0, 8), make([]byte, 4096))
	}
	io.ok(rwSQE(nvmeof.NVMWrite, 1, 0, 8), make([]byte, 4096))
	if o := reads(); o.Commands != 0 {
		t.Fatalf("before EndBatch: %d reads counted, want them held for the batch's clock", o.Commands)
	}
	io.q.EndBatch()
	if o, w := reads(), ns.Stats().Ops[OpWrite]; o.Commands != 3 || o.Bytes != 3*4096 || w.Commands != 1 || o.Latency[NumLatencyBuckets-1] != 0 {
		t.Fatalf("after EndBatch: reads %+v, writes %+v", o, w)
	}
	for range maxPendingStats + 5 {
		io.ok(rwSQE(nvmeof.NVMRead, 1, 0, 8), make([]byte, 4096))
	}
	if o := reads(); o.Commands != 3+5 {
		t.Errorf("a batch of %d: %d counted before its end, want the 5 past the table", maxPendingStats+5, o.Commands-3)
	}
	io.q.Closed()
	if o := reads(); o.Commands != 3+maxPendingStats+5 {
		t.Errorf("after Closed: %d reads, want %d", o.Commands, 3+maxPendingStats+5)
	}
}
