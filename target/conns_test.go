package target

import (
	"context"
	"errors"
	"testing"
)

type testConn struct {
	closed chan error
	served bool
}

func (c *testConn) Close(reason error) { c.closed <- reason }

func TestConnsShutdownClosesAndWaits(t *testing.T) {
	var s Conns[*testConn]
	c := &testConn{closed: make(chan error, 1)}
	ended := make(chan struct{})
	if !s.Go(c, func() { <-ended; c.served = true }) {
		t.Fatal("Go before Shutdown refused the connection")
	}
	done := s.Track()
	stopped := false
	go func() {
		// The connection ends once it is closed; the tracked goroutine after.
		<-c.closed
		close(ended)
		done()
	}()
	if err := s.Shutdown(context.Background(), func() error { stopped = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if !stopped || !c.served {
		t.Fatalf("Shutdown returned before stop (%v) or before the connection's goroutine ended (%v)", stopped, c.served)
	}
	// A connection arriving after Shutdown is closed and served inline.
	late := &testConn{closed: make(chan error, 1)}
	ran := false
	if s.Go(late, func() { ran = true }) {
		t.Fatal("Go after Shutdown started a goroutine")
	}
	if !ran || len(late.closed) != 1 {
		t.Fatal("a late connection was not closed and served")
	}
	if err := s.Shutdown(context.Background(), func() error { return errors.New("twice") }); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}
