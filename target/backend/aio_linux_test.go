package backend

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/flashpath/flashpath/internal/testutil"
)

// doneCh is a Completer that sends the outcome on a channel.
type doneCh chan error

func (d doneCh) IODone(err error) { d <- err }

// TestFileAsync writes and reads back more blocks at once than the rings
// hold (declined I/O goes the synchronous way, as the core does), on
// O_DIRECT and buffered files, and checks every byte.
func TestFileAsync(t *testing.T) {
	const blocks, bs = 1200, 4096
	for dname, dir := range fileDirs(t) {
		for _, buffered := range []bool{false, true} {
			f := openTestFile(t, filepath.Join(dir, "async.img"), FileOptions{Size: blocks * bs, BlockSize: bs, Buffered: buffered})
			if !f.AsyncIO() {
				// The synchronous path is tested elsewhere.
				testutil.SkipIfNotSupported(t, f.aio.err)
			}
			want := alignedBuf(blocks*bs, 4096)
			for i := range want {
				want[i] = byte(rand.Uint32())
			}
			got := alignedBuf(blocks*bs, 4096)
			for _, write := range []bool{true, false} {
				done := make(doneCh, blocks)
				async := 0
				for _, i := range rand.Perm(blocks) {
					off := int64(i * bs)
					p := got[off : off+bs]
					var ok bool
					if write {
						p = want[off : off+bs]
						ok = f.WriteAsync(p, off, i%7 == 0, done)
					} else {
						ok = f.ReadAsync(p, off, done)
					}
					switch {
					case ok:
						async++
					case write:
						done.IODone(f.WriteAt(p, off, false))
					default:
						done.IODone(f.ReadAt(p, off))
					}
				}
				for range blocks {
					if err := <-done; err != nil {
						t.Fatalf("%s buffered=%v write=%v: %v", dname, buffered, write, err)
					}
				}
				if async == 0 {
					t.Fatalf("%s buffered=%v write=%v: every I/O declined", dname, buffered, write)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s buffered=%v: read back differs from what was written", dname, buffered)
			}
		}
	}
}

// TestFileAsyncEdges: reads past a short file's end return zeros; bad
// ranges, read-only writes, unaligned O_DIRECT buffers and the sync option
// are declined (the synchronous call reports them); Close waits for I/O in
// flight and later I/O is declined.
func TestFileAsyncEdges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.img")
	f := openTestFile(t, path, FileOptions{Size: 64 << 10})
	if !f.AsyncIO() {
		testutil.SkipIfNotSupported(t, f.aio.err)
	}
	buf := alignedBuf(64<<10, 4096)
	for i := range buf {
		buf[i] = 0x77
	}
	if err := f.WriteAt(buf, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 8192+100); err != nil {
		t.Fatal(err)
	}
	done := make(doneCh, 8)
	for i := range buf {
		buf[i] = 0xff
	}
	if !f.ReadAsync(buf, 0, done) {
		t.Fatal("read across EOF declined")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i, c := range buf {
		if want := map[bool]byte{true: 0x77, false: 0}[i < 8192+100]; c != want {
			t.Fatalf("byte %d = %#x, want %#x", i, c, want)
		}
	}
	if f.ReadAsync(buf[:512], 64<<10, done) || f.ReadAsync(buf[:100], 0, done) || f.WriteAsync(buf[:512], -512, false, done) {
		t.Error("out of range or unaligned length accepted")
	}
	if f.Direct() && f.ReadAsync(buf[1:513], 0, done) {
		t.Error("unaligned O_DIRECT buffer accepted")
	}
	ro := openTestFile(t, path, FileOptions{ReadOnly: true})
	if ro.WriteAsync(buf[:512], 0, false, done) {
		t.Error("write to a read-only backend accepted")
	}
	// Where pwritev2 lacks RWF_DSYNC, a write with FUA goes the synchronous
	// way (pwrite, then fdatasync): io_uring would complete it unsynced.
	f.noRWF.Store(true)
	if f.WriteAsync(buf[:4096], 0, true, done) {
		t.Error("FUA write taken asynchronously without RWF_DSYNC")
	}
	f.noRWF.Store(false)
	sy := openTestFile(t, path, FileOptions{SyncIO: true})
	if sy.AsyncIO() || sy.ReadAsync(buf[:512], 0, done) {
		t.Error("SyncIO backend took an asynchronous read")
	}
	for k := range 4 {
		if !f.ReadAsync(buf[k*4096:(k+1)*4096], int64(k*4096), done) {
			t.Fatal("read declined")
		}
	}
	f.Close()
	if len(done) != 4 {
		t.Fatalf("Close returned with %d of 4 reads completed", len(done))
	}
	if f.ReadAsync(buf[:512], 0, done) {
		t.Error("read after Close accepted")
	}
}

// TestFileAsyncNoAlloc: starting and completing an asynchronous read
// allocates nothing.
func TestFileAsyncNoAlloc(t *testing.T) {
	f := openTestFile(t, filepath.Join(t.TempDir(), "na.img"), FileOptions{Size: 1 << 20})
	if !f.AsyncIO() {
		testutil.SkipIfNotSupported(t, f.aio.err)
	}
	buf := alignedBuf(4096, 4096)
	done := make(doneCh, 1)
	allocs := testing.AllocsPerRun(200, func() {
		if !f.ReadAsync(buf, 8192, done) {
			t.Fatal("declined")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per asynchronous read", allocs)
	}
}
