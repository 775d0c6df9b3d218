// Package rdma is the NVMe/RDMA transport of the flashpath target (NVMe
// RDMA Transport Specification 1.0): it accepts RDMA connection manager
// requests (the NVMe/RDMA private data names the queue and its sizes),
// receives command capsules into posted buffers, fetches host data with
// RDMA READ into a pooled buffer before a write runs, and answers reads
// with an RDMA WRITE chained to the response SEND.
//
// Every data buffer comes from the target's bufpool, whose slabs are
// registered with the RDMA provider once, so no byte is copied between the
// NIC and the backend. In-capsule write data is used where it landed, in
// the receive buffer.
//
// Each connection is one queue pair served by one goroutine that polls its
// completion queue; responses may be posted from any goroutine (backends
// complete asynchronously). A malformed capsule or a failed work request
// ends that connection with a log line; the others keep going.
//
//	tgt := target.New(target.Options{})
//	ln, err := rdma.Listen(tgt, "192.168.1.10:4420", rdma.Options{})
//	...
//	ln.Shutdown(ctx)
package rdma

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/nvmeof"
	fprdma "github.com/flashpath/flashpath/rdma"
	"github.com/flashpath/flashpath/target"
)

// Options configure the transport.
type Options struct {
	// Provider is the RDMA implementation (default: libibverbs, rdma.Verbs).
	Provider fprdma.Provider
	// InlineData is the in-capsule data an I/O queue accepts (IOCCSZ;
	// default 8 KiB, at least 1 KiB for the Connect command's data).
	InlineData int
	// MaxConns is the most connections served at once (default 4,096) and
	// MaxConnsPerAddr the most from one host address (default 1,024);
	// each connection maps and registers its queue's buffers (up to about
	// 1 MiB), so more are rejected at once (NoResources).
	MaxConns, MaxConnsPerAddr int
	Logger                    *slog.Logger
}

// Listener is an NVMe/RDMA port of a target.
type Listener struct {
	t    *target.Target
	pl   fprdma.Listener
	prov fprdma.Provider
	opts Options
	log  *slog.Logger
	port uint16

	conns target.Conns[*conn]

	limits target.ConnLimits
	capLog target.LogLimiter

	// Counters read by metrics.
	Accepted       atomic.Uint64
	Rejected       atomic.Uint64
	ProtocolErrors atomic.Uint64
}

// Listen starts serving NVMe/RDMA on addr ("192.168.1.10:4420"). The
// address must be one of an RDMA-capable net device's (unspecified
// addresses work where the provider allows them).
func Listen(t *target.Target, addr string, opts Options) (*Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("nvme/rdma: listen address %q: want IP:PORT (%v)", addr, err)
	}
	if opts.InlineData == 0 {
		opts.InlineData = target.InCapsuleData
	}
	if opts.InlineData < 1024 || opts.InlineData > 64<<10 {
		return nil, fmt.Errorf("nvme/rdma: in-capsule data size %d outside 1024..65536", opts.InlineData)
	}
	if opts.Logger == nil {
		opts.Logger = t.Logger()
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 4096
	}
	if opts.MaxConnsPerAddr <= 0 {
		opts.MaxConnsPerAddr = 1024
	}
	if opts.Provider == nil {
		if opts.Provider, err = fprdma.Verbs(); err != nil {
			return nil, fmt.Errorf("nvme/rdma: %w", err)
		}
	}
	if err := registerPool(t.Pool(), opts.Provider); err != nil {
		return nil, fmt.Errorf("nvme/rdma: register data buffers: %w", err)
	}
	pl, err := opts.Provider.Listen(ap)
	if err != nil {
		return nil, fmt.Errorf("nvme/rdma: %w", err)
	}
	la := pl.Addr()
	l := &Listener{t: t, pl: pl, prov: opts.Provider, opts: opts,
		log: opts.Logger.With("trtype", "rdma", "listen", la.String())}
	l.limits.Max, l.limits.PerAddr = opts.MaxConns, opts.MaxConnsPerAddr
	l.port = t.AddPort(target.PortInfo{
		TrType: nvmeof.TrTypeRDMA, Addr: netip.AddrPortFrom(la.Addr().Unmap(), la.Port()),
		InlineDataSize: opts.InlineData,
	})
	go l.accept(l.conns.Track())
	l.log.Info("listening")
	return l, nil
}

// registered remembers which (pool, provider) pairs have their slabs
// registered, so that several listeners register each slab once.
var registered sync.Map

type poolProvider struct {
	pool *bufpool.Pool
	prov fprdma.Provider
}

func registerPool(p *bufpool.Pool, prov fprdma.Provider) error {
	key := poolProvider{p, prov}
	if _, loaded := registered.LoadOrStore(key, true); loaded {
		return nil
	}
	err := fprdma.RegisterPool(prov, p)
	if err != nil {
		registered.Delete(key)
	}
	return err
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() netip.AddrPort { return l.pl.Addr() }

func (l *Listener) accept(done func()) {
	defer done()
	for {
		req, err := l.pl.Accept()
		if err != nil {
			if !errors.Is(err, fprdma.ErrClosed) {
				l.log.Error("accept failed", "err", err)
			}
			return
		}
		peer := req.Remote().Addr().Unmap()
		if why := l.limits.Admit(peer); why != "" {
			l.Rejected.Add(1)
			var b [nvmeof.RDMACMRejSize]byte
			nvmeof.EncodeRDMACMRej(b[:], nvmeof.RDMACMNoResources)
			req.Reject(b[:])
			if ok, dropped := l.capLog.Allow(); ok {
				l.log.Warn("connection refused: "+why, "peer", req.Remote().String(), "suppressed", dropped)
			}
			continue
		}
		c, err := l.connect(req)
		if err != nil {
			l.limits.Leave(peer)
			l.t.PeerWarn(l.log, "connection refused", "peer", req.Remote().String(), "err", err)
			continue
		}
		c.peer = peer
		l.Accepted.Add(1)
		l.conns.Go(c, c.serve)
	}
}

// LogSuppressed is how many connection-limit log lines were held back.
func (l *Listener) LogSuppressed() uint64 { return l.capLog.Suppressed() }

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (l *Listener) Close() error {
	return l.Shutdown(context.Background())
}

// Shutdown stops accepting and closes every connection, waiting for the
// connection goroutines until ctx is done.
func (l *Listener) Shutdown(ctx context.Context) error {
	return l.conns.Shutdown(ctx, l.pl.Close, func() { l.t.RemovePort(l.port) })
}
