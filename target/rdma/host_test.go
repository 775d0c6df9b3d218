package rdma

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/nvmeof"
	fprdma "github.com/flashpath/flashpath/rdma"
	"github.com/flashpath/flashpath/rdma/rdmatest"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

// A small NVMe/RDMA host over the fake provider: enough of what the Linux
// host does (private data, keyed SGLs with invalidation, in-capsule data
// on I/O queues, Connect data through RDMA READ on the admin queue) to
// drive the transport.

const (
	testNQN = "nqn.2026-11.io.flashpath:rdma-test"
	hostNQN = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
	wait    = 20 * time.Second
)

var hostID = [16]byte{0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type testTarget struct {
	prov fprdma.Provider
	tgt  *target.Target
	ss   *target.Subsystem
	ln   *Listener

	closeOnce sync.Once
	closeErr  error
}

// labAddr is the soft-RoCE address the lab script passes (FP_RDMA_ADDR):
// the tests then run over the real verbs provider instead of the fake.
var labAddr = os.Getenv("FP_RDMA_ADDR")

func provider(t testing.TB) (fprdma.Provider, string) {
	t.Helper()
	if labAddr == "" {
		return rdmatest.New(), "169.254.42.1:4420"
	}
	p, err := fprdma.Verbs()
	if err != nil {
		t.Fatal(err)
	}
	return p, net.JoinHostPort(labAddr, "0")
}

func startTarget(t testing.TB) *testTarget {
	t.Helper()
	be, err := backend.NewMem(16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	return startTargetWith(t, be)
}

// startTargetWith serves be as namespace 1 of testNQN (hostNQN allowed)
// on an NVMe/RDMA listener; the test's cleanup shuts it down.
func startTargetWith(t testing.TB, be backend.Backend) *testTarget {
	t.Helper()
	return startTargetOpts(t, be, Options{})
}

// startTargetOpts is startTargetWith with listener options (the provider
// is set here, and the logger unless given).
func startTargetOpts(t testing.TB, be backend.Backend, opts Options) *testTarget {
	t.Helper()
	return startTargetLog(t, be, opts, quietLogger())
}

// startTargetLog is startTargetOpts with the target core's logger.
func startTargetLog(t testing.TB, be backend.Backend, opts Options, log *slog.Logger) *testTarget {
	t.Helper()
	prov, addr := provider(t)
	tgt := target.New(target.Options{Logger: log, MaxQueueDepth: 128})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowedHosts: []string{hostNQN}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	opts.Provider = prov
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	ln, err := Listen(tgt, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	tt := &testTarget{prov: prov, tgt: tgt, ss: ss, ln: ln}
	t.Cleanup(func() { tt.shutdown() })
	return tt
}

// shutdown closes the listener, then the target (which waits for the
// namespaces' I/O in flight); later calls do nothing.
func (tt *testTarget) shutdown() error {
	tt.closeOnce.Do(func() { tt.closeErr = errors.Join(tt.ln.Close(), tt.tgt.Close()) })
	return tt.closeErr
}

// hostQueue is one host queue pair. Its memory: depth response receives,
// depth command capsules, and a data area handed out per command.
type hostQueue struct {
	t      testing.TB
	qp     fprdma.Conn
	mem    []byte
	region fprdma.Region
	depth  int
	stride int
	data   []byte // registered data area

	comps  chan fprdma.Completion
	polled chan error
}

const hostStride = 64 + 8192

func (tt *testTarget) dial(t testing.TB, qid uint16, depth int, priv []byte) (*hostQueue, error) {
	t.Helper()
	h := &hostQueue{t: t, depth: depth, stride: hostStride}
	size := depth*nvmeof.CQESize + depth*hostStride + 4<<20
	size = (size + 4095) &^ 4095
	mem, err := bufpool.Map(size)
	if err != nil {
		t.Fatal(err)
	}
	h.mem = mem
	h.data = mem[depth*nvmeof.CQESize+depth*hostStride:]
	if h.region, err = tt.prov.Register(mem); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.region.Close()
		bufpool.Unmap(mem)
	})
	if priv == nil {
		var b [nvmeof.RDMACMReqSize]byte
		nvmeof.RDMACMReq{QID: qid, HRQSize: uint16(depth), HSQSize: uint16(depth - 1)}.Encode(b[:])
		priv = b[:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	qp, err := tt.prov.Dial(ctx, tt.ln.Addr(), fprdma.ConnConfig{SendDepth: 2 * depth, RecvDepth: depth}, priv, func(qp fprdma.Conn) error {
		for i := range depth {
			if err := qp.PostRecv(uint64(i), h.rsp(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.qp = qp
	t.Cleanup(func() { qp.Close() })
	h.comps = make(chan fprdma.Completion, 4*depth)
	h.polled = make(chan error, 1)
	go func() {
		var out [16]fprdma.Completion
		for {
			n, err := qp.Poll(out[:])
			if err != nil {
				h.polled <- err
				close(h.comps)
				return
			}
			for _, c := range out[:n] {
				h.comps <- c
			}
		}
	}()
	rep, err := nvmeof.DecodeRDMACMRep(qp.(interface{ PeerPrivateData() []byte }).PeerPrivateData())
	if err != nil {
		t.Fatal(err)
	}
	if int(rep.CRQSize) != depth {
		t.Fatalf("CRQSIZE %d, want %d", rep.CRQSize, depth)
	}
	return h, nil
}

func (h *hostQueue) rsp(i int) []byte { return h.mem[i*nvmeof.CQESize : (i+1)*nvmeof.CQESize] }

func (h *hostQueue) capsule(cid int) []byte {
	off := h.depth*nvmeof.CQESize + (cid%h.depth)*h.stride
	return h.mem[off : off+h.stride]
}

// cmd is a command to send: its SQE, in-capsule data (written as is), or a
// keyed buffer in the data area.
type cmd struct {
	sqe        nvmeof.SQE
	inline     []byte
	keyed      []byte // inside h.data
	invalidate bool
}

// submit sends c with the given CID; responses come through collect.
func (h *hostQueue) submit(c *cmd, cid uint16) {
	h.t.Helper()
	c.sqe.SetCID(cid)
	sgl := c.sqe.SGL()
	switch {
	case c.inline != nil:
		sgl.SetDataBlock(nvmeof.SGLInCapsule, 0, uint32(len(c.inline)))
	case c.keyed != nil:
		if labAddr != "" {
			// Plain memory regions cannot be invalidated remotely (the Linux
			// host uses fast-registration ones): rxe fails such a SEND.
			c.invalidate = false
		}
		addr, key, err := h.qp.RemoteKey(c.keyed)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := sgl.SetKeyed(addr, uint32(len(c.keyed)), key, c.invalidate); err != nil {
			h.t.Fatal(err)
		}
	}
	b := h.capsule(int(cid))
	copy(b, c.sqe[:])
	n := nvmeof.SQESize + copy(b[nvmeof.SQESize:], c.inline)
	if err := h.qp.Post(fprdma.WR{ID: 1 << 32, Op: fprdma.OpSend, Local: b[:n], Signaled: true}); err != nil {
		h.t.Fatal(err)
	}
}

// next returns the next response (reposting its receive), or an error when
// the connection went down.
func (h *hostQueue) next() (nvmeof.CQE, fprdma.Completion, error) {
	h.t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case c, ok := <-h.comps:
			if !ok {
				return nvmeof.CQE{}, c, fprdma.ErrClosed
			}
			if c.Err != nil {
				return nvmeof.CQE{}, c, c.Err
			}
			if c.Op != fprdma.OpRecv {
				continue // the SEND of a capsule
			}
			if c.Len != nvmeof.CQESize {
				h.t.Fatalf("%d-byte response", c.Len)
			}
			var cqe nvmeof.CQE
			copy(cqe[:], h.rsp(int(c.ID)))
			if err := h.qp.PostRecv(c.ID, h.rsp(int(c.ID))); err != nil {
				h.t.Fatal(err)
			}
			return cqe, c, nil
		case <-timer.C:
			h.t.Fatalf("no response in %v", wait)
		}
	}
}

// exec runs one command and returns its response.
func (h *hostQueue) exec(c *cmd) nvmeof.CQE {
	h.t.Helper()
	cqe, err := h.execErr(c)
	if err != nil {
		h.t.Fatal(err)
	}
	return cqe
}

func (h *hostQueue) execErr(c *cmd) (nvmeof.CQE, error) {
	h.t.Helper()
	h.submit(c, 7)
	cqe, wc, err := h.next()
	if err != nil {
		return cqe, err
	}
	if cqe.CID() != 7 {
		return cqe, fmt.Errorf("response for CID %d, want 7", cqe.CID())
	}
	if c.invalidate && c.keyed != nil {
		_, key, _ := h.qp.RemoteKey(c.keyed)
		if !wc.Invalidated || wc.InvKey != key {
			return cqe, fmt.Errorf("response did not invalidate key %#x (invalidated %v, key %#x)", key, wc.Invalidated, wc.InvKey)
		}
	}
	return cqe, nil
}

func ok(t testing.TB, what string, cqe nvmeof.CQE) {
	t.Helper()
	if !cqe.Status().OK() {
		t.Fatalf("%s: status %v", what, cqe.Status())
	}
}

// connect runs Connect: on the admin queue the data goes through a keyed
// SGL (the Linux host uses no in-capsule data there), on I/O queues in the
// capsule.
func (h *hostQueue) connect(qid uint16, cntlid uint16, subnqn string) nvmeof.CQE {
	h.t.Helper()
	c := &cmd{}
	c.sqe.SetConnect(qid, uint16(h.depth-1), 0)
	d := nvmeof.ConnectData{HostID: hostID, CntlID: cntlid, SubNQN: subnqn, HostNQN: hostNQN}
	buf := make([]byte, nvmeof.ConnectDataSize)
	if err := d.Encode(buf); err != nil {
		h.t.Fatal(err)
	}
	if qid == 0 {
		c.keyed = h.data[:nvmeof.ConnectDataSize]
		copy(c.keyed, buf)
	} else {
		c.inline = buf
	}
	return h.exec(c)
}

// controller connects an admin queue, enables the controller, and returns
// the admin queue and the controller ID.
func (tt *testTarget) controller(t testing.TB) (*hostQueue, uint16) {
	t.Helper()
	a, err := tt.dial(t, 0, 32, nil)
	if err != nil {
		t.Fatal(err)
	}
	cqe := a.connect(0, nvmeof.CntlIDDynamic, testNQN)
	ok(t, "admin connect", cqe)
	cntlid := uint16(cqe.DW0())
	c := &cmd{}
	c.sqe.SetPropertySet(nvmeof.PropCC, false, uint64(nvmeof.CCValue(true)))
	ok(t, "property set CC", a.exec(c))
	return a, cntlid
}

func (tt *testTarget) ioQueue(t testing.TB, cntlid uint16, qid uint16, depth int) *hostQueue {
	t.Helper()
	var b [nvmeof.RDMACMReqSize]byte
	nvmeof.RDMACMReq{QID: qid, HRQSize: uint16(depth), HSQSize: uint16(depth - 1), CntlID: cntlid}.Encode(b[:])
	q, err := tt.dial(t, qid, depth, b[:])
	if err != nil {
		t.Fatal(err)
	}
	ok(t, "I/O connect", q.connect(qid, cntlid, testNQN))
	return q
}

func rw(op uint8, slba uint64, nlb uint32) cmd {
	var c cmd
	c.sqe.SetOpcode(op)
	c.sqe.SetNSID(1)
	c.sqe.SetRW(slba, nlb)
	return c
}

func isDown(err error) bool {
	return errors.Is(err, fprdma.ErrFlushed) || errors.Is(err, fprdma.ErrClosed)
}
