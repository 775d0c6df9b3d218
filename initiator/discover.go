package initiator

import (
	"context"
	"fmt"

	"github.com/flashpath/flashpath/nvmeof"
)

// discoveryRetries bounds the re-reads of a discovery log whose generation
// counter changed while it was read (nvme-cli MAX_DISC_RETRIES).
const discoveryRetries = 10

// Discover connects to the discovery controller at addr (default port
// 8009), enables it, reads Identify Controller and the whole discovery log
// page (NVMe-oF 1.1 §5.3) and disconnects.
func Discover(ctx context.Context, addr string, opts Options) (nvmeof.DiscoveryLog, error) {
	if err := opts.setDefaults(); err != nil {
		return nvmeof.DiscoveryLog{}, fmt.Errorf("discover: %w", err)
	}
	cfg := Config{Addr: addr, SubNQN: nvmeof.DiscoveryNQN, Options: opts, CtrlLossTimeout: -1}
	tr, a, err := cfg.transport(DefaultDiscoveryPort)
	if err != nil {
		return nvmeof.DiscoveryLog{}, fmt.Errorf("discover: %w", err)
	}
	c := newController(cfg, tr, a)
	// KATO 0: a one-shot discovery controller needs no keep-alive.
	if err := c.connectAdmin(ctx, c.sess(), nvmeof.DiscoveryNQN, 0); err != nil {
		return nvmeof.DiscoveryLog{}, fmt.Errorf("discover: %w", err)
	}
	log, err := c.discover(ctx)
	if cerr := c.CloseContext(ctx); err == nil && cerr != nil {
		c.log.Debug("discovery controller shutdown", "err", cerr)
	}
	if err != nil {
		return nvmeof.DiscoveryLog{}, fmt.Errorf("discover %s: %w", a, err)
	}
	return log, nil
}

func (c *Controller) discover(ctx context.Context) (nvmeof.DiscoveryLog, error) {
	if err := c.enable(ctx); err != nil {
		return nvmeof.DiscoveryLog{}, err
	}
	id, err := c.IdentifyController(ctx)
	if err != nil {
		return nvmeof.DiscoveryLog{}, err
	}
	s := c.sess()
	s.id = id
	maxXfer := id.MaxTransfer()
	s.admin.maxXfer = maxXfer
	return readDiscoveryLog(ctx, c.Admin, maxXfer)
}

// readDiscoveryLog reads the header, then the whole log by NUMREC, then the
// header again; if GENCTR changed meanwhile it starts over.
func readDiscoveryLog(ctx context.Context, admin adminFunc, maxXfer int) (nvmeof.DiscoveryLog, error) {
	hdr := make([]byte, nvmeof.DiscoveryHeaderSize)
	for range discoveryRetries {
		if err := getLogPage(ctx, admin, nvmeof.LogDiscovery, 0, hdr, 0); err != nil {
			return nvmeof.DiscoveryLog{}, err
		}
		h, err := nvmeof.DecodeDiscoveryLog(hdr)
		if err != nil {
			return nvmeof.DiscoveryLog{}, err
		}
		if h.NumRec > 1<<16 {
			return nvmeof.DiscoveryLog{}, fmt.Errorf("discovery log: NUMREC %d is implausible", h.NumRec)
		}
		if h.NumRec == 0 {
			return h, nil
		}
		full := make([]byte, nvmeof.DiscoveryLogSize(int(h.NumRec)))
		// Read in pieces no larger than MDTS.
		chunk := len(full)
		if maxXfer > 0 {
			chunk = min(chunk, maxXfer)
		}
		for off := 0; off < len(full); off += chunk {
			end := min(off+chunk, len(full))
			if err := getLogPage(ctx, admin, nvmeof.LogDiscovery, 0, full[off:end], uint64(off)); err != nil {
				return nvmeof.DiscoveryLog{}, err
			}
		}
		if err := getLogPage(ctx, admin, nvmeof.LogDiscovery, 0, hdr, 0); err != nil {
			return nvmeof.DiscoveryLog{}, err
		}
		again, _ := nvmeof.DecodeDiscoveryLog(hdr)
		log, err := nvmeof.DecodeDiscoveryLog(full)
		if err != nil {
			return nvmeof.DiscoveryLog{}, err
		}
		if again.GenCtr == h.GenCtr && log.GenCtr == h.GenCtr {
			return log, nil
		}
	}
	return nvmeof.DiscoveryLog{}, fmt.Errorf("discovery log: generation counter kept changing over %d reads", discoveryRetries)
}
