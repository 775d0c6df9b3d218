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

// sglSQE is a read or write of 4 KiB blocks as NVMe/TCP carries it: its
// SGL gives the data's length.
func sglSQE(op uint8, nsid uint32, slba uint64, blocks uint32) nvmeof.SQE {
	c := rwSQE(op, nsid, slba, blocks)
	c.SGL().SetDataBlock(nvmeof.SGLTransport, 0, blocks*4096)
	return c
}

// TestReadFromFile: a large read on a queue that sends from files leaves
// its data in the file (Request.File), counted, with the namespace held
// until FileSent; a small one is read into Data; after a failed send the
// namespace's reads are copied again.
func TestReadFromFile(t *testing.T) {
	q, ns, src, data := fileQueue(t)
	// read runs a read as the transport does: from the file where the
	// core can, else into a buffer.
	read := func(slba uint64, blocks uint32) *Request {
		r := &Request{Cmd: sglSQE(nvmeof.NVMRead, 1, slba, blocks)}
		if !q.ExecuteInPlace(r) {
			r.Data = make([]byte, int(blocks)*4096)
			q.Execute(r)
		}
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

// TestExecuteInPlaceRefuses: ExecuteInPlace leaves to Execute, without
// touching the request or the namespace, what it cannot send from a file:
// a small read, a write, a missing namespace, a range past the end.
// Execute then reports the error or copies.
func TestExecuteInPlaceRefuses(t *testing.T) {
	q, ns, _, _ := fileQueue(t)
	for name, cmd := range map[string]nvmeof.SQE{
		"small read":        sglSQE(nvmeof.NVMRead, 1, 0, 15),
		"write":             sglSQE(nvmeof.NVMWrite, 1, 0, 32),
		"missing namespace": sglSQE(nvmeof.NVMRead, 2, 0, 32),
		"past the end":      sglSQE(nvmeof.NVMRead, 1, 240, 32),
	} {
		r := &Request{Cmd: cmd}
		if q.ExecuteInPlace(r) {
			t.Errorf("%s: ExecuteInPlace ran it (status %v, File %+v)", name, r.Status(), r.File)
		}
		if r.File.N != 0 || r.queue != nil {
			t.Errorf("%s: refused, but the request was changed: File %+v", name, r.File)
		}
	}
	if n := ns.InFlight(); n != 0 {
		t.Errorf("InFlight %d after refusals, want 0", n)
	}
	if got := ns.Stats(); got.BytesRead != 0 {
		t.Errorf("BytesRead %d after refusals, want 0", got.BytesRead)
	}
}

// TestReadFromFileReservation: a read that a reservation refuses is not
// sent from the file: Execute fails it with Reservation Conflict. The
// holder's read still goes from the file.
func TestReadFromFileReservation(t *testing.T) {
	q, ns, _, _ := fileQueue(t)
	a := connectAdmin(t, q.t, testNQN, hostB, hostIDB, 0)
	other := connectIO(t, q.t, testNQN, hostB, hostIDB, a.q.Controller().ID(), 1).q
	other.SendFromFiles(64 << 10)
	if st, _ := ns.resv.register(hostIDA, nvmeof.ResvRegister, keys(0, 0xA)); !st.OK() {
		t.Fatal(st)
	}
	if st, _, _ := ns.resv.acquire(hostIDA, nvmeof.ResvAcquire|nvmeof.ResvExclusiveAccess<<8, keys(0xA, 0)); !st.OK() {
		t.Fatal(st)
	}
	r := &Request{Cmd: sglSQE(nvmeof.NVMRead, 1, 0, 32)}
	if other.ExecuteInPlace(r) {
		t.Fatalf("another host's read under Exclusive Access sent from the file (status %v)", r.Status())
	}
	r.Data = make([]byte, 32*4096)
	other.Execute(r)
	if r.Status().Code() != nvmeof.StatusReservationConflict {
		t.Errorf("another host's read: %v, want reservation conflict", r.Status())
	}
	r = &Request{Cmd: sglSQE(nvmeof.NVMRead, 1, 0, 32)}
	if !q.ExecuteInPlace(r) || !r.Status().OK() {
		t.Fatalf("the holder's read: not sent from the file (%v)", r.Status())
	}
	r.FileSent(nil)
	if n := ns.InFlight(); n != 0 {
		t.Errorf("InFlight %d, want 0", n)
	}
}

// TestReadFromFileDoesNotAllocate: leaving a read in the file and
// releasing it allocate nothing.
func TestReadFromFileDoesNotAllocate(t *testing.T) {
	q, _, _, _ := fileQueue(t)
	r := &Request{Cmd: sglSQE(nvmeof.NVMRead, 1, 0, 32)}
	ran := true
	allocs := testing.AllocsPerRun(200, func() {
		ran = ran && q.ExecuteInPlace(r)
		r.FileSent(nil)
	})
	if allocs != 0 || !ran || !r.Status().OK() {
		t.Errorf("ExecuteInPlace + FileSent allocate %.1f times per call (ran %v, status %v), want 0", allocs, ran, r.Status())
	}
}

// TestReadFromMem: on a queue that sends from memory, a read of a mem
// namespace leaves Data pointing into the namespace's memory, with the
// namespace held until FileSent; reads a reservation refuses, past the
// end or of SendFromMem's maximum, and writes go to Execute. None of it
// allocates.
func TestReadFromMem(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	ns := addMemNS(t, ss, 1, 1<<20, 4096)
	mem := ns.Backend.(*backend.Mem)
	data := mem.Bytes()
	for i := range data {
		data[i] = byte(i*5 + i>>12)
	}
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	q := connectIO(t, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1).q
	q.SendFromMem(1 << 20)

	r := &Request{Cmd: sglSQE(nvmeof.NVMRead, 1, 16, 32)}
	if !q.ExecuteInPlace(r) || !r.Status().OK() {
		t.Fatalf("read: not run in place (%v)", r.Status())
	}
	if r.File.N != 0 || len(r.Data) != 32*4096 || &r.Data[0] != &data[16*4096] || cap(r.Data) != len(r.Data) {
		t.Fatalf("read: Data is not the namespace's memory at 64 KiB (File %+v, %d bytes)", r.File, len(r.Data))
	}
	if n := ns.InFlight(); n != 1 {
		t.Errorf("InFlight %d while the transport sends, want 1", n)
	}
	r.FileSent(nil)
	if n := ns.InFlight(); n != 0 {
		t.Errorf("InFlight %d after FileSent, want 0", n)
	}
	if got := ns.Stats(); got.BytesRead != 128<<10 || got.BytesFromFile != 0 {
		t.Errorf("BytesRead %d, BytesFromFile %d; want %d and 0", got.BytesRead, got.BytesFromFile, 128<<10)
	}

	for name, cmd := range map[string]nvmeof.SQE{
		"write":          sglSQE(nvmeof.NVMWrite, 1, 0, 1),
		"past the end":   sglSQE(nvmeof.NVMRead, 1, 255, 2),
		"of the maximum": sglSQE(nvmeof.NVMRead, 1, 0, 256),
	} {
		r := &Request{Cmd: cmd}
		if q.ExecuteInPlace(r) || r.Data != nil {
			t.Errorf("%s: run in place", name)
		}
	}
	if st, _ := ns.resv.register(hostIDB, nvmeof.ResvRegister, keys(0, 0xB)); !st.OK() {
		t.Fatal(st)
	}
	if st, _, _ := ns.resv.acquire(hostIDB, nvmeof.ResvAcquire|nvmeof.ResvExclusiveAccess<<8, keys(0xB, 0)); !st.OK() {
		t.Fatal(st)
	}
	if r := (&Request{Cmd: sglSQE(nvmeof.NVMRead, 1, 0, 1)}); q.ExecuteInPlace(r) {
		t.Errorf("read under another host's Exclusive Access: run in place (%v)", r.Status())
	}
	if st, _ := ns.resv.release(hostIDB, nvmeof.ResvClear, keys(0xB, 0)[:8]); !st.OK() {
		t.Fatal(st)
	}
	if n := ns.InFlight(); n != 0 {
		t.Errorf("InFlight %d after refusals, want 0", n)
	}

	r = &Request{Cmd: sglSQE(nvmeof.NVMRead, 1, 0, 1)}
	ran := true
	allocs := testing.AllocsPerRun(200, func() {
		ran = ran && q.ExecuteInPlace(r)
		r.FileSent(nil)
		r.Data = nil
	})
	if allocs != 0 || !ran {
		t.Errorf("ExecuteInPlace + FileSent allocate %.1f times per call (ran %v), want 0", allocs, ran)
	}
}
