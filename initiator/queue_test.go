package initiator

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
)

// fakeLink is a Link with no wire: Send hands the command id to Receive,
// which completes it with status, or fails the link with sendErr.
type fakeLink struct {
	sent       chan uint16
	status     nvmeof.Status
	prepareErr error // Prepare fails with it (once)
	sendErr    error // Send fails with it

	mu       sync.Mutex
	prepared map[uint16]bool // prepared, not yet released or completed
	last     Command         // the command Prepare saw last
	released []uint16
	stops    int
	closes   int
	stopped  chan struct{}
	// buffered: Send keeps command ids in pending until Flush, as a
	// transport's send buffer does.
	buffered bool
	pending  []uint16
	flushes  int
	// mute: Send keeps the command and nothing ever answers it.
	mute bool
}

func newFakeLink(depth int) *fakeLink {
	return &fakeLink{sent: make(chan uint16, depth), prepared: map[uint16]bool{}, stopped: make(chan struct{})}
}

func (l *fakeLink) Prepare(cid uint16, c *Command) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.prepareErr; err != nil {
		l.prepareErr = nil
		return err
	}
	l.prepared[cid] = true
	l.last = *c
	return nil
}

func (l *fakeLink) Send(cid uint16, c *Command) error {
	if l.sendErr != nil {
		return l.sendErr
	}
	if l.mute {
		return nil
	}
	if l.buffered {
		l.mu.Lock()
		l.pending = append(l.pending, cid)
		l.mu.Unlock()
		return nil
	}
	l.sent <- cid
	return nil
}

func (l *fakeLink) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > 0 {
		l.flushes++
	}
	for _, cid := range l.pending {
		l.sent <- cid
	}
	l.pending = l.pending[:0]
	return nil
}

func (l *fakeLink) Release(cid uint16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.prepared, cid)
	l.released = append(l.released, cid)
}

func (l *fakeLink) Receive(q *Queue) error {
	for {
		select {
		case cid := <-l.sent:
			if q.InFlight(cid) == nil {
				return errors.New("sent a command id not in flight")
			}
			l.mu.Lock()
			delete(l.prepared, cid)
			l.mu.Unlock()
			q.Complete(cid, l.status, uint32(cid), 0)
		case <-l.stopped:
			return errors.New("link stopped")
		}
	}
}

func (l *fakeLink) Stop() {
	l.mu.Lock()
	l.stops++
	l.mu.Unlock()
	close(l.stopped)
}

func (l *fakeLink) Close() {
	l.mu.Lock()
	l.closes++
	l.mu.Unlock()
}

func startFakeQueue(depth int) (*Queue, *fakeLink) {
	l := newFakeLink(depth)
	return StartQueue(QueueParams{QID: 1, Depth: depth, Log: slog.New(slog.DiscardHandler)}, l), l
}

// TestQueueOverLink: the core drives a transport's Link as the interface
// says: commands are in flight when sent and complete with what the link
// reports, a failed Prepare frees its slot, and a closed queue stops and
// closes its link once, having released what was in flight.
func TestQueueOverLink(t *testing.T) {
	const depth = 4
	q, l := startFakeQueue(depth)
	done := make(chan *Request, depth)
	noBuf := errors.New("no bounce buffer")
	l.mu.Lock()
	l.prepareErr = noBuf
	l.mu.Unlock()
	r := &Request{Op: OpRead, NSID: 1, NLB: 1, Buf: make([]byte, 512), Done: done}
	if err := q.Submit(r); !errors.Is(err, noBuf) {
		t.Fatalf("Submit with a failing Prepare: %v", err)
	}
	// Every slot is still there: depth rounds of depth requests complete.
	reqs := make([]Request, depth)
	for range depth {
		for i := range reqs {
			reqs[i] = Request{Op: OpWrite, NSID: 1, SLBA: uint64(i), NLB: 1, Buf: make([]byte, 512), Done: done}
			if err := q.Submit(&reqs[i]); err != nil {
				t.Fatal(err)
			}
		}
		for range depth {
			if r := <-done; r.Error() != nil {
				t.Fatal(r.Error())
			}
		}
	}
	l.status = nvmeof.StatusLBAOutOfRange
	if err := q.Submit(r); err != nil {
		t.Fatal(err)
	}
	if got := <-done; !errors.Is(got.Error(), &nvmeof.StatusError{Status: nvmeof.StatusLBAOutOfRange}) {
		t.Fatalf("status from the link: %v", got.Error())
	}
	q.Close()
	if err := q.Submit(r); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v, want ErrClosed", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stops != 1 || l.closes != 1 || len(l.prepared) != 0 {
		t.Fatalf("link stopped %d times, closed %d times, %d slots still prepared; want 1, 1, 0", l.stops, l.closes, len(l.prepared))
	}
}

// TestQueueSendFailure: a link that fails to send fails the queue, and
// every request in flight is delivered once, with the error, its slot
// released to the link.
func TestQueueSendFailure(t *testing.T) {
	q, l := startFakeQueue(2)
	l.sendErr = errors.New("connection reset")
	done := make(chan *Request, 2)
	r := &Request{Op: OpFlush, NSID: 1, Done: done}
	if err := q.Submit(r); err != nil {
		t.Fatalf("Submit: %v (the request is in flight: it is delivered with the error)", err)
	}
	got := <-done
	if !errors.Is(got.Err, l.sendErr) {
		t.Fatalf("request delivered with %v, want the send error", got.Err)
	}
	q.Close()
	select {
	case r := <-done:
		t.Fatalf("request %v delivered twice", r.Op)
	default:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.released) != 1 || l.stops != 1 || l.closes != 1 {
		t.Fatalf("released %v, stopped %d, closed %d; want one slot, 1, 1", l.released, l.stops, l.closes)
	}
	if !errors.Is(q.Err(), l.sendErr) {
		t.Fatalf("queue error %v", q.Err())
	}
}

// TestSubmitDeferred: deferred submissions stay in the send buffer until
// Flush (or a later submission) sends them, all in one flush; running out
// of slots flushes rather than waiting for completions that cannot come.
func TestSubmitDeferred(t *testing.T) {
	const depth = 4
	l := newFakeLink(depth)
	l.buffered = true
	q := StartQueue(QueueParams{QID: 1, Depth: depth, Log: slog.New(slog.DiscardHandler)}, l)
	defer q.Close()
	done := make(chan *Request, 2*depth)
	reqs := make([]Request, 2*depth)
	batch := make([]*Request, len(reqs))
	for i := range reqs {
		reqs[i] = Request{Op: OpFlush, NSID: 1, Done: done}
		batch[i] = &reqs[i]
	}
	if n, err := q.SubmitDeferred(batch[:3]); n != 3 || err != nil {
		t.Fatalf("SubmitDeferred = %d, %v", n, err)
	}
	l.mu.Lock()
	pending, flushes := len(l.pending), l.flushes
	l.mu.Unlock()
	if pending != 3 || flushes != 0 {
		t.Fatalf("after SubmitDeferred: %d commands buffered, %d flushes; want 3, 0", pending, flushes)
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if r := <-done; r.Error() != nil {
			t.Fatal(r.Error())
		}
	}
	// Twice the depth: the queue flushes when it runs out of slots.
	if n, err := q.SubmitDeferred(batch); n != len(batch) || err != nil {
		t.Fatalf("SubmitDeferred of %d on a queue of %d = %d, %v", len(batch), depth, n, err)
	}
	q.Flush()
	for range batch {
		if r := <-done; r.Error() != nil {
			t.Fatal(r.Error())
		}
	}
	l.mu.Lock()
	flushes = l.flushes
	l.mu.Unlock()
	if flushes < 3 {
		t.Fatalf("%d flushes, want at least 3 (one of 3 commands, one when the slots ran out, one at the end)", flushes)
	}
}

// TestQueueTimeout: a command the controller never answers fails the
// queue after the I/O timeout (between it and 1.25 times it: the
// watchdog counts quarters), delivered with an error that says so; the
// commands answered meanwhile are not touched.
func TestQueueTimeout(t *testing.T) {
	l := newFakeLink(4)
	q := StartQueue(QueueParams{QID: 1, Depth: 4, Log: slog.New(slog.DiscardHandler), timeout: 40 * time.Millisecond}, l)
	defer q.Close()
	done := make(chan *Request, 4)
	ok := &Request{Op: OpFlush, NSID: 1, Done: done}
	if err := q.Submit(ok); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Error() != nil {
		t.Fatalf("answered command: %v", r.Error())
	}
	l.mute = true
	start := time.Now()
	lost := &Request{Op: OpFlush, NSID: 1, Done: done}
	if err := q.Submit(lost); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Err == nil || !strings.Contains(r.Err.Error(), "timed out after 40ms") {
			t.Fatalf("unanswered command delivered with %v", r.Err)
		}
		t.Logf("failed after %v", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("an unanswered command was never failed")
	}
}
