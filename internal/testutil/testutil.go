// Package testutil holds helpers shared by flashpath's tests.
package testutil

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/flashpath/flashpath/internal/platform"
)

// SkipIfNotSupported skips the test when err wraps
// platform.ErrNotSupported (this machine or build lacks what the test
// needs; the message says what) and fails it on any other error.
func SkipIfNotSupported(tb testing.TB, err error) {
	tb.Helper()
	switch {
	case err == nil:
	case errors.Is(err, platform.ErrNotSupported):
		tb.Skip(err)
	default:
		tb.Fatal(err)
	}
}

// TCPPair returns both ends of a TCP connection over loopback, closed
// when the test ends.
func TCPPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		client.Close()
		tb.Fatal(a.err)
	}
	tb.Cleanup(func() { client.Close(); a.c.Close() })
	return client, a.c
}

// handedOut are the ports FreePort returned in this process.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a
// moment ago, for a test server that must be told its port up front, and
// that no earlier FreePort call of this process returned (the kernel may
// hand the same free port to listens in a row: a test asking for three
// got the same one twice). The port may be taken again before the test
// binds it; tests that bind many in a row should expect that rarely.
func FreePort(tb testing.TB) string {
	tb.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return strconv.Itoa(port)
		}
	}
	tb.Fatal("FreePort: 100 listens in a row got ports handed out before")
	return ""
}

// LogSignal is a slog.Handler that sends on its channel for each record
// whose message contains a text, and drops every record: a test waits on
// it for something that a log line marks.
type LogSignal struct {
	msg string
	c   chan struct{}
}

// NewLogSignal signals records containing msg; up to n wait unreceived.
func NewLogSignal(msg string, n int) *LogSignal {
	return &LogSignal{msg: msg, c: make(chan struct{}, n)}
}

// C receives once for each such record.
func (h *LogSignal) C() <-chan struct{} { return h.c }

func (h *LogSignal) Enabled(context.Context, slog.Level) bool { return true }
func (h *LogSignal) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		h.c <- struct{}{}
	}
	return nil
}
func (h *LogSignal) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *LogSignal) WithGroup(string) slog.Handler      { return h }
