package sockio

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// tempFile writes n random bytes to a new file and returns it, open, with
// its bytes.
func tempFile(t *testing.T, n int) (*os.File, []byte) {
	t.Helper()
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, b
}

// TestSendFileInOrder: file spans go out between the queued pieces, in
// order, through a send buffer far smaller than a span (sendfile sends
// part and waits for the socket), and a span past the file's end stops
// at it and says how much it sent.
func TestSendFileInOrder(t *testing.T) {
	f, data := tempFile(t, 3<<20+1234)
	c, s := tcpPair(t)
	c.(*net.TCPConn).SetWriteBuffer(4096)
	got := drain(s)
	w := NewWriter(c, 1024)
	if !w.CanSendFile() {
		t.Fatal("CanSendFile false on a TCP connection")
	}
	var want bytes.Buffer
	for i, span := range [][2]int64{{0, 4096}, {8192, 1 << 20}, {12345, 777}, {3 << 20, 1 << 20}, {int64(len(data)), 4096}} {
		hdr := []byte{byte(i), 'h', 'd', 'r'}
		w.Write(hdr)
		want.Write(hdr)
		n, err := w.SendFile(int(f.Fd()), span[0], span[1])
		if err != nil {
			t.Fatalf("span %d: %v", i, err)
		}
		end := min(span[0]+span[1], int64(len(data)))
		if n != end-span[0] {
			t.Fatalf("span %d (%d at %d): sent %d, want %d", i, span[1], span[0], n, end-span[0])
		}
		want.Write(data[span[0]:end])
	}
	w.Write([]byte("tail"))
	want.WriteString("tail")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %d bytes, want %d (or the bytes differ)", len(b), want.Len())
	}
}

// TestSendFileErrors: a descriptor sendfile cannot read from fails as a
// FileError; a peer that went away fails as the socket's error. Both are
// sticky.
func TestSendFileErrors(t *testing.T) {
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	c, s := tcpPair(t)
	drain(s)
	w := NewWriter(c, 1024)
	_, err = w.SendFile(int(dir.Fd()), 0, 4096)
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("sendfile from a directory: %v, want a FileError", err)
	}
	if err2 := w.Flush(); !errors.Is(err2, err) {
		t.Errorf("Flush after a failed SendFile: %v, want %v", err2, err)
	}

	f, _ := tempFile(t, 1<<20)
	c, s = tcpPair(t)
	s.Close()
	w = NewWriter(c, 1024)
	for range 64 { // the peer's reset arrives within a few sends
		if _, err = w.SendFile(int(f.Fd()), 0, 1<<20); err != nil {
			break
		}
	}
	if err == nil || errors.As(err, &fe) {
		t.Fatalf("sendfile to a closed peer: %v, want the socket's error", err)
	}
}

// TestSendFileNotOnPipe: a net.Pipe is no socket.
func TestSendFileNotOnPipe(t *testing.T) {
	c, _ := net.Pipe()
	defer c.Close()
	if NewWriter(c, 1024).CanSendFile() {
		t.Fatal("CanSendFile true on a net.Pipe")
	}
}

// TestSendFileDoesNotAllocate: a read's header and its data from a file
// cost no allocation.
func TestSendFileDoesNotAllocate(t *testing.T) {
	f, _ := tempFile(t, 1<<20)
	c, s := tcpPair(t)
	drain(s)
	w := NewWriter(c, 4096)
	hdr := make([]byte, 24)
	send := func() {
		w.Write(hdr)
		if _, err := w.SendFile(int(f.Fd()), 4096, 256<<10); err != nil {
			t.Fatal(err)
		}
	}
	send()
	if a := testing.AllocsPerRun(100, send); a != 0 {
		t.Errorf("%v allocations per header and sendfile, want 0", a)
	}
}
