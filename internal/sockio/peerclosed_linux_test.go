package sockio

import (
	"io"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// waitRDHUP blocks until nc's peer has shut down its end, as the kernel
// reports it (the timeout is a safety net).
func waitRDHUP(t *testing.T, nc net.Conn) {
	t.Helper()
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rc.Control(func(fd uintptr) {
		n, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}, 30_000)
	})
	if err != nil || n != 1 {
		t.Fatalf("poll for the peer's end: %d, %v", n, err)
	}
}

// TestPeerClosed: an open connection is not closed; once the peer closes
// it, PeerClosed says so without reading, even with data still unread
// before the end, and reading still gets that data.
func TestPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if PeerClosed(nc) {
		t.Fatal("open connection reported closed")
	}
	if _, err := peer.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	if PeerClosed(nc) {
		t.Fatal("connection with data reported closed")
	}
	peer.Close()
	waitRDHUP(t, nc) // the FIN has arrived
	if !PeerClosed(nc) {
		t.Fatal("closed peer not reported")
	}
	b, err := io.ReadAll(nc)
	if err != nil || string(b) != "unread" {
		t.Fatalf("read %q, %v; want the data before the end", b, err)
	}
	a, b2 := net.Pipe()
	defer a.Close()
	b2.Close()
	if PeerClosed(a) {
		t.Error("a pipe reported closed: not a socket, so never")
	}
}
