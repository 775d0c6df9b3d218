package bench

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"syscall"

	"github.com/flashpath/flashpath/internal/uring"
)

// uringEngine is fio's io_uring engine: Queue fills SQEs, Commit submits
// the batch with one io_uring_enter, GetEvents reaps CQEs. With fio's
// fixedbufs the buffers are registered (READ_FIXED/WRITE_FIXED) and with
// registerfiles the files, which saves the kernel a page-table walk and a
// file reference per I/O; both are off by default, as in fio, so that the
// same job file costs the kernel the same.
type uringEngine struct {
	files     fileSet
	ring      *uring.Ring
	mem       *HostMemory
	fixedBufs bool
	fixedFile bool
	hipri     bool  // IORING_SETUP_IOPOLL: completions polled from the device
	inflight  []*IO // by slot index
	cqes      []uring.CQE
}

func init() {
	RegisterEngine("io_uring", newURing, "fixedbufs", "registerfiles", "sqthread_poll", "hipri")
	RegisterBoolOptions("io_uring", "fixedbufs", "registerfiles", "sqthread_poll", "hipri")
}

func optBool(opts map[string]string, name string, def bool) (bool, error) {
	v, ok := opts[name]
	if !ok {
		return def, nil
	}
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("option %s: not a boolean: %q", name, v)
	}
	return b, nil
}

func newURing(cfg *EngineConfig) (Engine, error) {
	e := &uringEngine{}
	var err error
	if e.fixedBufs, err = optBool(cfg.Options, "fixedbufs", false); err != nil {
		return nil, err
	}
	if e.fixedFile, err = optBool(cfg.Options, "registerfiles", false); err != nil {
		return nil, err
	}
	sqpoll, err := optBool(cfg.Options, "sqthread_poll", false)
	if err != nil {
		return nil, err
	}
	if e.hipri, err = optBool(cfg.Options, "hipri", false); err != nil {
		return nil, err
	}
	if e.hipri && !cfg.Job.Direct {
		return nil, errors.New("option hipri: needs direct=1 (polled I/O goes straight to the device)")
	}
	if e.hipri && cfg.Job.RW.Trim {
		return nil, errors.New("option hipri: not with trim (a polled ring runs only reads and writes)")
	}
	entries := uint32(1) << bits.Len32(uint32(cfg.IODepth-1))
	var poll uint32
	if e.hipri {
		poll = uring.SetupIOPoll
	}
	p := &uring.Params{Flags: uring.SetupCoopTaskrun | poll}
	if sqpoll {
		p.Flags = uring.SetupSQPoll | poll
	}
	ring, err := uring.New(entries, p)
	if errors.Is(err, syscall.EINVAL) && !sqpoll {
		ring, err = uring.New(entries, &uring.Params{Flags: poll}) // kernels before 5.19 lack COOP_TASKRUN
	}
	if err != nil {
		return nil, err
	}
	e.ring = ring
	if e.files, err = openFiles(cfg); err != nil {
		ring.Close()
		return nil, err
	}
	if e.fixedFile {
		fds := make([]int32, len(e.files))
		for i, f := range e.files {
			fds[i] = int32(f.fd)
		}
		if err := ring.RegisterFiles(fds); err != nil {
			e.Close()
			return nil, err
		}
	}
	e.inflight = make([]*IO, cfg.IODepth)
	e.cqes = make([]uring.CQE, ring.CQEntries())
	return e, nil
}

func (e *uringEngine) Sync(d bool) error { return e.files.Sync(d) }

// QueuedSync: fsync=N goes in the ring (IORING_OP_FSYNC), as fio's
// io_uring engine sends it; not on a polled ring, which takes only reads
// and writes.
func (e *uringEngine) QueuedSync() bool  { return !e.hipri }
func (e *uringEngine) Invalidate() error { return e.files.Invalidate() }
func (e *uringEngine) Files() int        { return len(e.files) }

func (e *uringEngine) Size() int64 { return e.files.size() }

func (e *uringEngine) Buffers(n, size int) ([]Buffer, error) {
	m, err := AllocHost(n, size)
	if err != nil {
		return nil, err
	}
	e.mem = m
	if e.fixedBufs {
		bufs := make([][]byte, n)
		for i := range m.Bufs {
			bufs[i] = m.Bufs[i].Bytes
		}
		if err := e.ring.RegisterBuffers(bufs); err != nil {
			return nil, err
		}
	}
	return m.Bufs, nil
}

func (e *uringEngine) Queue(io *IO) error {
	s := e.ring.NextSQE()
	if s == nil {
		return uring.ErrSQFull // the core keeps at most iodepth in flight: a bug
	}
	s.Fd = int32(e.files[io.File].fd)
	if e.fixedFile {
		s.Fd = int32(io.File)
		s.Flags = uring.SQEFixedFile
	}
	s.Off = uint64(io.Offset)
	s.Addr = uint64(io.Buf.Addr)
	s.Len = uint32(io.Len)
	s.UserData = uint64(io.Index)
	switch {
	case io.Op == OpSync || io.Op == OpDatasync:
		var flags uint32
		if io.Op == OpDatasync {
			flags = uring.FsyncDatasync
		}
		fd, sflags := s.Fd, s.Flags
		*s = uring.SQE{Opcode: uring.OpFsync, Fd: fd, Flags: sflags, OpFlags: flags, UserData: uint64(io.Index)}
	case io.Op == OpTrim:
		// The kernel has no io_uring discard here: trim now, and let a NOP
		// carry the completion through the ring in order.
		io.Res, io.Err = e.files[io.File].trim(io.Offset, io.Len)
		*s = uring.SQE{Opcode: uring.OpNop, UserData: uint64(io.Index)}
	case io.Op == OpWrite && e.fixedBufs:
		s.Opcode, s.BufIndex = uring.OpWriteFixed, uint16(io.Buf.Index)
	case io.Op == OpWrite:
		s.Opcode = uring.OpWrite
	case e.fixedBufs:
		s.Opcode, s.BufIndex = uring.OpReadFixed, uint16(io.Buf.Index)
	default:
		s.Opcode = uring.OpRead
	}
	e.inflight[io.Index] = io
	return nil
}

func (e *uringEngine) Commit() error {
	for e.ring.Pending() > 0 {
		if _, err := e.ring.Submit(); err != nil {
			return err
		}
	}
	return nil
}

func (e *uringEngine) GetEvents(minEv int, events []*IO) ([]*IO, error) {
	got := 0
	for {
		room := min(cap(events)-len(events), len(e.cqes))
		n := e.ring.Reap(e.cqes[:room])
		for _, c := range e.cqes[:n] {
			io := e.inflight[c.UserData]
			switch {
			case io.Op == OpTrim: // done in Queue
			case c.Res < 0 && e.hipri && syscall.Errno(-c.Res) == syscall.EOPNOTSUPP:
				io.Res, io.Err = 0, fmt.Errorf("%w: the device has no poll queues for hipri (NVMe: nvme connect --nr-poll-queues N, or the nvme.poll_queues module parameter)", syscall.EOPNOTSUPP)
			case c.Res < 0:
				io.Res, io.Err = 0, syscall.Errno(-c.Res)
			default:
				io.Res, io.Err = int(c.Res), nil
			}
			events = append(events, io)
		}
		got += n
		if got >= minEv || cap(events) == len(events) {
			return events, nil
		}
		if err := e.ring.WaitCQE(); err != nil {
			return events, err
		}
	}
}

func (e *uringEngine) Close() error {
	var errs []error
	if e.ring != nil {
		errs = append(errs, e.ring.Close())
	}
	if e.mem != nil {
		errs = append(errs, e.mem.Close())
	}
	if e.files != nil {
		errs = append(errs, e.files.Close())
	}
	return errors.Join(errs...)
}
