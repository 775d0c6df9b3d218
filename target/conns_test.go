package target

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

type testConn struct {
	closed    chan error
	wasClosed atomic.Bool
	served    bool
}

func (c *testConn) Close(reason error) {
	c.wasClosed.Store(true)
	c.closed <- reason
}

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
	forgot := false
	if err := s.Shutdown(context.Background(), func() error { stopped = true; return nil }, func() { forgot = c.wasClosed.Load() }); err != nil {
		t.Fatal(err)
	}
	if !stopped || !c.served || !forgot {
		t.Fatalf("Shutdown returned before stop (%v), before the connection's goroutine ended (%v), or without closed after the connections were closed (%v)", stopped, c.served, forgot)
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
	if err := s.Shutdown(context.Background(), func() error { return errors.New("twice") }, nil); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}
