package e2e

import (
	"bytes"
	"sync"
	"testing"

	"github.com/flashpath/flashpath/initiator"
)

// polledController connects to an in-process target with polled I/O
// queues (no receive goroutine) of depth.
func polledController(t *testing.T, queues, depth int) (*initiator.Controller, *initiator.Namespace, testTarget) {
	t.Helper()
	tt := startTarget(t, 16<<20, 16<<10)
	c := connect(t, tt, func(c *initiator.Config) { c.IOQueues, c.QueueDepth, c.Polled = queues, depth, true })
	for _, q := range c.Queues() {
		if !q.Polled() {
			t.Fatalf("queue %d is not polled", q.ID())
		}
	}
	return c, openNS(t, c, tt.nsid), tt
}

// TestPolledQueueBlockingCalls: the blocking Namespace calls poll their
// queue themselves, also when a call has more commands than the queue has
// slots (Submit then polls for free ones), and from several goroutines at
// once (one polls, the others wait and find their requests delivered).
func TestPolledQueueBlockingCalls(t *testing.T) {
	_, ns, _ := polledController(t, 2, 4)
	big := make([]byte, 12*ns.MaxTransfer()) // 12 commands on a queue of 4
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	if _, err := ns.WriteAt(big, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(big))
	if _, err := ns.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("read back differs from what was written")
	}

	const workers, rounds, size = 6, 40, 8 << 10
	base := int64(len(big))
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		wg.Go(func() {
			off := base + int64(w)*size
			buf, back := make([]byte, size), make([]byte, size)
			for i := range rounds {
				for j := range buf {
					buf[j] = byte(w*13 + i*5 + j)
				}
				if _, err := ns.WriteAt(buf, off); err != nil {
					errs <- err.Error()
					return
				}
				if _, err := ns.ReadAt(back, off); err != nil {
					errs <- err.Error()
					return
				}
				if !bytes.Equal(back, buf) {
					errs <- "read back differs from what was written"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if err := ns.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestPolledQueueAsync: requests submitted asynchronously are delivered
// only while the queue is polled, on the polling goroutine, each with its
// own data.
func TestPolledQueueAsync(t *testing.T) {
	c, ns, _ := polledController(t, 1, 8)
	q := c.Queues()[0]
	const n, size = 8, 4096
	want := make([]byte, n*size)
	for i := range want {
		want[i] = byte(i ^ i>>9)
	}
	if _, err := ns.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	done := make(chan *initiator.Request, n)
	reqs := make([]initiator.Request, n)
	blk := uint64(size / ns.BlockSize())
	for i := range reqs {
		reqs[i] = initiator.Request{Op: initiator.OpRead, NSID: ns.ID(), SLBA: uint64(i) * blk, NLB: uint32(blk), Buf: make([]byte, size), Done: done}
	}
	if _, err := q.SubmitBatch(toPtrs(reqs)); err != nil {
		t.Fatal(err)
	}
	if err := q.Poll(func() bool { return len(done) == n }); err != nil {
		t.Fatal(err)
	}
	for range n {
		r := <-done
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
		i := int(r.SLBA / blk)
		if !bytes.Equal(r.Buf, want[i*size:(i+1)*size]) {
			t.Fatalf("read %d: data differs", i)
		}
	}
}

func toPtrs(rs []initiator.Request) []*initiator.Request {
	ps := make([]*initiator.Request, len(rs))
	for i := range rs {
		ps[i] = &rs[i]
	}
	return ps
}

// TestPolledQueueFails: when the connection breaks, Poll returns the
// error and every request in flight is delivered with it; closing a
// queue that nobody polls delivers its requests too.
func TestPolledQueueFails(t *testing.T) {
	for _, how := range []string{"target gone", "closed unpolled"} {
		t.Run(how, func(t *testing.T) {
			r := startRestartable(t)
			c := connect(t, r.target(), func(c *initiator.Config) {
				fastReconnect(-1)(c)
				c.IOQueues, c.QueueDepth, c.Polled = 1, 4, true
			})
			q := c.Queues()[0]
			done := make(chan *initiator.Request, 4)
			reqs := make([]initiator.Request, 4)
			for i := range reqs {
				reqs[i] = initiator.Request{Op: initiator.OpRead, NSID: 1, SLBA: uint64(i * 8), NLB: 8, Buf: make([]byte, 4096), Done: done}
			}
			if how == "target gone" {
				r.drop() // before anything is sent: the requests cannot complete
			}
			// Sent or not, each is delivered exactly once.
			n, _ := q.SubmitDeferred(toPtrs(reqs))
			switch how {
			case "target gone":
				q.Flush()
				if err := q.Poll(func() bool { return len(done) == n }); err == nil && n > 0 {
					t.Fatal("Poll on a dropped connection returned no error")
				}
			case "closed unpolled":
				q.Close()
			}
			if len(done) != n {
				t.Fatalf("%d of %d requests delivered", len(done), n)
			}
			for range n {
				if r := <-done; r.Err == nil {
					t.Fatalf("request delivered without an error: %v", r.Status)
				}
			}
			if err := q.Poll(func() bool { return false }); err == nil {
				t.Fatal("Poll on a failed queue returned no error")
			}
		})
	}
}

// TestPolledZeroAlloc: submitting and polling allocate nothing per I/O
// (the count covers the in-process target too).
func TestPolledZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	c, ns, _ := polledController(t, 1, 4)
	assertIOZeroAlloc(t, c.Queues()[0], ns)
}
