package tcp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/flashpath/flashpath/internal/busypoll"
	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/internal/sockio"
	"github.com/flashpath/flashpath/internal/tlspsk"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
)

// TLS on NVMe/TCP (NVMe/TCP Transport 1.0c §3.6): a connection starts with
// a TLS 1.3 handshake authenticated by a PSK (internal/tlspsk), then
// carries the NVMe/TCP PDUs, ICReq first, inside TLS records. The core
// finds the key behind the PSK identity the host offers (Target.TLSKey)
// and checks the Connect against it (Queue.SetTLS).
//
// The data path is the same code over the TLS connection, less two
// things that need the raw socket: busy polling (package busypoll polls a
// file descriptor) and the raw writev of package sockio (the gathered
// pieces go through the TLS connection's Write instead, each sealed into
// records).

// TLSMode is a listener's use of TLS.
type TLSMode int

const (
	// TLSOff: plain NVMe/TCP only (the default).
	TLSOff TLSMode = iota
	// TLSOptional: each connection is TLS or plain, as the host starts it
	// (a TLS handshake record or an ICReq). Discovery log entries say
	// "not required".
	TLSOptional
	// TLSRequired: TLS only; a plain connection is closed. Discovery log
	// entries say "required".
	TLSRequired
)

// ParseTLSMode reads "off", "optional" or "required" ("" is off).
func ParseTLSMode(s string) (TLSMode, error) {
	switch s {
	case "", "off":
		return TLSOff, nil
	case "optional":
		return TLSOptional, nil
	case "required":
		return TLSRequired, nil
	}
	return TLSOff, fmt.Errorf("tls %q: want required, optional or off", s)
}

func (m TLSMode) String() string {
	switch m {
	case TLSOff:
		return "off"
	case TLSOptional:
		return "optional"
	case TLSRequired:
		return "required"
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// treq returns the discovery log entry's TREQ secure channel bits and TSAS
// security type for the mode, as Linux nvmet reports addr_treq and
// addr_tsas.
func (m TLSMode) treq() (treq, sectype uint8) {
	switch m {
	case TLSOptional:
		return nvmeof.TReqSecureChannelNotRequired, nvmeof.SecTypeTLS13
	case TLSRequired:
		return nvmeof.TReqSecureChannelRequired, nvmeof.SecTypeTLS13
	}
	return nvmeof.TReqSecureChannelNotSpecified, nvmeof.SecTypeNone
}

// recordHandshake is the first byte of a TLS connection: a handshake
// record (RFC 8446 §5.1) carrying the ClientHello. A plain NVMe/TCP
// connection starts with an ICReq PDU, type 0.
const recordHandshake = 0x16

// suiteFor is the TLS cipher suite of a PSK's hash.
func suiteFor(h dhchap.Hash) uint16 {
	if h == dhchap.SHA384 {
		return tlspsk.TLS_AES_256_GCM_SHA384
	}
	return tlspsk.TLS_AES_128_GCM_SHA256
}

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// startTLS runs on a listener with TLS, before the ICReq: it reads how the
// host starts (a TLS record or an ICReq) and runs the TLS handshake, after
// which the connection reads and writes through TLS; or it sets up the
// plain path, busy polling included (optional), or refuses a plain host
// (required). Failures are logged here.
func (c *conn) startTLS() error {
	l := c.l
	c.nc.SetReadDeadline(time.Now().Add(l.opts.ICTimeout))
	first := make([]byte, 1)
	if _, err := io.ReadFull(c.nc, first); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			l.t.PeerWarn(c.log, "no TLS ClientHello or ICReq within the IC timeout: closing the connection", "timeout", l.opts.ICTimeout)
		}
		return fmt.Errorf("read the first byte: %w", err)
	}
	pc := &prefixConn{Conn: c.nc, pre: first}
	if first[0] != recordHandshake {
		if l.opts.TLS == TLSRequired {
			l.PlainRefused.Add(1)
			l.t.PeerWarn(c.log, "plain NVMe/TCP connection on a listener that requires TLS: closing it; the host must connect with TLS (nvme connect --tls, its PSK in the .nvme keyring or given with --tls-key)")
			return errors.New("plain connection on a TLS-only listener")
		}
		// Optional, and plain: as on a listener without TLS (the reader
		// grows into one on the busy-poll reader once connected).
		c.rd, c.leave = busypoll.NewReader(&l.poll, c.nc, l.opts.BusyPoll, nil)
		c.br = bufio.NewReaderSize(pc, smallBuf)
		return nil
	}
	var lookupErr error
	cfg := &tlspsk.Config{
		HandshakeTimeout: l.opts.ICTimeout,
		Lookup: func(identity string) (tlspsk.Key, bool) {
			k, err := l.t.TLSKey(identity)
			if err != nil {
				lookupErr = err
				return tlspsk.Key{}, false
			}
			return tlspsk.Key{Identity: identity, Secret: k.Key, Suite: suiteFor(k.Hash)}, true
		},
	}
	tc, err := tlspsk.Server(pc, cfg)
	if err != nil {
		l.TLSFailures.Add(1)
		args := []any{"err", err}
		switch {
		case errors.Is(err, tlspsk.ErrUnknownIdentity) && lookupErr != nil:
			args = append(args, "reason", lookupErr.Error())
		case errors.Is(err, tlspsk.ErrPSKMismatch):
			args = append(args, "reason", "the host's PSK is not the tls_key configured for it: give both ends the same key")
		}
		l.t.PeerWarn(c.log, "TLS handshake failed: closing the connection", args...)
		return fmt.Errorf("TLS handshake: %w", err)
	}
	id, err := target.ParseTLSIdentity(tc.Identity())
	if err != nil { // TLSKey parsed it: cannot happen
		l.TLSFailures.Add(1)
		return err
	}
	l.TLSHandshakes.Add(1)
	c.q.SetTLS(id)
	// (c.log stays as it is: Close reads it from other goroutines. The
	// core's Connect line says tls=true.)
	c.log.Debug("TLS handshake done", "identity", tc.Identity(), "suite", suiteName(tc.Suite()))
	// From here on everything goes through TLS. Nothing is sent yet, and
	// only this goroutine reads. (c.nc stays the socket: Close closes it,
	// deadlines are set on it.)
	c.rd = tc
	c.br = bufio.NewReaderSize(tc, smallBuf)
	c.sendMu.Lock()
	timeout := c.bw.Timeout
	c.bw = sockio.NewWriter(tc, smallBuf)
	c.bw.Timeout = timeout
	c.sendMu.Unlock()
	return nil
}

func suiteName(s uint16) string {
	if s == tlspsk.TLS_AES_256_GCM_SHA384 {
		return "TLS_AES_256_GCM_SHA384"
	}
	return "TLS_AES_128_GCM_SHA256"
}
