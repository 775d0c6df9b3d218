package target

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/flashpath/flashpath/internal/bufpool"
)

// Each host address gets a share of the data buffer pool, so that no host
// can hold all of it (with writes whose data it never sends, say) and
// starve the others; and the last part of the pool is a reserve that only
// hosts holding little may use, so that a well-behaved host always gets
// buffers, however many greedy hosts there are. The address is the
// transport's peer address, which a host cannot choose the way it chooses
// its NQN.

// Defaults of Options.MaxHostBuffer and the reserve.
const (
	defaultHostShareDiv = 4 // MaxHostBuffer: a quarter of BufferMemory
	reserveDiv          = 8 // the reserve: an eighth of BufferMemory
	// reservePerHost is what one host may hold and still draw on the
	// reserve: 32 commands of 128 KiB in flight (or a quarter of the
	// reserve in a pool smaller than 128 MiB).
	reservePerHost = 4 << 20
)

// ErrHostBufferLimit is returned when a host address holds its share of
// the buffer pool (Options.MaxHostBuffer) or the pool is down to its
// reserve; the command fails and the host may retry it.
var ErrHostBufferLimit = errors.New("host buffer share exhausted")

// HostBuffers takes data buffers from the target's pool on behalf of one
// host address. Transports get one per connection (Target.HostBuffers)
// and Release it when the connection is gone; buffers still in flight may
// be Put after that.
type HostBuffers struct {
	t    *Target
	addr netip.Addr
	used atomic.Int64
	refs int // guarded by t.mu
}

// HostBuffers returns the buffer account of a host address (shared by
// all its connections).
func (t *Target) HostBuffers(addr netip.Addr) *HostBuffers {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hostBufs[addr]
	if h == nil {
		if t.hostBufs == nil {
			t.hostBufs = map[netip.Addr]*HostBuffers{}
		}
		h = &HostBuffers{t: t, addr: addr}
		t.hostBufs[addr] = h
	}
	h.refs++
	return h
}

// Release drops a connection's reference.
func (h *HostBuffers) Release() {
	t := h.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if h.refs--; h.refs == 0 && t.hostBufs[h.addr] == h {
		delete(t.hostBufs, h.addr)
	}
}

// BufferHeld is the data buffer memory all hosts hold now (at most
// Options.BufferMemory).
func (t *Target) BufferHeld() int64 { return t.bufUsed.Load() }

// Held is the buffer memory the host holds now.
func (h *HostBuffers) Held() int64 { return h.used.Load() }

// Get takes a buffer of n bytes, within the host's share.
func (h *HostBuffers) Get(n int) (*bufpool.Buf, error) {
	t := h.t
	size := int64(bufpool.ClassSize(n))
	held := h.used.Add(size)
	total := t.bufUsed.Add(size)
	limit, mem := t.opts.MaxHostBuffer, t.opts.BufferMemory
	var err error
	switch {
	case held > limit:
		err = fmt.Errorf("%w: host %s holds %d bytes of data buffers, its limit (max_host_buffer %d)", ErrHostBufferLimit, h.addr, held-size, limit)
	case total > mem-mem/reserveDiv && held > min(reservePerHost, mem/reserveDiv/4):
		err = fmt.Errorf("%w: the buffer pool is down to its reserve (%d of %d bytes in use) and host %s already holds %d", ErrHostBufferLimit, total-size, mem, h.addr, held-size)
	}
	if err == nil {
		var b *bufpool.Buf
		if b, err = t.pool.Get(n); err == nil {
			return b, nil
		}
	}
	h.used.Add(-size)
	t.bufUsed.Add(-size)
	return nil, err
}

// Put returns a buffer taken with Get.
func (h *HostBuffers) Put(b *bufpool.Buf) {
	if b == nil {
		return
	}
	size := int64(cap(b.B))
	h.t.pool.Put(b)
	h.used.Add(-size)
	h.t.bufUsed.Add(-size)
}
