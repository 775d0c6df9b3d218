package target

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
)

// Controller is one host's controller on a subsystem (dynamic controller
// model): an admin queue, I/O queues, and the state behind them.
type Controller struct {
	t       *Target
	subsys  *Subsystem
	id      uint16
	hostNQN string
	hostID  [16]byte
	log     *slog.Logger
	created time.Time
	host    *hostStats // the counters of hostNQN

	vwcOff atomic.Bool // the host disabled the volatile write cache: every write is FUA
	// ready mirrors CSTS.RDY for the I/O path, which does not take mu:
	// I/O commands fail with Command Sequence Error while it is clear (a
	// host that clears CC.EN resets the controller; NVMe Base 2.0 §3.7.2).
	// A fatal error leaves it set, as Linux nvmet does: the controller's
	// queues are being closed, and I/O already on them runs, rather than
	// failing with DNR what the host would retry after reconnecting.
	ready atomic.Bool

	mu         sync.Mutex
	cc, csts   uint32                 // guarded by mu
	queues     map[uint16]*Queue      // guarded by mu
	maxIOQ     int                    // guarded by mu: I/O queues granted by Number of Queues
	kato       time.Duration          // guarded by mu
	kaTimer    *time.Timer            // guarded by mu
	aers       []*Request             // guarded by mu: outstanding Asynchronous Event Requests
	aenCfg     uint32                 // guarded by mu: Asynchronous Event Configuration
	aenMasked  uint8                  // guarded by mu: kinds (1<<aenKind) reported, masked until their log is read
	aenPending []aenKind              // guarded by mu: kinds that wait for an AER, oldest first
	changedNS  []uint32               // guarded by mu
	errLog     []nvmeof.ErrorLogEntry // guarded by mu, newest last
	errCount   uint64                 // guarded by mu
	dead       bool                   // guarded by mu
	hostDone   bool                   // guarded by mu: the host shut the controller down or disabled it

	// Reservation notifications (resv.go), guarded by mu: the log pages
	// not yet read, the count of the last one made, and the Reservation
	// Notification Mask (per NSID, else all).
	resvLogs    []nvmeof.ResvLog
	resvCount   uint64
	resvMask    map[uint32]uint32
	resvMaskAll uint32

	deleteOnce sync.Once

	tr  TransportInfo // of the admin queue's transport
	ana *anaPort      // the ANA states of the port the host connected through
}

// AERLimit is the number of outstanding Asynchronous Event Requests (AERL+1).
const AERLimit = 4

const errLogEntries = 64

// DiscoveryKeepAlive is the keep-alive timeout of a discovery controller
// whose host asks for none, as the Linux target's (NVMET_DISC_KATO_MS): a
// host that connected to discovery and went away must not hold a
// controller for ever.
const DiscoveryKeepAlive = 120 * time.Second

func newController(t *Target, s *Subsystem, admin *Queue, d nvmeof.ConnectData, kato time.Duration) (*Controller, error) {
	c := &Controller{
		t: t, subsys: s, hostNQN: d.HostNQN, hostID: d.HostID,
		queues: map[uint16]*Queue{0: admin}, maxIOQ: t.opts.MaxQueues, kato: kato,
		created: t.opts.Now(), tr: admin.info,
	}
	if s.discovery {
		c.maxIOQ = 0
	}
	if kato == 0 {
		if s.discovery {
			kato = DiscoveryKeepAlive
		} else {
			kato = t.opts.IOKeepAlive
		}
		c.kato = kato
	}
	id, err := t.allocCntlID(c, admin.localAP)
	if err != nil {
		return nil, err
	}
	c.log = t.log.With("subsys", s.cfg.NQN, "ctrl", id, "host", d.HostNQN)
	key := t.portKey(admin.port)
	s.mu.Lock()
	c.ana = s.anaPortLocked(key)
	s.ctrls[c] = struct{}{}
	s.mu.Unlock()
	if kato > 0 {
		// Under mu: the timer's fatal reads kaTimer under mu, and a short
		// KATO may fire before this assignment would otherwise be seen.
		c.mu.Lock()
		c.kaTimer = time.AfterFunc(kato, c.keepAliveExpired)
		c.mu.Unlock()
	}
	c.log.Info("controller created", "kato", kato)
	return c, nil
}

// ID is the controller ID.
func (c *Controller) ID() uint16 { return c.id }

// HostNQN is the NQN of the host that created the controller.
func (c *Controller) HostNQN() string { return c.hostNQN }

// HostID is the Host Identifier of the host's Connect.
func (c *Controller) HostID() [16]byte { return c.hostID }

// IOQueues is the number of I/O queues connected now.
func (c *Controller) IOQueues() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for qid := range c.queues {
		if qid != 0 {
			n++
		}
	}
	return n
}

func (c *Controller) addQueue(q *Queue, qid uint16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.dead:
		return fmt.Errorf("controller %d is being deleted", c.id)
	case c.csts&nvmeof.CSTSReady == 0:
		return fmt.Errorf("controller %d is not enabled (CC.EN=0)", c.id)
	case int(qid) > c.maxIOQ:
		return fmt.Errorf("QID %d beyond the %d I/O queues granted", qid, c.maxIOQ)
	case c.queues[qid] != nil:
		return fmt.Errorf("QID %d already connected", qid)
	}
	c.queues[qid] = q
	return nil
}

func (c *Controller) removeQueue(q *Queue) {
	c.mu.Lock()
	if c.queues[q.id] == q {
		delete(c.queues, q.id)
	}
	c.mu.Unlock()
}

// keepAliveSeen restarts the keep-alive timer (also after
// pauseKeepAlive).
func (c *Controller) keepAliveSeen() {
	c.mu.Lock()
	if c.kaTimer != nil && !c.dead {
		c.kaTimer.Reset(c.kato)
	}
	c.mu.Unlock()
}

// pauseKeepAlive stops the keep-alive timer while the host authenticates
// its admin queue: it cannot send Keep Alive before it has, and a DH
// exchange may outlast a short KATO on a slow host. The transport bounds
// that time instead (target/tcp ConnectTimeout).
func (c *Controller) pauseKeepAlive() {
	c.mu.Lock()
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	c.mu.Unlock()
}

func (c *Controller) keepAliveExpired() {
	c.mu.Lock()
	kato := c.kato
	c.mu.Unlock()
	c.t.Stats.KeepAliveExpired.Add(1)
	c.log.Warn("keep-alive timeout expired: deleting controller", "kato", kato)
	c.fatal(DeletedKeepAlive, fmt.Errorf("keep-alive timeout (%v) expired", kato))
}

// fatal deletes the controller: it leaves the target and the subsystem,
// and every queue's connection is closed. why is counted
// (Stats.ControllersDeleted); a connection lost after the host shut the
// controller down counts as DeletedShutdown.
func (c *Controller) fatal(why DeleteReason, reason error) {
	c.deleteOnce.Do(func() {
		c.mu.Lock()
		if why == DeletedConnectionLost && c.hostDone {
			why = DeletedShutdown
		}
		if !c.subsys.discovery {
			c.t.Stats.ControllersDeleted[why].Add(1)
		}
		c.dead = true
		c.csts |= nvmeof.CSTSFatal
		if c.kaTimer != nil {
			c.kaTimer.Stop()
		}
		queues := make([]*Queue, 0, len(c.queues))
		for _, q := range c.queues {
			queues = append(queues, q)
		}
		c.aers = nil
		c.mu.Unlock()
		c.subsys.mu.Lock()
		delete(c.subsys.ctrls, c)
		c.subsys.mu.Unlock()
		c.t.freeCntlID(c.id)
		c.log.Info("controller deleted", "reason", reason.Error())
		for _, q := range queues {
			q.tr.Close(reason)
		}
	})
}

func (c *Controller) property(r *Request) nvmeof.Status {
	off := r.Cmd.PropOffset()
	size8 := r.Cmd.PropAttrib() == 1
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Cmd.FCType() == nvmeof.FabricsPropertyGet {
		var v uint64
		switch off {
		case nvmeof.PropCAP:
			v = uint64(nvmeof.MakeCAP(uint16(c.t.opts.MaxQueueDepth-1), 15))
		case nvmeof.PropVS:
			v = nvmeof.VS2_0
		case nvmeof.PropCC:
			v = uint64(c.cc)
		case nvmeof.PropCSTS:
			v = uint64(c.csts)
		default:
			return nvmeof.StatusInvalidField | nvmeof.StatusDNR
		}
		if off == nvmeof.PropCAP && !size8 {
			return nvmeof.StatusInvalidField | nvmeof.StatusDNR
		}
		r.Rsp.SetDW0(uint32(v))
		r.Rsp.SetDW1(uint32(v >> 32))
		return nvmeof.StatusSuccess
	}
	if off != nvmeof.PropCC || size8 {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	}
	v := uint32(r.Cmd.PropValue())
	old := c.cc
	c.cc = v
	switch {
	case v&nvmeof.CCEnable != 0 && old&nvmeof.CCEnable == 0:
		c.csts = nvmeof.CSTSReady
		c.ready.Store(true)
	case v&nvmeof.CCEnable == 0 && old&nvmeof.CCEnable != 0:
		c.csts &^= nvmeof.CSTSReady | nvmeof.CSTSShstMask
		c.ready.Store(false)
		c.hostDone = true
	}
	if v&nvmeof.CCShnMask != 0 && old&nvmeof.CCShnMask == 0 {
		c.hostDone = true
		// Shutdown: everything acknowledged must be durable before we say so.
		for _, ns := range c.subsys.Namespaces() {
			if err := ns.Backend.Flush(); err != nil {
				c.log.Error("flush on shutdown failed", "nsid", ns.ID, "err", err)
			}
		}
		c.csts = c.csts&^nvmeof.CSTSShstMask | nvmeof.CSTSShstComplete
	}
	return nvmeof.StatusSuccess
}

// execAdmin runs an admin command; held reports an AER kept for later.
func (c *Controller) execAdmin(q *Queue, r *Request) (st nvmeof.Status, held bool) {
	op := r.Cmd.Opcode()
	if !c.adminOpcode(op) {
		return nvmeof.StatusInvalidOpcode | nvmeof.StatusDNR, false
	}
	if !c.ready.Load() && op != nvmeof.AdminKeepAlive {
		return nvmeof.StatusCommandSequenceError | nvmeof.StatusDNR, false
	}
	switch op {
	case nvmeof.AdminIdentify:
		return c.identify(q, r), false
	case nvmeof.AdminGetLogPage:
		return c.getLogPage(q, r), false
	case nvmeof.AdminSetFeatures:
		return c.setFeatures(r), false
	case nvmeof.AdminGetFeatures:
		return c.getFeatures(r), false
	case nvmeof.AdminKeepAlive:
		c.keepAliveSeen()
		return nvmeof.StatusSuccess, false
	case nvmeof.AdminAsyncEvent:
		return c.asyncEventRequest(r)
	case nvmeof.AdminAbort:
		r.Rsp.SetDW0(1) // command not aborted
		return nvmeof.StatusSuccess, false
	}
	return nvmeof.StatusInvalidOpcode | nvmeof.StatusDNR, false
}

// adminOpcode reports whether the controller runs admin command op (a
// discovery controller, only the commands NVMe-oF 1.1 §5 lists for it).
func (c *Controller) adminOpcode(op uint8) bool {
	switch op {
	case nvmeof.AdminIdentify, nvmeof.AdminGetLogPage, nvmeof.AdminKeepAlive,
		nvmeof.AdminAsyncEvent, nvmeof.AdminGetFeatures, nvmeof.AdminSetFeatures:
		return true
	case nvmeof.AdminAbort:
		return !c.subsys.discovery
	}
	return false
}

func (c *Controller) setFeatures(r *Request) nvmeof.Status {
	v := r.Cmd.CDW(11)
	if r.Cmd.FeatureSave() {
		return nvmeof.StatusFeatureNotSaveable | nvmeof.StatusDNR
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r.Cmd.FID() {
	case nvmeof.FeatNumQueues:
		if c.subsys.discovery {
			return nvmeof.StatusInvalidField | nvmeof.StatusDNR
		}
		nsq, ncq := v&0xFFFF, v>>16
		if nsq == 0xFFFF || ncq == 0xFFFF {
			return nvmeof.StatusInvalidField | nvmeof.StatusDNR
		}
		n := min(int(nsq), int(ncq), c.t.opts.MaxQueues-1) + 1
		c.maxIOQ = n
		r.Rsp.SetDW0(uint32(n-1) | uint32(n-1)<<16)
	case nvmeof.FeatKeepAlive:
		c.kato = time.Duration(v) * time.Millisecond
		switch {
		case c.kato == 0 && c.kaTimer != nil:
			c.kaTimer.Stop()
			c.kaTimer = nil
		case c.kato > 0 && c.kaTimer != nil:
			c.kaTimer.Reset(c.kato)
		case c.kato > 0:
			c.kaTimer = time.AfterFunc(c.kato, c.keepAliveExpired)
		}
	case nvmeof.FeatAsyncEvent:
		c.aenCfg = v
	case nvmeof.FeatVolatileWC:
		c.vwcOff.Store(v&1 == 0)
	case nvmeof.FeatResvMask, nvmeof.FeatResvPersist:
		return c.setResvFeature(r, v)
	case nvmeof.FeatArbitration, nvmeof.FeatPowerMgmt, nvmeof.FeatTempThreshold,
		nvmeof.FeatErrorRecovery, nvmeof.FeatIRQCoalesce, nvmeof.FeatWriteAtomicity:
		// Accepted and ignored: they have no meaning for a fabrics target.
	case nvmeof.FeatHostID:
		return nvmeof.StatusCommandSequenceError | nvmeof.StatusDNR // fabrics: set at Connect
	default:
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	}
	return nvmeof.StatusSuccess
}

func (c *Controller) getFeatures(r *Request) nvmeof.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	var v uint32
	switch r.Cmd.FID() {
	case nvmeof.FeatNumQueues:
		v = uint32(c.maxIOQ-1) | uint32(c.maxIOQ-1)<<16
	case nvmeof.FeatKeepAlive:
		v = uint32(c.kato / time.Millisecond)
	case nvmeof.FeatAsyncEvent:
		v = c.aenCfg
	case nvmeof.FeatVolatileWC:
		if c.hasVWC() && !c.vwcOff.Load() {
			v = 1
		}
	case nvmeof.FeatResvMask, nvmeof.FeatResvPersist:
		nsid := r.Cmd.NSID()
		if c.subsys.ns.Load().get(nsid) == nil {
			return nvmeof.StatusInvalidNamespace | nvmeof.StatusDNR
		}
		if r.Cmd.FID() == nvmeof.FeatResvMask {
			v = c.resvMaskOf(nsid)
		} else if c.subsys.ns.Load().get(nsid).resv.ptplOn() {
			v = 1
		}
	case nvmeof.FeatArbitration, nvmeof.FeatPowerMgmt, nvmeof.FeatErrorRecovery,
		nvmeof.FeatIRQCoalesce, nvmeof.FeatWriteAtomicity:
		v = 0
	case nvmeof.FeatTempThreshold:
		v = 0x157 // 343 K, a typical over-temperature threshold
	case nvmeof.FeatHostID:
		if len(r.Data) < 16 {
			return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR
		}
		copy(r.Data, c.hostID[:])
	default:
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	}
	r.Rsp.SetDW0(v)
	return nvmeof.StatusSuccess
}

// hasVWC reports whether any namespace has a volatile write cache.
func (c *Controller) hasVWC() bool {
	for _, ns := range c.subsys.Namespaces() {
		if ns.Backend.VolatileWriteCache() {
			return true
		}
	}
	return false
}

func (c *Controller) asyncEventRequest(r *Request) (nvmeof.Status, bool) {
	c.mu.Lock()
	if len(c.aers) >= AERLimit {
		c.mu.Unlock()
		return nvmeof.StatusAERLimitExceeded | nvmeof.StatusDNR, false
	}
	if len(c.aenPending) > 0 {
		k := c.aenPending[0]
		c.aenPending = slices.Delete(c.aenPending, 0, 1)
		c.aenMasked |= 1 << k
		c.mu.Unlock()
		r.Rsp.SetDW0(aenDW0[k])
		return nvmeof.StatusSuccess, false
	}
	c.aers = append(c.aers, r)
	c.mu.Unlock()
	return 0, true
}

// namespaceChanged records a namespace change and raises the notice.
func (c *Controller) namespaceChanged(nsid uint32) {
	c.mu.Lock()
	if !c.dead && !slices.Contains(c.changedNS, nsid) && len(c.changedNS) <= nvmeof.ChangedNSListSize/4 {
		c.changedNS = append(c.changedNS, nsid)
	}
	c.mu.Unlock()
	c.notice(nvmeof.OAESNamespaceAttr, aenNSChanged)
}

// discoveryChanged raises the Discovery Log Page Change notice on a
// discovery controller (a persistent one, which the Linux host turns into
// a uevent for nvme connect-all).
func (c *Controller) discoveryChanged() {
	c.notice(nvmeof.OAESDiscoveryChange, aenDiscovery)
}

// aenKind is a kind of asynchronous event. Once reported, a kind is
// masked until the host reads its log page without RAE (NVMe Base 2.0
// §5.2), so one read answers many changes; kinds are masked apart, as
// nvmet and SPDK do. At most one event of a kind waits for an AER: its
// log page holds the rest.
type aenKind uint8

const (
	aenNSChanged aenKind = iota
	aenANAChange
	aenDiscovery
	aenResv
	aenKinds
)

// aenDW0 is the AER completion's DW0 of each kind.
var aenDW0 = [aenKinds]uint32{
	aenNSChanged: nvmeof.AsyncEventDW0(nvmeof.AEReasonNotice, nvmeof.AENoticeNSAttrChanged, nvmeof.LogChangedNSList),
	aenANAChange: nvmeof.AsyncEventDW0(nvmeof.AEReasonNotice, nvmeof.AENoticeANAChange, nvmeof.LogANA),
	aenDiscovery: nvmeof.AsyncEventDW0(nvmeof.AEReasonNotice, nvmeof.AENoticeDiscoveryLogChange, nvmeof.LogDiscovery),
	aenResv:      nvmeof.AsyncEventDW0(nvmeof.AEIOCmdSpecific, nvmeof.AEInfoResvLogAvailable, nvmeof.LogResvNotification),
}

// notice reports an event of kind k where the host enabled it
// (Asynchronous Event Configuration bit cfg).
func (c *Controller) notice(cfg uint32, k aenKind) {
	c.mu.Lock()
	var r *Request
	if c.aenCfg&cfg != 0 {
		r = c.raise(k)
	}
	c.mu.Unlock()
	completeAER(r, aenDW0[k])
}

// raise reports an event of kind k unless that kind is masked or already
// waiting: it takes the oldest outstanding AER, for the caller to
// complete once mu is released, and masks k; with none outstanding, k
// waits for the next (nil). Called with mu held.
func (c *Controller) raise(k aenKind) *Request {
	if c.dead || c.aenMasked&(1<<k) != 0 || slices.Contains(c.aenPending, k) {
		return nil
	}
	if len(c.aers) == 0 {
		c.aenPending = append(c.aenPending, k)
		return nil
	}
	r := c.aers[0]
	c.aers = c.aers[1:]
	c.aenMasked |= 1 << k
	return r
}

// unmask lets kind k be reported again: the host read its log page
// without RAE. Called with mu held.
func (c *Controller) unmask(k aenKind) {
	c.aenMasked &^= 1 << k
}

// completeAER completes r (from raise, if not nil) with the event dw0,
// once mu is released.
func completeAER(r *Request, dw0 uint32) {
	if r == nil {
		return
	}
	r.Rsp.SetDW0(dw0)
	r.SetStatus(nvmeof.StatusSuccess)
	r.Deferred = true
	r.queue.tr.Complete(r)
}

func (c *Controller) recordError(qid uint16, r *Request, st nvmeof.Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errCount++
	e := nvmeof.ErrorLogEntry{
		ErrorCount: c.errCount, SQID: qid, CID: r.Cmd.CID(), Status: st,
		ParamLoc: 0xFFFF, NSID: r.Cmd.NSID(), TrType: c.tr.TrType,
	}
	switch r.Cmd.Opcode() {
	case nvmeof.NVMRead, nvmeof.NVMWrite, nvmeof.NVMCompare, nvmeof.NVMWriteZeroes:
		if qid != 0 {
			e.LBA = r.Cmd.SLBA()
		}
	}
	if len(c.errLog) == errLogEntries {
		copy(c.errLog, c.errLog[1:])
		c.errLog = c.errLog[:errLogEntries-1]
	}
	c.errLog = append(c.errLog, e)
}
