package busypoll

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/testutil"
)

// pair returns both ends of a TCP connection over loopback.
func pair(t *testing.T) (a, b net.Conn) { return testutil.TCPPair(t) }

// reader is a polling Reader over c.
func reader(g *Group, c net.Conn, window time.Duration) *Reader {
	rd, _ := NewReader(g, c, window, nil)
	return rd.(*Reader)
}

func TestOffIsTheConnItself(t *testing.T) {
	a, _ := pair(t)
	if r, _ := NewReader(nil, a, 0, nil); r != io.Reader(a) {
		t.Errorf("NewReader(c, 0) = %T, want the connection itself", r)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if r, leave := NewReader(&Group{}, p1, time.Millisecond, nil); r != io.Reader(p1) {
		t.Errorf("NewReader(pipe) = %T, want the pipe itself: it has no socket to poll", r)
	} else {
		leave() // a no-op
	}
	if r, _ := NewReader(nil, p1, time.Millisecond, nil); r != io.Reader(p1) {
		t.Errorf("NewReader(pipe) = %T, want the pipe itself: it has no socket to poll", r)
	}
}

func TestReadsWhatIsThere(t *testing.T) {
	a, b := pair(t)
	r := reader(nil, b, time.Second)
	want := []byte("capsule")
	if _, err := a.Write(want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(want))
	buf := make([]byte, 64)
	for len(got) < len(want) {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != string(want) || r.Spins == 0 {
		t.Errorf("read %q with %d polled reads, want %q taken by polling", got, r.Spins, want)
	}
	// The peer closes: EOF, as a plain read says it.
	a.Close()
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("after the peer closed: %d, %v; want 0, EOF", n, err)
	}
}

func TestParksAfterTheWindow(t *testing.T) {
	_, b := pair(t)
	r := reader(nil, b, 50*time.Microsecond)
	// Nothing comes: after the window the read waits as a plain one,
	// deadline included.
	b.SetReadDeadline(time.Now().Add(-time.Second))
	n, err := r.Read(make([]byte, 8))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || r.Parks != 1 {
		t.Errorf("read with nothing to read: %d, %v, %d parks; want the deadline's error from one parked read", n, err, r.Parks)
	}
	// Closed here: the plain read's error.
	b.Close()
	if _, err := r.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read of a closed connection: %v, want net.ErrClosed", err)
	}
}

// TestGroupYields: a reader of a group stops polling as soon as another
// connection of the group has input, and parks, so that the scheduler
// serves that one; a reader that leaves no longer counts.
func TestGroupYields(t *testing.T) {
	var g Group
	aPeer, a := pair(t)
	bPeer, b := pair(t)
	_ = aPeer
	ra := reader(&g, a, time.Hour)
	rb := reader(&g, b, time.Hour)
	if _, err := bPeer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	// Nothing for a, input for b: a's read gives up polling at once
	// (not after an hour) and parks, here into its deadline. (A deadline
	// already past would end the polling by itself.)
	a.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := ra.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) || ra.Yields != 1 {
		t.Fatalf("read with input on another connection: %v, %d yields; want the deadline's error after 1 yield", err, ra.Yields)
	}
	if n, err := rb.Read(make([]byte, 8)); n != 1 || err != nil {
		t.Fatalf("b's read: %d, %v", n, err)
	}
	// b leaves: its input no longer ends a's polling, which runs out
	// its (short) window instead.
	rb.Leave()
	if _, err := bPeer.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	ra.window = time.Millisecond
	a.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := ra.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) || ra.Yields != 1 || ra.Parks != 2 {
		t.Fatalf("after b left: %v, %d yields, %d parks; want the deadline's error, still 1 yield, 2 parks", err, ra.Yields, ra.Parks)
	}
	ra.Leave()
	if p := g.fds.Load(); p == nil || len(*p) != 0 {
		t.Fatalf("group after both left: %v", p)
	}
}

// TestPollDoesNotAllocate: polling a socket with nothing to read, in a
// group, allocates nothing (it runs between every two I/Os).
func TestPollDoesNotAllocate(t *testing.T) {
	var g Group
	peer, a := pair(t)
	_, b := pair(t)
	r := reader(&g, a, time.Microsecond)
	defer r.Leave()
	rb := reader(&g, b, time.Microsecond)
	defer rb.Leave()
	buf := make([]byte, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := peer.Write(buf[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
		r.try(buf) // nothing there: errAgain
		r.othersReady()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per poll, want 0", allocs)
	}
}
