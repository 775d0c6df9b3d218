package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/tcp"
)

// benchQueue connects to an in-process target and returns one I/O queue.
func benchQueue(b *testing.B) (*initiator.Queue, *initiator.Namespace) {
	tt := startTarget(b, 256<<20, 0)
	c := connect(b, tt, func(c *initiator.Config) { c.IOQueues, c.QueueDepth = 1, 128 })
	return c.Queues()[0], openNS(b, c, tt.nsid)
}

// runAsync keeps qd reads of size bytes in flight on q for b.N completions.
func runAsync(b *testing.B, q *initiator.Queue, ns *initiator.Namespace, size, qd int) {
	bs := ns.BlockSize()
	span := int(ns.Size()) / size
	done := make(chan *initiator.Request, qd)
	reqs := make([]initiator.Request, qd)
	for i := range reqs {
		reqs[i] = initiator.Request{Op: initiator.OpRead, NSID: ns.ID(), NLB: uint32(size / bs), Buf: make([]byte, size), Done: done}
	}
	next := 0
	submit := func(r *initiator.Request) {
		r.SLBA = uint64(next%span) * uint64(size/bs)
		next += 7
		if err := q.Submit(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	inflight := 0
	for i := range min(qd, b.N) {
		submit(&reqs[i])
		inflight++
	}
	for n := 0; n < b.N; n++ {
		r := <-done
		inflight--
		if r.Err != nil || !r.Status.OK() {
			b.Fatal(r.Error())
		}
		if n+inflight < b.N {
			submit(r)
			inflight++
		}
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/el, "IOPS")
	b.ReportMetric(float64(b.N)*float64(size)/el/1e9, "GB/s")
}

func BenchmarkAsyncRead4KQD32(b *testing.B) {
	q, ns := benchQueue(b)
	runAsync(b, q, ns, 4096, 32)
}

func BenchmarkAsyncRead128KQD32(b *testing.B) {
	q, ns := benchQueue(b)
	runAsync(b, q, ns, 128<<10, 32)
}

// TestSubmitZeroAlloc asserts that the async path allocates nothing per
// I/O: reads (C2HData), in-capsule writes and R2T-solicited writes. The
// count covers the whole process, the in-process target included.
func TestSubmitZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tt := startTarget(t, 16<<20, 16<<10)
	c := connect(t, tt, func(c *initiator.Config) { c.IOQueues = 1 })
	assertIOZeroAlloc(t, c.Queues()[0], openNS(t, c, tt.nsid))
}

// TestSubmitZeroAllocDigestsAndTLS: the same with header and data
// digests on (a digest per data PDU, 16 KiB PDUs: eight per 128 KiB
// write), and over TLS 1.3, polled and not; both ends are counted.
func TestSubmitZeroAllocDigestsAndTLS(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, polled := range []bool{false, true} {
		tt := startTarget(t, 16<<20, 16<<10)
		c := connect(t, tt, func(c *initiator.Config) {
			c.IOQueues, c.HeaderDigest, c.DataDigest, c.Polled = 1, true, true, polled
		})
		t.Run(fmt.Sprintf("digests/polled=%v", polled), func(t *testing.T) { assertIOZeroAlloc(t, c.Queues()[0], openNS(t, c, tt.nsid)) })

		addr, opts := startTLSTarget(t, tcp.Options{TLS: tcp.TLSRequired, MaxH2CData: 16 << 10})
		tc := connect(t, testTarget{addr: addr, subnqn: realNQN}, func(c *initiator.Config) {
			c.Options = opts
			c.IOQueues, c.Polled = 1, polled
		})
		t.Run(fmt.Sprintf("tls/polled=%v", polled), func(t *testing.T) { assertIOZeroAlloc(t, tc.Queues()[0], openNS(t, tc, 1)) })
	}
}

// TestSubmitZeroAllocRDMA: the async path over NVMe/RDMA (the fake verbs
// provider), both ends counted.
func TestSubmitZeroAllocRDMA(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	addr, prov, _ := rdmaTarget(t)
	c := connectRDMA(t, addr, prov, 1, 128)
	ns, err := c.Namespace(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	assertIOZeroAlloc(t, c.Queues()[0], ns)
}

// assertIOZeroAlloc submits reads and writes of 4 KiB and 128 KiB on q,
// one at a time, and fails the test if one allocates; on a polled queue
// it polls for the completion.
func assertIOZeroAlloc(t *testing.T, q *initiator.Queue, ns *initiator.Namespace) {
	done := make(chan *initiator.Request, 1)
	ready := func() bool { return len(done) > 0 }
	for _, tc := range []struct {
		op   initiator.Op
		size int
	}{{initiator.OpRead, 4096}, {initiator.OpRead, 128 << 10}, {initiator.OpWrite, 4096}, {initiator.OpWrite, 128 << 10}} {
		r := &initiator.Request{Op: tc.op, NSID: ns.ID(), SLBA: 8, NLB: uint32(tc.size / ns.BlockSize()), Buf: make([]byte, tc.size), Done: done}
		allocs := testing.AllocsPerRun(200, func() {
			if err := q.Submit(r); err != nil {
				t.Fatal(err)
			}
			if err := q.Poll(ready); err != nil {
				t.Fatal(err)
			}
			if err := (<-done).Error(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v of %d bytes: %v allocations per I/O, want 0", tc.op, tc.size, allocs)
		}
	}
}

// TestNamespaceZeroAlloc asserts that the blocking Namespace calls
// allocate nothing per call (their per-call state is pooled): reads and
// writes of one command and of several (split at MaxTransfer), Compare
// and Flush.
func TestNamespaceZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tt := startTarget(t, 16<<20, 16<<10)
	c := connect(t, tt, func(c *initiator.Config) { c.IOQueues = 2 })
	ns := openNS(t, c, tt.nsid)
	multi := 4 * ns.MaxTransfer()
	buf := make([]byte, multi)
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"WriteAt 4 KiB", func() error { _, err := ns.WriteAt(buf[:4096], 4096); return err }},
		{"WriteAt 4 commands", func() error { _, err := ns.WriteAt(buf, 0); return err }},
		{"ReadAt 4 KiB", func() error { _, err := ns.ReadAt(buf[:4096], 4096); return err }},
		{"ReadAt 4 commands", func() error { _, err := ns.ReadAt(buf, 0); return err }},
		{"Compare 4 KiB", func() error { return ns.Compare(buf[:4096], 4096) }},
		{"Flush", ns.Flush},
	} {
		allocs := testing.AllocsPerRun(100, func() {
			if err := tc.f(); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, allocs)
		}
	}
}

// TestSubmitZeroAllocSendfile: reads of 256 KiB and more from a buffered
// file namespace leave the target by sendfile, and that path allocates
// nothing per I/O either (writes and small reads beside them).
func TestSubmitZeroAllocSendfile(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	be, err := backend.OpenFile(filepath.Join(t.TempDir(), "ns.img"), backend.FileOptions{Size: 64 << 20, Buffered: true})
	testutil.SkipIfNotSupported(t, err)
	t.Cleanup(func() { be.Close() })
	tt := startTargetOn(t, target.Options{}, be, 0)
	c := connect(t, tt, func(c *initiator.Config) { c.IOQueues, c.QueueDepth = 1, 128 })
	q, ns := c.Queues()[0], openNS(t, c, tt.nsid)
	done := make(chan *initiator.Request, 1)
	for _, size := range []int{4096, 256 << 10, 1 << 20} {
		for _, op := range []initiator.Op{initiator.OpWrite, initiator.OpRead} {
			r := &initiator.Request{Op: op, NSID: ns.ID(), SLBA: 8, NLB: uint32(size / ns.BlockSize()), Buf: make([]byte, size), Done: done}
			a := testing.AllocsPerRun(100, func() {
				if err := q.Submit(r); err != nil {
					t.Fatal(err)
				}
				if err := (<-done).Error(); err != nil {
					t.Fatal(err)
				}
			})
			if a != 0 {
				t.Errorf("%v of %d bytes: %v allocations per I/O, want 0", op, size, a)
			}
		}
	}
	if n := tt.ss.Namespace(1).Stats().BytesFromFile; n == 0 {
		t.Error("no read was sent from the file: the sendfile path did not run")
	}
}
