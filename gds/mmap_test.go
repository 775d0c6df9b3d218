//go:build linux

package gds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openMmap(t *testing.T, d *Device, name string, flag int, o Options) *File {
	t.Helper()
	o.Path, o.Reader = PathBounce, ReaderMmap
	f, err := d.OpenFile(name, flag, o)
	if err != nil {
		t.Fatal(err)
	}
	if f.Reader() != ReaderMmap || f.DirectIO() || !strings.Contains(f.Reason(), "mmap") {
		t.Fatalf("reader %q direct=%v (%s), want mmap, buffered", f.Reader(), f.DirectIO(), f.Reason())
	}
	return f
}

// TestMmapReads reads a file that is not a multiple of the page size
// through the mmap reader with unaligned requests and every depth. The
// fake driver defers copies until their event is synchronized and refuses
// to unpin pages a queued copy still reads, so unpinning early fails here.
func TestMmapReads(t *testing.T) {
	d := openDev(t)
	data := randBytes(7*8192+1234, 9)
	name := filepath.Join(t.TempDir(), "data")
	os.WriteFile(name, data, 0o644)
	for _, depth := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprintf("depth=%d", depth), func(t *testing.T) {
			f := openMmap(t, d, name, os.O_RDONLY, Options{Workers: 2, Depth: depth, Chunk: 8192})
			defer f.Close()
			readUnaligned(t, d, f, data)
		})
	}
}

// TestMmapOverlap submits requests for the same pages together: the
// driver refuses to pin pages twice, so all but one go through the
// staging buffers, and every copy still lands.
func TestMmapOverlap(t *testing.T) {
	d := openDev(t)
	data := randBytes(4*4096, 10)
	name := filepath.Join(t.TempDir(), "data")
	os.WriteFile(name, data, 0o644)
	f := openMmap(t, d, name, os.O_RDONLY, Options{Workers: 1, Depth: 3, Chunk: 4 * 4096})
	defer f.Close()
	const copies = 6
	buf, _ := d.Alloc(copies * int64(len(data)))
	defer buf.Close()
	// The overlap needs the worker to pin a chunk while an earlier copy
	// of the same pages is still queued; a worker that finds no chunk
	// waiting completes its copies first (and unpins). On a loaded
	// machine that can happen between every chunk of a round: read again,
	// a bounded number of rounds, until one overlapped.
	for round := 0; f.Transfer.(*bounce).staged.Load() == 0; round++ {
		if round == 50 {
			t.Fatal("no chunk went through the staging buffers in 50 rounds: the overlap was not exercised")
		}
		var reqs []Request
		for i := range copies {
			off := int64(i%2) * 100 // whole pages, and a range straddling them
			reqs = append(reqs, Request{Off: off, Len: int64(len(data)) - off, Dev: buf.Ptr() + DevicePtr(i*len(data))})
		}
		if err := buf.CopyFromHost(make([]byte, copies*len(data)), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Read(context.Background(), reqs); err != nil {
			t.Fatal(err)
		}
		for i, r := range reqs {
			if got := readBack(t, buf, int64(i*len(data)), r.Len); !bytes.Equal(got, data[r.Off:]) {
				t.Fatalf("round %d: copy %d differs from the file", round, i)
			}
		}
	}
}

// TestMmapWritesGrow writes past the end of an empty file opened O_RDWR
// with the mmap reader (writes go through the staging buffers), then reads
// them back: the pages beyond the size at open come through pread.
func TestMmapWritesGrow(t *testing.T) {
	d := openDev(t)
	name := filepath.Join(t.TempDir(), "data")
	os.WriteFile(name, nil, 0o644)
	data := randBytes(5*4096+17, 11)
	src, _ := d.Alloc(int64(len(data)))
	dst, _ := d.Alloc(int64(len(data)))
	defer src.Close()
	defer dst.Close()
	src.CopyFromHost(data, 0)
	f := openMmap(t, d, name, os.O_RDWR, Options{Workers: 2, Depth: 2, Chunk: 8192})
	defer f.Close()
	if err := f.Write(context.Background(), []Request{{Off: 0, Len: int64(len(data)), Dev: src.Ptr()}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Read(context.Background(), []Request{{Off: 0, Len: int64(len(data)), Dev: dst.Ptr()}}); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, dst, 0, int64(len(data))); !bytes.Equal(got, data) {
		t.Fatal("read back differs from what was written")
	}
}

func TestMmapRefused(t *testing.T) {
	d := openDev(t)
	name := filepath.Join(t.TempDir(), "data")
	os.WriteFile(name, randBytes(8192, 12), 0o644)
	_, err := d.Open(name, Options{Path: PathBounce, Reader: ReaderMmap, Direct: DirectOn})
	if err == nil || !strings.Contains(err.Error(), "O_DIRECT") {
		t.Errorf("mmap reader with O_DIRECT: err = %v", err)
	}
	t.Setenv("FAKECUDA_NO_HOST_REGISTER", "1")
	_, err = d.Open(name, Options{Path: PathBounce, Reader: ReaderMmap})
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "--reader pread") {
		t.Errorf("mmap reader without read-only registration: err = %v", err)
	}
	if _, err := ParseReader("mmap"); err != nil {
		t.Error(err)
	}
}

// TestMmapLargeChunks: the mmap reader pins no staging up front; reads it
// pins in place never pin one, and a worker that needs one (writes, chunks
// past the size at open) pins one of at most DefaultChunk whatever the
// chunk size, used a piece at a time.
func TestMmapLargeChunks(t *testing.T) {
	d := openDev(t)
	data := randBytes(2*DefaultChunk+4096+17, 13)
	n := int64(len(data))
	dst, _ := d.Alloc(n)
	defer dst.Close()
	o := Options{Workers: 2, Depth: 3, Chunk: 4 * DefaultChunk}

	cached := filepath.Join(t.TempDir(), "cached")
	os.WriteFile(cached, data, 0o644)
	f := openMmap(t, d, cached, os.O_RDONLY, o)
	if err := f.Read(context.Background(), []Request{{Off: 17, Len: n - 17, Dev: dst.Ptr()}}); err != nil {
		t.Fatal(err)
	}
	if s := f.Transfer.(*bounce).staged.Load(); s != 0 {
		t.Errorf("%d chunks went through pread; want all pinned in place", s)
	}
	f.Close()
	if got := readBack(t, dst, 0, n-17); !bytes.Equal(got, data[17:]) {
		t.Fatal("GPU memory differs from the file")
	}
	if got := d.StagingBytes(); got != 0 {
		t.Errorf("reads pinned in place pinned %d bytes of staging, want none", got)
	}

	grown := filepath.Join(t.TempDir(), "grown")
	os.WriteFile(grown, nil, 0o644)
	src, _ := d.Alloc(n)
	defer src.Close()
	src.CopyFromHost(data, 0)
	f = openMmap(t, d, grown, os.O_RDWR, o)
	if err := f.Write(context.Background(), []Request{{Off: 0, Len: n, Dev: src.Ptr()}}); err != nil {
		t.Fatal(err)
	}
	// The file grew past its size at open: these reads go through pread.
	dst.CopyFromHost(make([]byte, n), 0)
	if err := f.Read(context.Background(), []Request{{Off: 0, Len: n, Dev: dst.Ptr()}}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := readBack(t, dst, 0, n); !bytes.Equal(got, data) {
		t.Fatal("read back differs from what was written")
	}
	if got := d.StagingBytes(); got == 0 || got > 2*DefaultChunk || got%DefaultChunk != 0 {
		t.Errorf("staging: %d bytes pinned, want one DefaultChunk buffer per worker that needed one", got)
	}
}
