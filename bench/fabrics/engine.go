// Package fabrics is the bench engines "nvme-tcp" and "nvme-rdma":
// flashpath's user-space NVMe-oF host (package initiator) driven
// asynchronously, one controller and one I/O queue per job, addressed as
//
//	--filename tcp://HOST:PORT/NQN/NSID   e.g. tcp://127.0.0.1:4420/nqn.2026-11.io.flashpath:demo/1
//	--filename rdma://HOST:PORT/NQN/NSID  (nvme-rdma; the job's buffers are registered with the NIC)
//
// Engine options: hdr_digest=1, data_digest=1 (TCP), hostnqn=NQN,
// dhchap_secret=DHHC-1:... and dhchap_ctrl_secret=DHHC-1:... (DH-HMAC-CHAP,
// as nvme connect's --dhchap-secret and --dhchap-ctrl-secret),
// tls_key=NVMeTLSkey-1:... (TCP: TLS 1.3 with this PSK, as nvme connect
// --tls), the host's reconnect settings reconnect_delay=2s and
// ctrl_loss_tmo=60s (durations as every flashpath flag takes them: 60,
// 60s, 1m; ctrl_loss_tmo=0 gives up at once, -1 reconnects forever, as
// nvme-cli), and (TCP) how completions are reaped:
// polled=1 (the default) has the job's own goroutine read its connection,
// as SPDK's host and fio's polled engines do (polled=0: the host's receive
// goroutine hands completions over); busy_poll=50us keeps polling the
// connection that long before the reader sleeps (default: the host's,
// 50us, while at most 4 commands are in flight; 0 turns it off), and
// hipri, as over the kernel host's poll queues, polls while I/O is in
// flight (busy_poll=1ms unless given). As fio over the kernel host, a job
// rides through a lost connection: the I/O in flight waits for the
// reconnect and is sent again on the new queue.
//
// Several comma-separated addresses are paths to one namespace, as the
// kernel host's native multipath (tcp://HOST1:PORT,HOST2:PORT/NQN/NSID):
// one controller per path, I/O on the ANA-optimized path with the fewest
// commands in flight, and I/O whose path is lost or turns inaccessible
// sent again on another path without an error to the job (multipath.go).
package fabrics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/units"

	// The transports the engines' filenames name.
	_ "github.com/flashpath/flashpath/initiator/rdma"
	_ "github.com/flashpath/flashpath/initiator/tcp"
)

func init() {
	bench.RegisterEngine("nvme-tcp", open, "hdr_digest", "data_digest", "hostnqn", "dhchap_secret", "dhchap_ctrl_secret", "reconnect_delay", "ctrl_loss_tmo", "busy_poll", "hipri", "polled", "tls_key")
	bench.RegisterBoolOptions("nvme-tcp", "hdr_digest", "data_digest", "hipri", "polled")
	bench.RegisterEngine("nvme-rdma", openRDMA, "hostnqn", "dhchap_secret", "dhchap_ctrl_secret", "reconnect_delay", "ctrl_loss_tmo")
}

func openRDMA(cfg *bench.EngineConfig) (bench.Engine, error) {
	t, err := parseFilename(cfg.Filename, "rdma")
	if err != nil {
		return nil, err
	}
	e, err := openTarget(cfg, t, "rdma")
	if err != nil {
		return nil, fmt.Errorf("nvme-rdma: %w", err)
	}
	return e, nil
}

// ParseFilename parses tcp://HOST:PORT/NQN/NSID.
func ParseFilename(s string) (initiator.NamespaceURL, error) { return parseFilename(s, "tcp") }

func parseFilename(s, scheme string) (initiator.NamespaceURL, error) {
	u, err := initiator.ParseURL(s, scheme)
	if err != nil {
		return u, fmt.Errorf("nvme-%s filename: %w", scheme, err)
	}
	return u, nil
}

type engine struct {
	slots
	ns   *initiator.Namespace
	ctrl *initiator.Controller
	q    *initiator.Queue
	size int64
	reqQ []*initiator.Queue // the queue each request was last sent on
	// unsent: commands committed into the queue's send buffer, flushed
	// when the job next reaps (GetEvents).
	unsent bool
	// want is how many completions GetEvents waits for in done while it
	// polls a polled queue (ready, bound once).
	want  int
	ready func() bool
}

// slots is what both engines (one path, several) keep per job: a request
// per I/O slot of the job, bound to its slot's index (Tag), the staged
// batch, and the job's buffers.
type slots struct {
	region initiator.Registration // the buffers, registered with the transport
	mem    *bench.HostMemory
	fua    bool // every write with FUA (sync=)
	shift  uint
	reqs   []initiator.Request
	tries  []int // times each request was sent again after a lost connection or path
	ios    []*bench.IO
	staged []*bench.IO
	batch  []*initiator.Request
	done   chan *initiator.Request
}

func newSlots(cfg *bench.EngineConfig, nsid uint32, blockSize int) slots {
	depth := max(cfg.IODepth, 1)
	s := slots{fua: cfg.Job.Sync != bench.SyncNone,
		reqs: make([]initiator.Request, depth), tries: make([]int, depth), ios: make([]*bench.IO, depth),
		staged: make([]*bench.IO, 0, depth), batch: make([]*initiator.Request, 0, depth),
		done: make(chan *initiator.Request, depth)}
	for bs := blockSize; bs > 1; bs >>= 1 {
		s.shift++
	}
	for i := range s.reqs {
		s.reqs[i].Done = s.done
		s.reqs[i].NSID = nsid
		s.reqs[i].Tag = uint64(i)
	}
	return s
}

// buffers allocates the job's buffers and registers them with c's
// transport, once: over NVMe/RDMA the controller reads and writes them
// directly (no bounce copy). Registrations are the transport's, so they
// serve every controller on it.
func (s *slots) buffers(c *initiator.Controller, n, size int) ([]bench.Buffer, error) {
	m, err := bench.AllocHost(n, size)
	if err != nil {
		return nil, err
	}
	s.mem = m
	if s.region, err = c.Register(m.Mem()); err != nil {
		m.Close()
		return nil, fmt.Errorf("register %d buffers: %w", n, err)
	}
	return m.Bufs, nil
}

// Queue stages io's command.
func (s *slots) Queue(io *bench.IO) error {
	if err := fill(&s.reqs[io.Index], io, s.shift, s.fua); err != nil {
		return err
	}
	s.ios[io.Index] = io
	s.staged = append(s.staged, io)
	return nil
}

// stage moves what Queue staged into batch.
func (s *slots) stage() []*initiator.Request {
	s.batch = s.batch[:0]
	for _, io := range s.staged {
		s.batch = append(s.batch, &s.reqs[io.Index])
	}
	s.staged = s.staged[:0]
	return s.batch
}

// reap hands r's I/O to the job.
func (s *slots) reap(r *initiator.Request, events []*bench.IO) []*bench.IO {
	io := s.ios[r.Tag]
	s.tries[r.Tag] = 0
	io.Res, io.Err = io.Len, nil
	if err := r.Error(); err != nil {
		io.Res, io.Err = 0, err
	}
	return append(events, io)
}

// close releases the buffers once the controllers are closed.
func (s *slots) close() error {
	var err error
	if s.region != nil {
		err = s.region.Close()
	}
	if s.mem != nil {
		err = errors.Join(err, s.mem.Close())
	}
	return err
}

// hipriPoll is the busy-poll window of hipri: far longer than a round
// trip, so the queue polls while I/O is in flight and sleeps once the job
// stops.
const hipriPoll = time.Millisecond

// durationOpt reads option k in flashpath's duration syntax
// (units.ParseDuration: 2, 2s, 500ms; -1 forever where forever means
// something), 0 when it is not set.
func durationOpt(opts map[string]string, k string) (time.Duration, error) {
	v, ok := opts[k]
	if !ok {
		return 0, nil
	}
	d, err := units.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("option %s: %w", k, err)
	}
	if d == units.Forever && k != "ctrl_loss_tmo" {
		return 0, fmt.Errorf("option %s=-1: forever means nothing here; give a duration such as 2s", k)
	}
	return d.Duration(), nil
}

func boolOpt(opts map[string]string, k string) (bool, error) {
	v, ok := opts[k]
	if !ok {
		return false, nil
	}
	switch v {
	case "", "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("option %s=%q: want 0 or 1", k, v)
}

// options are the engine options of a job.
type options struct {
	hdrDigest, dataDigest, hipri bool
	polled                       bool
	reconnectDelay, ctrlLossTmo  time.Duration
	busyPoll                     time.Duration
}

func parseOptions(m map[string]string) (options, error) {
	var o options
	var errs []error
	o.polled = true
	for k, p := range map[string]*bool{"hdr_digest": &o.hdrDigest, "data_digest": &o.dataDigest, "hipri": &o.hipri, "polled": &o.polled} {
		if _, set := m[k]; !set {
			continue // the default stands (polled's is 1)
		}
		v, err := boolOpt(m, k)
		*p, errs = v, append(errs, err)
	}
	for k, p := range map[string]*time.Duration{"reconnect_delay": &o.reconnectDelay, "ctrl_loss_tmo": &o.ctrlLossTmo, "busy_poll": &o.busyPoll} {
		v, err := durationOpt(m, k)
		*p, errs = v, append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	if _, set := m["ctrl_loss_tmo"]; set {
		o.ctrlLossTmo = initiator.CtrlLossFromNVMeCLI(o.ctrlLossTmo)
	}
	switch _, set := m["busy_poll"]; {
	case o.hipri && !set:
		o.busyPoll = hipriPoll
	case set && o.busyPoll == 0:
		o.busyPoll = -1 // off
	}
	return o, nil
}

func open(cfg *bench.EngineConfig) (bench.Engine, error) {
	t, err := ParseFilename(cfg.Filename)
	if err != nil {
		return nil, err
	}
	return openTarget(cfg, t, "tcp")
}

// openTarget connects the job's controller over the transport named
// scheme.
func openTarget(cfg *bench.EngineConfig, t initiator.NamespaceURL, scheme string) (bench.Engine, error) {
	o, err := parseOptions(cfg.Options)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if addrs := t.Addrs(); len(addrs) > 1 {
		return openMultipath(ctx, cfg, o, t, scheme)
	}
	ctrl, err := initiator.Connect(ctx, controllerConfig(cfg, o, scheme+"://"+t.Addr, t.NQN))
	if err != nil {
		return nil, err
	}
	ns, err := ctrl.Namespace(ctx, t.NSID)
	if err != nil {
		ctrl.Close()
		return nil, err
	}
	qs := ctrl.Queues()
	if len(qs) == 0 {
		ctrl.Close()
		return nil, errors.New("controller granted no I/O queue")
	}
	e := &engine{slots: newSlots(cfg, t.NSID, ns.BlockSize()), ns: ns, ctrl: ctrl, q: qs[0], size: ns.Size()}
	e.reqQ = make([]*initiator.Queue, len(e.reqs))
	e.ready = func() bool { return len(e.done) >= e.want }
	return e, nil
}

// controllerConfig is the configuration of the job's controller at addr:
// one I/O queue as deep as the job.
func controllerConfig(cfg *bench.EngineConfig, o options, addr, nqn string) initiator.Config {
	return initiator.Config{
		Addr: addr, SubNQN: nqn, IOQueues: 1, QueueDepth: max(cfg.IODepth, 1),
		ReconnectDelay: o.reconnectDelay, CtrlLossTimeout: o.ctrlLossTmo,
		Options: initiator.Options{HeaderDigest: o.hdrDigest, DataDigest: o.dataDigest, HostNQN: cfg.Options["hostnqn"], BusyPoll: o.busyPoll, Polled: o.polled,
			DHCHAPSecret: cfg.Options["dhchap_secret"], DHCHAPCtrlSecret: cfg.Options["dhchap_ctrl_secret"], TLSKey: cfg.Options["tls_key"]},
	}
}

func (e *engine) Size() int64 { return e.size }

// Offloaded: the host's receive goroutines run the I/O (bench.Offloaded).
func (e *engine) Offloaded() {}

// Sync sends an NVMe Flush: every completed write is durable after it
// (NVMe has no metadata-only distinction, so fsync and fdatasync agree).
func (e *engine) Sync(bool) error { return e.ns.Flush() }

func (e *engine) Buffers(n, size int) ([]bench.Buffer, error) { return e.buffers(e.ctrl, n, size) }

// fill makes r the command of io on a namespace of 1<<shift-byte blocks;
// fua: every write with Force Unit Access (sync=).
func fill(r *initiator.Request, io *bench.IO, shift uint, fua bool) error {
	bs := int64(1) << shift
	if io.Offset%bs != 0 || int64(io.Len)%bs != 0 || io.Len == 0 {
		return fmt.Errorf("nvme-tcp: I/O at %d of %d bytes is not a multiple of the %d-byte block size", io.Offset, io.Len, bs)
	}
	r.SLBA = uint64(io.Offset) >> shift
	r.NLB = uint32(io.Len >> shift)
	r.Buf = io.Buf.Bytes[:io.Len]
	r.Deallocate = false
	switch io.Op {
	case bench.OpRead:
		r.Op = initiator.OpRead
	case bench.OpWrite:
		r.Op = initiator.OpWrite
		r.FUA = fua // sync=: the write is durable when it completes
	case bench.OpTrim:
		// Dataset Management, deallocate: one range, encoded in the slot's
		// buffer (at least one block, far more than 16 bytes).
		r.Op, r.Deallocate = initiator.OpDSM, true
		initiator.PutDSMRange(io.Buf.Bytes, 0, r.SLBA, r.NLB)
		r.SLBA, r.NLB, r.Buf = 0, 1, io.Buf.Bytes[:initiator.DSMRangeSize]
	}
	return nil
}

func (e *engine) Commit() error {
	for _, r := range e.stage() {
		e.reqQ[r.Tag] = e.q
	}
	// Left in the send buffer until the job reaps: what it commits one
	// at a time between reaps goes out in one write, as SPDK's host
	// sends what was queued when the application polls.
	for batch := e.batch; ; {
		n, err := e.q.SubmitDeferred(batch)
		if err == nil {
			e.unsent = true
			return nil
		}
		// The queue failed under the batch: the rest goes on the next
		// connection's queue.
		if !e.reconnect(e.q) {
			return err
		}
		batch = batch[n:]
		for _, r := range batch {
			e.reqQ[r.Tag] = e.q
		}
	}
}

// maxResends bounds how often one I/O is sent again after lost connections.
const maxResends = 5

// reconnect waits for the connection after the one of q (failed) and makes
// its queue e's; false when there will be none.
func (e *engine) reconnect(q *initiator.Queue) bool {
	if q.Err() == nil {
		return false // not a lost connection
	}
	qs, err := e.ctrl.Reconnected(context.Background(), []*initiator.Queue{q})
	if err != nil || len(qs) == 0 {
		return false
	}
	e.q = qs[0]
	return true
}

// resend sends r again when it failed because its connection was lost,
// on the queue of the next one; false leaves r to be reaped with its error.
func (e *engine) resend(r *initiator.Request) bool {
	i := r.Tag
	if r.Err == nil || e.tries[i] >= maxResends || !e.reconnect(e.reqQ[i]) {
		return false
	}
	e.tries[i]++
	e.reqQ[i] = e.q
	r.Err = nil
	if err := e.q.Submit(r); err != nil {
		r.Err = err
		return false
	}
	return true
}

func (e *engine) GetEvents(minEvents int, events []*bench.IO) ([]*bench.IO, error) {
	// What Commit left in the send buffer goes out when the job would
	// wait for a completion, not while completions it has yet to take are
	// there: a job that reaps one at a time (fio's default
	// iodepth_batch_complete_max) and refills after each then sends what
	// it refilled in one write, as SPDK's host sends what was queued when
	// the application polls.
	if e.unsent && len(e.done) < minEvents {
		e.unsent = false
		// A failure fails the queue: its requests come back with the
		// error (and are sent again after a reconnect).
		e.q.Flush()
	}
	got := 0
	for got < minEvents && len(events) < cap(events) {
		var r *initiator.Request
		select {
		case r = <-e.done:
		default:
			if e.unsent {
				e.unsent = false
				e.q.Flush() // about to wait: send what is buffered first
			}
			if e.q.Polled() {
				// Completions come while the job polls its queue.
				e.want = minEvents - got
				if err := e.q.Poll(e.ready); err == nil || len(e.done) > 0 {
					continue
				}
				// The queue failed: what it had in flight came back, and
				// what is left was sent on an earlier connection, whose
				// close delivers it.
			}
			r = <-e.done
		}
		if !e.resend(r) {
			events = e.reap(r, events)
			got++
		}
	}
	for len(events) < cap(events) {
		select {
		case r := <-e.done:
			if !e.resend(r) {
				events = e.reap(r, events)
			}
		default:
			return events, nil
		}
	}
	return events, nil
}

func (e *engine) Close() error { return errors.Join(e.ctrl.Close(), e.close()) }
