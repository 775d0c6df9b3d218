package initiator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
)

// Queue is one queue pair: a table of command slots over a transport's
// Link (a TCP connection, an RDMA queue pair), and one goroutine that owns
// the receive side, or (a polled queue, Options.Polled) the goroutines
// that call Poll. Submit may be called from many goroutines; up to Depth
// commands are in flight.
type Queue struct {
	qid     uint16
	link    Link
	poll    PollLink // nil: the receive goroutine runs the link
	maxXfer int      // 0: no limit
	timeout time.Duration
	log     *slog.Logger

	slots []slot
	free  chan uint16 // free command ids
	// tick counts the watchdog's periods (from 1): a command is stamped
	// with it when sent, an atomic load where a clock reading cost about
	// 100 ns per command on a VM's kvm-clock.
	tick atomic.Int64

	wmu     sync.Mutex
	closed  bool         // guarded by wmu: no more submissions
	waiting atomic.Int32 // submitters between taking a slot and sending; the last flushes

	dead     chan struct{} // closed by fail
	onDead   func(error)   // told by fail, once (the controller's reconnect)
	failOnce sync.Once
	err      error // why the queue failed; written before dead closes
	wg       sync.WaitGroup

	// A polled queue's receive side: held by Poll, and by Close to end it.
	rmu       sync.Mutex
	recvEnded bool        // guarded by rmu: endReceive ran
	slotFree  func() bool // Poll until a command slot is free (bound once)
}

type slot struct {
	req   *Request     // in flight; written by the submitter under wmu, cleared by the receive goroutine
	start atomic.Int64 // the queue's tick when sent, 0 when idle or exempt from the timeout
	cmd   Command      // what the transport sees of req
}

// ID returns the queue identifier (0 is the admin queue).
func (q *Queue) ID() uint16 { return q.qid }

// Depth returns the number of commands the queue can have in flight.
func (q *Queue) Depth() int { return len(q.slots) }

// MaxTransfer returns the largest Buf a request may carry (0: no limit).
func (q *Queue) MaxTransfer() int { return q.maxXfer }

// Err returns why the queue failed, or nil while it works.
func (q *Queue) Err() error {
	select {
	case <-q.dead:
		return q.err
	default:
		return nil
	}
}

// dial connects one queue pair over tr and starts it.
func dial(ctx context.Context, tr Transport, p QueueParams) (*Queue, error) {
	l, err := tr.DialQueue(ctx, p)
	if err != nil {
		return nil, err
	}
	return StartQueue(p, l), nil
}

// StartQueue runs l, a dialed queue pair, as a Queue: its receive
// goroutine and its I/O timeout. Controllers dial their queues
// themselves; transports' tests use this to run one over a fake peer.
func StartQueue(p QueueParams, l Link) *Queue {
	if p.Log == nil {
		p.Log = slog.Default()
	}
	q := &Queue{
		qid:     p.QID,
		link:    l,
		timeout: p.timeout,
		log:     p.Log.With("qid", p.QID),
		slots:   make([]slot, p.Depth),
		free:    make(chan uint16, p.Depth),
		dead:    make(chan struct{}),
		onDead:  p.onDead,
	}
	q.tick.Store(1) // 0 marks a slot without a command
	for i := range p.Depth {
		q.free <- uint16(i)
	}
	if pl, ok := l.(PollLink); ok && p.Polled {
		q.poll = pl
		q.slotFree = func() bool { return len(q.free) > 0 }
	} else {
		q.wg.Add(1)
		go q.recvLoop()
	}
	q.wg.Add(1)
	go q.watchdog()
	return q
}

// Polled reports whether the queue has no receive goroutine: its
// completions are delivered only while a user polls it (Poll), on that
// goroutine.
func (q *Queue) Polled() bool { return q.poll != nil }

// Poll runs a polled queue's receive side on the calling goroutine:
// completions are delivered (OnDone, Done) here, until ready reports true.
// ready is called with the receive side held, between the controller's
// messages, so it sees every delivery made so far; Poll blocks on the
// connection meanwhile (busy-polling it first, Options.BusyPoll). One
// goroutine polls at a time; others wait for it. It returns the queue's
// error once the queue has failed, every request in flight then
// delivered with it. On a queue that is not polled it returns at once.
func (q *Queue) Poll(ready func() bool) error {
	if q.poll == nil {
		return nil
	}
	q.rmu.Lock()
	defer q.rmu.Unlock()
	if q.recvEnded {
		return q.err
	}
	if err := q.poll.Poll(q, ready); err != nil {
		q.endReceive(err)
		return q.err
	}
	return nil
}

// Submit sends r. It blocks while all Depth command slots are busy. It
// returns an error, and r is not delivered, when r is invalid or the queue
// has failed; otherwise r is delivered exactly once through OnDone or Done,
// with Err set if the connection failed meanwhile.
func (q *Queue) Submit(r *Request) error {
	if err := q.prepare(r); err != nil {
		return err
	}
	for {
		select {
		case cid := <-q.free:
			return q.send(cid, r)
		case <-q.dead:
			return q.err
		default:
		}
		if q.poll == nil {
			select {
			case cid := <-q.free:
				return q.send(cid, r)
			case <-q.dead:
				return q.err
			}
		}
		// A polled queue frees slots only while polled: send what is
		// buffered, whose completions free them, and poll.
		if err := q.Flush(); err != nil {
			return err
		}
		if err := q.Poll(q.slotFree); err != nil {
			return err
		}
	}
}

// SubmitBatch submits several requests and sends them with one flush (one
// write system call where they fit the send buffer), as a benchmark or a
// pipeline does when it refills its queue after reaping completions. It
// blocks while all slots are busy, like Submit. It returns how many were
// submitted: on an error, the requests before the failing one were
// submitted and will be delivered; the rest were not.
func (q *Queue) SubmitBatch(rs []*Request) (int, error) { return q.submitBatch(rs, true) }

// SubmitDeferred is SubmitBatch that leaves the commands in the
// transport's send buffer: they go out with the queue's next Flush,
// Submit or SubmitBatch. A caller that then waits for their completions
// must Flush first. An application that submits one request at a time
// between polls for completions (a benchmark at iodepth_batch_submit=1)
// sends them in one write this way, as SPDK's host sends the requests
// queued on a queue pair when the application polls it.
func (q *Queue) SubmitDeferred(rs []*Request) (int, error) { return q.submitBatch(rs, false) }

// Flush sends what SubmitDeferred left buffered.
// A failed flush fails the queue.
func (q *Queue) Flush() error {
	q.wmu.Lock()
	if q.closed {
		q.wmu.Unlock()
		return q.err
	}
	err := q.link.Flush()
	q.wmu.Unlock()
	if err != nil {
		err = fmt.Errorf("queue %d: send commands: %w", q.qid, err)
		q.Fail(err)
	}
	return err
}

func (q *Queue) submitBatch(rs []*Request, flush bool) (int, error) {
	// Holding a waiter keeps each send from flushing; the last one out flushes.
	q.waiting.Add(1)
	var err error
	n := 0
	for _, r := range rs {
		if len(q.free) == 0 {
			// About to wait for a slot: what is buffered must go out first,
			// or the completions that free slots might never come.
			q.wmu.Lock()
			if !q.closed {
				q.link.Flush()
			}
			q.wmu.Unlock()
		}
		if err = q.Submit(r); err != nil {
			break
		}
		n++
	}
	if q.waiting.Add(-1) == 0 && flush {
		q.Flush() // a failure fails the queue: the requests come back with it
	}
	return n, err
}

// send hands the command in slot cid to the transport.
func (q *Queue) send(cid uint16, r *Request) error {
	s := &q.slots[cid]
	s.cmd = Command{sqe: &r.sqe, Buf: r.Buf, Out: r.out, Dev: r.Dev, DevLen: r.DevLen}
	if err := q.link.Prepare(cid, &s.cmd); err != nil {
		s.cmd = Command{}
		q.free <- cid
		return fmt.Errorf("queue %d: %w", q.qid, err)
	}
	var start int64
	if !r.noTimeout {
		start = q.tick.Load()
	}
	q.waiting.Add(1)
	q.wmu.Lock()
	if q.closed {
		q.waiting.Add(-1)
		q.wmu.Unlock()
		q.link.Release(cid)
		s.cmd = Command{}
		q.free <- cid
		return q.err
	}
	s.req = r
	s.start.Store(start)
	err := q.link.Send(cid, &s.cmd)
	if q.waiting.Add(-1) == 0 && err == nil {
		err = q.link.Flush()
	}
	q.wmu.Unlock()
	if err != nil {
		// r is in flight: the receive goroutine delivers it with the error.
		q.Fail(fmt.Errorf("queue %d: send command: %w", q.qid, err))
	}
	return nil
}

// LockSend takes the queue's send lock for a transport that sends outside
// Send (data a controller asked for, a termination request) and reports
// whether the queue still sends; when it does not, the lock is not held.
func (q *Queue) LockSend() bool {
	q.wmu.Lock()
	if q.closed {
		q.wmu.Unlock()
		return false
	}
	return true
}

// UnlockSend releases the lock LockSend took.
func (q *Queue) UnlockSend() { q.wmu.Unlock() }

// InFlightCount is how many commands hold a slot: sent, or about to be.
func (q *Queue) InFlightCount() int { return len(q.slots) - len(q.free) }

// Batching reports whether submitters are between taking a slot and
// sending: the last of them flushes, so a transport sending under the
// send lock need not.
func (q *Queue) Batching() bool { return q.waiting.Load() != 0 }

// InFlight returns the command in flight in slot cid, or nil when there
// is none: a transport checks every command id a controller names.
func (q *Queue) InFlight(cid uint16) *Command {
	if int(cid) >= len(q.slots) || q.slots[cid].req == nil {
		return nil
	}
	return &q.slots[cid].cmd
}

// Complete delivers the command in flight in slot cid with the
// controller's status and completion dwords, and frees the slot. Only the
// receive goroutine calls it, for a cid InFlight returned.
func (q *Queue) Complete(cid uint16, st nvmeof.Status, dw0, dw1 uint32) {
	s := &q.slots[cid]
	r := s.req
	r.Status, r.DW0, r.dw1, r.Err = st, dw0, dw1, nil
	s.start.Store(0)
	s.req = nil
	s.cmd = Command{}
	q.free <- cid
	q.deliver(r)
}

// Fail records the first error and stops the link; the receive goroutine
// then delivers every request in flight with it. Transports call it for
// errors found outside Receive.
func (q *Queue) Fail(err error) {
	q.failOnce.Do(func() {
		q.err = err
		close(q.dead)
		q.link.Stop()
		if q.onDead != nil {
			q.onDead(err)
		}
	})
}

// Close fails the queue with ErrClosed and waits for its goroutines. A
// controller closes its own queues; closing one of them is a lost
// connection to it.
func (q *Queue) Close() {
	q.Fail(ErrClosed)
	if q.poll != nil {
		q.rmu.Lock()
		if !q.recvEnded {
			q.endReceive(q.err)
		}
		q.rmu.Unlock()
	}
	q.wg.Wait()
}

func (q *Queue) deliver(r *Request) {
	if r.OnDone != nil {
		r.OnDone(r)
	} else if r.Done != nil {
		r.Done <- r
	}
}

// recvLoop owns the receive side: the link's Receive, then the delivery
// of whatever was in flight when it ended.
func (q *Queue) recvLoop() {
	defer q.wg.Done()
	q.endReceive(q.link.Receive(q))
}

// endReceive ends the receive side, which failed with err: the queue
// fails, and every request in flight is delivered with its error.
func (q *Queue) endReceive(err error) {
	q.recvEnded = true
	select {
	case <-q.dead:
	default:
		q.log.Debug("queue failed", "err", err)
	}
	q.Fail(err)
	q.wmu.Lock()
	q.closed = true
	q.wmu.Unlock()
	// Closed to submissions, the link stopped: deliver what is in flight.
	for i := range q.slots {
		s := &q.slots[i]
		if r := s.req; r != nil {
			q.link.Release(uint16(i))
			s.req = nil
			s.cmd = Command{}
			s.start.Store(0)
			r.Err = q.err
			q.deliver(r)
		}
	}
	q.link.Close()
}

// watchdog fails the queue when a command stays in flight longer than the
// I/O timeout, like the Linux host's timeout handler that starts error
// recovery. It ticks every quarter of the timeout (10 ms at least): a
// command sent at tick k is at least n periods old at tick k+n+1, so it
// fails between the timeout and one period more (the Linux host counts in
// jiffies the same way).
func (q *Queue) watchdog() {
	defer q.wg.Done()
	if q.timeout <= 0 {
		<-q.dead
		return
	}
	period := max(q.timeout/4, 10*time.Millisecond)
	ticks := int64((q.timeout + period - 1) / period)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-q.dead:
			return
		case <-t.C:
			now := q.tick.Add(1)
			for i := range q.slots {
				if st := q.slots[i].start.Load(); st != 0 && now-st > ticks {
					q.Fail(fmt.Errorf("queue %d: command id %d timed out after %v: the controller stopped answering; reconnect", q.qid, i, q.timeout))
					return
				}
			}
		}
	}
}

// exec runs the command sqe and waits for it. buf is its data; out says
// which way it flows. A non-success status is a *nvmeof.StatusError, and
// the request is returned with it.
func (q *Queue) exec(ctx context.Context, name string, sqe *nvmeof.SQE, buf []byte, out bool) (*Request, error) {
	done := make(chan *Request, 1)
	r := &Request{sqe: *sqe, raw: true, out: out, Buf: buf, Done: done}
	if err := q.Submit(r); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := q.wait(ctx, done); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if r.Err != nil {
		return nil, fmt.Errorf("%s: %w", name, r.Err)
	}
	if !r.Status.OK() {
		return r, &nvmeof.StatusError{Op: name, Status: r.Status}
	}
	return r, nil
}

// wait waits for the request that done (buffered, for it alone) delivers,
// or for ctx. A polled queue is polled meanwhile; ctx ending then fails
// the queue, since its receive side cannot be left half way.
func (q *Queue) wait(ctx context.Context, done chan *Request) error {
	if q.poll == nil {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	stop := context.AfterFunc(ctx, func() { q.Fail(fmt.Errorf("queue %d: %w", q.qid, ctx.Err())) })
	defer stop()
	q.Poll(func() bool { return len(done) > 0 })
	select {
	case <-done:
		return nil
	default: // a failed queue delivers all it had in flight
		return fmt.Errorf("queue %d: the request was not delivered", q.qid)
	}
}
