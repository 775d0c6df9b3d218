// Package tcp is the NVMe/TCP transport of the flashpath target
// (NVMe/TCP Transport Specification 1.0): it accepts connections, runs the
// ICReq/ICResp exchange with optional header and data digests, and moves
// command capsules, in-capsule data, R2T/H2CData and C2HData PDUs between
// the socket and the target core.
//
// Each connection is one queue pair, served by one goroutine that owns its
// receive side and executes commands inline; responses are batched in a
// buffered writer and flushed when no more input is waiting. Malformed PDUs
// end that connection with a C2HTermReq and a log line; others keep going.
//
//	tgt := target.New(target.Options{})
//	ln, err := tcp.Listen(tgt, "127.0.0.1:4420", tcp.Options{})
//	...
//	ln.Shutdown(ctx)
package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/internal/busypoll"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
)

// Options configure the transport.
type Options struct {
	// MaxH2CData is the most data the host may send in one H2CData PDU
	// (MAXH2CDATA, at least 4096; default 128 KiB).
	MaxH2CData int
	// ICTimeout bounds the wait for the host's ICReq (default 10 s).
	ICTimeout time.Duration
	// ConnectTimeout bounds the time from ICResp to a successful Fabrics
	// Connect and, for a host that must authenticate, each wait for its
	// next DH-HMAC-CHAP step (default 10 s): a connection that has not joined a
	// controller by then is closed, so idle half-open connections cannot
	// pile up.
	ConnectTimeout time.Duration
	// SendTimeout bounds how long a connection waits for a host that does
	// not read its responses (default 30 s); the connection is then
	// closed. Completions from other goroutines (io_uring reapers) never
	// wait on a host: they are sent by the connection's own flusher.
	SendTimeout time.Duration
	// MaxConns is the most connections served at once (default 65,536)
	// and MaxConnsPerAddr the most from one host address (default 1,024;
	// a GPU node with a few controllers of 64 queues uses a few hundred).
	// A connection beyond either is closed at once, with a log line.
	MaxConns, MaxConnsPerAddr int
	// BusyPoll is how long a connection with nothing to read keeps
	// polling its socket before it parks (package busypoll): a command
	// that comes within it is served without waking an idle CPU. 0 parks
	// at once. A connection stops polling as soon as another of the
	// listener has input (Go's scheduler looks for network input only
	// when it has nothing else to run).
	BusyPoll time.Duration
	// NoSendfile copies every read's data into the socket. By default
	// reads of 256 KiB or more from buffered file namespaces go from the
	// page cache by sendfile(2) on connections without data digest or
	// TLS (target.Queue.SendFromFiles): a third to half less target CPU
	// per GB; a host on the same machine (loopback) pays part of it back.
	NoSendfile bool
	// TLS says whether connections use TLS 1.3 with a PSK (tls.go): off
	// (the default), optional or required. The keys are the core's
	// (Target.TLSKey); the TLS handshake must end within ICTimeout.
	TLS TLSMode
	// DiscoveryOnly makes the listener a discovery service port (as
	// NVMe/TCP's 8009): hosts connect to the discovery controller there
	// and to nothing else, and the discovery log leaves it out
	// (target.PortInfo.DiscoveryOnly).
	DiscoveryOnly bool
	Logger        *slog.Logger
}

// Listener is an NVMe/TCP port of a target.
type Listener struct {
	t    *target.Target
	ln   net.Listener
	opts Options
	log  *slog.Logger
	port uint16

	conns target.Conns[*conn]
	poll  busypoll.Group // the connections, for busy polling

	limits target.ConnLimits
	capLog target.LogLimiter

	// Counters read by metrics.
	Accepted       atomic.Uint64
	Rejected       atomic.Uint64 // closed at accept: over MaxConns or MaxConnsPerAddr
	ProtocolErrors atomic.Uint64
	// TLSHandshakes and TLSFailures count TLS handshakes that succeeded
	// and failed (unknown identity, wrong key, timeout, not TLS);
	// PlainRefused counts plain connections closed by a TLSRequired
	// listener.
	TLSHandshakes, TLSFailures, PlainRefused atomic.Uint64
}

// Listen starts serving NVMe/TCP on addr ("127.0.0.1:4420", ":4420").
func Listen(t *target.Target, addr string, opts Options) (*Listener, error) {
	if opts.MaxH2CData == 0 {
		opts.MaxH2CData = 128 << 10
	}
	if opts.MaxH2CData < 4096 || opts.MaxH2CData > target.MaxTransfer || opts.MaxH2CData%4 != 0 {
		return nil, fmt.Errorf("nvme/tcp: MaxH2CData %d: want a multiple of 4 in 4096..%d (NVMe/TCP ICResp MAXH2CDATA)", opts.MaxH2CData, target.MaxTransfer)
	}
	if opts.ICTimeout == 0 {
		opts.ICTimeout = 10 * time.Second
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.SendTimeout == 0 {
		opts.SendTimeout = 30 * time.Second
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = 65536
	}
	if opts.MaxConnsPerAddr == 0 {
		opts.MaxConnsPerAddr = 1024
	}
	if opts.Logger == nil {
		opts.Logger = t.Logger()
	}
	if opts.TLS < TLSOff || opts.TLS > TLSRequired {
		return nil, fmt.Errorf("nvme/tcp: %v: want TLSOff, TLSOptional or TLSRequired", opts.TLS)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nvme/tcp: listen on %s: %w", addr, err)
	}
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("nvme/tcp: listener address %s: %w", ln.Addr(), err)
	}
	l := &Listener{t: t, ln: ln, opts: opts, log: opts.Logger.With("trtype", "tcp", "listen", ln.Addr().String())}
	l.limits.Max, l.limits.PerAddr = opts.MaxConns, opts.MaxConnsPerAddr
	treq, sectype := opts.TLS.treq()
	l.port = t.AddPort(target.PortInfo{
		TrType: nvmeof.TrTypeTCP, Addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()),
		InlineDataSize: target.InCapsuleData, MaxH2CData: opts.MaxH2CData,
		TReq: treq, SecType: sectype, DiscoveryOnly: opts.DiscoveryOnly,
	})
	go l.accept(l.conns.Track())
	if opts.DiscoveryOnly {
		l.log.Info("listening: discovery only", "tls", opts.TLS.String())
	} else {
		l.log.Info("listening", "tls", opts.TLS.String())
	}
	return l, nil
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// TLS is the listener's TLS mode.
func (l *Listener) TLS() TLSMode { return l.opts.TLS }

// DiscoveryOnly reports whether the listener serves the discovery
// controller only (Options.DiscoveryOnly).
func (l *Listener) DiscoveryOnly() bool { return l.opts.DiscoveryOnly }

// LogSuppressed is how many connection-limit log lines were held back.
func (l *Listener) LogSuppressed() uint64 { return l.capLog.Suppressed() }

func (l *Listener) accept(done func()) {
	defer done()
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or memory, say: keep the port, retry
			// after a pause, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if ok, dropped := l.capLog.Allow(); ok {
				l.log.Error("accept failed: retrying", "err", err, "retry_in", backoff, "suppressed", dropped)
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		l.Accepted.Add(1)
		addr := hostAddr(nc.RemoteAddr())
		if reason := l.limits.Admit(addr); reason != "" {
			l.Rejected.Add(1)
			if ok, dropped := l.capLog.Allow(); ok {
				l.log.Warn("connection refused: "+reason, "peer", nc.RemoteAddr().String(), "suppressed", dropped)
			}
			nc.Close()
			continue
		}
		c := newConn(l, nc)
		l.conns.Go(c, func() {
			c.serve()
			l.limits.Leave(addr)
		})
	}
}

// hostAddr is a connection end's IP address, IPv4 unmapped (the zero
// Addr if a is not an IP address and port).
func hostAddr(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (l *Listener) Close() error {
	return l.Shutdown(context.Background())
}

// Shutdown stops accepting and closes every connection, waiting for the
// connection goroutines until ctx is done.
func (l *Listener) Shutdown(ctx context.Context) error {
	return l.conns.Shutdown(ctx, func() error {
		err := l.ln.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		return err
	}, func() { l.t.RemovePort(l.port) })
}
