package backend

import (
	"sync"
	"sync/atomic"
)

// Op names a Backend method, for Faulty.
type Op string

// The operations Faulty can fail.
const (
	OpRead        Op = "read"
	OpWrite       Op = "write"
	OpFlush       Op = "flush"
	OpWriteZeroes Op = "writezeroes"
	OpDiscard     Op = "discard"
	OpClose       Op = "close"
)

// Indexes into allOps and Faulty.calls.
const (
	iRead = iota
	iWrite
	iFlush
	iWriteZeroes
	iDiscard
	iClose
)

var allOps = [...]Op{iRead: OpRead, iWrite: OpWrite, iFlush: OpFlush, iWriteZeroes: OpWriteZeroes, iDiscard: OpDiscard, iClose: OpClose}

// Faulty wraps a Backend so that tests of the target core can make its
// operations fail, in the manner of Pebble's vfs/errorfs. A failed call
// does not reach the inner backend. With no failure armed it only counts
// calls and forwards them, without allocating.
type Faulty struct {
	inner Backend
	armed atomic.Int32 // > 0 while rules may be pending; lets calls skip mu
	calls [len(allOps)]atomic.Int64

	mu   sync.Mutex
	next map[Op][]error                  // guarded by mu; one-shot failures, in order
	hook func(op Op, off, n int64) error // guarded by mu
}

var _ Backend = (*Faulty)(nil)

// NewFaulty wraps inner. Closing the Faulty closes inner.
func NewFaulty(inner Backend) *Faulty {
	return &Faulty{inner: inner, next: make(map[Op][]error)}
}

// Inner returns the wrapped backend.
func (f *Faulty) Inner() Backend { return f.inner }

// FailNext makes the next call of op return err. Calls queue up: two
// FailNext(OpWrite, ...) fail the next two writes.
func (f *Faulty) FailNext(op Op, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next[op] = append(f.next[op], err)
	f.armed.Add(1)
}

// SetHook installs h, called before every operation that FailNext does not
// fail, with the operation, its offset and its length in bytes (0, 0 for
// Flush and Close). When h returns an error the call returns it without
// reaching the inner backend. nil removes the hook. h may be called
// concurrently.
func (f *Faulty) SetHook(h func(op Op, off, n int64) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if (f.hook == nil) != (h == nil) {
		if h != nil {
			f.armed.Add(1)
		} else {
			f.armed.Add(-1)
		}
	}
	f.hook = h
}

// Reset removes every pending failure and the hook.
func (f *Faulty) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.next)
	f.hook = nil
	f.armed.Store(0)
}

// Calls returns how many times op was called, failed calls included.
func (f *Faulty) Calls(op Op) int64 {
	for i, o := range allOps {
		if o == op {
			return f.calls[i].Load()
		}
	}
	return 0
}

// fault counts the call and returns the error it should fail with, if any.
func (f *Faulty) fault(i int, off, n int64) error {
	f.calls[i].Add(1)
	if f.armed.Load() == 0 {
		return nil
	}
	op := allOps[i]
	f.mu.Lock()
	if q := f.next[op]; len(q) > 0 {
		err := q[0]
		if len(q) == 1 {
			delete(f.next, op)
		} else {
			f.next[op] = q[1:]
		}
		f.armed.Add(-1)
		f.mu.Unlock()
		return err
	}
	h := f.hook
	f.mu.Unlock()
	if h != nil {
		return h(op, off, n)
	}
	return nil
}

// Size returns the inner backend's size.
func (f *Faulty) Size() int64 { return f.inner.Size() }

// BlockSize returns the inner backend's block size.
func (f *Faulty) BlockSize() int { return f.inner.BlockSize() }

// ReadAt reads from the inner backend unless a failure is armed.
func (f *Faulty) ReadAt(p []byte, off int64) error {
	if err := f.fault(iRead, off, int64(len(p))); err != nil {
		return err
	}
	return f.inner.ReadAt(p, off)
}

// WriteAt writes to the inner backend unless a failure is armed.
func (f *Faulty) WriteAt(p []byte, off int64, fua bool) error {
	if err := f.fault(iWrite, off, int64(len(p))); err != nil {
		return err
	}
	return f.inner.WriteAt(p, off, fua)
}

// Flush flushes the inner backend unless a failure is armed.
func (f *Faulty) Flush() error {
	if err := f.fault(iFlush, 0, 0); err != nil {
		return err
	}
	return f.inner.Flush()
}

// WriteZeroes zeros the range on the inner backend unless a failure is armed.
func (f *Faulty) WriteZeroes(off, n int64) error {
	if err := f.fault(iWriteZeroes, off, n); err != nil {
		return err
	}
	return f.inner.WriteZeroes(off, n)
}

// Discard discards the range on the inner backend unless a failure is armed.
func (f *Faulty) Discard(off, n int64) error {
	if err := f.fault(iDiscard, off, n); err != nil {
		return err
	}
	return f.inner.Discard(off, n)
}

// VolatileWriteCache returns the inner backend's.
func (f *Faulty) VolatileWriteCache() bool { return f.inner.VolatileWriteCache() }

// Kind returns the inner backend's kind.
func (f *Faulty) Kind() string { return f.inner.Kind() }

// Close closes the inner backend unless a failure is armed; an armed
// failure leaves it open.
func (f *Faulty) Close() error {
	if err := f.fault(iClose, 0, 0); err != nil {
		return err
	}
	return f.inner.Close()
}
