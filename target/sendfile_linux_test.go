package target

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

// failingSource is a buffered file whose SendFailed is counted.
type failingSource struct {
	*backend.File
	failed atomic.Int32
}

func (f *failingSource) SendFailed(err error) {
	f.failed.Add(1)
	f.File.SendFailed(err)
}

// fileQueue is an I/O queue of a controller whose namespace 1 is a
// buffered file of 1 MiB of a pattern, on a queue whose transport sends
// reads of 64 KiB or more from the file.
func fileQueue(t testing.TB) (*Queue, *Namespace, *failingSource, []byte) {
	t.Helper()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	path := filepath.Join(t.TempDir(), "ns")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := backend.OpenFile(path, backend.FileOptions{Buffered: true, BlockSize: 4096, SyncIO: true})
	if err != nil {
		t.Fatal(err)
	}
	src := &failingSource{File: f}
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	ns := addNS(t, ss, 1, src)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	io := connectIO(t, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1)
	io.q.SendFromFiles(64 << 10)
	return io.q, ns, src, data
}

// TestReadFromFile: a large read on a queue that sends from files leaves
// its data in the file (Request.File), counted, with the namespace held
// until FileSent; a small one is read into Data; after a failed send the
// namespace's reads are copied again.
func TestReadFromFile(t *testing.T) {
	q, ns, src, data := fileQueue(t)
	read := func(slba uint64, blocks uint32) *Request {
		r := &Request{Cmd: rwSQE(nvmeof.NVMRead, 1, slba, blocks), Data: make([]byte, int(blocks)*4096)}
		q.Execute(r)
		if !r.Status().OK() {
			t.Fatalf("read %d blocks at %d: %v", blocks, slba, r.Status())
		}
		return r
	}

	small := read(3, 2)
	if small.File.N != 0 || !bytes.Equal(small.Data, data[3*4096:5*4096]) {
		t.Fatalf("8 KiB read: File %+v, or its data differs", small.File)
	}
	r := read(16, 32)
	want := FileSpan{FD: r.File.FD, Off: 16 * 4096, N: 32 * 4096}
	if r.File != want || r.File.FD <= 0 {
		t.Fatalf("128 KiB read: File %+v, want %+v", r.File, want)
	}
	if got := ns.Stats(); got.BytesFromFile != 128<<10 || got.BytesRead != 136<<10 {
		t.Errorf("BytesFromFile %d of BytesRead %d, want %d of %d", got.BytesFromFile, got.BytesRead, 128<<10, 136<<10)
	}
	if n := ns.InFlight(); n != 1 {
		t.Errorf("InFlight %d while the transport sends from the file, want 1", n)
	}
	r.FileSent(nil)
	r.FileSent(nil)
	if n := ns.InFlight(); n != 0 || r.File.N != 0 {
		t.Errorf("after FileSent: InFlight %d, File %+v; want 0 and none", n, r.File)
	}

	r = read(0, 16)
	r.FileSent(errors.New("sendfile: reading the file: input/output error"))
	if src.failed.Load() != 1 {
		t.Fatalf("SendFailed called %d times, want 1", src.failed.Load())
	}
	r = read(0, 16)
	if r.File.N != 0 || !bytes.Equal(r.Data, data[:64<<10]) {
		t.Fatalf("read after a failed send: File %+v, or its data differs", r.File)
	}
}

// TestReadFromFileDoesNotAllocate: leaving a read in the file and
// releasing it allocate nothing.
func TestReadFromFileDoesNotAllocate(t *testing.T) {
	q, _, _, _ := fileQueue(t)
	r := &Request{Cmd: rwSQE(nvmeof.NVMRead, 1, 0, 32), Data: make([]byte, 128<<10)}
	allocs := testing.AllocsPerRun(200, func() {
		q.Execute(r)
		r.FileSent(nil)
	})
	if allocs != 0 || !r.Status().OK() {
		t.Errorf("Execute + FileSent allocate %.1f times per call (status %v), want 0", allocs, r.Status())
	}
}
