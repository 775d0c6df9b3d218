package target

import (
	"bytes"
	"errors"
	"syscall"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

// StatusWriteProtected is Namespace is Write Protected (generic status 20h).
const StatusWriteProtected nvmeof.Status = 0x20

// execIO runs an NVM command set command. It does not allocate. held
// means a read or write was started on an asynchronous backend: the
// request completes later, through IODone. The namespace's reference is
// held while the backend works on the command. Each command that
// succeeds is counted on its namespace, with its latency (iostats.go).
func (q *Queue) execIO(r *Request) (st nvmeof.Status, held bool) {
	if !q.ctrl.ready.Load() {
		return nvmeof.StatusCommandSequenceError | nvmeof.StatusDNR, false
	}
	start := q.startTime()
	if r.Cmd.Opcode() == nvmeof.NVMFlush && r.Cmd.NSID() == 0xFFFFFFFF {
		return q.flushAll(start), false
	}
	ns, st := q.acquireNS(r)
	if !st.OK() {
		return st, false
	}
	if !ns.resv.allows(q.ctrl.hostID, r.Cmd.Opcode()) {
		q.t.Stats.ResvConflicts.Add(1)
		ns.refs.release()
		return nvmeof.StatusReservationConflict | nvmeof.StatusDNR, false
	}
	if q.startAsync(r, ns, start) {
		return nvmeof.StatusSuccess, true
	}
	st = q.execSync(r, ns, start)
	ns.refs.release()
	return st, false
}

// acquireNS returns the namespace r names, referenced (release it), or
// the status to fail r with: none there, or not accessible through this
// controller's port (ANA).
func (q *Queue) acquireNS(r *Request) (*Namespace, nvmeof.Status) {
	ns := q.ctrl.subsys.ns.Load().get(r.Cmd.NSID())
	if ns == nil || !ns.refs.acquire() {
		return nil, nvmeof.StatusInvalidNamespace | nvmeof.StatusDNR
	}
	if st := q.ctrl.ana.state(ns.anaGroup); !st.Accessible() {
		ns.refs.release()
		return nil, st.Status() // the host's multipath retries on another path
	}
	return ns, nvmeof.StatusSuccess
}

// flushAll is Flush with NSID FFFFFFFFh: every namespace. Each counts a
// flush.
func (q *Queue) flushAll(start int64) nvmeof.Status {
	for _, ns := range q.ctrl.subsys.ns.Load().byID {
		if !ns.refs.acquire() {
			continue // going away: its removal flushes it
		}
		err := ns.Backend.Flush()
		ns.refs.release()
		if err != nil {
			return ns.status(OpFlush, err)
		}
		ns.stats.done(OpFlush, 0, start)
	}
	return nvmeof.StatusSuccess
}

// done counts a command of op on ns that succeeded, and the data it moved
// (n bytes; the host's too: Read's as read, Write's and Compare's as
// written).
func (q *Queue) done(ns *Namespace, op Op, n int64, start int64) {
	ns.stats.done(op, n, start)
	q.countHost(op, n)
}

// doneHere is done on the queue's goroutine, where the latency may wait
// for the batch's clock reading (EndBatch).
func (q *Queue) doneHere(ns *Namespace, op Op, n int64, start int64) {
	q.stat(ns, op, n, start)
	q.countHost(op, n)
}

// countHost counts the data a command of the host's moved.
func (q *Queue) countHost(op Op, n int64) {
	switch op {
	case OpRead:
		q.ctrl.host.bytesRead.Add(uint64(n))
	case OpWrite, OpCompare:
		q.ctrl.host.bytesWritten.Add(uint64(n))
	}
}

// startAsync starts a read or write on a namespace whose backend runs I/O
// asynchronously, and reports whether it did.
func (q *Queue) startAsync(r *Request, ns *Namespace, start int64) bool {
	op := r.Cmd.Opcode()
	if ns.async == nil || (op != nvmeof.NVMRead && op != nvmeof.NVMWrite) {
		return false
	}
	off, _, st := ns.dataRange(r, int64(len(r.Data)))
	if !st.OK() {
		return false // the synchronous path reports it
	}
	r.ns, r.ioWrite, r.start = ns, op == nvmeof.NVMWrite, start
	var ok bool
	if op == nvmeof.NVMRead {
		ok = ns.async.ReadAsync(r.Data, off, r)
	} else {
		ok = ns.async.WriteAsync(r.Data, off, r.Cmd.FUA() || q.ctrl.vwcOff.Load(), r)
	}
	if !ok {
		r.ns = nil
	}
	return ok
}

// ExecuteInPlace runs a Read that needs no data buffer, and completes
// it: on a queue that sends from memory (SendFromMem), one below its
// maximum of a namespace whose data lies in memory (backend.MemSource),
// leaving Request.Data pointing there; or one of at least SendFromFiles'
// minimum, of a namespace whose file holds the data (backend.FileSource),
// leaving the data in the file (Request.File). Either way the namespace stays
// referenced until the transport calls FileSent. It reports whether it
// ran r; where it did not, nothing has changed, and the transport takes a
// buffer and calls Execute. The transport calls it once Admit has passed
// r, with r.Data nil; it does not allocate.
func (q *Queue) ExecuteInPlace(r *Request) bool {
	n := int64(r.Cmd.SGL().Length())
	if q.fromFiles == 0 && q.fromMem == 0 || q.id == 0 || r.Cmd.Opcode() != nvmeof.NVMRead ||
		!q.connected || !q.authenticated() || !q.ctrl.ready.Load() {
		return false
	}
	ns, st := q.acquireNS(r)
	if !st.OK() {
		return false
	}
	if !ns.resv.allows(q.ctrl.hostID, nvmeof.NVMRead) {
		ns.refs.release() // Execute refuses it, and counts the conflict
		return false
	}
	start := q.startTime()
	off, _, st := ns.dataRange(r, n)
	var (
		b  []byte
		fd int
		ok bool
	)
	switch {
	case !st.OK():
	case ns.mem != nil && n < q.fromMem:
		b, ok = ns.mem.SendBytes(off, n)
	case ns.source != nil && q.fromFiles != 0 && n >= q.fromFiles:
		fd, ok = ns.source.SendSource(off, n)
	}
	if !ok {
		ns.refs.release() // Execute reports what was wrong, or copies
		return false
	}
	q.begin(r)
	r.fileNS = ns // referenced until FileSent
	if b != nil {
		r.Data = b
	} else {
		r.File = FileSpan{FD: fd, Off: off, N: n}
		ns.fromFile.Add(uint64(n))
	}
	q.doneHere(ns, OpRead, n, start)
	q.finish(r, nvmeof.StatusSuccess)
	return true
}

// execSync runs an NVM command set command on the queue's goroutine, on
// the namespace it names.
func (q *Queue) execSync(r *Request, ns *Namespace, start int64) nvmeof.Status {
	c := q.ctrl
	op := r.Cmd.Opcode()
	switch op {
	case nvmeof.NVMRead, nvmeof.NVMWrite, nvmeof.NVMCompare:
		off, n, st := ns.dataRange(r, int64(len(r.Data)))
		if !st.OK() {
			return st
		}
		switch op {
		case nvmeof.NVMRead:
			if err := ns.Backend.ReadAt(r.Data, off); err != nil {
				return ns.status(OpRead, err)
			}
			q.doneHere(ns, OpRead, n, start)
		case nvmeof.NVMWrite:
			fua := r.Cmd.FUA() || c.vwcOff.Load()
			if err := ns.Backend.WriteAt(r.Data, off, fua); err != nil {
				return ns.status(OpWrite, err)
			}
			q.doneHere(ns, OpWrite, n, start)
		case nvmeof.NVMCompare:
			return q.compare(ns, r.Data, off, start)
		}
		return nvmeof.StatusSuccess
	case nvmeof.NVMFlush:
		if err := ns.Backend.Flush(); err != nil {
			return ns.status(OpFlush, err)
		}
		ns.stats.done(OpFlush, 0, start)
		return nvmeof.StatusSuccess
	case nvmeof.NVMWriteZeroes:
		off, n, st := ns.rangeOf(r)
		if !st.OK() {
			return st
		}
		var err error
		if r.Cmd.CDW(12)&nvmeof.CDW12Deac != 0 {
			err = ns.Backend.Discard(off, n)
		} else {
			err = ns.Backend.WriteZeroes(off, n)
		}
		if err == nil && (r.Cmd.FUA() || c.vwcOff.Load()) {
			err = ns.Backend.Flush()
		}
		if err != nil {
			return ns.status(OpWriteZeroes, err)
		}
		ns.stats.done(OpWriteZeroes, n, start)
		return nvmeof.StatusSuccess
	case nvmeof.NVMDSM:
		return ns.dsm(r, start)
	case nvmeof.NVMResvRegister, nvmeof.NVMResvAcquire, nvmeof.NVMResvRelease, nvmeof.NVMResvReport:
		return q.reservation(r, ns)
	}
	return nvmeof.StatusInvalidOpcode | nvmeof.StatusDNR
}

// dataRange is rangeOf for a command that moves data: dlen, the bytes
// its SGL describes, must be the range's length.
func (ns *Namespace) dataRange(r *Request, dlen int64) (off, n int64, st nvmeof.Status) {
	off, n, st = ns.rangeOf(r)
	if st.OK() && n != dlen {
		st = nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR
	}
	return off, n, st
}

// rangeOf returns the byte range of an LBA-addressed command.
func (ns *Namespace) rangeOf(r *Request) (off, n int64, st nvmeof.Status) {
	slba := r.Cmd.SLBA()
	nlb := uint64(r.Cmd.NLB()) + 1
	if slba >= ns.nblocks || nlb > ns.nblocks-slba {
		return 0, 0, nvmeof.StatusLBAOutOfRange | nvmeof.StatusDNR
	}
	return int64(slba << ns.blkShift), int64(nlb << ns.blkShift), nvmeof.StatusSuccess
}

func (ns *Namespace) dsm(r *Request, start int64) nvmeof.Status {
	nr := int(r.Cmd.CDW(10)&0xFF) + 1
	if len(r.Data) < nr*nvmeof.DSMRangeSize {
		return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR
	}
	if r.Cmd.CDW(11)&nvmeof.DSMAttrDeallocate == 0 {
		ns.stats.done(OpOther, 0, start)
		return nvmeof.StatusSuccess // integral read/write hints only
	}
	// Check every range before acting on any.
	for i := 0; i < nr; i++ {
		rg, _ := nvmeof.DecodeDSMRange(r.Data, i)
		if rg.SLBA >= ns.nblocks || uint64(rg.NLB) > ns.nblocks-rg.SLBA {
			return nvmeof.StatusLBAOutOfRange | nvmeof.StatusDNR
		}
	}
	var total int64
	for i := 0; i < nr; i++ {
		rg, _ := nvmeof.DecodeDSMRange(r.Data, i)
		if rg.NLB == 0 {
			continue
		}
		n := int64(uint64(rg.NLB) << ns.blkShift)
		if err := ns.Backend.Discard(int64(rg.SLBA<<ns.blkShift), n); err != nil {
			return ns.status(OpDeallocate, err)
		}
		total += n
	}
	ns.stats.done(OpDeallocate, total, start)
	return nvmeof.StatusSuccess
}

func (q *Queue) compare(ns *Namespace, want []byte, off int64, start int64) nvmeof.Status {
	buf, err := q.t.pool.Get(len(want))
	if err != nil {
		return nvmeof.StatusInternalError
	}
	defer q.t.pool.Put(buf)
	if err := ns.Backend.ReadAt(buf.B, off); err != nil {
		return ns.status(OpCompare, err)
	}
	q.doneHere(ns, OpCompare, int64(len(want)), start)
	if !bytes.Equal(buf.B, want) {
		return nvmeof.StatusCompareFailure | nvmeof.StatusDNR
	}
	return nvmeof.StatusSuccess
}

// status maps a backend error of a command of op to an NVMe status, and
// counts it: the one place where Go errors become NVMe statuses (like the
// kernel's errno_to_nvme_status).
func (ns *Namespace) status(op Op, err error) nvmeof.Status {
	ns.stats.ops[op].errors.Add(1)
	write := op != OpRead && op != OpCompare
	switch {
	case errors.Is(err, backend.ErrOutOfRange):
		return nvmeof.StatusLBAOutOfRange | nvmeof.StatusDNR
	case errors.Is(err, backend.ErrUnaligned):
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	case errors.Is(err, backend.ErrReadOnly), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EPERM):
		return StatusWriteProtected | nvmeof.StatusDNR
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return nvmeof.StatusCapacityExceeded | nvmeof.StatusDNR
	case errors.Is(err, backend.ErrClosed):
		return nvmeof.StatusNamespaceNotReady
	case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EINVAL):
		return nvmeof.StatusInvalidField | nvmeof.StatusDNR
	case errors.Is(err, syscall.EIO), errors.Is(err, syscall.ENODATA), errors.Is(err, syscall.EBADMSG):
		if write {
			return nvmeof.StatusWriteFault
		}
		return nvmeof.StatusUnrecoveredRead
	}
	return nvmeof.StatusInternalError
}
