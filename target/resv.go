package target

import (
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/flashpath/flashpath/nvmeof"
)

// NVMe reservations (NVMe Base 2.0 §8.19): hosts, named by their Host
// Identifier, register a key on a namespace; one of them may then hold a
// reservation that keeps the others from writing (or from reading too).
// A host that takes over from a failed one preempts it: from then on the
// failed host's I/O fails with Reservation Conflict, and Preempt and Abort
// returns only once every command of its that was already past that check
// has run, so a write of the failed host cannot land after it.
// Registrations and the reservation outlive controllers and connections;
// they outlive the namespace (a restart of the target) where it has a
// PTPL file and hosts turned persistence through power loss on (ptpl.go).

// MaxRegistrants bounds the hosts registered on one namespace: a host
// that connects under ever new Host Identifiers cannot grow the list
// without end. Past it, Register fails with Internal Error.
const MaxRegistrants = 1024

// registrant is a host registered on a namespace, with its key.
type registrant struct {
	host [16]byte
	key  uint64
}

// resvView is an immutable picture of a held reservation, read without a
// lock by the I/O path (resvState.view).
type resvView struct {
	rtype  uint8
	holder [16]byte   // the holding host (types without "all registrants")
	regs   [][16]byte // registered hosts
}

func (v *resvView) registered(host [16]byte) bool { return slices.Contains(v.regs, host) }

// resvState is a namespace's registrations and reservation.
type resvState struct {
	mu       sync.Mutex
	resvData // guarded by mu
	// file is the PTPL file ("": not capable) and uuid the namespace's
	// UUID, which the file names; both set before hosts see it (ptpl.go).
	file string
	uuid [16]byte
	log  *slog.Logger
	// view is nil while no reservation is held: then nothing is refused.
	view atomic.Pointer[resvView]
}

// resvData is what a namespace's reservations are: what a PTPL file
// restores, and what a command whose change cannot be persisted goes back
// to.
type resvData struct {
	regs   []registrant // in registration order
	rtype  uint8        // 0 when no reservation is held
	holder [16]byte     // the holder, where rtype is not 0
	gen    uint32       // bumped by each change of registrations (not persisted)
	ptpl   bool         // persistence through power loss is on
}

// allRegs reports whether t is a type held by every registrant.
func allRegs(t uint8) bool {
	return t == nvmeof.ResvWriteExclusiveAllRegs || t == nvmeof.ResvExclusiveAccessAllRegs
}

// regOnly reports whether t lets registrants in.
func regOnly(t uint8) bool {
	return t == nvmeof.ResvWriteExclusiveRegOnly || t == nvmeof.ResvExclusiveAccessRegOnly
}

// writeGroup and readGroup are the commands a reservation may refuse
// (NVMe Base 2.0 Figure 559: the write and read command groups).
func writeGroup(op uint8) bool {
	switch op {
	case nvmeof.NVMWrite, nvmeof.NVMWriteZeroes, nvmeof.NVMDSM, nvmeof.NVMFlush, nvmeof.NVMWriteUncor:
		return true
	}
	return false
}

func readGroup(op uint8) bool {
	return op == nvmeof.NVMRead || op == nvmeof.NVMCompare || op == nvmeof.NVMVerify
}

// allows reports whether host may run a command of opcode op now. It does
// not allocate or lock.
func (s *resvState) allows(host [16]byte, op uint8) bool {
	v := s.view.Load()
	if v == nil {
		return true
	}
	w, r := writeGroup(op), readGroup(op)
	if !w && !r {
		return true
	}
	switch v.rtype {
	case nvmeof.ResvWriteExclusive:
		return !w || host == v.holder
	case nvmeof.ResvExclusiveAccess:
		return host == v.holder
	case nvmeof.ResvWriteExclusiveRegOnly, nvmeof.ResvWriteExclusiveAllRegs:
		return !w || v.registered(host)
	case nvmeof.ResvExclusiveAccessRegOnly, nvmeof.ResvExclusiveAccessAllRegs:
		return v.registered(host)
	}
	return true
}

// publish makes the I/O path see the state. Called with mu held.
func (s *resvState) publish() {
	if s.rtype == 0 {
		s.view.Store(nil)
		return
	}
	v := &resvView{rtype: s.rtype, holder: s.holder, regs: make([][16]byte, len(s.regs))}
	for i, g := range s.regs {
		v.regs[i] = g.host
	}
	s.view.Store(v)
}

func (d *resvData) find(host [16]byte) int {
	return slices.IndexFunc(d.regs, func(g registrant) bool { return g.host == host })
}

// holds reports whether host holds the reservation. Called with mu held.
func (s *resvState) holds(host [16]byte) bool {
	if s.rtype == 0 {
		return false
	}
	if allRegs(s.rtype) {
		return s.find(host) >= 0
	}
	return s.holder == host
}

// resvEvents are the notifications a change owes hosts: each host gets
// its log page type, after the namespace's lock is released.
type resvEvents []resvEvent

type resvEvent struct {
	host [16]byte
	typ  uint8
}

func (e *resvEvents) add(host [16]byte, typ uint8) {
	*e = append(*e, resvEvent{host, typ})
}

// unregister removes the registrant at i; a holder's reservation goes
// with it, or passes on (all registrants). Called with mu held.
func (s *resvState) unregister(i int, ev *resvEvents) {
	host := s.regs[i].host
	s.regs = slices.Delete(s.regs, i, i+1)
	if s.rtype == 0 || (!allRegs(s.rtype) && s.holder != host) {
		return
	}
	if allRegs(s.rtype) {
		if len(s.regs) == 0 {
			s.rtype = 0
		}
		return
	}
	if regOnly(s.rtype) {
		s.released(host, ev)
	}
	s.rtype, s.holder = 0, [16]byte{}
}

// released notes Reservation Released for the registrants but host.
func (s *resvState) released(host [16]byte, ev *resvEvents) {
	for _, g := range s.regs {
		if g.host != host {
			ev.add(g.host, nvmeof.ResvLogResvReleased)
		}
	}
}

// preemptKey unregisters the hosts registered with key (but except, the
// requester, when spare), noting each but except as preempted; false if
// there was none.
func (s *resvState) preemptKey(key uint64, except [16]byte, spare bool, ev *resvEvents, gone *[][16]byte) bool {
	found := false
	for i := 0; i < len(s.regs); {
		g := s.regs[i]
		if g.key != key || spare && g.host == except {
			i++
			continue
		}
		found = true
		s.unregister(i, ev)
		*gone = append(*gone, g.host)
		if g.host != except {
			ev.add(g.host, nvmeof.ResvLogRegPreempted)
		}
	}
	return found
}

// register runs Reservation Register for host.
func (s *resvState) register(host [16]byte, cdw10 uint32, data []byte) (st nvmeof.Status, ev resvEvents) {
	cur, nkey, ok := nvmeof.ResvKeys(data)
	if !ok {
		return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR, nil
	}
	cptpl := cdw10 >> 30 // 0: no change, 2: off, 3: on
	if cptpl == 1 || cptpl == 3 && s.file == "" {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR, nil // reserved; not capable
	}
	ignore := cdw10&nvmeof.ResvIEKEY != 0
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.persist(s.undo(), &st, &ev, nil)
	if cptpl >= 2 {
		defer func() {
			if st.OK() {
				s.ptpl = cptpl == 3
			}
		}()
	}
	i := s.find(host)
	switch cdw10 & 7 {
	case nvmeof.ResvRegister:
		if i >= 0 {
			if s.regs[i].key != nkey {
				return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, nil
			}
			return nvmeof.StatusSuccess, nil
		}
		if len(s.regs) >= MaxRegistrants {
			return nvmeof.StatusInternalError | nvmeof.StatusDNR, nil
		}
		s.regs = append(s.regs, registrant{host: host, key: nkey})
	case nvmeof.ResvUnregister:
		if i < 0 || !ignore && s.regs[i].key != cur {
			return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, nil
		}
		s.unregister(i, &ev)
	case nvmeof.ResvReplace:
		if i < 0 || !ignore && s.regs[i].key != cur {
			return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, nil
		}
		s.regs[i].key = nkey
	default:
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR, nil
	}
	s.gen++
	s.publish()
	return nvmeof.StatusSuccess, ev
}

// acquire runs Reservation Acquire for host. gone lists the hosts whose
// registration it preempted (Preempt and Abort waits for their commands).
func (s *resvState) acquire(host [16]byte, cdw10 uint32, data []byte) (st nvmeof.Status, ev resvEvents, gone [][16]byte) {
	cur, pkey, ok := nvmeof.ResvKeys(data)
	if !ok {
		return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR, nil, nil
	}
	rtype := uint8(cdw10 >> 8)
	act := cdw10 & 7
	if cdw10&nvmeof.ResvIEKEY != 0 || rtype < nvmeof.ResvWriteExclusive || rtype > nvmeof.ResvExclusiveAccessAllRegs || act > nvmeof.ResvPreemptAndAbort {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.persist(s.undo(), &st, &ev, &gone)
	i := s.find(host)
	if i < 0 || s.regs[i].key != cur {
		return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, nil, nil
	}
	if act == nvmeof.ResvAcquire {
		switch {
		case s.rtype == 0:
			s.rtype, s.holder = rtype, host
			s.publish()
		case s.holds(host) && s.rtype == rtype:
		default:
			return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, nil, nil
		}
		return nvmeof.StatusSuccess, nil, nil
	}
	// Preempt, and Preempt and Abort.
	switch {
	case s.rtype == 0:
		if !s.preemptKey(pkey, host, false, &ev, &gone) {
			return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, nil, nil
		}
	case allRegs(s.rtype) && pkey == 0:
		// Take the reservation over, alone: every other registrant goes.
		s.rtype, s.holder = rtype, host
		for j := 0; j < len(s.regs); {
			if g := s.regs[j]; g.host != host {
				s.regs = slices.Delete(s.regs, j, j+1)
				gone = append(gone, g.host)
				ev.add(g.host, nvmeof.ResvLogRegPreempted)
				continue
			}
			j++
		}
	case allRegs(s.rtype):
		if !s.preemptKey(pkey, host, false, &ev, &gone) {
			return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, nil, nil
		}
	case pkey == s.regs[s.find(s.holder)].key:
		// The holder's key: the requester takes the reservation over
		// (the holder itself, with its own key, changes its type), and
		// the other registrants with that key go.
		old := s.rtype
		s.rtype, s.holder = rtype, host
		s.preemptKey(pkey, host, true, &ev, &gone)
		if old != rtype && regOnly(old) {
			s.released(host, &ev)
		}
	case pkey != 0:
		// Another key: its registrants go; the reservation stays (also
		// when the requester holds it).
		if !s.preemptKey(pkey, host, false, &ev, &gone) {
			return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, nil, nil
		}
	default:
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR, nil, nil
	}
	s.gen++
	s.publish()
	return nvmeof.StatusSuccess, ev, gone
}

// release runs Reservation Release for host.
func (s *resvState) release(host [16]byte, cdw10 uint32, data []byte) (st nvmeof.Status, ev resvEvents) {
	if len(data) < nvmeof.ResvReleaseSize {
		return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR, nil
	}
	cur := binary.LittleEndian.Uint64(data)
	rtype := uint8(cdw10 >> 8)
	if cdw10&nvmeof.ResvIEKEY != 0 || cdw10&7 > nvmeof.ResvClear {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.persist(s.undo(), &st, &ev, nil)
	i := s.find(host)
	if i < 0 || s.regs[i].key != cur {
		return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, nil
	}
	if cdw10&7 == nvmeof.ResvClear {
		for _, g := range s.regs {
			if g.host != host {
				ev.add(g.host, nvmeof.ResvLogResvPreempted)
			}
		}
		s.regs, s.rtype, s.holder = nil, 0, [16]byte{}
		s.gen++
		s.publish()
		return nvmeof.StatusSuccess, ev
	}
	if !s.holds(host) {
		return nvmeof.StatusSuccess, nil // nothing of the host's to release
	}
	if rtype != s.rtype {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR, nil
	}
	if regOnly(s.rtype) || allRegs(s.rtype) {
		s.released(host, &ev)
	}
	s.rtype, s.holder = 0, [16]byte{}
	s.publish()
	return nvmeof.StatusSuccess, ev
}

// report fills a Reservation Report (extended data structure) into b.
func (s *resvState) report(b []byte) {
	s.mu.Lock()
	rep := nvmeof.ResvReport{Gen: s.gen, Type: s.rtype, Regs: uint16(len(s.regs)), PTPLS: s.ptpl}
	rep.List = make([]nvmeof.ResvRegistrant, len(s.regs))
	for i, g := range s.regs {
		rep.List[i] = nvmeof.ResvRegistrant{CntlID: 0xFFFF, Holds: s.holds(g.host), Key: g.key, HostID: g.host}
	}
	s.mu.Unlock()
	n := rep.Encode(b)
	clear(b[n:])
}

// reservation runs a Reservation Register, Acquire, Release or Report on
// ns for the queue's host.
func (q *Queue) reservation(r *Request, ns *Namespace) nvmeof.Status {
	host := q.ctrl.hostID
	cdw10 := r.Cmd.CDW(10)
	var (
		st   nvmeof.Status
		ev   resvEvents
		gone [][16]byte
	)
	switch r.Cmd.Opcode() {
	case nvmeof.NVMResvReport:
		if r.Cmd.CDW(11)&1 == 0 {
			// The 64-bit Host Identifier format; NVMe over Fabrics hosts
			// have 128-bit ones (nvme resv-report --eds).
			return nvmeof.StatusHostIDInconsistent | nvmeof.StatusDNR
		}
		n := min(len(r.Data), 4*(int(cdw10)+1))
		ns.resv.report(r.Data[:n])
		clear(r.Data[n:])
		return nvmeof.StatusSuccess
	case nvmeof.NVMResvRegister:
		st, ev = ns.resv.register(host, cdw10, r.Data)
	case nvmeof.NVMResvAcquire:
		st, ev, gone = ns.resv.acquire(host, cdw10, r.Data)
	case nvmeof.NVMResvRelease:
		st, ev = ns.resv.release(host, cdw10, r.Data)
	}
	q.ctrl.subsys.resvNotify(ns.ID, ev)
	if !st.OK() || len(gone) == 0 {
		return st
	}
	q.t.Stats.ResvPreempted.Add(uint64(len(gone)))
	abort := cdw10&7 == nvmeof.ResvPreemptAndAbort
	ids := make([]string, len(gone))
	for i, h := range gone {
		ids[i] = hex.EncodeToString(h[:])
	}
	q.log.Info("reservation: hosts preempted", "nsid", ns.ID, "hostid", hex.EncodeToString(host[:]),
		"preempted", ids, "abort", abort)
	if abort {
		q.ctrl.subsys.waitHosts(gone, q)
	}
	return st
}

// waitHosts returns once every command that the queues of hosts (but
// not except) had in the core when it was called has completed: a
// Preempt and Abort's preempted hosts, whose later commands the new
// reservation refuses. A command is counted from before its reservation
// check (ExecGate.Begin) to its completion, so none that passed the check
// before the preemption is missed.
func (s *Subsystem) waitHosts(hosts [][16]byte, except *Queue) {
	qs := s.ioQueues(func(q *Queue) bool { return q != except && slices.Contains(hosts, q.ctrl.hostID) })
	except.gate.park()
	defer except.gate.unpark()
	for _, q := range qs {
		q.gate.waitIdle()
	}
}

// resvNotify hands each event to the controllers of its host.
func (s *Subsystem) resvNotify(nsid uint32, ev resvEvents) {
	if len(ev) == 0 {
		return
	}
	for _, c := range s.controllers() {
		for _, e := range ev {
			if e.host == c.hostID {
				c.resvEvent(nsid, e.typ)
			}
		}
	}
}

// resvLogMax bounds the notifications kept unread; past it, the count
// skips, which tells the host some were lost.
const resvLogMax = 64

// resvMaskOf is the Reservation Notification Mask of namespace nsid.
// Called with mu held.
func (c *Controller) resvMaskOf(nsid uint32) uint32 {
	if m, ok := c.resvMask[nsid]; ok {
		return m
	}
	return c.resvMaskAll
}

// setResvFeature sets the Reservation Notification Mask or Reservation
// Persistence of a namespace, or of all (NSID FFFFFFFFh). Called with mu
// held.
func (c *Controller) setResvFeature(r *Request, v uint32) nvmeof.Status {
	nsid := r.Cmd.NSID()
	if nsid != 0xFFFFFFFF && c.subsys.ns.Load().get(nsid) == nil {
		return nvmeof.StatusInvalidNamespace | nvmeof.StatusDNR
	}
	if r.Cmd.FID() == nvmeof.FeatResvPersist {
		if v&^1 != 0 {
			return nvmeof.StatusInvalidField | nvmeof.StatusDNR
		}
		if nsid != 0xFFFFFFFF {
			return c.subsys.ns.Load().get(nsid).resv.setPTPL(v == 1)
		}
		// Every namespace that can persist (SPDK's reading).
		for _, ns := range c.subsys.ns.Load().byID {
			if ns.resv.file != "" {
				if st := ns.resv.setPTPL(v == 1); !st.OK() {
					return st
				}
			}
		}
		return nvmeof.StatusSuccess
	}
	if v&^nvmeof.ResvMaskAll != 0 {
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	}
	if nsid == 0xFFFFFFFF {
		c.resvMaskAll = v
		clear(c.resvMask)
		return nvmeof.StatusSuccess
	}
	if c.resvMask == nil {
		c.resvMask = map[uint32]uint32{}
	}
	c.resvMask[nsid] = v
	return nvmeof.StatusSuccess
}

// resvEvent queues a Reservation Notification log page of type typ about
// namespace nsid, unless masked, and raises the event for it.
func (c *Controller) resvEvent(nsid uint32, typ uint8) {
	c.mu.Lock()
	if c.dead || c.resvMaskOf(nsid)&(1<<typ) != 0 {
		c.mu.Unlock()
		return
	}
	c.resvCount++
	if c.resvCount == 0 {
		c.resvCount = 1 // the count wraps to 1: 0 means an empty page
	}
	if len(c.resvLogs) < resvLogMax {
		c.resvLogs = append(c.resvLogs, nvmeof.ResvLog{Count: c.resvCount, Type: typ, NSID: nsid})
	}
	r := c.raise(aenResv)
	c.mu.Unlock()
	completeAER(r, aenDW0[aenResv])
}

// resvLogPage takes the oldest unread notification (an empty page if
// none), saying how many more wait; reading it without RAE unmasks the
// event.
func (c *Controller) resvLogPage(rae bool) []byte {
	page := make([]byte, nvmeof.ResvLogSize)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !rae {
		c.unmask(aenResv)
	}
	if len(c.resvLogs) == 0 {
		return page
	}
	l := c.resvLogs[0]
	c.resvLogs = c.resvLogs[1:]
	l.Available = uint8(min(len(c.resvLogs), 255))
	l.Encode(page)
	return page
}

// admitResv checks a reservation command's data length: Register's and
// Acquire's two keys, Release's one, and no more than Report's NUMD.
func admitResv(op uint8, cdw10 uint32, dlen uint64) nvmeof.Status {
	want := uint64(nvmeof.ResvKeysSize)
	switch op {
	case nvmeof.NVMResvRelease:
		want = nvmeof.ResvReleaseSize
	case nvmeof.NVMResvReport:
		if dlen == 0 || dlen > 4*(uint64(cdw10)+1) {
			return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR
		}
		return nvmeof.StatusSuccess
	}
	if dlen != want {
		return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR
	}
	return nvmeof.StatusSuccess
}
