package initiator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
)

// adminDepth is the admin queue size (Linux NVME_AQ_DEPTH): the Connect
// SQSIZE is adminDepth-1, so adminDepth-1 commands may be in flight.
const adminDepth = 32

// maxTransferCap bounds one command's data when MDTS sets no limit.
const maxTransferCap = 8 << 20

// Controller is a connected NVMe-oF controller: an admin queue and I/O
// queues over one transport (NVMe/TCP, NVMe/RDMA). When a connection fails it reconnects, as the
// Linux host does: every ReconnectDelay, with a new controller ID and new
// queues, until CtrlLossTimeout has passed (see Config).
type Controller struct {
	cfg Config
	// authMu guards cfg's DH-HMAC-CHAP secrets, which Reauthenticate
	// replaces.
	authMu sync.Mutex
	addr   string
	tr     Transport
	log    *slog.Logger
	s      atomic.Pointer[session] // the current connection, or the one being brought up
	pub    atomic.Pointer[session] // the last connected one: what Queues, CntlID, Identify and I/O use
	// up is the connected session, nil while reconnecting; written under
	// mu with lost and changed, read without it on the I/O path.
	up atomic.Pointer[session]
	rr atomic.Uint32

	events chan Event

	mu      sync.Mutex
	lost    error         // guarded by mu: why the controller is gone for good
	changed chan struct{} // guarded by mu: closed and replaced when up or lost changes
	done    chan struct{} // closed by Close: stops reconnecting
	sup     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// session is one connection to the controller: its admin and I/O queues
// and what bring-up read. A reconnect makes a new one.
type session struct {
	admin  *Queue
	io     []*Queue
	cntlID uint16
	cap    nvmeof.CAP
	vs     uint32
	id     nvmeof.IdentifyController
	stop   context.CancelFunc // the keep-alive goroutine
	wg     sync.WaitGroup     // keep-alive and event goroutines

	failed    chan struct{} // closed when one of its queues fails
	failOnce  sync.Once
	failErr   error // the first failure; written before failed closes
	closeOnce sync.Once
}

func newSession() *session { return &session{failed: make(chan struct{})} }

// queueFailed is each queue's onDead hook.
func (s *session) queueFailed(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
	})
}

// close stops the session's goroutines and closes its queues: requests in
// flight complete with the queue's error.
func (s *session) close() {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		for _, q := range s.io {
			q.Close()
		}
		if s.admin != nil {
			s.admin.Close()
		}
		s.wg.Wait()
	})
}

func newController(cfg Config, tr Transport, addr string) *Controller {
	c := &Controller{cfg: cfg, addr: addr, tr: tr, events: make(chan Event, 16), changed: make(chan struct{}), done: make(chan struct{})}
	c.log = cfg.Logger.With("ctrl", addr, "subsys", cfg.SubNQN)
	c.s.Store(newSession())
	return c
}

// sess is the current session. Its admin queue is connected (bringUp makes
// a session current only then), and a session's keep-alive and event
// goroutines only run while it is the current one (a reconnect closes it,
// waiting for them, before it brings up the next): they send their admin
// commands through c.Admin.
func (c *Controller) sess() *session { return c.s.Load() }

// Event is an asynchronous event reported by the controller
// (NVMe Base 2.0 §5.2).
type Event struct {
	Type uint8 // 0 error, 1 SMART/health, 2 notice, 6 I/O command set specific, 7 vendor
	Info uint8 // nvmeof.AENoticeNSAttrChanged for a namespace change
	LID  uint8 // log page to read to clear the event
	// ChangedNamespaces lists the NSIDs of a namespace attribute notice,
	// read from the Changed Namespace List log.
	ChangedNamespaces []uint32
	// Err is set when reading the log page failed.
	Err error
	// ANA is the ANA log page an ANA change notice (ANAChanged) made the
	// host read: each group's state on this controller's port.
	ANA *nvmeof.ANALog
	// Reconnected marks an event of the host's own, not the controller's:
	// the controller was reconnected after a lost connection, and notices
	// sent meanwhile are lost (re-read what they would have said; the
	// Linux host's NVME_EVENT=rediscover).
	Reconnected bool
}

// ANAChanged reports an ANA change notice: Event.ANA holds the new states.
func (e Event) ANAChanged() bool {
	return e.Type == nvmeof.AEReasonNotice && e.Info == nvmeof.AENoticeANAChange
}

// DiscoveryChanged reports a Discovery Log Page Change notice: read the
// discovery log again.
func (e Event) DiscoveryChanged() bool {
	return e.Type == nvmeof.AEReasonNotice && e.Info == nvmeof.AENoticeDiscoveryLogChange
}

// Connect connects to an NVM subsystem over the transport cfg.Addr names
// (a TCP connection or an RDMA queue pair per queue): Fabrics Connect of
// the admin queue, the admin bring-up of the Linux host (CAP, VS, CC.EN, CSTS.RDY, Identify
// Controller, Number of Queues, asynchronous events) and Fabrics Connect of
// each I/O queue.
func Connect(ctx context.Context, cfg Config) (*Controller, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	tr, addr, err := cfg.transport(DefaultPort)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if cfg.SubNQN == nvmeof.DiscoveryNQN {
		return nil, fmt.Errorf("connect %s: %s is the discovery subsystem: use Discover or ConnectDiscovery", addr, cfg.SubNQN)
	}
	return connectController(ctx, cfg, tr, addr)
}

// ConnectDiscovery connects to the discovery controller at cfg.Addr
// (default port 8009) and keeps the connection, as nvme discover
// --persistent does: keep-alive, reconnects as Connect's, and Discovery
// Log Page Change notices delivered as events (Event.DiscoveryChanged)
// where the controller supports them (Identify OAES bit 31). Read the log
// with DiscoveryLog. cfg.SubNQN is ignored.
func ConnectDiscovery(ctx context.Context, cfg Config) (*Controller, error) {
	cfg.SubNQN = nvmeof.DiscoveryNQN
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("connect discovery: %w", err)
	}
	tr, addr, err := cfg.transport(DefaultDiscoveryPort)
	if err != nil {
		return nil, fmt.Errorf("connect discovery: %w", err)
	}
	return connectController(ctx, cfg, tr, addr)
}

// transport parses cfg.Addr and returns its transport (cfg.Transport, or
// the one registered for its scheme) and "host:port".
func (cfg *Config) transport(defaultPort string) (Transport, string, error) {
	name, addr, err := SplitAddr(cfg.Addr, defaultPort)
	if err != nil {
		return nil, "", err
	}
	if tr := cfg.Transport; tr != nil {
		if tr.Name() != name {
			return nil, "", fmt.Errorf("address %q: a %s address, but Config.Transport is %s", cfg.Addr, name, tr.Name())
		}
		return tr, addr, nil
	}
	if cfg.TLSKey != "" && name != "tcp" {
		return nil, "", fmt.Errorf("%s: TLS secures NVMe/TCP only: drop the TLS key, or connect over tcp://", cfg.Addr)
	}
	tr, err := transportFor(name)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", cfg.Addr, err)
	}
	return tr, addr, nil
}

func connectController(ctx context.Context, cfg Config, tr Transport, addr string) (*Controller, error) {
	c := newController(cfg, tr, addr)
	if err := c.bringUp(ctx); err != nil {
		close(c.events)
		return nil, err
	}
	c.setState(c.sess(), nil)
	if cfg.CtrlLossTimeout >= 0 {
		c.sup.Add(1)
		go c.supervise()
	}
	return c, nil
}

// bringUp makes a new session current and connects it: admin queue,
// controller bring-up, I/O queues. On failure the session is closed.
func (c *Controller) bringUp(ctx context.Context) error {
	s := newSession()
	var kato uint32
	if c.cfg.KATO > 0 {
		kato = uint32(c.cfg.KATO / time.Millisecond)
	}
	err := c.connectAdmin(ctx, s, c.cfg.SubNQN, kato)
	if err == nil {
		// Current from here on: the bring-up's admin commands go to it.
		// Its admin queue and controller ID are set before it is.
		c.s.Store(s)
		err = c.setup(ctx)
	}
	if err != nil {
		s.close()
	}
	return err
}

// connectAdmin dials s's admin queue and sends Fabrics Connect.
func (c *Controller) connectAdmin(ctx context.Context, s *session, subnqn string, kato uint32) error {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	q, err := dial(dctx, c.tr, QueueParams{
		Addr: c.addr, QID: 0, Depth: adminDepth - 1,
		HDigest: c.cfg.HeaderDigest, DDigest: c.cfg.DataDigest, Log: c.log,
		TLSKey: c.cfg.TLSKey, HostNQN: c.cfg.HostNQN, SubNQN: subnqn,
		timeout: c.cfg.AdminTimeout, onDead: s.queueFailed,
	})
	if err != nil {
		return err
	}
	s.admin = q
	s.cntlID, err = c.fabricsConnect(dctx, q, subnqn, nvmeof.CntlIDDynamic, adminDepth-1, kato)
	return err
}

// setState publishes the connected session (nil while reconnecting) and,
// once, why the controller is gone for good; waiters wake up.
func (c *Controller) setState(live *session, lost error) {
	c.mu.Lock()
	c.up.Store(live)
	if live != nil {
		c.pub.Store(live)
	}
	if lost != nil && c.lost == nil {
		c.lost = lost
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Connected reports whether the controller is connected now (false while
// it reconnects and after it is gone), and returns a channel closed at its
// next change.
func (c *Controller) Connected() (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up.Load() != nil, c.changed
}

// reconnects reports whether the controller reconnects after failures.
func (c *Controller) reconnects() bool { return c.cfg.CtrlLossTimeout >= 0 }

// ioSession is the session new I/O goes to: the connected one; while a
// reconnect is in progress, the one it brings up (waited for); without
// reconnects, the last one, failed or not.
func (c *Controller) ioSession(ctx context.Context) (*session, error) {
	if !c.reconnects() {
		return c.pub.Load(), nil
	}
	if s := c.up.Load(); s != nil {
		return s, nil // connected: no lock on the I/O path
	}
	return c.waitSession(ctx, nil)
}

// waitSession waits until a connected session other than old is current
// and returns it, or returns why there will be none (Close, ctrl-loss-tmo).
func (c *Controller) waitSession(ctx context.Context, old *session) (*session, error) {
	for {
		c.mu.Lock()
		live, lost, changed := c.up.Load(), c.lost, c.changed
		c.mu.Unlock()
		switch {
		case lost != nil:
			return nil, lost
		case live != nil && live != old:
			return live, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// supervise waits for the current session to fail and reconnects.
func (c *Controller) supervise() {
	defer c.sup.Done()
	for {
		s := c.sess()
		select {
		case <-c.done:
			return
		case <-s.failed:
		}
		select {
		case <-c.done:
			return
		default:
		}
		if !c.reconnect(s) {
			return
		}
	}
}

// reconnect replaces the failed session old: it closes it (requests in
// flight complete with its error; Namespace I/O waits and retries them)
// and brings up a new one every ReconnectDelay until one connects, Close
// is called, or CtrlLossTimeout has passed since the failure.
func (c *Controller) reconnect(old *session) bool {
	c.setState(nil, nil)
	c.log.Warn("connection lost: reconnecting", "err", old.failErr, "cntlid", old.cntlID,
		"reconnect_delay", c.cfg.ReconnectDelay, "ctrl_loss_tmo", c.cfg.CtrlLossTimeout)
	old.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	deadline := time.Now().Add(c.cfg.CtrlLossTimeout)
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(c.cfg.ReconnectDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		err := c.bringUp(ctx)
		if err == nil {
			s := c.sess()
			c.log.Info("reconnected", "attempt", attempt, "cntlid", s.cntlID, "queues", len(s.io))
			c.setState(s, nil)
			c.emit(Event{Reconnected: true})
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !time.Now().Before(deadline) {
			lost := fmt.Errorf("controller %s (subsystem %s) lost: not reconnected within %v (ctrl-loss-tmo); last attempt: %w",
				c.addr, c.cfg.SubNQN, c.cfg.CtrlLossTimeout, err)
			c.log.Error("giving up on the controller", "err", lost)
			c.setState(nil, lost)
			return false
		}
		c.log.Warn("reconnect failed", "attempt", attempt, "err", err)
	}
}

// fabricsConnect sends the Connect command (NVMe-oF 1.1 §3.3) on q.
func (c *Controller) fabricsConnect(ctx context.Context, q *Queue, subnqn string, cntlID, sqsize uint16, kato uint32) (uint16, error) {
	var sqe nvmeof.SQE
	sqe.SetConnect(q.qid, sqsize, kato)
	if q.qid != 0 {
		// This host never waits on SQ head pointers (it keeps at most
		// sqsize commands in flight), so let the controller skip the
		// response capsule after a successful read's data.
		sqe.SetCAttr(nvmeof.CAttrDisableSQFlow)
	}
	data := make([]byte, nvmeof.ConnectDataSize)
	cd := nvmeof.ConnectData{HostID: c.cfg.HostID, CntlID: cntlID, SubNQN: subnqn, HostNQN: c.cfg.HostNQN}
	if err := cd.Encode(data); err != nil {
		return 0, err
	}
	r, err := q.exec(ctx, "connect", &sqe, data, true)
	if err != nil {
		var st nvmeof.Status
		var dw0 uint32
		if r != nil {
			st, dw0 = r.Status, r.DW0
		}
		return 0, connectError(c.addr, q.qid, subnqn, c.cfg.HostNQN, st, dw0, err)
	}
	if err := c.authenticate(ctx, q, subnqn, r.DW0); err != nil {
		return 0, err
	}
	return uint16(r.DW0), nil
}

// connectError explains a failed Connect and what to do about it.
func connectError(addr string, qid uint16, subnqn, hostnqn string, st nvmeof.Status, dw0 uint32, err error) error {
	var se *nvmeof.StatusError
	if !errors.As(err, &se) {
		return fmt.Errorf("connect queue %d to %s: %w", qid, addr, err)
	}
	var hint string
	switch st.Code() {
	case nvmeof.StatusConnectInvalidHost:
		hint = fmt.Sprintf("host %s is not allowed on subsystem %s: add it to the subsystem's allowed hosts on the target", hostnqn, subnqn)
	case nvmeof.StatusConnectInvalidParam:
		where := "command"
		if dw0&(1<<16) != 0 {
			where = "data"
		}
		hint = fmt.Sprintf("the controller rejected the parameter at byte %d of the connect %s", uint16(dw0), where)
		if dw0&(1<<16) != 0 && uint16(dw0) == nvmeof.ConnectDataOffSubNQN {
			hint = fmt.Sprintf("subsystem %s does not exist on %s: check the NQN with `flashpath discover`", subnqn, addr)
		}
	case nvmeof.StatusConnectCtrlBusy:
		hint = "the controller is busy: retry later"
	case nvmeof.StatusConnectRestartDisc:
		hint = "the subsystem moved: run discovery again"
	case nvmeof.StatusConnectIncompatible:
		hint = "the controller does not support this connect format"
	default:
		hint = "the controller refused the connection"
	}
	return fmt.Errorf("connect queue %d to %s (subsystem %s): %w: %s", qid, addr, subnqn, err, hint)
}

// setup is the admin bring-up after the admin queue is connected.
func (c *Controller) setup(ctx context.Context) error {
	s := c.sess()
	if err := c.enable(ctx); err != nil {
		return err
	}
	id, err := c.IdentifyController(ctx)
	if err != nil {
		return err
	}
	s.id = id
	discovery := c.cfg.SubNQN == nvmeof.DiscoveryNQN
	if id.CntrlType == nvmeof.CtrlTypeDiscovery && !discovery {
		return fmt.Errorf("connect %s: %s is a discovery controller: use Discover or ConnectDiscovery", c.addr, c.cfg.SubNQN)
	}
	maxXfer := id.MaxTransfer()
	if maxXfer == 0 || maxXfer > maxTransferCap {
		maxXfer = maxTransferCap
	}
	icd := 0
	if id.IOCCSZ*16 > nvmeof.SQESize {
		icd = int(id.IOCCSZ*16 - nvmeof.SQESize)
	}
	s.admin.maxXfer = maxXfer
	if discovery {
		// No I/O queues: keep-alive, and change notices where offered.
		c.startBackground(s)
		return c.enableNotices(ctx, s, nvmeof.OAESDiscoveryChange, "discovery log change")
	}

	// Number of Queues (NVMe Base 2.0 §5.27.1.5): both counts 0-based.
	want := uint32(c.cfg.IOQueues - 1)
	dw0, err := c.SetFeature(ctx, nvmeof.FeatNumQueues, want|want<<16)
	if err != nil {
		return fmt.Errorf("connect %s: set number of queues: %w", c.addr, err)
	}
	nq := int(min(dw0&0xFFFF, dw0>>16)) + 1
	nq = min(nq, c.cfg.IOQueues)

	depth := c.cfg.QueueDepth
	if mqes := int(s.cap.MQES()); depth > mqes {
		// A queue of MQES+1 entries holds MQES commands.
		depth = mqes
	}
	if id.MaxCmd > 0 && depth > int(id.MaxCmd) {
		depth = int(id.MaxCmd)
	}
	if depth < 1 {
		return fmt.Errorf("connect %s: CAP.MQES %d allows no I/O commands", c.addr, s.cap.MQES())
	}

	c.startBackground(s)
	if err := c.enableNotices(ctx, s, nvmeof.OAESNamespaceAttr|nvmeof.OAESANAChange, "namespace attribute and ANA change"); err != nil {
		return err
	}

	for i := 1; i <= nq; i++ {
		q, err := c.connectIO(ctx, s, uint16(i), depth, icd, maxXfer)
		if err != nil {
			return err
		}
		s.io = append(s.io, q)
	}
	c.log.Debug("connected", "cntlid", s.cntlID, "queues", len(s.io), "depth", depth, "icd", icd, "maxxfer", maxXfer)
	return nil
}

// enableNotices turns on the notices of OAES bit kind where the controller
// offers them and posts the Asynchronous Event Request that carries them.
// A controller that refuses the feature is logged, not failed.
func (c *Controller) enableNotices(ctx context.Context, s *session, kind uint32, what string) error {
	if kind &= s.id.OAES; kind == 0 {
		return nil
	}
	if _, err := c.SetFeature(ctx, nvmeof.FeatAsyncEvent, kind); err != nil {
		c.log.Warn("enable "+what+" notices", "err", err)
		return nil
	}
	return c.postAER(s)
}

func (c *Controller) connectIO(ctx context.Context, s *session, qid uint16, depth, icd, maxXfer int) (*Queue, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	q, err := dial(dctx, c.tr, QueueParams{
		Addr: c.addr, QID: qid, Depth: depth, CntlID: s.cntlID, ICD: icd,
		HDigest: c.cfg.HeaderDigest, DDigest: c.cfg.DataDigest, BusyPoll: c.cfg.BusyPoll, Polled: c.cfg.Polled, Log: c.log,
		TLSKey: c.cfg.TLSKey, HostNQN: c.cfg.HostNQN, SubNQN: c.cfg.SubNQN,
		timeout: c.cfg.IOTimeout, onDead: s.queueFailed,
	})
	if err != nil {
		return nil, fmt.Errorf("connect queue %d: %w", qid, err)
	}
	// SQSIZE is 0-based: depth+1 entries hold depth commands.
	if _, err := c.fabricsConnect(dctx, q, c.cfg.SubNQN, s.cntlID, uint16(depth), 0); err != nil {
		q.Close()
		return nil, err
	}
	q.maxXfer = maxXfer
	return q, nil
}

// enable reads CAP and VS, sets CC.EN and waits for CSTS.RDY within CAP.TO
// (NVMe Base 2.0 §3.5.1, Linux nvme_enable_ctrl).
func (c *Controller) enable(ctx context.Context) error {
	capv, err := c.PropertyGet(ctx, nvmeof.PropCAP, true)
	if err != nil {
		return fmt.Errorf("connect %s: read CAP: %w", c.addr, err)
	}
	s := c.sess()
	s.cap = nvmeof.CAP(capv)
	vs, err := c.PropertyGet(ctx, nvmeof.PropVS, false)
	if err != nil {
		return fmt.Errorf("connect %s: read VS: %w", c.addr, err)
	}
	s.vs = uint32(vs)
	if err := c.PropertySet(ctx, nvmeof.PropCC, false, uint64(nvmeof.CCValue(true))); err != nil {
		return fmt.Errorf("connect %s: enable controller (CC.EN): %w", c.addr, err)
	}
	timeout := time.Duration(int(s.cap.Timeout())+1) * 500 * time.Millisecond
	err = c.waitCSTS(ctx, timeout, func(csts uint32) bool { return csts&nvmeof.CSTSReady != 0 })
	if err != nil {
		return fmt.Errorf("connect %s: wait for CSTS.RDY: %w", c.addr, err)
	}
	return nil
}

// waitCSTS polls CSTS until done says so, for at most timeout, backing off
// from 1 ms like the Linux host's nvme_wait_ready.
func (c *Controller) waitCSTS(ctx context.Context, timeout time.Duration, done func(uint32) bool) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		v, err := c.PropertyGet(ctx, nvmeof.PropCSTS, false)
		if err != nil {
			return err
		}
		csts := uint32(v)
		if csts&nvmeof.CSTSFatal != 0 {
			return errors.New("controller fatal status (CSTS.CFS) set")
		}
		if done(csts) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v (CAP.TO); CSTS %#x", timeout, csts)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

func (c *Controller) adminCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.AdminTimeout)
}

// PropertyGet reads a controller property (NVMe-oF 1.1 §3.4): the value
// is in DW0, and DW1 for 8-byte properties, of the completion.
func (c *Controller) PropertyGet(ctx context.Context, offset uint32, size8 bool) (uint64, error) {
	ctx, cancel := c.adminCtx(ctx)
	defer cancel()
	var sqe nvmeof.SQE
	sqe.SetPropertyGet(offset, size8)
	r, err := c.sess().admin.exec(ctx, fmt.Sprintf("property get %#x", offset), &sqe, nil, false)
	if err != nil {
		return 0, err
	}
	if !size8 {
		return uint64(r.DW0), nil
	}
	return uint64(r.dw1)<<32 | uint64(r.DW0), nil
}

// PropertySet writes a controller property (NVMe-oF 1.1 §3.5).
func (c *Controller) PropertySet(ctx context.Context, offset uint32, size8 bool, value uint64) error {
	ctx, cancel := c.adminCtx(ctx)
	defer cancel()
	var sqe nvmeof.SQE
	sqe.SetPropertySet(offset, size8, value)
	_, err := c.sess().admin.exec(ctx, fmt.Sprintf("property set %#x", offset), &sqe, nil, false)
	return err
}

// Admin runs an admin command built by the caller, with buf as its data
// (out: host to controller), and returns the completion's DW0. Admin
// commands are not retried across a reconnect.
func (c *Controller) Admin(ctx context.Context, name string, sqe *nvmeof.SQE, buf []byte, out bool) (uint32, error) {
	ctx, cancel := c.adminCtx(ctx)
	defer cancel()
	r, err := c.sess().admin.exec(ctx, name, sqe, buf, out)
	if r == nil {
		return 0, err
	}
	return r.DW0, err
}

// IdentifyController returns the Identify Controller data structure.
func (c *Controller) IdentifyController(ctx context.Context) (nvmeof.IdentifyController, error) {
	b := make([]byte, nvmeof.IdentifySize)
	var sqe nvmeof.SQE
	sqe.SetIdentify(nvmeof.CNSController, 0)
	if _, err := c.Admin(ctx, "identify controller", &sqe, b, false); err != nil {
		return nvmeof.IdentifyController{}, err
	}
	return nvmeof.DecodeIdentifyController(b)
}

// Identify returns the Identify Controller data read when connecting.
func (c *Controller) Identify() nvmeof.IdentifyController { return c.pub.Load().id }

// CAP returns the Controller Capabilities read when connecting.
func (c *Controller) CAP() nvmeof.CAP { return c.pub.Load().cap }

// Version returns the VS property read when connecting.
func (c *Controller) Version() uint32 { return c.pub.Load().vs }

// CntlID returns the controller ID assigned by Connect (a reconnect gets a
// new one).
func (c *Controller) CntlID() uint16 { return c.pub.Load().cntlID }

// Queues returns the I/O queues. A reconnect replaces them: requests
// submitted to a failed queue complete with its error, and callers of the
// asynchronous API resubmit on the queues Queues returns once Reconnected
// does.
func (c *Controller) Queues() []*Queue { return c.pub.Load().io }

// Reconnected waits until the controller is connected on queues other
// than qs (the ones that failed) and returns the new ones, or returns why
// it will not reconnect: Close, CtrlLossTimeout passed, or reconnecting is
// off (ErrNoReconnect).
func (c *Controller) Reconnected(ctx context.Context, qs []*Queue) ([]*Queue, error) {
	if !c.reconnects() {
		return nil, ErrNoReconnect
	}
	old := c.pub.Load()
	if len(qs) == 0 || qs[0] != old.io[0] {
		old = nil // qs are not the current queues: any connected session will do
	}
	s, err := c.waitSession(ctx, old)
	if err != nil {
		return nil, err
	}
	return s.io, nil
}

// ActiveNamespaces returns the active NSIDs (Identify CNS 02h), following
// the list past 1024 entries.
func (c *Controller) ActiveNamespaces(ctx context.Context) ([]uint32, error) {
	var all []uint32
	after := uint32(0)
	for {
		b := make([]byte, nvmeof.IdentifySize)
		var sqe nvmeof.SQE
		sqe.SetIdentify(nvmeof.CNSActiveNSList, after)
		if _, err := c.Admin(ctx, "identify active namespace list", &sqe, b, false); err != nil {
			return nil, err
		}
		ids, err := nvmeof.DecodeNSList(b)
		if err != nil {
			return nil, err
		}
		all = append(all, ids...)
		if len(ids) < nvmeof.IdentifySize/4 {
			return all, nil
		}
		after = ids[len(ids)-1]
	}
}

// IdentifyNamespace returns the Identify Namespace data structure of nsid.
func (c *Controller) IdentifyNamespace(ctx context.Context, nsid uint32) (nvmeof.IdentifyNamespace, error) {
	b := make([]byte, nvmeof.IdentifySize)
	var sqe nvmeof.SQE
	sqe.SetIdentify(nvmeof.CNSNamespace, nsid)
	if _, err := c.Admin(ctx, "identify namespace", &sqe, b, false); err != nil {
		return nvmeof.IdentifyNamespace{}, err
	}
	return nvmeof.DecodeIdentifyNamespace(b)
}

// NamespaceDescriptors returns the namespace identification descriptors of nsid.
func (c *Controller) NamespaceDescriptors(ctx context.Context, nsid uint32) ([]nvmeof.NSDescriptor, error) {
	b := make([]byte, nvmeof.IdentifySize)
	var sqe nvmeof.SQE
	sqe.SetIdentify(nvmeof.CNSNSDescList, nsid)
	if _, err := c.Admin(ctx, "identify namespace descriptors", &sqe, b, false); err != nil {
		return nil, err
	}
	return nvmeof.DecodeNSDescList(b)
}

// GetLogPage reads len(buf) bytes (a multiple of 4) of log page lid at offset.
func (c *Controller) GetLogPage(ctx context.Context, lid uint8, nsid uint32, buf []byte, offset uint64) error {
	return getLogPage(ctx, c.Admin, lid, nsid, buf, offset)
}

type adminFunc func(ctx context.Context, name string, sqe *nvmeof.SQE, buf []byte, out bool) (uint32, error)

func getLogPage(ctx context.Context, admin adminFunc, lid uint8, nsid uint32, buf []byte, offset uint64) error {
	if len(buf) == 0 || len(buf)%4 != 0 {
		return fmt.Errorf("get log page %#x: length %d is not a positive multiple of 4", lid, len(buf))
	}
	var sqe nvmeof.SQE
	sqe.SetGetLogPage(lid, nsid, uint32(len(buf)), offset)
	_, err := admin(ctx, fmt.Sprintf("get log page %#x", lid), &sqe, buf, false)
	return err
}

// ErrorLog returns the entries of the Error Information log (ELPE+1 of them).
func (c *Controller) ErrorLog(ctx context.Context) ([]nvmeof.ErrorLogEntry, error) {
	n := int(c.pub.Load().id.ELPE) + 1
	b := make([]byte, n*nvmeof.ErrorLogEntrySize)
	if err := c.GetLogPage(ctx, nvmeof.LogError, 0, b, 0); err != nil {
		return nil, err
	}
	out := make([]nvmeof.ErrorLogEntry, 0, n)
	for i := range n {
		e, err := nvmeof.DecodeErrorLogEntry(b[i*nvmeof.ErrorLogEntrySize:])
		if err != nil {
			return nil, err
		}
		if e.ErrorCount != 0 {
			out = append(out, e)
		}
	}
	return out, nil
}

// SMARTLog returns the SMART / Health Information log for the controller.
func (c *Controller) SMARTLog(ctx context.Context) (nvmeof.SMARTLog, error) {
	b := make([]byte, nvmeof.SMARTLogSize)
	if err := c.GetLogPage(ctx, nvmeof.LogSMART, 0xFFFFFFFF, b, 0); err != nil {
		return nvmeof.SMARTLog{}, err
	}
	return nvmeof.DecodeSMARTLog(b)
}

// FirmwareSlotLog returns the active slot and the slot revisions.
func (c *Controller) FirmwareSlotLog(ctx context.Context) (uint8, [7]string, error) {
	b := make([]byte, nvmeof.FirmwareSlotLogSize)
	if err := c.GetLogPage(ctx, nvmeof.LogFirmwareSlot, 0, b, 0); err != nil {
		return 0, [7]string{}, err
	}
	return nvmeof.DecodeFirmwareSlotLog(b)
}

// CommandEffects returns the Commands Supported and Effects log.
func (c *Controller) CommandEffects(ctx context.Context) (admin, io [256]uint32, err error) {
	b := make([]byte, nvmeof.CommandEffectsLogSize)
	if err := c.GetLogPage(ctx, nvmeof.LogCommandEffects, 0, b, 0); err != nil {
		return admin, io, err
	}
	return nvmeof.DecodeCommandEffects(b)
}

// ChangedNamespaces reads (and so clears) the Changed Namespace List log.
func (c *Controller) ChangedNamespaces(ctx context.Context) ([]uint32, error) {
	b := make([]byte, nvmeof.ChangedNSListSize)
	if err := c.GetLogPage(ctx, nvmeof.LogChangedNSList, 0, b, 0); err != nil {
		return nil, err
	}
	return nvmeof.DecodeNSList(b)
}

// ANALog reads the ANA log page: the state, on this controller's port, of
// each ANA group, with its namespaces unless groupsOnly. A controller
// that does not report ANA (Identify CMIC) is an error.
func (c *Controller) ANALog(ctx context.Context, groupsOnly bool) (nvmeof.ANALog, error) {
	id := c.pub.Load().id
	if id.CMIC&nvmeof.CMICANA == 0 {
		return nvmeof.ANALog{}, fmt.Errorf("ANA log: %s does not report ANA (Identify Controller CMIC bit 3 clear)", c.cfg.SubNQN)
	}
	n, err := anaLogSize(id, groupsOnly, cmp.Or(c.sess().admin.maxXfer, maxTransferCap))
	if err != nil {
		return nvmeof.ANALog{}, fmt.Errorf("ANA log of %s: %w", c.cfg.SubNQN, err)
	}
	b := make([]byte, n)
	var sqe nvmeof.SQE
	sqe.SetGetLogPage(nvmeof.LogANA, 0, uint32(len(b)), 0)
	if groupsOnly {
		sqe[41] |= nvmeof.ANALogRGO
	}
	if _, err := c.Admin(ctx, "get log page ANA", &sqe, b, false); err != nil {
		return nvmeof.ANALog{}, err
	}
	return nvmeof.DecodeANALog(b)
}

// anaLogSize is the size of the ANA log page that Identify data id
// describes (dword aligned), without the namespace lists if groupsOnly.
// It comes from the target, so it is bounded by what one command carries
// (maxXfer), as Linux bounds it: a hostile NANAGRPID or NN would ask for
// gigabytes.
func anaLogSize(id nvmeof.IdentifyController, groupsOnly bool, maxXfer int) (int, error) {
	n := nvmeof.ANALogHeaderSize + int64(id.NANAGRPID)*nvmeof.ANADescSize
	if !groupsOnly {
		n += 4 * int64(max(id.MNAN, id.NN))
	}
	n = (n + 3) &^ 3
	if n > int64(maxXfer) {
		return 0, fmt.Errorf("%d ANA groups and %d namespaces need %d bytes, more than one command carries (%d): the target's Identify data is wrong (or read the groups only)",
			id.NANAGRPID, max(id.MNAN, id.NN), n, maxXfer)
	}
	return int(n), nil
}

// ANAState returns the ANA state of namespace nsid on this controller's
// port (from the ANA log page).
func (c *Controller) ANAState(ctx context.Context, nsid uint32) (nvmeof.ANAState, error) {
	l, err := c.ANALog(ctx, false)
	if err != nil {
		return 0, err
	}
	for _, g := range l.Groups {
		if slices.Contains(g.NSIDs, nsid) {
			return g.State, nil
		}
	}
	return 0, fmt.Errorf("ANA log of %s lists no namespace %d", c.cfg.SubNQN, nsid)
}

// IsPathError reports whether err is a command refused because of the
// path it was sent on (NVMe path related status, SCT 3: ANA inaccessible,
// persistent loss or transition, ...): the same command may succeed on
// another path to the namespace.
func IsPathError(err error) bool {
	var se *nvmeof.StatusError
	return errors.As(err, &se) && se.Status.SCT() == nvmeof.SCTPath
}

// GetFeature returns DW0 of Get Features for fid (current value).
func (c *Controller) GetFeature(ctx context.Context, fid uint8, cdw11 uint32) (uint32, error) {
	var sqe nvmeof.SQE
	sqe.GetFeatures(fid)
	sqe.SetCDW(11, cdw11)
	return c.Admin(ctx, fmt.Sprintf("get features %#x", fid), &sqe, nil, false)
}

// SetFeature sets feature fid to cdw11 and returns DW0 of the completion.
func (c *Controller) SetFeature(ctx context.Context, fid uint8, cdw11 uint32) (uint32, error) {
	var sqe nvmeof.SQE
	sqe.SetFeatures(fid, cdw11)
	return c.Admin(ctx, fmt.Sprintf("set features %#x", fid), &sqe, nil, false)
}

// Register makes mem reachable by the controller's transport without
// copies: over NVMe/RDMA the controller then reads and writes requests'
// buffers inside it directly instead of through bounce buffers (register
// once, reuse for many I/Os); over NVMe/TCP it does nothing. Close the
// registration after the last request using it has completed.
func (c *Controller) Register(mem []byte) (Registration, error) {
	r, err := c.tr.Register(mem)
	if err != nil {
		return nil, fmt.Errorf("register %d bytes with the %s transport: %w", len(mem), c.tr.Name(), err)
	}
	return r, nil
}

// Transport is the transport the controller's queues run on: the one
// Config.Transport named, or the one registered for its address's scheme
// when it connected. Registrations are the transport's: memory registered
// once serves every controller on it.
func (c *Controller) Transport() Transport { return c.tr }

// RegisterDevice makes device memory (a GPU allocation, exported as a
// dma-buf where it can be) reachable by the controller's transport, so
// that Namespace.ReadDevice and WriteDevice, and requests naming Dev,
// move data straight between the controller and the device. Transports
// that cannot (NVMe/TCP) return an error wrapping ErrNoDeviceMemory.
// Close the registration after the last request using it has completed.
func (c *Controller) RegisterDevice(m DeviceMemory) (Registration, error) {
	if m.Addr == 0 || m.Len <= 0 || m.Len > int64(int(^uint(0)>>1)) {
		return nil, fmt.Errorf("register device memory at %#x, %d bytes: need a device address and a positive length", m.Addr, m.Len)
	}
	dr, ok := c.tr.(DeviceRegistrar)
	if !ok {
		return nil, fmt.Errorf("register device memory at %#x with the %s transport: %w: stage the data through host memory",
			m.Addr, c.tr.Name(), ErrNoDeviceMemory)
	}
	r, err := dr.RegisterDevice(m)
	if err != nil {
		return nil, fmt.Errorf("register %d bytes of device memory at %#x with the %s transport: %w", m.Len, m.Addr, c.tr.Name(), err)
	}
	return r, nil
}

// Events returns the channel of asynchronous events, used when
// Config.Events is nil. Events are dropped when it is full; it is closed by
// Close.
func (c *Controller) Events() <-chan Event { return c.events }

// startBackground starts the session's keep-alive goroutine.
func (c *Controller) startBackground(s *session) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	if c.cfg.KATO <= 0 {
		return
	}
	s.wg.Add(1)
	go c.keepAlive(ctx, s, c.cfg.KATO/2)
}

// keepAlive sends Keep Alive every period (KATO/2, as Linux since 5.x).
func (c *Controller) keepAlive(ctx context.Context, s *session, period time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	var sqe nvmeof.SQE
	sqe.SetOpcode(nvmeof.AdminKeepAlive)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		kctx, cancel := context.WithTimeout(ctx, c.cfg.KATO)
		_, err := c.Admin(kctx, "keep alive", &sqe, nil, false)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Warn("keep alive failed", "err", err)
			if s.admin.Err() != nil {
				return
			}
		}
	}
}

// postAER posts an Asynchronous Event Request; its completion is handled
// on a goroutine of its own, which reads the log page and posts again.
func (c *Controller) postAER(s *session) error {
	done := make(chan *Request, 1)
	r := &Request{raw: true, noTimeout: true, Done: done}
	r.sqe.SetOpcode(nvmeof.AdminAsyncEvent)
	if err := s.admin.Submit(r); err != nil {
		return fmt.Errorf("post asynchronous event request: %w", err)
	}
	s.wg.Add(1)
	go c.aerLoop(s, r, done)
	return nil
}

func (c *Controller) aerLoop(s *session, r *Request, done chan *Request) {
	defer s.wg.Done()
	for range done {
		if r.Err != nil || !r.Status.OK() {
			// Connection closed or the controller aborted the AER on shutdown.
			return
		}
		ev := Event{Type: uint8(r.DW0 & 7), Info: uint8(r.DW0 >> 8), LID: uint8(r.DW0 >> 16)}
		if ev.Type == nvmeof.AEReasonNotice && ev.Info == nvmeof.AENoticeNSAttrChanged {
			ctx, cancel := c.adminCtx(context.Background())
			ev.ChangedNamespaces, ev.Err = c.ChangedNamespaces(ctx)
			cancel()
		} else if ev.ANAChanged() {
			ctx, cancel := c.adminCtx(context.Background())
			l, err := c.ANALog(ctx, false)
			ev.ANA, ev.Err = &l, err
			cancel()
		} else if ev.LID != 0 {
			// Read the log page to clear the event.
			ctx, cancel := c.adminCtx(context.Background())
			b := make([]byte, 512)
			ev.Err = c.GetLogPage(ctx, ev.LID, 0xFFFFFFFF, b, 0)
			cancel()
		}
		c.log.Info("asynchronous event", "type", ev.Type, "info", ev.Info, "lid", ev.LID, "nsids", ev.ChangedNamespaces)
		c.emit(ev)
		if err := s.admin.Submit(r); err != nil {
			return
		}
	}
}

// emit hands ev to Config.Events, or queues it on Events (dropped when
// that is full).
func (c *Controller) emit(ev Event) {
	if c.cfg.Events != nil {
		c.cfg.Events(ev)
		return
	}
	select {
	case c.events <- ev:
	default:
		c.log.Warn("asynchronous event dropped: Events channel full")
	}
}

// DiscoveryLog reads the whole discovery log of a controller connected
// with ConnectDiscovery.
func (c *Controller) DiscoveryLog(ctx context.Context) (nvmeof.DiscoveryLog, error) {
	s, err := c.ioSession(ctx)
	if err != nil {
		return nvmeof.DiscoveryLog{}, fmt.Errorf("discovery log: %w", err)
	}
	mx := s.id.MaxTransfer()
	if mx == 0 || mx > maxTransferCap {
		mx = maxTransferCap
	}
	return readDiscoveryLog(ctx, c.Admin, mx)
}

// Close shuts the controller down: Property Set CC.SHN (normal shutdown),
// wait for CSTS.SHST complete (bounded), then close every connection.
func (c *Controller) Close() error {
	return c.CloseContext(context.Background())
}

// CloseContext is Close bounded by ctx.
func (c *Controller) CloseContext(ctx context.Context) error {
	c.closeOnce.Do(func() { c.closeErr = c.teardown(ctx, true) })
	return c.closeErr
}

func (c *Controller) teardown(ctx context.Context, shutdown bool) error {
	close(c.done)
	c.sup.Wait() // a reconnect in progress gives up
	s := c.sess()
	var err error
	if shutdown && s.admin != nil && s.admin.Err() == nil {
		err = shutdownCtrl(ctx, c)
		if err != nil && s.admin.Err() != nil {
			// The connection was lost under the shutdown: nothing is left
			// to shut down (the controller goes with its connection).
			c.log.Debug("shutdown on a lost connection", "err", err)
			err = nil
		}
	}
	s.close()
	c.setState(nil, ErrClosed)
	close(c.events)
	return err
}

// shutdownCtrl writes CC.SHN normal and waits for CSTS.SHST complete for
// at most 5 s (Linux shutdown_timeout).
func shutdownCtrl(ctx context.Context, c *Controller) error {
	cc := nvmeof.CCValue(true)&^nvmeof.CCShnMask | nvmeof.CCShnNormal
	if err := c.PropertySet(ctx, nvmeof.PropCC, false, uint64(cc)); err != nil {
		return fmt.Errorf("shut down controller: %w", err)
	}
	err := c.waitCSTS(ctx, 5*time.Second, func(csts uint32) bool {
		return csts&nvmeof.CSTSShstMask == nvmeof.CSTSShstComplete
	})
	if err != nil {
		return fmt.Errorf("shut down controller: wait for CSTS.SHST: %w", err)
	}
	return nil
}
