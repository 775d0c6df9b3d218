package target

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

// Options configure a Target.
type Options struct {
	Logger *slog.Logger
	// FirmwareRev is reported in Identify Controller and the firmware slot
	// log (at most 8 characters).
	FirmwareRev string
	// MaxQueues is the most I/O queues a controller may have (default 64).
	MaxQueues int
	// IOKeepAlive is the keep-alive timeout of an I/O controller whose
	// host asks for none (KATO 0): 0 leaves it without one, as asked.
	// Discovery controllers get DiscoveryKeepAlive in that case.
	IOKeepAlive time.Duration
	// MaxQueueDepth is the most entries per queue, reported in CAP.MQES (default 1024).
	MaxQueueDepth int
	// BufferMemory caps the data buffer pool in bytes (default 1 GiB).
	BufferMemory int64
	// MaxHostBuffer caps the data buffer memory one host address may hold
	// at once (default BufferMemory/4); the last eighth of the pool is
	// kept for hosts holding at most 4 MiB (hostbuf.go).
	MaxHostBuffer int64
	// MaxHostMetrics is how many host NQNs get counters of their own
	// (HostStats, the metrics' host label), the first to connect; hosts
	// after them share the OtherHosts counters, so that the metrics'
	// cardinality stays bounded. 0: DefaultMaxHostMetrics; negative:
	// none.
	MaxHostMetrics int
	// AuthHashes and AuthDHGroups are the DH-HMAC-CHAP hash functions and
	// DH groups accepted, in order of preference (nil: the defaults of
	// internal/dhchap: SHA-512, -384, -256; ffdhe2048 ... 8192, then NULL).
	AuthHashes   []dhchap.Hash
	AuthDHGroups []dhchap.DHGroup
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Target is an NVMe-oF target: a set of subsystems, the discovery
// subsystem, and the controllers hosts have created. It is safe for
// concurrent use.
type Target struct {
	opts  Options
	log   *slog.Logger
	pool  *bufpool.Pool
	start time.Time

	mu      sync.Mutex
	subsys  map[string]*Subsystem // guarded by mu
	ports   []PortInfo            // guarded by mu
	portSeq uint16                // the last port ID given; guarded by mu
	ctrls   map[uint16]*Controller
	nextCtl uint16
	closed  bool

	hostBufs map[netip.Addr]*HostBuffers // guarded by mu
	bufUsed  atomic.Int64                // bytes of buffers taken through HostBuffers

	hosts      map[string]*hostStats // guarded by mu: at most MaxHostMetrics
	otherHosts hostStats             // the hosts beyond them
	paths      map[pathKey]struct{}  // guarded by mu: for counting reconnects

	discGen atomic.Uint64 // discovery log generation counter
	disc    *Subsystem
	Stats   Stats

	noBufLog LogLimiter
	peerLog  LogLimiter // PeerWarn
}

// Stats are counters kept off the hot structures, read by metrics.
type Stats struct {
	Connects         atomic.Uint64
	ConnectErrors    atomic.Uint64
	KeepAliveExpired atomic.Uint64
	ProtocolErrors   atomic.Uint64
	// ResvConflicts counts I/O commands a reservation refused;
	// ResvPreempted the registrations that preemptions removed.
	ResvConflicts atomic.Uint64
	ResvPreempted atomic.Uint64
	// BufferShortages counts commands failed because the data buffer
	// pool was exhausted.
	BufferShortages atomic.Uint64
	// HostBufferLimited counts those failed because the host was over
	// its share of the pool, or the pool down to its reserve.
	HostBufferLimited atomic.Uint64
	// Authentications and AuthFailures count DH-HMAC-CHAP transactions
	// (one per queue) that succeeded and failed.
	Authentications atomic.Uint64
	AuthFailures    atomic.Uint64
	// AdminQueues and IOQueues count the queues that connected (their
	// Connect succeeded).
	AdminQueues atomic.Uint64
	IOQueues    atomic.Uint64
	// ProtocolErrorKinds counts ProtocolErrors by kind.
	ProtocolErrorKinds [NumProtocolErrorKinds]atomic.Uint64
	// ControllersDeleted counts deleted controllers (discovery
	// controllers left out) by why they went.
	ControllersDeleted [NumDeleteReasons]atomic.Uint64
	// Reconnects counts controllers a host created on a path (subsystem
	// and target address) where it had one before (discovery left out).
	Reconnects atomic.Uint64
}

// New returns a target with only the discovery subsystem.
func New(opts Options) *Target {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FirmwareRev == "" {
		opts.FirmwareRev = "0.1"
	}
	if opts.MaxQueues <= 0 {
		opts.MaxQueues = 64
	}
	if opts.MaxQueueDepth <= 0 || opts.MaxQueueDepth > 65536 {
		opts.MaxQueueDepth = 1024
	}
	if opts.BufferMemory <= 0 {
		opts.BufferMemory = 1 << 30
	}
	if opts.MaxHostBuffer <= 0 || opts.MaxHostBuffer > opts.BufferMemory {
		opts.MaxHostBuffer = opts.BufferMemory / defaultHostShareDiv
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	switch {
	case opts.MaxHostMetrics == 0:
		opts.MaxHostMetrics = DefaultMaxHostMetrics
	case opts.MaxHostMetrics < 0:
		opts.MaxHostMetrics = 0
	}
	t := &Target{
		opts:    opts,
		log:     opts.Logger,
		pool:    bufpool.New(opts.BufferMemory),
		start:   opts.Now(),
		subsys:  map[string]*Subsystem{},
		ctrls:   map[uint16]*Controller{},
		nextCtl: 1,
	}
	t.otherHosts.label = OtherHosts
	t.disc = newSubsystem(t, SubsystemConfig{NQN: nvmeof.DiscoveryNQN, AllowAnyHost: true})
	t.disc.discovery = true
	t.discGen.Store(1)
	return t
}

// LogLimiter lets log lines through at a bounded rate (a burst of
// logBurst, then one a second) and counts the others, so that a flood of
// bad input or exhausted resources cannot flood the log. Each line that
// goes out reports how many were held back before it.
type LogLimiter struct {
	mu      sync.Mutex
	tokens  float64   // guarded by mu
	last    time.Time // guarded by mu: when tokens was last topped up
	dropped uint64    // guarded by mu: lines held back since the last that went out
	total   atomic.Uint64
	now     func() time.Time // nil: time.Now (tests set a clock)
}

// logBurst is how many lines a LogLimiter lets through at once.
const logBurst = 10

// Allow reports whether a line may go out now, and how many were held
// back since the last one that did.
func (l *LogLimiter) Allow() (ok bool, dropped uint64) {
	now := time.Now()
	if l.now != nil {
		now = l.now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = logBurst
	} else {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds())
	}
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		l.total.Add(1)
		return false, 0
	}
	l.tokens--
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// Suppressed is how many lines the limiter has held back in all.
func (l *LogLimiter) Suppressed() uint64 { return l.total.Load() }

// PeerWarn logs a warning about what one peer did (a protocol error, a
// failed authentication, a host that stopped reading) through the
// target's limiter for such lines; Stats and metrics count the events
// themselves.
func (t *Target) PeerWarn(log *slog.Logger, msg string, args ...any) {
	ok, dropped := t.peerLog.Allow()
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "suppressed", dropped)
	}
	log.Warn(msg, args...)
}

// LogSuppressed is how many log lines the target's limiters held back.
func (t *Target) LogSuppressed() uint64 { return t.noBufLog.Suppressed() + t.peerLog.Suppressed() }

// NoBuffer records a command failed for want of a data buffer: it counts
// it (Stats.BufferShortages) and logs through a LogLimiter, with the
// number held back since the last line, so that an exhausted pool does
// not flood the log (the security issue saw 161,000 lines in 3 s).
func (t *Target) NoBuffer(log *slog.Logger, err error) {
	t.Stats.BufferShortages.Add(1)
	if errors.Is(err, ErrHostBufferLimit) {
		t.Stats.HostBufferLimited.Add(1)
	}
	ok, dropped := t.noBufLog.Allow()
	if !ok {
		return
	}
	log.Error("no data buffer: command failed; the buffer pool is exhausted or the host over its share (a host may be holding buffers with writes whose data it does not send)", "err", err, "suppressed", dropped)
}

// Pool is the target's data buffer pool; transports take request buffers
// from it (and an RDMA transport registers its slabs).
func (t *Target) Pool() *bufpool.Pool { return t.pool }

// Logger returns the target's logger.
func (t *Target) Logger() *slog.Logger { return t.log }

// MaxQueueDepth is the most entries a queue may have (CAP.MQES + 1).
func (t *Target) MaxQueueDepth() int { return t.opts.MaxQueueDepth }

// SubsystemConfig configures a subsystem.
type SubsystemConfig struct {
	NQN          string
	Serial       string // 20 ASCII characters at most; default derived from the NQN
	Model        string // 40 characters at most; default "flashpath"
	AllowAnyHost bool
	AllowedHosts []string
	// Keys are DH-HMAC-CHAP secrets by host NQN: a host with keys must
	// authenticate, and is allowed.
	Keys map[string]HostKeys
	// TLSKeys are configured TLS PSKs by host NQN (tls.go): a host with
	// one is allowed, over TLS only.
	TLSKeys map[string]dhchap.PSK
	// MinCntlID and MaxCntlID bound the controller IDs of the subsystem's
	// controllers (default 1 and MaxCntlID). Targets that serve one
	// subsystem side by side (multipath across storage nodes) need
	// disjoint ranges: a host joins their controllers into one subsystem
	// and refuses a controller ID it already has (SPDK's min_cntlid and
	// max_cntlid, nvmet's attr_cntlid_min and attr_cntlid_max).
	MinCntlID, MaxCntlID uint16
}

// MaxCntlID is the highest controller ID (FFEFh; above are reserved).
const MaxCntlID = 0xFFEF

// CntlIDRange returns the subsystem's controller ID range, defaults
// filled in.
func (c SubsystemConfig) CntlIDRange() (lo, hi uint16) {
	lo, hi = c.MinCntlID, c.MaxCntlID
	if lo == 0 {
		lo = 1
	}
	if hi == 0 {
		hi = MaxCntlID
	}
	return lo, hi
}

// CheckCntlIDRange checks a controller ID range (0: the default bound).
func CheckCntlIDRange(min, max uint16) error {
	lo, hi := SubsystemConfig{MinCntlID: min, MaxCntlID: max}.CntlIDRange()
	if hi > MaxCntlID || lo > hi {
		return fmt.Errorf("controller ID range %d-%d: want 1 <= min <= max <= %d", lo, hi, MaxCntlID)
	}
	return nil
}

// Subsystem is an NVM subsystem: namespaces and the hosts allowed to use them.
type Subsystem struct {
	t         *Target
	cfg       SubsystemConfig
	discovery bool

	mu        sync.Mutex
	ns        atomic.Pointer[nsTable]
	adminCmds atomic.Uint64            // admin commands run by its controllers
	ctrls     map[*Controller]struct{} // guarded by mu
	// ioqs are the I/O queues of its controllers, from Connect until the
	// transport says they closed (after their last command), also those
	// of deleted controllers: Preempt and Abort waits on them.
	ioqs    map[*Queue]struct{}   // guarded by mu
	hosts   map[string]bool       // guarded by mu
	keys    map[string]HostKeys   // guarded by mu
	tlsKeys map[string]dhchap.PSK // guarded by mu
	anyHost bool                  // guarded by mu

	ana             map[PortKey]*anaPort     // guarded by mu: ANA states per port (ana.go)
	anaChanges      uint64                   // guarded by mu: the ANA log's change count
	anaGroupChanges [MaxANAGroups + 1]uint64 // guarded by mu: the change count at each group's last change
}

// nsTable is an immutable snapshot of a subsystem's namespaces, replaced
// whole on change, so the I/O path looks up a namespace without a lock.
type nsTable struct {
	byID map[uint32]*Namespace
	ids  []uint32 // ascending
}

func (tb *nsTable) get(id uint32) *Namespace {
	if tb == nil {
		return nil
	}
	return tb.byID[id]
}

func newSubsystem(t *Target, cfg SubsystemConfig) *Subsystem {
	s := &Subsystem{t: t, cfg: cfg, ctrls: map[*Controller]struct{}{}, ioqs: map[*Queue]struct{}{}}
	s.tlsKeys = maps.Clone(cfg.TLSKeys)
	s.setHosts(cfg.AllowAnyHost, cfg.AllowedHosts, cfg.Keys)
	s.ns.Store(&nsTable{byID: map[uint32]*Namespace{}})
	return s
}

// ValidateNQN checks an NVMe Qualified Name (NVMe Base 2.0 §4.5).
func ValidateNQN(nqn string) error {
	switch {
	case nqn == "":
		return errors.New("NQN is empty")
	case len(nqn) > nvmeof.NQNMaxLen:
		return fmt.Errorf("NQN %q is %d bytes, longer than %d", nqn, len(nqn), nvmeof.NQNMaxLen)
	case !strings.HasPrefix(nqn, "nqn."):
		return fmt.Errorf("NQN %q must start with \"nqn.\" (e.g. nqn.2026-11.io.flashpath:demo)", nqn)
	}
	return nil
}

// AddSubsystem creates a subsystem.
func (t *Target) AddSubsystem(cfg SubsystemConfig) (*Subsystem, error) {
	if err := ValidateNQN(cfg.NQN); err != nil {
		return nil, fmt.Errorf("add subsystem: %w", err)
	}
	if cfg.NQN == nvmeof.DiscoveryNQN {
		return nil, fmt.Errorf("add subsystem: %s is the discovery subsystem's NQN", cfg.NQN)
	}
	if len(cfg.Serial) > 20 {
		return nil, fmt.Errorf("add subsystem %s: serial %q longer than 20 characters", cfg.NQN, cfg.Serial)
	}
	if len(cfg.Model) > 40 {
		return nil, fmt.Errorf("add subsystem %s: model %q longer than 40 characters", cfg.NQN, cfg.Model)
	}
	if err := CheckCntlIDRange(cfg.MinCntlID, cfg.MaxCntlID); err != nil {
		return nil, fmt.Errorf("add subsystem %s: %w", cfg.NQN, err)
	}
	if cfg.Serial == "" {
		sum := sha256.Sum256([]byte(cfg.NQN))
		cfg.Serial = fmt.Sprintf("%x", sum[:10])
	}
	if cfg.Model == "" {
		cfg.Model = "flashpath"
	}
	t.mu.Lock()
	if _, ok := t.subsys[cfg.NQN]; ok {
		t.mu.Unlock()
		return nil, fmt.Errorf("add subsystem: %s already exists", cfg.NQN)
	}
	s := newSubsystem(t, cfg)
	t.subsys[cfg.NQN] = s
	t.mu.Unlock()
	t.discoveryChanged()
	return s, nil
}

// discoveryChanged bumps the discovery log's generation counter and
// notifies the discovery controllers that asked for it (persistent ones:
// nvme discover --persistent, or a host that keeps the connection).
// Called without t.mu held.
func (t *Target) discoveryChanged() {
	t.discGen.Add(1)
	for _, c := range t.disc.controllers() {
		c.discoveryChanged()
	}
}

// Subsystem returns the subsystem with the given NQN, or nil.
func (t *Target) Subsystem(nqn string) *Subsystem {
	if nqn == nvmeof.DiscoveryNQN {
		return t.disc
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.subsys[nqn]
}

// Subsystems returns the NVM subsystems, sorted by NQN.
func (t *Target) Subsystems() []*Subsystem {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Subsystem, 0, len(t.subsys))
	for _, s := range t.subsys {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Subsystem) int { return strings.Compare(a.cfg.NQN, b.cfg.NQN) })
	return out
}

// RemoveSubsystem deletes a subsystem and every controller connected to it.
func (t *Target) RemoveSubsystem(nqn string) error {
	t.mu.Lock()
	s, ok := t.subsys[nqn]
	delete(t.subsys, nqn)
	t.mu.Unlock()
	if !ok {
		return fmt.Errorf("remove subsystem: %s does not exist", nqn)
	}
	t.discoveryChanged()
	for _, c := range s.controllers() {
		c.fatal(DeletedRemoved, errors.New("subsystem removed"))
	}
	return s.closeNamespaces()
}

// AddPort records a listener for the discovery log page; transports call
// it when they start listening. It returns the port ID.
func (t *Target) AddPort(p PortInfo) uint16 {
	t.mu.Lock()
	// IDs are not reused while the port runs (ports come and go at run
	// time): a queue names its port by ID (SetPort).
	t.portSeq++
	if t.portSeq == 0 {
		t.portSeq = 1
	}
	p.ID = t.portSeq
	t.ports = append(t.ports, p)
	t.mu.Unlock()
	t.discoveryChanged()
	return p.ID
}

// RemovePort forgets a listener.
func (t *Target) RemovePort(id uint16) {
	t.mu.Lock()
	t.ports = slices.DeleteFunc(t.ports, func(p PortInfo) bool { return p.ID == id })
	t.mu.Unlock()
	t.discoveryChanged()
}

// discoveryOnly reports whether port id is a DiscoveryOnly port.
func (t *Target) discoveryOnly(id uint16) bool {
	if id == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.ports {
		if p.ID == id {
			return p.DiscoveryOnly
		}
	}
	return false
}

// Ports returns the listeners.
func (t *Target) Ports() []PortInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.ports)
}

// Close deletes every controller and closes every namespace backend.
// Transports are closed by their owners first.
func (t *Target) Close() error {
	t.mu.Lock()
	t.closed = true
	ctrls := make([]*Controller, 0, len(t.ctrls))
	for _, c := range t.ctrls {
		ctrls = append(ctrls, c)
	}
	subs := make([]*Subsystem, 0, len(t.subsys))
	for _, s := range t.subsys {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	for _, c := range ctrls {
		c.fatal(DeletedRemoved, errors.New("target shutting down"))
	}
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.closeNamespaces())
	}
	return errors.Join(errs...)
}

// NQN returns the subsystem's NQN.
func (s *Subsystem) NQN() string { return s.cfg.NQN }

// AdminCommands is the number of admin commands its controllers ran
// (fabrics commands such as Property Get left out).
func (s *Subsystem) AdminCommands() uint64 { return s.adminCmds.Load() }

// Discovery returns the discovery subsystem.
func (t *Target) Discovery() *Subsystem { return t.disc }

// Config returns the subsystem's configuration.
func (s *Subsystem) Config() SubsystemConfig { return s.cfg }

// AllowHost adds a host NQN to the allow list.
func (s *Subsystem) AllowHost(hostNQN string) {
	s.mu.Lock()
	s.hosts[hostNQN] = true
	s.mu.Unlock()
	s.t.discoveryChanged()
}

// SetHosts replaces the host access list (any host, or only those listed).
// It applies to new connections; controllers already connected stay, as
// with the Linux nvmet target.
// Keys (by host NQN) are the DH-HMAC-CHAP secrets of hosts that must
// authenticate; those hosts are allowed too. The hosts' TLS keys stay as
// they are (SetHostsTLS replaces them too).
func (s *Subsystem) SetHosts(anyHost bool, hosts []string, keys map[string]HostKeys) {
	s.mu.Lock()
	s.setHosts(anyHost, hosts, keys)
	s.mu.Unlock()
	s.t.discoveryChanged()
}

// SetHostsTLS is SetHosts that also replaces the hosts' TLS keys (by host
// NQN; those hosts are allowed too, over TLS only), in one step. Keys take
// effect for new connections.
func (s *Subsystem) SetHostsTLS(anyHost bool, hosts []string, keys map[string]HostKeys, tlsKeys map[string]dhchap.PSK) {
	s.mu.Lock()
	s.tlsKeys = maps.Clone(tlsKeys)
	s.setHosts(anyHost, hosts, keys)
	s.mu.Unlock()
	s.t.discoveryChanged()
}

func (s *Subsystem) setHosts(anyHost bool, hosts []string, keys map[string]HostKeys) {
	s.anyHost = anyHost
	s.hosts = make(map[string]bool, len(hosts)+len(keys)+len(s.tlsKeys))
	for _, h := range hosts {
		s.hosts[h] = true
	}
	s.keys = maps.Clone(keys)
	for h := range keys {
		s.hosts[h] = true
	}
	for h := range s.tlsKeys {
		s.hosts[h] = true
	}
}

// hostTLS returns the host's configured TLS PSK on the subsystem, if any.
func (s *Subsystem) hostTLS(hostNQN string) (dhchap.PSK, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.tlsKeys[hostNQN]
	return p, ok
}

// hostAllowed reports whether a host may connect.
func (s *Subsystem) hostAllowed(hostNQN string) bool {
	ok, _ := s.hostAccess(hostNQN)
	return ok
}

// hostAccess reports whether a host may connect, and the keys it must
// authenticate with (nil: none).
func (s *Subsystem) hostAccess(hostNQN string) (bool, *HostKeys) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys *HostKeys
	if k, ok := s.keys[hostNQN]; ok {
		keys = &k
	}
	return s.anyHost || s.hosts[hostNQN], keys
}

// Controllers returns the subsystem's controllers, by controller ID.
func (s *Subsystem) Controllers() []*Controller {
	out := s.controllers()
	slices.SortFunc(out, func(a, b *Controller) int { return int(a.id) - int(b.id) })
	return out
}

func (s *Subsystem) controllers() []*Controller {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Controller, 0, len(s.ctrls))
	for c := range s.ctrls {
		out = append(out, c)
	}
	return out
}

// NamespaceConfig configures a namespace.
type NamespaceConfig struct {
	NSID    uint32 // 1..MaxNSID; 0 picks the lowest free
	Backend backend.Backend
	// UUID and NGUID identify the namespace to hosts; when zero they are
	// derived from the subsystem NQN and NSID, so they stay the same across
	// restarts.
	UUID  [16]byte
	NGUID [16]byte
	// ANAGroup is the namespace's ANA group, 1 to MaxANAGroups (0: 1).
	ANAGroup uint32
	// PTPLFile, where set, keeps the reservations through a restart
	// once a host turns persistence through power loss on (ptpl.go);
	// what it holds is restored. Its directory must exist.
	PTPLFile string
}

// MaxNSID is the largest namespace ID (Identify Controller NN).
const MaxNSID = 1024

// Namespace is one namespace of a subsystem.
type Namespace struct {
	ID       uint32
	Backend  backend.Backend
	UUID     [16]byte
	NGUID    [16]byte
	EUI64    [8]byte
	blkShift uint8
	nblocks  uint64
	stats    nsStats
	async    backend.Async      // Backend, where it runs I/O asynchronously
	source   backend.FileSource // Backend, where transports may send reads from its file
	mem      backend.MemSource  // Backend, where transports may send reads from its memory
	fromFile atomic.Uint64      // read bytes sent from the file (SendFromFiles)
	refs     *ioRefs            // commands using Backend
	resv     resvState          // registrations and reservation (resv.go)
	anaGroup uint32             // 1..MaxANAGroups
}

// drainTimeout bounds how long removing a namespace waits for its I/O.
var drainTimeout = 30 * time.Second

// close waits for the namespace's I/O, then flushes and closes its
// backend. I/O that does not finish in drainTimeout leaves the backend
// open (closing it under the I/O could hand its fd to another file).
func (ns *Namespace) close() error {
	if !ns.refs.drain(drainTimeout) {
		return fmt.Errorf("namespace %d: I/O still in flight after %v: its %s backend is left open", ns.ID, drainTimeout, ns.Backend.Kind())
	}
	return errors.Join(ns.Backend.Flush(), ns.Backend.Close())
}

// AddNamespace attaches a backend as a namespace and notifies connected
// controllers (Asynchronous Event, Changed Namespace List).
func (s *Subsystem) AddNamespace(cfg NamespaceConfig) (*Namespace, error) {
	if cfg.Backend == nil {
		return nil, errors.New("add namespace: no backend")
	}
	bs := cfg.Backend.BlockSize()
	if bs != 512 && bs != 4096 {
		return nil, fmt.Errorf("add namespace: block size %d, want 512 or 4096", bs)
	}
	if cfg.ANAGroup == 0 {
		cfg.ANAGroup = 1
	}
	if err := nvmeof.CheckANAGroupID(cfg.ANAGroup, MaxANAGroups); err != nil {
		return nil, fmt.Errorf("add namespace: %w", err)
	}
	s.mu.Lock()
	old := s.ns.Load()
	id := cfg.NSID
	if id == 0 {
		for id = 1; old.byID[id] != nil; id++ {
		}
	}
	if id > MaxNSID {
		s.mu.Unlock()
		return nil, fmt.Errorf("add namespace: NSID %d outside 1..%d", id, MaxNSID)
	}
	if old.byID[id] != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("add namespace: NSID %d already exists in %s", id, s.cfg.NQN)
	}
	ns := &Namespace{ID: id, Backend: cfg.Backend, UUID: cfg.UUID, NGUID: cfg.NGUID, anaGroup: cfg.ANAGroup}
	ns.async, _ = cfg.Backend.(backend.Async)
	ns.source, _ = cfg.Backend.(backend.FileSource)
	ns.mem, _ = cfg.Backend.(backend.MemSource)
	ns.refs = newIORefs()
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", s.cfg.NQN, id))
	if ns.UUID == ([16]byte{}) {
		copy(ns.UUID[:], sum[:16])
		ns.UUID[6] = ns.UUID[6]&0x0f | 0x50 // version 5 style, name based
		ns.UUID[8] = ns.UUID[8]&0x3f | 0x80
	}
	if ns.NGUID == ([16]byte{}) {
		copy(ns.NGUID[:], sum[16:32])
	}
	copy(ns.EUI64[:], sum[8:16])
	for ns.blkShift = 9; 1<<ns.blkShift < bs; ns.blkShift++ {
	}
	ns.nblocks = uint64(cfg.Backend.Size()) >> ns.blkShift
	ns.resv.log = s.t.log.With("subsys", s.cfg.NQN, "nsid", id)
	if cfg.PTPLFile != "" {
		if err := ns.resv.openPTPL(cfg.PTPLFile, ns.UUID); err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("add namespace %d: %w", id, err)
		}
	}
	next := &nsTable{byID: make(map[uint32]*Namespace, len(old.byID)+1)}
	for k, v := range old.byID {
		next.byID[k] = v
	}
	next.byID[id] = ns
	next.ids = append(slices.Clone(old.ids), id)
	slices.Sort(next.ids)
	s.ns.Store(next)
	ctrls := make([]*Controller, 0, len(s.ctrls))
	for c := range s.ctrls {
		ctrls = append(ctrls, c)
	}
	s.mu.Unlock()
	for _, c := range ctrls {
		c.namespaceChanged(id)
	}
	return ns, nil
}

// RemoveNamespace detaches a namespace, notifies controllers and closes its backend.
func (s *Subsystem) RemoveNamespace(id uint32) error {
	s.mu.Lock()
	old := s.ns.Load()
	ns := old.byID[id]
	if ns == nil {
		s.mu.Unlock()
		return fmt.Errorf("remove namespace: NSID %d does not exist in %s", id, s.cfg.NQN)
	}
	next := &nsTable{byID: make(map[uint32]*Namespace, len(old.byID))}
	for k, v := range old.byID {
		if k != id {
			next.byID[k] = v
		}
	}
	next.ids = slices.DeleteFunc(slices.Clone(old.ids), func(x uint32) bool { return x == id })
	s.ns.Store(next)
	ctrls := make([]*Controller, 0, len(s.ctrls))
	for c := range s.ctrls {
		ctrls = append(ctrls, c)
	}
	s.mu.Unlock()
	for _, c := range ctrls {
		c.namespaceChanged(id)
	}
	// Commands that looked the namespace up in the old table may still be
	// running: close waits for them, then flushes what was acknowledged.
	return ns.close()
}

// Namespace returns a namespace by ID, or nil.
func (s *Subsystem) Namespace(id uint32) *Namespace { return s.ns.Load().get(id) }

// Namespaces returns the namespaces in NSID order.
func (s *Subsystem) Namespaces() []*Namespace {
	tb := s.ns.Load()
	out := make([]*Namespace, 0, len(tb.ids))
	for _, id := range tb.ids {
		out = append(out, tb.byID[id])
	}
	return out
}

func (s *Subsystem) closeNamespaces() error {
	var errs []error
	for _, ns := range s.Namespaces() {
		errs = append(errs, ns.close())
	}
	return errors.Join(errs...)
}

// allocCntlID reserves a controller ID in the range of c's subsystem
// (1..MaxCntlID unless configured), unique in the target, and counts the
// controller on its host's counters (reached at local).
func (t *Target) allocCntlID(c *Controller, local netip.AddrPort) (uint16, error) {
	lo, hi := c.subsys.cfg.CntlIDRange()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, errors.New("target is shutting down")
	}
	n := int(hi) - int(lo) + 1
	next := t.nextCtl
	if next < lo || next > hi {
		next = lo
	}
	for i := 0; i < n; i++ {
		id := next
		if next++; next > hi {
			next = lo
		}
		if _, used := t.ctrls[id]; !used {
			t.nextCtl = next
			c.id = id // before c is visible to I/O queue Connects
			c.host = t.controllerCreated(c.subsys, c.hostNQN, local)
			t.ctrls[id] = c
			return id, nil
		}
	}
	return 0, fmt.Errorf("no free controller ID in %d-%d (the subsystem's min_cntlid/max_cntlid): disconnect hosts or widen the range", lo, hi)
}

func (t *Target) controller(id uint16) *Controller {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ctrls[id]
}

func (t *Target) freeCntlID(id uint16) {
	t.mu.Lock()
	delete(t.ctrls, id)
	t.mu.Unlock()
}

// Controllers returns the number of live controllers.
func (t *Target) Controllers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ctrls)
}

// discoveryEntries builds the discovery log for a host that reached the
// target at local (used where a port listens on an unspecified address).
func (t *Target) discoveryEntries(hostNQN string, local netip.Addr) []nvmeof.DiscoveryEntry {
	var out []nvmeof.DiscoveryEntry
	ports := t.Ports()
	for _, s := range t.Subsystems() {
		if !s.hostAllowed(hostNQN) {
			continue
		}
		for _, p := range ports {
			if p.DiscoveryOnly {
				continue // no I/O there
			}
			addr := p.Addr.Addr()
			if addr.IsUnspecified() && local.IsValid() {
				addr = local
			}
			e := nvmeof.DiscoveryEntry{
				TrType:  p.TrType,
				AdrFam:  nvmeof.AdrFamFor(addr),
				SubType: nvmeof.SubTypeNVM,
				// Not specified on a port without TLS, as Linux nvmet:
				// libnvme 1.x (nvme-cli 2.x connect-all) reads "required"
				// or "not required" on TCP as TLS support, and kernels
				// without TLS refuse the connect. A TLS port says
				// required or not required, and TLS 1.3 in TSAS.
				TReq:    p.TReq,
				SecType: p.SecType,
				PortID:  p.ID,
				CntlID:  nvmeof.CntlIDDynamic,
				ASQSZ:   32,
				TrSvcID: fmt.Sprint(p.Addr.Port()),
				SubNQN:  s.cfg.NQN,
				TrAddr:  addr.Unmap().String(),
			}
			if p.TrType == nvmeof.TrTypeRDMA {
				// As Linux nvmet-rdma: reliable connected, any provider, RDMA CM.
				e.RDMAQPType, e.RDMAPrType, e.RDMACMS = nvmeof.RDMAQPTypeConnected, nvmeof.RDMAPrTypeNotSpecific, nvmeof.RDMACMSRDMACM
			}
			out = append(out, e)
		}
	}
	return out
}

// NamespaceStats is a snapshot of a namespace's counters.
type NamespaceStats struct {
	// Reads counts the Read and Compare commands that succeeded, Writes
	// the Write and Write Zeroes commands (as SMART's Host Read and Write
	// Commands); BytesRead and BytesWritten what Read and Write moved.
	// Errors counts the commands the backend failed.
	Reads, Writes           uint64
	BytesRead, BytesWritten uint64
	Errors                  uint64
	// BytesFromFile is the part of BytesRead that the transport sent
	// straight from the backend's file (sendfile), with no copy.
	BytesFromFile uint64
	// Ops are the counters of each operation.
	Ops [NumOps]OpStats
}

// Stats returns the namespace's counters.
func (ns *Namespace) Stats() NamespaceStats {
	var st NamespaceStats
	for op := range st.Ops {
		o := ns.stats.ops[op].snapshot()
		st.Ops[op] = o
		st.Errors += o.Errors
	}
	st.Reads = st.Ops[OpRead].Commands + st.Ops[OpCompare].Commands
	st.Writes = st.Ops[OpWrite].Commands + st.Ops[OpWriteZeroes].Commands
	st.BytesRead, st.BytesWritten = st.Ops[OpRead].Bytes, st.Ops[OpWrite].Bytes
	st.BytesFromFile = ns.fromFile.Load()
	return st
}
