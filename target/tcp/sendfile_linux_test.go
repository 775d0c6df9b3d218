package tcp

import (
	"bytes"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

// patternFile writes n bytes of a pattern to a new file and returns its
// path and bytes.
func patternFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*31 + i>>9)
	}
	path := filepath.Join(t.TempDir(), "ns.img")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// TestSendFromFile: reads of a buffered file namespace go from the page
// cache into the socket, and the host gets the file's bytes: whole
// reads, a read across the end of a file whose last block is partial
// (zeros after it), and data written over NVMe/TCP a moment before. Small
// reads, and connections with a data digest, are copied as before.
func TestSendFromFile(t *testing.T) {
	const size = 3<<20 + 1000 // the last 512-byte block is partial
	path, data := patternFile(t, size)
	be, err := backend.OpenFile(path, backend.FileOptions{Buffered: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	tt := startTarget(t, be)
	ns := tt.ss.Namespace(1)
	want := append(data, make([]byte, int(be.Size())-size)...)
	check := func(s *tcppeer.Session, off int64, n int) {
		t.Helper()
		got, st := s.Read(off, n)
		if !st.OK() {
			t.Fatalf("read %d at %d: %v", n, off, st)
		}
		if !bytes.Equal(got, want[off:off+int64(n)]) {
			t.Fatalf("read %d at %d: data differs from the file's", n, off)
		}
	}
	large := []struct {
		off int64
		n   int
	}{{0, 1 << 20}, {1<<20 + 512, 256 << 10}, {be.Size() - 512<<10, 512 << 10}}

	plain := tt.session(t, false, false)
	var sent uint64
	for _, rd := range large {
		check(plain, rd.off, rd.n)
		sent += uint64(rd.n)
	}
	check(plain, 4096, 64<<10) // below sendfileMin: copied
	if got := ns.Stats().BytesFromFile; got != sent {
		t.Errorf("BytesFromFile %d, want %d: the large reads were not sent from the file", got, sent)
	}

	digest := tt.session(t, true, true)
	for _, rd := range large {
		check(digest, rd.off, rd.n)
	}
	if got := ns.Stats().BytesFromFile; got != sent {
		t.Errorf("BytesFromFile %d after reads with a data digest, want %d: they must be copied", got, sent)
	}
	if n := ns.InFlight(); n != 0 {
		t.Errorf("InFlight %d after every read completed, want 0", n)
	}
}

// TestSendFromFileTakesNoBuffer: a read sent from the file holds no data
// buffer, so a host's share of the pool does not bound it; the same read
// copied (with a data digest) needs a buffer larger than the share and
// fails.
func TestSendFromFileTakesNoBuffer(t *testing.T) {
	path, data := patternFile(t, 2<<20)
	be, err := backend.OpenFile(path, backend.FileOptions{Buffered: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	tt := startTargetOpts(t, be, target.Options{BufferMemory: 4 << 20, MaxHostBuffer: 256 << 10})
	got, st := tt.session(t, false, false).Read(1<<20, 1<<20)
	if !st.OK() || !bytes.Equal(got, data[1<<20:]) {
		t.Fatalf("1 MiB read sent from the file with a 256 KiB buffer share: %v, or its data differs", st)
	}
	if _, st := tt.session(t, false, true).Read(0, 1<<20); st.Code() != nvmeof.StatusInternalError.Code() {
		t.Fatalf("1 MiB read copied with a 256 KiB buffer share: %v, want Internal Error", st)
	}
	if n := tt.tgt.BufferHeld(); n != 0 {
		t.Errorf("%d bytes of data buffers held after every read ended", n)
	}
}

// TestSendFromFileSeesWrites: a read sent from a writable buffered file
// returns what a write put there just before; past the end of a file
// shorter than its namespace it reads zeros.
func TestSendFromFileSeesWrites(t *testing.T) {
	path, _ := patternFile(t, 1<<20)
	be, err := backend.OpenFile(path, backend.FileOptions{Buffered: true, Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tt := startTarget(t, be)
	s := tt.session(t, false, false)
	p := make([]byte, 1<<20)
	for i := range p {
		p[i] = byte(i*13 + 5)
	}
	// Written across the file's end (it grows), 128 KiB at a time:
	// tcppeer sends one H2CData per R2T, so keep to MAXH2CDATA.
	const at = 512 << 10
	for off := 0; off < len(p); off += 128 << 10 {
		if st := s.Write(at+int64(off), p[off:off+128<<10], false); !st.OK() {
			t.Fatalf("write at %d: %v", at+off, st)
		}
	}
	got, st := s.Read(at, len(p))
	if !st.OK() || !bytes.Equal(got, p) {
		t.Fatalf("read of what was written: %v, or its data differs", st)
	}
	got, st = s.Read(3<<20, 1<<20)
	if !st.OK() || !bytes.Equal(got, make([]byte, 1<<20)) {
		t.Fatalf("read past the file's end: %v, or not zeros", st)
	}
	// The read of what was written is sent from the cache; past the
	// file's end the cache holds nothing, and that read is copied.
	if n := tt.ss.Namespace(1).Stats().BytesFromFile; n != 1<<20 {
		t.Errorf("BytesFromFile %d, want %d", n, 1<<20)
	}
}

// badSource hands sendfile a descriptor it cannot read (a directory):
// a file that fails while its data is sent.
type badSource struct {
	*backend.File
	dir    *os.File
	failed atomic.Int32
}

func (b *badSource) SendSource(off, n int64) (int, bool) {
	if _, ok := b.File.SendSource(off, n); !ok {
		return 0, false
	}
	return int(b.dir.Fd()), true
}

func (b *badSource) SendFailed(err error) {
	b.failed.Add(1)
	b.File.SendFailed(err)
}

// TestSendFromFileFailure: a file that fails while its data is sent
// closes that connection (its header promised the data), turns the
// namespace's reads to copies, and the host's next try reads the data;
// the target keeps serving.
func TestSendFromFileFailure(t *testing.T) {
	path, data := patternFile(t, 2<<20)
	f, err := backend.OpenFile(path, backend.FileOptions{Buffered: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	be := &badSource{File: f, dir: dir}
	tt := startTarget(t, be)

	s := tt.session(t, false, false)
	h := s.IO
	h.Write(h.Capsule(tcppeer.IOCommand(nvmeof.NVMRead, h.NextCID(), 0, 1<<20), nil))
	closed := false
	for range 100 {
		hd, _, err := h.TryReadPDU()
		if err != nil {
			closed = true
			break
		}
		if hd.Type == nvmeof.PDUCapsuleRsp || hd.Flags&nvmeof.FlagDataSuccess != 0 {
			t.Fatal("the read completed although its file could not be read")
		}
	}
	if !closed {
		t.Fatal("connection still open after the file failed under sendfile")
	}
	if be.failed.Load() != 1 {
		t.Fatalf("SendFailed called %d times, want 1", be.failed.Load())
	}

	again := tt.session(t, false, false)
	got, st := again.Read(0, 1<<20)
	if !st.OK() || !bytes.Equal(got, data[:1<<20]) {
		t.Fatalf("read on a new connection: %v, or its data differs", st)
	}
	if n := tt.ss.Namespace(1).InFlight(); n != 0 {
		t.Errorf("InFlight %d after every read ended, want 0", n)
	}
}

// TestNoSendfile: a listener with NoSendfile copies every read.
func TestNoSendfile(t *testing.T) {
	path, data := patternFile(t, 1<<20)
	be, err := backend.OpenFile(path, backend.FileOptions{Buffered: true, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	tt := startTarget(t, be)
	ln, err := Listen(tt.tgt, "127.0.0.1:0", Options{Logger: quietLogger(), NoSendfile: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := tcppeer.Connect(t, ln.Addr().String(), false, false, testNQN, hostNQN, hostID)
	got, st := s.Read(0, 1<<20)
	if !st.OK() || !bytes.Equal(got, data) {
		t.Fatalf("read: %v, or its data differs", st)
	}
	if n := tt.ss.Namespace(1).Stats().BytesFromFile; n != 0 {
		t.Errorf("BytesFromFile %d with NoSendfile, want 0", n)
	}
}
