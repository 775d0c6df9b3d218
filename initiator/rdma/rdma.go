// Package rdma is the NVMe/RDMA transport of flashpath's host (NVMe RDMA
// Transport Specification 1.0), the counterpart of the Linux host's
// drivers/nvme/host/rdma.c: the connection manager's private data names
// the queue and its sizes; each command is a SEND of its capsule; data
// moves by the controller's RDMA READ and WRITE of host memory named in a
// keyed SGL, or in the capsule for small writes on I/O queues; each
// response is a SEND into one of the host's posted receives. Importing it
// registers the "rdma" transport (libibverbs, loaded when first used) with
// package initiator, which runs everything above the queue pair.
//
// Requests whose Buf lies in memory registered with the transport
// (Transport.Register, initiator.Controller.Register) move with no copy.
// Others go through a bounce buffer from a pool registered once per
// provider: one copy, no allocation (Transport.StagedBytes counts them).
//
// Requests naming device memory (initiator.Request.Dev,
// Namespace.ReadDevice and WriteDevice) carry the device address and the
// key of the device region registered over it (Transport.RegisterDevice:
// a dma-buf with ibv_reg_dmabuf_mr, else the address with ibv_reg_mr and
// nvidia-peermem) in their keyed SGL: the controller's RDMA WRITE and
// READ reach GPU memory directly, and no bounce buffer is involved.
package rdma

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/nvmeof"
	fprdma "github.com/flashpath/flashpath/rdma"
)

func init() { initiator.RegisterTransport(&Transport{provider: fprdma.Verbs}) }

// maxInline bounds the in-capsule data this host sends (the Linux host
// sends at most a few pages in the capsule).
const maxInline = 8192

// Transport is NVMe/RDMA over an RDMA provider.
type Transport struct {
	provider func() (fprdma.Provider, error)
	staged   atomic.Uint64 // bytes copied through bounce buffers, both ways
}

var (
	_ initiator.Transport       = (*Transport)(nil)
	_ initiator.DeviceRegistrar = (*Transport)(nil)
)

// New returns the NVMe/RDMA transport over prov (tests pass a fake; the
// registered one uses libibverbs). Register it with
// initiator.RegisterTransport or pass it in initiator.Config.Transport.
func New(prov fprdma.Provider) *Transport {
	return &Transport{provider: func() (fprdma.Provider, error) { return prov, nil }}
}

// Name returns "rdma".
func (*Transport) Name() string { return "rdma" }

// Register registers mem with the provider: requests whose buffers lie in
// it are read and written by the controller directly.
func (t *Transport) Register(mem []byte) (initiator.Registration, error) {
	prov, err := t.provider()
	if err != nil {
		return nil, err
	}
	return prov.Register(mem)
}

// RegisterDevice registers device memory with the provider: the dma-buf
// (ibv_reg_dmabuf_mr) when m has one, else the address (ibv_reg_mr, which
// reaches GPU memory only with a peer memory client: nvidia-peermem).
func (t *Transport) RegisterDevice(m initiator.DeviceMemory) (initiator.Registration, error) {
	prov, err := t.provider()
	if err != nil {
		return nil, err
	}
	if m.DMABufFD >= 0 {
		return prov.RegisterDMABuf(m.DMABufFD, m.Offset, int(m.Len), m.Addr)
	}
	r, err := prov.RegisterAddr(uintptr(m.Addr), int(m.Len))
	if err != nil {
		return nil, fmt.Errorf("%w (GPU memory without a dma-buf needs the nvidia-peermem module loaded: modprobe nvidia-peermem)", err)
	}
	return r, nil
}

// StagedBytes returns how many bytes this transport's queues have copied
// through bounce buffers: requests whose memory was not registered. The
// direct paths (registered host memory, device memory) add nothing.
func (t *Transport) StagedBytes() uint64 { return t.staged.Load() }

// bouncePools holds one registered bounce pool per provider.
var bouncePools sync.Map // fprdma.Provider -> *bufpool.Pool

func bouncePool(prov fprdma.Provider) (*bufpool.Pool, error) {
	if p, ok := bouncePools.Load(prov); ok {
		return p.(*bufpool.Pool), nil
	}
	p := bufpool.New(0)
	if err := fprdma.RegisterPool(prov, p); err != nil {
		return nil, err
	}
	actual, _ := bouncePools.LoadOrStore(prov, p)
	return actual.(*bufpool.Pool), nil
}

// link is one NVMe/RDMA queue pair.
type link struct {
	t      *Transport
	qid    uint16
	qp     fprdma.Conn
	pool   *bufpool.Pool // bounce buffers, registered
	mem    []byte        // nrsp 16-byte response receives, then one capsule per slot
	region fprdma.Region
	icd    int // in-capsule data this queue sends (0 on the admin queue)
	nrsp   int
	stride int
	q      *initiator.Queue

	slots []slot
}

// slot is a command's NVMe/RDMA state.
type slot struct {
	bounce *bufpool.Buf // the bounce buffer of a request in flight
	wr     fprdma.WR    // its SEND while posted
	addr   uint64       // keyed SGL of its data
	key    uint32
	inline bool // the data goes in the capsule
}

// DialQueue connects an NVMe/RDMA queue pair; p.ICD is the in-capsule data
// the controller accepts on I/O queues (the Linux target takes none on the
// admin queue).
func (t *Transport) DialQueue(ctx context.Context, p initiator.QueueParams) (initiator.Link, error) {
	if p.HDigest || p.DDigest {
		return nil, fmt.Errorf("connect %s: digests are NVMe/TCP only", p.Addr)
	}
	prov, err := t.provider()
	if err != nil {
		return nil, fmt.Errorf("rdma://%s: %w", p.Addr, err)
	}
	ap, err := resolveAddrPort(ctx, p.Addr)
	if err != nil {
		return nil, err
	}
	pool, err := bouncePool(prov)
	if err != nil {
		return nil, fmt.Errorf("register bounce buffers: %w", err)
	}
	icd := min(p.ICD, maxInline)
	if p.QID == 0 {
		icd = 0
	}
	l := &link{t: t, qid: p.QID, pool: pool, icd: icd, nrsp: p.Depth + 1, stride: (nvmeof.SQESize + icd + 63) &^ 63,
		slots: make([]slot, p.Depth)}
	if l.mem, err = bufpool.Map(l.nrsp*nvmeof.CQESize + p.Depth*l.stride); err != nil {
		return nil, fmt.Errorf("map queue buffers: %w", err)
	}
	if l.region, err = prov.Register(l.mem); err != nil {
		bufpool.Unmap(l.mem)
		return nil, fmt.Errorf("register queue buffers: %w", err)
	}
	// SQSIZE is 0-based: depth+1 entries hold depth commands; the receive
	// queue holds a response for each, and one more.
	var priv [nvmeof.RDMACMReqSize]byte
	nvmeof.RDMACMReq{QID: p.QID, HRQSize: uint16(l.nrsp), HSQSize: uint16(p.Depth), CntlID: p.CntlID}.Encode(priv[:])
	cfg := fprdma.ConnConfig{SendDepth: p.Depth + 1, RecvDepth: l.nrsp}
	qp, err := prov.Dial(ctx, ap, cfg, priv[:], func(c fprdma.Conn) error {
		for i := range l.nrsp {
			if err := c.PostRecv(uint64(i), l.rsp(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.region.Close()
		bufpool.Unmap(l.mem)
		var rej *fprdma.RejectError
		if errors.As(err, &rej) {
			if sts, derr := nvmeof.DecodeRDMACMRej(rej.PrivateData); derr == nil && sts != 0 {
				return nil, fmt.Errorf("connect %s: the controller refused queue %d: %s", ap, p.QID, nvmeof.RDMACMStatusText(sts))
			}
		}
		return nil, fmt.Errorf("connect %s over rdma: %w", ap, err)
	}
	l.qp = qp
	return l, nil
}

// resolveAddrPort resolves "host:port" to one IP address and port (the
// connection manager takes addresses, not names).
func resolveAddrPort(ctx context.Context, hostport string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, err
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: port %q: %w", hostport, port, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(pn)), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %v", host, err)
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(pn)), nil
}

func (l *link) rsp(i int) []byte { return l.mem[i*nvmeof.CQESize : (i+1)*nvmeof.CQESize] }

func (l *link) capsule(cid uint16) []byte {
	off := l.nrsp*nvmeof.CQESize + int(cid)*l.stride
	return l.mem[off : off+l.stride]
}

// Prepare names the command's data for the controller: in the capsule
// when it fits, else the caller's buffer where it lies in registered
// memory, else a bounce buffer.
//
// Device memory is always named where it lies, with the key of the device
// region covering it: it never goes in the capsule or a bounce buffer,
// which would take a copy through host memory.
func (l *link) Prepare(cid uint16, c *initiator.Command) error {
	s := &l.slots[cid]
	s.inline = c.Out && len(c.Buf) > 0 && len(c.Buf) <= l.icd
	s.addr, s.key = 0, 0
	if c.DevLen > 0 {
		key, err := l.qp.RemoteKeyAt(c.Dev, c.DevLen)
		if errors.Is(err, fprdma.ErrNotRegistered) {
			return fmt.Errorf("GPU memory at %#x+%d is not registered: Controller.RegisterDevice the allocation that holds it first", c.Dev, c.DevLen)
		}
		if err != nil {
			return err
		}
		s.addr, s.key = c.Dev, key
		return nil
	}
	if len(c.Buf) == 0 || s.inline {
		return nil
	}
	var err error
	s.addr, s.key, err = l.qp.RemoteKey(c.Buf)
	if errors.Is(err, fprdma.ErrNotRegistered) {
		// Not registered memory: bounce.
		bb, gerr := l.pool.Get(len(c.Buf))
		if gerr != nil {
			return fmt.Errorf("bounce buffer: %w", gerr)
		}
		if c.Out {
			copy(bb.B, c.Buf)
		}
		l.t.staged.Add(uint64(len(c.Buf)))
		s.bounce = bb
		s.addr, s.key, err = l.qp.RemoteKey(bb.B)
	}
	if err != nil {
		l.Release(cid)
		return err
	}
	return nil
}

// Send posts the command's capsule. The capsule buffers go with the queue
// pair: they are written only under the send lock, while the queue is
// open (teardown unmaps them after it closes the queue).
func (l *link) Send(cid uint16, c *initiator.Command) error {
	s := &l.slots[cid]
	b := l.capsule(cid)
	sqe := c.PutSQE(b, cid)
	n := nvmeof.SQESize
	switch {
	case c.Len() == 0:
		sqe.SGL().SetKeyed(0, 0, 0, false)
	case s.inline:
		sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, uint32(len(c.Buf)))
		n += copy(b[nvmeof.SQESize:], c.Buf)
	default:
		// The length fits: MDTS and the bounce pool bound it far below 16 MiB.
		sqe.SGL().SetKeyed(s.addr, uint32(c.Len()), s.key, false)
	}
	// The slot's work request: a slice made at the call would escape
	// through the interface and allocate per command.
	s.wr = fprdma.WR{ID: uint64(cid), Op: fprdma.OpSend, Local: b[:n], Signaled: true}
	return l.qp.Post(unsafe.Slice(&s.wr, 1)...)
}

// Flush does nothing: Send posts at once.
func (l *link) Flush() error { return nil }

// Release returns the slot's bounce buffer.
func (l *link) Release(cid uint16) {
	s := &l.slots[cid]
	if s.bounce != nil {
		l.pool.Put(s.bounce)
		s.bounce = nil
	}
}

// Stop closes the queue pair, not just disconnects it: Poll returns at
// once whether or not the device flushes what is posted.
func (l *link) Stop() { l.qp.Close() }

// Close unmaps the queue's buffers: after Stop the device touches none.
func (l *link) Close() {
	l.region.Close()
	bufpool.Unmap(l.mem)
}

// Receive polls the queue's completions: responses complete their
// commands.
func (l *link) Receive(q *initiator.Queue) error {
	l.q = q
	var comps [32]fprdma.Completion
	for {
		n, err := l.qp.Poll(comps[:])
		if err != nil {
			return l.error(err)
		}
		for i := range comps[:n] {
			c := &comps[i]
			if c.Err != nil {
				return l.error(fmt.Errorf("%v: %w", c.Op, c.Err))
			}
			if c.Op != fprdma.OpRecv {
				continue // a command's SEND
			}
			if err := l.response(int(c.ID), c.Len); err != nil {
				return err
			}
		}
	}
}

func (l *link) error(err error) error {
	if qerr := l.q.Err(); qerr != nil {
		return qerr
	}
	if errors.Is(err, fprdma.ErrFlushed) || errors.Is(err, fprdma.ErrClosed) {
		return fmt.Errorf("queue %d: controller closed the connection", l.qid)
	}
	return fmt.Errorf("queue %d: %w", l.qid, err)
}

// response completes the command whose response landed in receive i.
func (l *link) response(i, n int) error {
	if i >= l.nrsp || n != nvmeof.CQESize {
		return fmt.Errorf("queue %d: controller protocol violation: %d-byte response", l.qid, n)
	}
	cqe := *nvmeof.CQEView(l.rsp(i))
	if err := l.qp.PostRecv(uint64(i), l.rsp(i)); err != nil {
		return l.error(err)
	}
	cid := cqe.CID()
	c := l.q.InFlight(cid)
	if c == nil {
		return fmt.Errorf("queue %d: controller protocol violation: response for command id %d, which is not in flight", l.qid, cid)
	}
	if bb := l.slots[cid].bounce; bb != nil {
		if !c.Out && cqe.Status().OK() {
			copy(c.Buf, bb.B)
		}
		l.Release(cid)
	}
	l.q.Complete(cid, cqe.Status(), cqe.DW0(), cqe.DW1())
	return nil
}
