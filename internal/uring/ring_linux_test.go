package uring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func newRing(t testing.TB, entries uint32) *Ring {
	t.Helper()
	r, err := New(entries, nil)
	if errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

func TestABILayout(t *testing.T) {
	sizes := []struct {
		name      string
		got, want uintptr
	}{
		{"io_uring_sqe", unsafe.Sizeof(SQE{}), 64},
		{"io_uring_cqe", unsafe.Sizeof(CQE{}), 16},
		{"io_uring_params", unsafe.Sizeof(params{}), 120},
		{"io_sqring_offsets", unsafe.Sizeof(sqringOffsets{}), 40},
		{"io_cqring_offsets", unsafe.Sizeof(cqringOffsets{}), 40},
		{"sqe.off", unsafe.Offsetof(SQE{}.Off), 8},
		{"sqe.addr", unsafe.Offsetof(SQE{}.Addr), 16},
		{"sqe.len", unsafe.Offsetof(SQE{}.Len), 24},
		{"sqe.rw_flags", unsafe.Offsetof(SQE{}.OpFlags), 28},
		{"sqe.user_data", unsafe.Offsetof(SQE{}.UserData), 32},
		{"sqe.buf_index", unsafe.Offsetof(SQE{}.BufIndex), 40},
		{"sqe.addr3", unsafe.Offsetof(SQE{}.Addr3), 48},
		{"cqe.res", unsafe.Offsetof(CQE{}.Res), 8},
		{"params.sq_off", unsafe.Offsetof(params{}.SQOff), 40},
		{"params.cq_off", unsafe.Offsetof(params{}.CQOff), 80},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("%s: %d, want %d", s.name, s.got, s.want)
		}
	}
}

func tempFile(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "data"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

// reapN waits for and collects exactly n completions.
func reapN(t *testing.T, r *Ring, n int) []CQE {
	t.Helper()
	out := make([]CQE, 0, n)
	buf := make([]CQE, n)
	for len(out) < n {
		if err := r.WaitCQE(); err != nil {
			t.Fatal(err)
		}
		k := r.Reap(buf[:n-len(out)])
		out = append(out, buf[:k]...)
	}
	return out
}

func pattern(block, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(block*31 + i*7)
	}
	return b
}

func TestWriteThenReadBatch(t *testing.T) {
	const bs, nblk = 4096, 8
	r := newRing(t, 16)
	f := tempFile(t, bs*nblk)
	fd := int32(f.Fd())

	wbufs := make([][]byte, nblk) // kept reachable until reaped
	for i := range nblk {
		wbufs[i] = pattern(i, bs)
		if err := r.PrepWrite(fd, wbufs[i], uint64(i*bs), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if r.Pending() != nblk {
		t.Fatalf("pending %d, want %d", r.Pending(), nblk)
	}
	if n, err := r.Submit(); err != nil || n != nblk {
		t.Fatalf("submit = %d, %v; want %d", n, err, nblk)
	}
	seen := map[uint64]bool{}
	for _, c := range reapN(t, r, nblk) {
		if c.Res != bs {
			t.Fatalf("write %d: res %d (%v)", c.UserData, c.Res, c.Err())
		}
		seen[c.UserData] = true
	}
	runtime.KeepAlive(wbufs)
	if len(seen) != nblk {
		t.Fatalf("user data not unique: %v", seen)
	}

	// The kernel sees what io_uring wrote.
	got := make([]byte, bs)
	if _, err := f.ReadAt(got, 3*bs); err != nil || !bytes.Equal(got, pattern(3, bs)) {
		t.Fatalf("block 3 on disk differs (err %v): %v vs %v", err, got[:8], pattern(3, bs)[:8])
	}

	bufs := make([][]byte, nblk)
	for i := range nblk {
		bufs[i] = make([]byte, bs)
		if err := r.PrepRead(fd, bufs[i], uint64(i*bs), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.SubmitAndWait(nblk); err != nil {
		t.Fatal(err)
	}
	for _, c := range reapN(t, r, nblk) {
		if c.Res != bs {
			t.Fatalf("read %d: res %d", c.UserData, c.Res)
		}
		if !bytes.Equal(bufs[c.UserData], pattern(int(c.UserData), bs)) {
			t.Fatalf("read %d: data differs", c.UserData)
		}
	}
}

func mmapBuf(t *testing.T, size int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

func TestFixedBuffersFixedFilesFsync(t *testing.T) {
	const bs = 4096
	r := newRing(t, 8)
	f := tempFile(t, 4*bs)
	wbuf, rbuf := mmapBuf(t, 2*bs), mmapBuf(t, 2*bs)
	if err := r.RegisterBuffers([][]byte{wbuf, rbuf}); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterFiles([]int32{int32(f.Fd())}); err != nil {
		t.Fatal(err)
	}
	copy(wbuf, pattern(1, 2*bs))

	// Write the second half of registered buffer 0 to file index 0.
	if err := r.PrepWriteFixed(0, wbuf[bs:], bs, 0, 1); err != nil {
		t.Fatal(err)
	}
	r.sqes[(r.sqeTail-1)&r.sqMask].Flags |= SQEFixedFile
	if _, err := r.SubmitAndWait(1); err != nil {
		t.Fatal(err)
	}
	if c := reapN(t, r, 1)[0]; c.Res != bs || c.UserData != 1 {
		t.Fatalf("write fixed: %+v (%v)", c, c.Err())
	}
	if err := r.PrepFsync(int32(f.Fd()), FsyncDatasync, 2); err != nil {
		t.Fatal(err)
	}
	if err := r.PrepReadFixed(int32(f.Fd()), rbuf[:bs], bs, 1, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SubmitAndWait(2); err != nil {
		t.Fatal(err)
	}
	for _, c := range reapN(t, r, 2) {
		switch {
		case c.UserData == 2 && c.Res != 0:
			t.Fatalf("fsync: %v", c.Err())
		case c.UserData == 3 && c.Res != bs:
			t.Fatalf("read fixed: res %d (%v)", c.Res, c.Err())
		}
	}
	if !bytes.Equal(rbuf[:bs], wbuf[bs:]) {
		t.Fatal("read fixed returned other data than write fixed wrote")
	}

	// A fixed read outside the registered buffer is refused per request.
	outside := make([]byte, bs)
	if err := r.PrepReadFixed(int32(f.Fd()), outside, 0, 1, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SubmitAndWait(1); err != nil {
		t.Fatal(err)
	}
	if c := reapN(t, r, 1)[0]; c.Res != -int32(syscall.EFAULT) {
		t.Fatalf("read fixed outside buffer: res %d, want -EFAULT", c.Res)
	}

	if err := r.UnregisterFiles(); err != nil {
		t.Fatal(err)
	}
	if err := r.UnregisterBuffers(); err != nil {
		t.Fatal(err)
	}
}

func TestCQEErrorIsErrno(t *testing.T) {
	r := newRing(t, 4)
	if err := r.PrepRead(-1, make([]byte, 16), 0, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SubmitAndWait(1); err != nil {
		t.Fatal(err)
	}
	c := reapN(t, r, 1)[0]
	if c.UserData != 7 || !errors.Is(c.Err(), syscall.EBADF) {
		t.Fatalf("got %+v err %v, want EBADF", c, c.Err())
	}
}

func TestSQFullThenDrain(t *testing.T) {
	r := newRing(t, 4)
	n := r.SQEntries()
	for i := range n {
		if err := r.PrepNop(uint64(i)); err != nil {
			t.Fatalf("nop %d: %v", i, err)
		}
	}
	if r.SQSpace() != 0 || r.NextSQE() != nil {
		t.Fatal("ring should be full")
	}
	if err := r.PrepNop(99); !errors.Is(err, ErrSQFull) {
		t.Fatalf("err %v, want ErrSQFull", err)
	}
	if _, err := r.SubmitAndWait(uint32(n)); err != nil {
		t.Fatal(err)
	}
	if got := len(reapN(t, r, n)); got != n {
		t.Fatalf("reaped %d", got)
	}
	if r.SQSpace() != n {
		t.Fatalf("space %d after drain, want %d", r.SQSpace(), n)
	}
	// Wrap the ring indices several times.
	for round := range 5 * n {
		if err := r.PrepNop(uint64(round)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.SubmitAndWait(1); err != nil {
			t.Fatal(err)
		}
		if c := reapN(t, r, 1)[0]; c.UserData != uint64(round) {
			t.Fatalf("round %d: user data %d", round, c.UserData)
		}
	}
}

func TestSubmitReapDoesNotAllocate(t *testing.T) {
	r := newRing(t, 32)
	var cqes [32]CQE
	allocs := testing.AllocsPerRun(100, func() {
		for i := range 16 {
			_ = r.PrepNop(uint64(i))
		}
		_, _ = r.SubmitAndWait(16)
		for got := 0; got < 16; {
			got += r.Reap(cqes[:])
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch, want 0", allocs)
	}
}

func TestCloseTwice(t *testing.T) {
	r, err := New(2, nil)
	if errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	fd := r.Fd()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		// The fd number may have been reused by a parallel test; only
		// report when it is still an io_uring.
		if p, _ := os.Readlink("/proc/self/fd/" + itoa(fd)); p == "anon_inode:[io_uring]" {
			t.Fatal("ring fd still open after Close")
		}
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

func TestNewRejectsBadEntries(t *testing.T) {
	if _, err := New(2, nil); errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
	if _, err := New(0, nil); err == nil || errors.Is(err, ErrNotSupported) {
		t.Fatalf("New(0) = %v, want EINVAL not wrapped in ErrNotSupported", err)
	}
}

func BenchmarkNopBatch32(b *testing.B) {
	r := newRing(b, 64)
	var cqes [64]CQE
	b.ReportAllocs()
	for b.Loop() {
		for i := range 32 {
			_ = r.PrepNop(uint64(i))
		}
		_, _ = r.SubmitAndWait(32)
		for got := 0; got < 32; {
			got += r.Reap(cqes[:])
		}
	}
	b.ReportMetric(float64(b.N*32)/b.Elapsed().Seconds(), "ops/s")
}
