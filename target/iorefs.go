package target

import (
	"sync"
	"sync/atomic"
	"time"
)

// ioRefs counts the I/O in flight on a namespace's backend so that its
// removal can wait for them before closing the backend: a closed fd may be
// reused by another file, and unmapped memory faults.
type ioRefs struct {
	n       atomic.Int64
	closing atomic.Bool
	once    sync.Once
	drained chan struct{} // closed once closing and nothing is in flight
}

func newIORefs() *ioRefs { return &ioRefs{drained: make(chan struct{})} }

// acquire takes a reference for one command, or reports false when the
// namespace is going away (the command must not touch the backend).
func (r *ioRefs) acquire() bool {
	r.n.Add(1)
	if r.closing.Load() {
		r.release()
		return false
	}
	return true
}

func (r *ioRefs) release() {
	if r.n.Add(-1) == 0 && r.closing.Load() {
		r.once.Do(func() { close(r.drained) })
	}
}

// drain refuses new references and waits up to timeout for those taken to
// be released; it reports whether they all were.
func (r *ioRefs) drain(timeout time.Duration) bool {
	r.closing.Store(true)
	if r.n.Load() == 0 {
		r.once.Do(func() { close(r.drained) })
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-r.drained:
		return true
	case <-t.C:
		return false
	}
}
