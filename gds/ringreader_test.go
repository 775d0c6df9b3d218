//go:build linux

package gds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/flashpath/flashpath/gds/internal/cuda"
	"github.com/flashpath/flashpath/internal/testutil"
)

// directFile writes data to a temporary file and skips the test where the
// file system refuses O_DIRECT (tmpfs).
func directFile(t *testing.T, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	testutil.SkipIfNotSupported(t, testutil.DirectIO(dir))
	name := filepath.Join(dir, "data")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// openURing opens name for the io_uring reader, skipping where the kernel
// refuses io_uring (seccomp, io_uring_disabled).
func openURing(t *testing.T, d *Device, name string, flag int, o Options) *File {
	t.Helper()
	o.Path, o.Reader = PathBounce, ReaderURing
	f, err := d.OpenFile(name, flag, o)
	if errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if f.Reader() != ReaderURing {
		t.Fatalf("reader %q, want io_uring (%s)", f.Reader(), f.Reason())
	}
	return f
}

// TestURingReads reads a file that is not a multiple of 4 KiB with
// O_DIRECT through the io_uring reader, with unaligned requests and every
// depth: more reads in flight than staging buffers or a buffer reused
// before its (deferred, in the fake) copy completed corrupts the result.
func TestURingReads(t *testing.T) {
	d := openDev(t)
	data := randBytes(7*8192+1234, 7)
	name := directFile(t, data)
	for _, depth := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprintf("depth=%d", depth), func(t *testing.T) {
			f := openURing(t, d, name, os.O_RDONLY, Options{Direct: DirectOn, Workers: 2, Depth: depth, Chunk: 8192})
			defer f.Close()
			if !f.DirectIO() {
				t.Fatal("not O_DIRECT")
			}
			readUnaligned(t, d, f, data)
		})
	}
}

// readUnaligned reads all of data's file through f with requests that
// start and end off the 4 KiB grid (and an empty one), checks the GPU
// memory against data, then reads past the end of the file.
func readUnaligned(t *testing.T, d *Device, f *File, data []byte) {
	t.Helper()
	buf, err := d.Alloc(int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	n := int64(len(data))
	reqs := []Request{
		{Off: 0, Len: 100, Dev: buf.Ptr()},
		{Off: 100, Len: 3*8192 - 7, Dev: buf.Ptr() + 100},
		{Off: 5000, Len: 0, Dev: buf.Ptr()},
		{Off: 3*8192 + 93, Len: n - (3*8192 + 93), Dev: buf.Ptr() + 3*8192 + 93},
	}
	if err := f.Read(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, buf, 0, n); !bytes.Equal(got, data) {
		t.Fatal("GPU memory differs from the file")
	}
	// Past the end of the file: an unexpected EOF, not garbage.
	err = f.Read(context.Background(), []Request{{Off: 4096, Len: n, Dev: buf.Ptr()}})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read past EOF: err = %v", err)
	}
}

// TestURingWritesThenReads mixes O_DIRECT writes and reads on one file
// opened O_RDWR: a write waits for the reads in flight, then reads see it.
func TestURingWritesThenReads(t *testing.T) {
	d := openDev(t)
	const size = 16 * 4096
	name := directFile(t, make([]byte, size))
	data := randBytes(size, 8)
	src, _ := d.Alloc(size)
	dst, _ := d.Alloc(size)
	defer src.Close()
	defer dst.Close()
	src.CopyFromHost(data, 0)
	f := openURing(t, d, name, os.O_RDWR, Options{Direct: DirectOn, Workers: 2, Depth: 3, Chunk: 8192})
	defer f.Close()
	var reqs []Request
	for off := int64(0); off < size; off += 4096 {
		reqs = append(reqs, Request{Op: OpWrite, Off: off, Len: 4096, Dev: src.Ptr() + DevicePtr(off)})
		if off > 0 {
			reqs = append(reqs, Request{Op: OpRead, Off: 0, Len: 4096, Dev: dst.Ptr()})
		}
	}
	if err := Run(context.Background(), f, reqs); err != nil {
		t.Fatal(err)
	}
	if err := f.Read(context.Background(), []Request{{Len: size, Dev: dst.Ptr()}}); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, dst, 0, size); !bytes.Equal(got, data) {
		t.Fatal("read back differs from what was written")
	}
	if disk, _ := os.ReadFile(name); !bytes.Equal(disk, data) {
		t.Fatal("file differs from GPU memory")
	}
}

// TestURingCopyError: a failing host-to-device copy fails its request.
func TestURingCopyError(t *testing.T) {
	d := openDev(t)
	data := randBytes(8*4096, 9)
	name := directFile(t, data)
	f := openURing(t, d, name, os.O_RDONLY, Options{Direct: DirectOn, Workers: 1, Depth: 2, Chunk: 4096})
	defer f.Close()
	buf, _ := d.Alloc(int64(len(data)))
	defer buf.Close()
	t.Setenv("FAKECUDA_FAIL_H2D_AFTER", "2")
	err := f.Read(context.Background(), []Request{{Len: int64(len(data)), Dev: buf.Ptr()}})
	var cerr *cuda.Error
	if !errors.As(err, &cerr) {
		t.Errorf("failed copy: err = %v, want a CUDA error", err)
	}
}

// TestReaderChoice: auto picks io_uring for O_DIRECT reads and pread for
// buffered ones; the file says which, and why when io_uring was refused.
func TestReaderChoice(t *testing.T) {
	d := openDev(t)
	name := directFile(t, randBytes(3*4096, 10))
	for _, tc := range []struct {
		o    Options
		want Reader
	}{
		{Options{Path: PathBounce, Direct: DirectOn, Workers: 1, Chunk: 4096}, ReaderURing},
		{Options{Path: PathBounce, Direct: DirectOff, Workers: 1, Chunk: 4096}, ReaderPread},
		{Options{Path: PathBounce, Direct: DirectOn, Reader: ReaderPread, Workers: 1, Chunk: 4096}, ReaderPread},
	} {
		f, err := d.Open(name, tc.o)
		if err != nil {
			t.Fatal(err)
		}
		got, reason := f.Reader(), f.Reason()
		f.Close()
		if tc.want == ReaderURing && got == ReaderPread {
			if _, err := ParseReader("io_uring"); err == nil && !bytes.Contains([]byte(reason), []byte("io_uring")) {
				t.Errorf("io_uring refused without saying why: %s", reason)
			}
			continue // the kernel refuses io_uring here
		}
		if got != tc.want {
			t.Errorf("%+v: reader %q (%s), want %q", tc.o, got, reason, tc.want)
		}
	}
	if _, err := ParseReader("aio"); err == nil {
		t.Error("ParseReader(aio) succeeded")
	}
}
