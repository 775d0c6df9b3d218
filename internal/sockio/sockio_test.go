package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/testutil"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) { return testutil.TCPPair(t) }

// drain reads c to EOF in the background; the result comes on the channel.
func drain(c net.Conn) <-chan []byte {
	out := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c)
		out <- b
	}()
	return out
}

// writeMix queues copied and referenced pieces, flushing now and then,
// and returns what the peer must receive.
func writeMix(t *testing.T, w *Writer) []byte {
	t.Helper()
	var want bytes.Buffer
	big := make([][]byte, 8)
	for i := range big {
		big[i] = bytes.Repeat([]byte{byte(0xA0 + i)}, 100<<10+i*4096+7)
	}
	for round := range 40 {
		hdr := []byte{byte(round), 1, 2, 3, 4, 5, 6, 7}
		if _, err := w.Write(hdr); err != nil {
			t.Fatal(err)
		}
		want.Write(hdr)
		if round%3 != 0 {
			d := big[round%len(big)]
			w.WriteRef(d)
			want.Write(d)
		}
		tail := bytes.Repeat([]byte{byte(round)}, round*50) // empty in round 0
		if _, err := w.Write(tail); err != nil {
			t.Fatal(err)
		}
		want.Write(tail)
		if round%4 == 3 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if w.Buffered() != 0 {
				t.Fatalf("%d bytes buffered after Flush", w.Buffered())
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return want.Bytes()
}

// TestWritesArriveInOrder sends copied and referenced pieces, flushing
// now and then, and the peer gets every byte in order: over TCP through a
// send buffer far smaller than one flush (writes are partial and wait for
// the socket), and over a net.Pipe, which is no socket (the plain path).
func TestWritesArriveInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		pair func(*testing.T) (net.Conn, net.Conn)
		raw  bool
	}{
		{"tcp", func(t *testing.T) (net.Conn, net.Conn) {
			c, s := tcpPair(t)
			c.(*net.TCPConn).SetWriteBuffer(4096)
			return c, s
		}, rawWritev},
		{"pipe", func(*testing.T) (net.Conn, net.Conn) { return net.Pipe() }, false},
		{"buffers writer", func(*testing.T) (net.Conn, net.Conn) { c, s := net.Pipe(); return &gatherConn{Conn: c}, s }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := tc.pair(t)
			got := drain(s)
			w := NewWriter(c, 1024)
			if raw := w.rc != nil; raw != tc.raw {
				t.Fatalf("raw writev %v, want %v", raw, tc.raw)
			}
			want := writeMix(t, w)
			if g, ok := c.(*gatherConn); ok && (g.calls == 0 || g.writes != 0) {
				t.Fatalf("%d WriteBuffers calls and %d Writes: a BuffersWriter flushes through WriteBuffers only", g.calls, g.writes)
			}
			c.Close()
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("peer got %d bytes, want %d (or the bytes differ)", len(b), len(want))
			}
		})
	}
}

// gatherConn is a BuffersWriter (as tlspsk.Conn is) that counts how it
// is written.
type gatherConn struct {
	net.Conn
	calls, writes int
}

func (g *gatherConn) Write(b []byte) (int, error) {
	g.writes++
	return g.Conn.Write(b)
}

func (g *gatherConn) WriteBuffers(parts [][]byte) (int64, error) {
	g.calls++
	var n int64
	for _, p := range parts {
		m, err := g.Conn.Write(p)
		if n += int64(m); err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestErrorIsSticky: once a write fails every later call says so, and
// nothing queued before it is sent afterwards.
func TestErrorIsSticky(t *testing.T) {
	c, s := tcpPair(t)
	s.Close()
	w := NewWriter(c, 1024)
	big := make([]byte, 1<<20)
	var err error
	for range 64 { // the peer's reset arrives within a few writes
		w.WriteRef(big)
		if err = w.Flush(); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("64 MiB written to a closed peer without an error")
	}
	if _, err2 := w.Write([]byte("x")); !errors.Is(err2, err) {
		t.Errorf("Write after a failed Flush: %v, want %v", err2, err)
	}
	w.WriteRef(big)
	if err2 := w.Flush(); !errors.Is(err2, err) || w.Buffered() != 0 {
		t.Errorf("Flush after a failure: %v with %d bytes buffered, want %v and none", err2, w.Buffered(), err)
	}
}

// TestLargeCopyWritesAtOnce: a piece larger than the copy buffer is
// written before Write returns (it is not kept).
func TestLargeCopyWritesAtOnce(t *testing.T) {
	c, s := tcpPair(t)
	got := drain(s)
	w := NewWriter(c, 16)
	w.Write([]byte("head"))
	p := bytes.Repeat([]byte{7}, 100)
	if n, err := w.Write(p); n != 100 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if w.Buffered() != 0 {
		t.Fatalf("%d bytes still buffered after a write larger than the buffer", w.Buffered())
	}
	clear(p) // the caller may reuse it now
	c.Close()
	if b := <-got; !bytes.Equal(b, append([]byte("head"), bytes.Repeat([]byte{7}, 100)...)) {
		t.Fatalf("peer got %q", b)
	}
}

// TestResetDrops: what Reset drops is never sent.
func TestResetDrops(t *testing.T) {
	c, s := tcpPair(t)
	got := drain(s)
	w := NewWriter(c, 64)
	w.Write([]byte("dropped"))
	w.WriteRef([]byte("dropped too"))
	w.Reset()
	w.Write([]byte("kept"))
	w.Flush()
	c.Close()
	if b := <-got; string(b) != "kept" {
		t.Fatalf("peer got %q, want %q", b, "kept")
	}
}

// TestFlushDoesNotAllocate: a queue's send path costs no allocation.
func TestFlushDoesNotAllocate(t *testing.T) {
	c, s := tcpPair(t)
	drain(s)
	w := NewWriter(c, 4096)
	hdr, data := make([]byte, 24), make([]byte, 128<<10)
	send := func() {
		w.Write(hdr)
		w.WriteRef(data)
		w.Write(hdr[:16])
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	send() // grow the vectors once
	if a := testing.AllocsPerRun(100, send); a != 0 {
		t.Errorf("%v allocations per flush, want 0", a)
	}
}

// TestTimeout: a flush to a peer that stops reading fails after Timeout
// instead of waiting for ever.
func TestTimeout(t *testing.T) {
	c, _ := tcpPair(t) // the peer never reads
	w := NewWriter(c, 1024)
	w.Timeout = 200 * time.Millisecond
	big := make([]byte, 1<<20)
	var err error
	for range 1024 { // far more than the socket buffers hold
		w.WriteRef(big)
		if err = w.Flush(); err != nil {
			break
		}
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("flush to a peer that does not read: %v, want a deadline error", err)
	}
}

// TestGrow: a writer grown while pieces are queued sends them, then what
// follows, in order.
func TestGrow(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	w := NewWriter(a, 16)
	w.Write([]byte("0123456789"))
	w.Grow(1 << 10)
	w.Write([]byte("abcdefghijklmnopqrstuvwxyz"))
	got := make(chan []byte)
	go func() { p, _ := io.ReadAll(b); got <- p }()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if p := <-got; string(p) != "0123456789abcdefghijklmnopqrstuvwxyz" {
		t.Fatalf("got %q", p)
	}
}
