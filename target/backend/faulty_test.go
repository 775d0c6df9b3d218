package backend

import (
	"errors"
	"sync"
	"syscall"
	"testing"
)

func TestFaulty(t *testing.T) {
	inner, err := NewNull(1<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFaulty(inner)
	p := make([]byte, 512)

	// Unarmed: forwards, counts, does not allocate.
	if a := testing.AllocsPerRun(20, func() {
		if err := f.WriteAt(p, 0, false); err != nil {
			t.Fatal(err)
		}
		if err := f.ReadAt(p, 0); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("unarmed Faulty allocates %v times per write+read", a)
	}
	if err := f.ReadAt(p, 1<<20); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("inner errors pass through: got %v", err)
	}

	// FailNext queues one-shot failures per operation.
	f.FailNext(OpWrite, syscall.EIO)
	f.FailNext(OpWrite, syscall.ENOSPC)
	f.FailNext(OpFlush, syscall.EIO)
	if err := f.ReadAt(p, 0); err != nil {
		t.Errorf("read with only writes armed: %v", err)
	}
	if err := f.WriteAt(p, 0, true); !errors.Is(err, syscall.EIO) {
		t.Errorf("first armed write: %v, want EIO", err)
	}
	if err := f.WriteAt(p, 0, false); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("second armed write: %v, want ENOSPC", err)
	}
	if err := f.WriteAt(p, 0, false); err != nil {
		t.Errorf("third write: %v, want success", err)
	}
	if err := f.Flush(); !errors.Is(err, syscall.EIO) {
		t.Errorf("armed flush: %v, want EIO", err)
	}
	if err := f.Flush(); err != nil {
		t.Errorf("second flush: %v", err)
	}

	// A hook sees every operation with its range.
	var mu sync.Mutex
	var seen []Op
	f.SetHook(func(op Op, off, n int64) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, op)
		if op == OpDiscard && off == 4096 {
			return syscall.EROFS
		}
		return nil
	})
	if err := f.Discard(4096, 512); !errors.Is(err, syscall.EROFS) {
		t.Errorf("hooked discard: %v, want EROFS", err)
	}
	if err := f.Discard(0, 512); err != nil {
		t.Errorf("discard the hook lets through: %v", err)
	}
	if err := f.WriteZeroes(0, 512); err != nil {
		t.Errorf("write zeroes: %v", err)
	}
	if len(seen) != 3 || seen[0] != OpDiscard || seen[2] != OpWriteZeroes {
		t.Errorf("hook saw %v", seen)
	}

	// Reset disarms everything.
	f.FailNext(OpRead, syscall.EIO)
	f.Reset()
	if err := f.ReadAt(p, 0); err != nil {
		t.Errorf("read after Reset: %v", err)
	}
	f.FailNext(OpClose, syscall.EIO)
	if err := f.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("armed close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close: %v", err)
	}

	for op, want := range map[Op]int64{OpRead: 21 + 3, OpWrite: 21 + 3, OpFlush: 2, OpDiscard: 2, OpWriteZeroes: 1, OpClose: 2, "bogus": 0} {
		if got := f.Calls(op); got != want {
			t.Errorf("Calls(%s) = %d, want %d", op, got, want)
		}
	}
	if f.Inner() != Backend(inner) || f.Kind() != "null" || f.Size() != 1<<20 || f.BlockSize() != 512 || f.VolatileWriteCache() {
		t.Error("Faulty does not report its inner backend's geometry")
	}
}
