package initiator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/rdma"
	"golang.org/x/sys/unix"
)

// NVMe/RDMA queues (NVMe RDMA Transport Specification 1.0), as the Linux
// host runs them: the connection manager's private data names the queue
// and its sizes; each command is a SEND of its capsule; data moves by the
// controller's RDMA READ and WRITE of host memory named in a keyed SGL, or
// in the capsule for small writes on I/O queues; each response is a SEND
// into one of the host's posted receives.
//
// Requests whose Buf lies in memory registered with the provider
// (rdma.Provider.Register) move with no copy. Others go through a bounce
// buffer from a pool registered once per provider: one copy, no
// allocation.

// maxRDMAInline bounds the in-capsule data this host sends (the Linux host
// sends at most a few pages in the capsule).
const maxRDMAInline = 8192

// rdmaLink is an RDMA queue's transport state.
type rdmaLink struct {
	qp     rdma.Conn
	pool   *bufpool.Pool // bounce buffers, registered
	mem    []byte        // nrsp 16-byte response receives, then one capsule per slot
	region rdma.Region
	nrsp   int
	stride int
	bounce []*bufpool.Buf // by slot: the bounce buffer of a request in flight
	wrs    []rdma.WR      // by slot: its SEND while posted
}

// bouncePools holds one registered bounce pool per provider.
var bouncePools sync.Map // rdma.Provider -> *bufpool.Pool

func bouncePool(prov rdma.Provider) (*bufpool.Pool, error) {
	if p, ok := bouncePools.Load(prov); ok {
		return p.(*bufpool.Pool), nil
	}
	p := bufpool.New(0)
	if err := rdma.RegisterPool(prov, p); err != nil {
		return nil, err
	}
	actual, _ := bouncePools.LoadOrStore(prov, p)
	return actual.(*bufpool.Pool), nil
}

// dialRDMAQueue connects an NVMe/RDMA queue of depth commands; icd is the
// in-capsule data the controller accepts on I/O queues (0 on the admin
// queue, where the Linux target takes none).
func dialRDMAQueue(ctx context.Context, prov rdma.Provider, p queueParams, icd int) (*Queue, error) {
	ap, err := resolveAddrPort(ctx, p.addr)
	if err != nil {
		return nil, err
	}
	pool, err := bouncePool(prov)
	if err != nil {
		return nil, fmt.Errorf("register bounce buffers: %w", err)
	}
	icd = min(icd, maxRDMAInline)
	if p.qid == 0 {
		icd = 0
	}
	l := &rdmaLink{pool: pool, nrsp: p.depth + 1, stride: (nvmeof.SQESize + icd + 63) &^ 63,
		bounce: make([]*bufpool.Buf, p.depth), wrs: make([]rdma.WR, p.depth)}
	size := l.nrsp*nvmeof.CQESize + p.depth*l.stride
	size = (size + unix.Getpagesize() - 1) &^ (unix.Getpagesize() - 1)
	if l.mem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return nil, fmt.Errorf("map queue buffers: %w", err)
	}
	if l.region, err = prov.Register(l.mem); err != nil {
		unix.Munmap(l.mem)
		return nil, fmt.Errorf("register queue buffers: %w", err)
	}
	// SQSIZE is 0-based: depth+1 entries hold depth commands; the receive
	// queue holds a response for each, and one more.
	var priv [nvmeof.RDMACMReqSize]byte
	nvmeof.RDMACMReq{QID: p.qid, HRQSize: uint16(l.nrsp), HSQSize: uint16(p.depth), CntlID: p.cntlID}.Encode(priv[:])
	cfg := rdma.ConnConfig{SendDepth: p.depth + 1, RecvDepth: l.nrsp}
	qp, err := prov.Dial(ctx, ap, cfg, priv[:], func(c rdma.Conn) error {
		for i := range l.nrsp {
			if err := c.PostRecv(uint64(i), l.rsp(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.region.Close()
		unix.Munmap(l.mem)
		var rej *rdma.RejectError
		if errors.As(err, &rej) {
			if sts, derr := nvmeof.DecodeRDMACMRej(rej.PrivateData); derr == nil && sts != 0 {
				return nil, fmt.Errorf("connect %s: the controller refused queue %d: %s", ap, p.qid, nvmeof.RDMACMStatusText(sts))
			}
		}
		return nil, fmt.Errorf("connect %s over rdma: %w", ap, err)
	}
	l.qp = qp
	q := newQueueState(p)
	q.rd, q.icd = l, icd
	q.wg.Add(2)
	go q.rdmaRecvLoop()
	go q.watchdog()
	return q, nil
}

func (l *rdmaLink) rsp(i int) []byte { return l.mem[i*nvmeof.CQESize : (i+1)*nvmeof.CQESize] }

func (l *rdmaLink) capsule(cid uint16) []byte {
	off := l.nrsp*nvmeof.CQESize + int(cid)*l.stride
	return l.mem[off : off+l.stride]
}

// rdmaSend posts the command in slot cid: its capsule, with the data in
// it or named by a keyed SGL.
func (q *Queue) rdmaSend(cid uint16, r *Request) error {
	l := q.rd
	s := &q.slots[cid]
	var start int64
	if !r.noTimeout {
		start = nowNano()
	}
	inline := len(r.Buf) > 0 && q.inline(r)
	var addr uint64
	var key uint32
	if len(r.Buf) > 0 && !inline {
		var err error
		addr, key, err = l.qp.RemoteKey(r.Buf)
		if errors.Is(err, rdma.ErrNotRegistered) {
			// Not registered memory: bounce.
			bb, gerr := l.pool.Get(len(r.Buf))
			if gerr != nil {
				q.free <- cid
				return fmt.Errorf("queue %d: bounce buffer: %w", q.qid, gerr)
			}
			if r.out {
				copy(bb.B, r.Buf)
			}
			l.bounce[cid] = bb
			addr, key, err = l.qp.RemoteKey(bb.B)
		}
		if err != nil {
			q.putBounce(cid)
			q.free <- cid
			return fmt.Errorf("queue %d: %w", q.qid, err)
		}
	}
	// The capsule buffers go with the queue pair: write them only while
	// the queue is open (teardown unmaps them after it closes the queue).
	q.wmu.Lock()
	if q.closed {
		q.wmu.Unlock()
		q.putBounce(cid)
		q.free <- cid
		return q.err
	}
	b := l.capsule(cid)
	sqe := nvmeof.SQEView(b)
	*sqe = r.sqe
	sqe.SetCID(cid)
	sqe.SetFlags(sqe.Flags()&^0xC0 | nvmeof.FlagsSGL)
	n := nvmeof.SQESize
	switch {
	case len(r.Buf) == 0:
		sqe.SGL().SetKeyed(0, 0, 0, false)
	case inline:
		sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, uint32(len(r.Buf)))
		n += copy(b[nvmeof.SQESize:], r.Buf)
	default:
		// The length fits: MDTS and the bounce pool bound it far below 16 MiB.
		sqe.SGL().SetKeyed(addr, uint32(len(r.Buf)), key, false)
	}
	s.req = r
	s.start.Store(start)
	// The slot's work request: a slice made at the call would escape
	// through the interface and allocate per command.
	wr := &l.wrs[cid]
	*wr = rdma.WR{ID: uint64(cid), Op: rdma.OpSend, Local: b[:n], Signaled: true}
	err := l.qp.Post(unsafe.Slice(wr, 1)...)
	q.wmu.Unlock()
	if err != nil {
		// r is registered: the poll goroutine delivers it with the error.
		q.fail(fmt.Errorf("queue %d: send command: %w", q.qid, err))
	}
	return nil
}

func (q *Queue) putBounce(cid uint16) {
	if b := q.rd.bounce[cid]; b != nil {
		q.rd.pool.Put(b)
		q.rd.bounce[cid] = nil
	}
}

// rdmaRecvLoop polls the queue's completions: responses complete their
// commands; when the connection goes, it tears the queue pair down and
// delivers every request in flight with the error.
func (q *Queue) rdmaRecvLoop() {
	defer q.wg.Done()
	l := q.rd
	q.ended(q.rdmaPoll())
	// After Close the device touches no buffer of the queue again.
	l.qp.Close()
	q.drain(func(cid uint16) { q.putBounce(cid) })
	l.region.Close()
	unix.Munmap(l.mem)
}

func (q *Queue) rdmaPoll() error {
	l := q.rd
	var comps [32]rdma.Completion
	for {
		n, err := l.qp.Poll(comps[:])
		if err != nil {
			return q.rdmaError(err)
		}
		for i := range comps[:n] {
			c := &comps[i]
			if c.Err != nil {
				return q.rdmaError(fmt.Errorf("%v: %w", c.Op, c.Err))
			}
			if c.Op != rdma.OpRecv {
				continue // a command's SEND
			}
			if err := q.rdmaResponse(int(c.ID), c.Len); err != nil {
				return err
			}
		}
	}
}

func (q *Queue) rdmaError(err error) error {
	select {
	case <-q.dead:
		return q.err
	default:
	}
	if errors.Is(err, rdma.ErrFlushed) || errors.Is(err, rdma.ErrClosed) {
		return fmt.Errorf("queue %d: controller closed the connection", q.qid)
	}
	return fmt.Errorf("queue %d: %w", q.qid, err)
}

// rdmaResponse completes the command whose response landed in receive i.
func (q *Queue) rdmaResponse(i, n int) error {
	l := q.rd
	if i >= l.nrsp || n != nvmeof.CQESize {
		return fmt.Errorf("queue %d: controller protocol violation: %d-byte response", q.qid, n)
	}
	cqe := *nvmeof.CQEView(l.rsp(i))
	if err := l.qp.PostRecv(uint64(i), l.rsp(i)); err != nil {
		return q.rdmaError(err)
	}
	cid := cqe.CID()
	s := q.slotFor(cid)
	if s == nil {
		return fmt.Errorf("queue %d: controller protocol violation: response for command id %d, which is not in flight", q.qid, cid)
	}
	if bb := l.bounce[cid]; bb != nil {
		if r := s.req; !r.out && cqe.Status().OK() {
			copy(r.Buf, bb.B)
		}
		q.putBounce(cid)
	}
	q.finish(cid, s, cqe.Status(), cqe.DW0(), cqe.DW1())
	return nil
}
