// Package rdma is flashpath's RDMA layer: reliable-connected queue pairs set
// up through the RDMA connection manager, memory regions, and the four work
// requests NVMe/RDMA needs (SEND, SEND with invalidate, RDMA READ, RDMA
// WRITE), behind a small provider interface.
//
// Verbs() is the real provider: libibverbs and librdmacm loaded with dlopen
// at run time, so flashpath builds and runs on machines without rdma-core
// and only the RDMA paths report themselves unavailable there. The package
// rdmatest has an in-process fake with the same semantics for tests.
//
// Memory is registered once per process (Provider.Register) and is then
// usable on every connection of every device: work requests name plain Go
// slices that lie inside a registered region, and the provider finds the
// keys. The target registers each bufpool slab this way, so any data buffer
// can be handed to the NIC with no copy.
package rdma

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/internal/platform"
)

// ErrNotSupported is wrapped by the errors that mean this machine lacks
// rdma-core or an RDMA device at the address asked for, or that this build
// lacks the verbs binding (no cgo, not Linux): callers fall back, tests
// skip. It is platform.ErrNotSupported.
var ErrNotSupported = platform.ErrNotSupported

// errUnavailable opens those errors' messages: "RDMA unavailable: ...".
var errUnavailable = platform.Unavailable("RDMA unavailable")

// Provider opens RDMA listeners and connections.
type Provider interface {
	// Listen binds the connection manager to addr (port 4420 for
	// NVMe/RDMA). The address must belong to a net device with an RDMA
	// device on it (a RoCE NIC, or soft-RoCE: rdma link add rxe0 type rxe
	// netdev eth0).
	Listen(addr netip.AddrPort) (Listener, error)
	// Dial connects to addr sending priv as the connection request's
	// private data. setup runs once the queue pair exists and before the
	// request is sent: it posts the receives the first messages need. A
	// rejection is a *RejectError.
	Dial(ctx context.Context, addr netip.AddrPort, cfg ConnConfig, priv []byte, setup func(Conn) error) (Conn, error)
	// Register makes mem (which must not move: mmap'd, not the Go heap)
	// usable by work requests on every connection, local and remote
	// access, until the region is closed.
	Register(mem []byte) (Region, error)

	// Device memory (a GPU's), which is no Go slice: the peer reaches it
	// through Conn.RemoteKeyAt and RDMA READ/WRITE; this side never
	// touches its bytes.

	// RegisterDMABuf registers length bytes at offset in the dma-buf fd
	// (a GPU allocation exported with cuMemGetHandleForAddressRange) with
	// ibv_reg_dmabuf_mr, for remote read and write at address iova (the
	// allocation's device address: that is what the peer's RDMA READ and
	// WRITE name). The provider keeps its own duplicate of fd. Without
	// ibv_reg_dmabuf_mr (rdma-core < 34) the error wraps ErrNotSupported.
	RegisterDMABuf(fd int, offset uint64, length int, iova uint64) (Region, error)
	// RegisterAddr registers length bytes at addr with plain ibv_reg_mr:
	// host memory the Go heap does not own, or GPU memory where a peer
	// memory client (nvidia-peermem) lets the NIC pin it — the fallback
	// where dma-buf is not available.
	RegisterAddr(addr uintptr, length int) (Region, error)
}

// RegisterPool registers every slab of p with prov, those mapped already
// and those to come, so that any of its buffers can be handed to the NIC.
// Slabs live as long as the process: their regions stay registered.
func RegisterPool(prov Provider, p *bufpool.Pool) error {
	return p.OnSlab(func(s bufpool.Slab) error {
		_, err := prov.Register(s.Mem)
		return err
	})
}

// Region is registered memory.
type Region interface {
	Close() error
}

// Listener receives connection requests.
type Listener interface {
	// Accept waits for the next connection request; after Close it
	// returns ErrClosed.
	Accept() (ConnRequest, error)
	Addr() netip.AddrPort
	Close() error
}

// ConnRequest is a connection request not yet answered.
type ConnRequest interface {
	// PrivateData is what the peer sent with its request.
	PrivateData() []byte
	Local() netip.AddrPort
	Remote() netip.AddrPort
	// Accept creates the queue pair, runs setup (post receives there),
	// then accepts, sending priv as the reply's private data.
	Accept(cfg ConnConfig, priv []byte, setup func(Conn) error) (Conn, error)
	// Reject refuses the request, sending priv (may be nil).
	Reject(priv []byte) error
}

// ConnConfig sizes a queue pair.
type ConnConfig struct {
	SendDepth int // send queue work requests (default 128)
	RecvDepth int // receive queue work requests (default 128)
	// ReadDepth is how many RDMA READs this side keeps outstanding
	// (initiator depth); 0 takes what both the device and the peer allow.
	ReadDepth int
}

// Op is a work request or completion type.
type Op uint8

// Work request and completion types.
const (
	OpSend Op = iota + 1
	// OpSendInv is a SEND that invalidates RKey at the peer.
	OpSendInv
	OpRead  // RDMA READ: Local <- peer memory at RemoteAddr/RKey
	OpWrite // RDMA WRITE: Local -> peer memory at RemoteAddr/RKey
	OpRecv  // completions only
)

func (o Op) String() string {
	switch o {
	case OpSend:
		return "send"
	case OpSendInv:
		return "send-inv"
	case OpRead:
		return "rdma-read"
	case OpWrite:
		return "rdma-write"
	case OpRecv:
		return "recv"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// WR is one send-queue work request. Local must lie inside a registered
// region (it may be empty for a zero-length SEND).
type WR struct {
	ID         uint64
	Op         Op
	Local      []byte
	RemoteAddr uint64
	RKey       uint32 // READ/WRITE: the peer's key; SendInv: the key to invalidate
	// Signaled asks for a completion. Unsignaled requests complete
	// silently once a later signaled one on the same queue completes.
	Signaled bool
}

// Completion is a finished work request.
type Completion struct {
	ID  uint64
	Op  Op
	Len int // bytes received (OpRecv)
	// Err is nil on success; a flushed request (the connection went down)
	// has ErrFlushed.
	Err error
	// Invalidated is set on a receive whose SEND invalidated InvKey here.
	Invalidated bool
	InvKey      uint32
}

// Conn is one connected reliable queue pair. Post and PostRecv may be
// called from any goroutine; Poll from one at a time.
type Conn interface {
	// PostRecv posts a receive into buf (inside a registered region).
	PostRecv(id uint64, buf []byte) error
	// Post posts send-queue work requests as one chain.
	Post(wrs ...WR) error
	// Poll waits for completions and fills out with up to len(out) of
	// them. When the connection goes down, every outstanding request
	// completes with ErrFlushed; after Close, Poll returns ErrClosed.
	Poll(out []Completion) (int, error)
	// RemoteKey returns the key the peer needs to READ or WRITE buf
	// (inside a registered region), and buf's address; ErrNotRegistered,
	// without allocating, where buf is not registered memory.
	RemoteKey(buf []byte) (addr uint64, key uint32, err error)
	// RemoteKeyAt is RemoteKey of n bytes at addr, memory registered with
	// RegisterDMABuf (addr in its iova range) or RegisterAddr.
	RemoteKeyAt(addr uint64, n int) (key uint32, err error)
	// Disconnect starts an orderly disconnect: outstanding requests
	// flush. It does not block.
	Disconnect() error
	// Down reports whether the connection went down (the peer
	// disconnected, an error, the device left), perhaps before Poll has
	// returned the flushes. It never blocks.
	Down() bool
	// Close disconnects and destroys the queue pair: after it returns the
	// device touches none of the connection's buffers again.
	Close() error
	Local() netip.AddrPort
	Remote() netip.AddrPort
}

// RejectError is a connection request the peer refused.
type RejectError struct {
	Reason      int // the connection manager's reason code
	PrivateData []byte
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("rdma: connection rejected (reason %d, %d bytes private data)", e.Reason, len(e.PrivateData))
}

var (
	// ErrClosed is returned by a closed listener or connection.
	ErrClosed = errors.New("rdma: closed")
	// ErrNotRegistered: RemoteKey of memory outside every registered
	// region (a caller may then bounce the data through registered memory).
	ErrNotRegistered = errors.New("rdma: buffer is not inside one registered region")
	// ErrFlushed completes work requests outstanding when a connection
	// went down.
	ErrFlushed = errors.New("rdma: work request flushed (connection down)")
)
