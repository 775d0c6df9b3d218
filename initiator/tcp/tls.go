package tcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/internal/tlspsk"
)

// Identity versions the host offers, in order: NVMe/TCP 1.0c's, which
// Linux 6.12's host and target use, then TP 8018's (with a digest).
var tlsIdentityVersions = []int{0, 1}

// tlsKeys derives the TLS PSKs a host offers a subsystem from its
// configured PSK (NVMe/TCP 1.0c §3.6.1.3, TP 8018).
func tlsKeys(p initiator.QueueParams) ([]tlspsk.Key, error) {
	psk, err := dhchap.ParsePSK(p.TLSKey)
	if err != nil {
		return nil, err
	}
	suite := tlspsk.TLS_AES_128_GCM_SHA256
	if psk.Cipher() == dhchap.SHA384 {
		suite = tlspsk.TLS_AES_256_GCM_SHA384
	}
	keys := make([]tlspsk.Key, 0, len(tlsIdentityVersions))
	for _, v := range tlsIdentityVersions {
		id, key, err := psk.TLS(p.HostNQN, p.SubNQN, v)
		if err != nil {
			return nil, err
		}
		keys = append(keys, tlspsk.Key{Identity: id, Secret: key, Suite: suite})
	}
	return keys, nil
}

// startTLS runs the TLS 1.3 handshake on nc, within ctx's deadline, and
// returns the protected connection. It closes nc on failure.
func startTLS(ctx context.Context, nc net.Conn, p initiator.QueueParams) (net.Conn, error) {
	keys, err := tlsKeys(p)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS key: %w", err)
	}
	cfg := &tlspsk.Config{Keys: keys}
	if dl, ok := ctx.Deadline(); ok {
		cfg.HandshakeTimeout = max(time.Until(dl), time.Millisecond)
	}
	tc, err := tlspsk.Client(nc, cfg)
	if err != nil {
		nc.Close()
		return nil, tlsError(p, err)
	}
	return tc, nil
}

// tlsError says what a failed handshake means for the operator.
func tlsError(p initiator.QueueParams, err error) error {
	var hint string
	switch {
	case errors.Is(err, tlspsk.ErrUnknownIdentity):
		hint = fmt.Sprintf("the target has no TLS PSK for host %s and subsystem %s: configure this host's key on the target (the PSK from nvme gen-tls-key)", p.HostNQN, p.SubNQN)
	case errors.Is(err, tlspsk.ErrPSKMismatch):
		hint = fmt.Sprintf("the target holds a different TLS PSK for host %s: give the key configured there", p.HostNQN)
	default:
		var ae *tlspsk.AlertError
		if !errors.As(err, &ae) {
			// Linux's tlshd closes the connection without an alert when
			// it has no key for the identity or the binder fails.
			hint = fmt.Sprintf("the target ended the handshake without saying why: it may hold no TLS PSK for host %s and subsystem %s, or a different one, or not accept TLS on this port (flashpath target: ?tls= on the listener; Linux nvmet: addr_tsas tls1.3 and the key in its .nvme keyring)", p.HostNQN, p.SubNQN)
		}
	}
	if hint == "" {
		return fmt.Errorf("TLS handshake with %s: %w", p.Addr, err)
	}
	return fmt.Errorf("TLS handshake with %s: %w: %s", p.Addr, err, hint)
}
