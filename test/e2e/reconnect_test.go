package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/internal/testutil"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/tcp"
)

// restartable is an in-process target whose listener can be closed (every
// connection dropped) and opened again on the same address; the namespace
// (memory) survives, as a target restarted on the same storage would.
type restartable struct {
	t    *testing.T
	tgt  *target.Target
	ss   *target.Subsystem
	ln   *tcp.Listener
	addr string
}

func startRestartable(t *testing.T) *restartable {
	t.Helper()
	be, err := backend.NewMem(16<<20, 512)
	testutil.SkipIfNotSupported(t, err)
	return startRestartableOn(t, be)
}

// startRestartableOn serves be as namespace 1 of realNQN.
func startRestartableOn(t *testing.T, be backend.Backend) *restartable {
	t.Helper()
	tgt := target.New(target.Options{Logger: slog.New(slog.DiscardHandler)})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN, AllowedHosts: []string{testHost}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	r := &restartable{t: t, tgt: tgt, ss: ss}
	r.listen("127.0.0.1:0")
	r.addr = r.ln.Addr().String()
	t.Cleanup(func() {
		if r.ln != nil {
			r.ln.Close()
		}
		tgt.Close()
	})
	return r
}

func (r *restartable) listen(addr string) {
	r.t.Helper()
	ln, err := tcp.Listen(r.tgt, addr, tcp.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		r.t.Fatal(err)
	}
	r.ln = ln
}

// drop closes the listener and every connection.
func (r *restartable) drop() {
	r.ln.Close()
	r.ln = nil
}

func (r *restartable) target() testTarget {
	return testTarget{addr: r.addr, subnqn: realNQN, nsid: 1}
}

func fastReconnect(lossTmo time.Duration) func(*initiator.Config) {
	return func(c *initiator.Config) { c.ReconnectDelay, c.CtrlLossTimeout = 5*time.Millisecond, lossTmo }
}

// TestReconnect drops every connection while writers and readers are busy
// and brings the target back: every blocking I/O completes without error
// (those in flight are retried on the new connection), the data read back
// is what was written, and the controller has a new controller ID.
func TestReconnect(t *testing.T) {
	t.Run("receive goroutines", func(t *testing.T) { testReconnect(t, false) })
	t.Run("polled queues", func(t *testing.T) { testReconnect(t, true) })
}

func testReconnect(t *testing.T, polled bool) {
	r := startRestartable(t)
	c := connect(t, r.target(), func(c *initiator.Config) {
		fastReconnect(time.Minute)(c)
		c.Polled = polled
	})
	if got := c.Queues()[0].Polled(); got != polled {
		t.Fatalf("queue polled %v, want %v", got, polled)
	}
	ns := openNS(t, c, 1)
	old := c.CntlID()
	const workers, rounds, size = 4, 60, 64 << 10
	halfway := make(chan struct{}, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			off := int64(w) * size
			buf, got := make([]byte, size), make([]byte, size)
			for i := range rounds {
				for j := range buf {
					buf[j] = byte(w*31 + i*7 + j)
				}
				if _, err := ns.WriteAt(buf, off); err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
					return
				}
				if _, err := ns.ReadAt(got, off); err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
					return
				}
				if !bytes.Equal(got, buf) {
					errs <- fmt.Errorf("worker %d round %d: read back differs from what was written", w, i)
					return
				}
				if i == rounds/3 {
					halfway <- struct{}{}
				}
			}
		})
	}
	for range workers {
		select {
		case <-halfway:
		case err := <-errs:
			t.Fatal(err)
		}
	}
	r.drop()
	r.listen(r.addr)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.CntlID() == old {
		t.Errorf("controller ID %d unchanged: no reconnect happened", old)
	}
	if err := ns.Flush(); err != nil {
		t.Error(err)
	}
}

// TestReconnectAsync: requests on queues that failed complete with an
// error; Reconnected hands out the new queues, which work.
func TestReconnectAsync(t *testing.T) {
	r := startRestartable(t)
	c := connect(t, r.target(), fastReconnect(time.Minute))
	ns := openNS(t, c, 1)
	qs := c.Queues()
	r.drop()
	done := make(chan *initiator.Request, 1)
	buf := make([]byte, 4096)
	req := &initiator.Request{Op: initiator.OpRead, NSID: 1, NLB: 8, Buf: buf, Done: done}
	if err := qs[0].Submit(req); err == nil {
		if (<-done).Err == nil {
			t.Fatal("a read on a dropped connection succeeded")
		}
	}
	r.listen(r.addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nqs, err := c.Reconnected(ctx, qs)
	if err != nil {
		t.Fatal(err)
	}
	if nqs[0] == qs[0] {
		t.Fatal("Reconnected returned the failed queues")
	}
	ns.WriteAt(bytes.Repeat([]byte{7}, 4096), 0)
	*req = initiator.Request{Op: initiator.OpRead, NSID: 1, NLB: 8, Buf: buf, Done: done}
	if err := nqs[0].Submit(req); err != nil {
		t.Fatal(err)
	}
	if err := (<-done).Error(); err != nil || buf[4095] != 7 {
		t.Fatalf("read on the new queue: %v, byte %d", err, buf[4095])
	}
}

// TestReconnectGivesUp: with the target gone for good, I/O fails once
// CtrlLossTimeout has passed, saying so.
func TestReconnectGivesUp(t *testing.T) {
	r := startRestartable(t)
	c := connect(t, r.target(), fastReconnect(50*time.Millisecond))
	ns := openNS(t, c, 1)
	r.drop()
	_, err := ns.ReadAt(make([]byte, 4096), 0)
	if err == nil || !strings.Contains(err.Error(), "ctrl-loss-tmo") {
		t.Fatalf("read with the target gone: %v", err)
	}
	if _, err := c.Reconnected(context.Background(), nil); err == nil {
		t.Fatal("Reconnected after the controller was lost")
	}
}

// TestReconnectOff: a negative CtrlLossTimeout fails I/O with the
// connection's error, as before reconnects existed.
func TestReconnectOff(t *testing.T) {
	r := startRestartable(t)
	c := connect(t, r.target(), fastReconnect(-1))
	ns := openNS(t, c, 1)
	r.drop()
	if _, err := ns.ReadAt(make([]byte, 4096), 0); err == nil {
		t.Fatal("read on a dropped connection succeeded")
	}
	if _, err := c.Reconnected(context.Background(), c.Queues()); !errors.Is(err, initiator.ErrNoReconnect) {
		t.Fatalf("Reconnected: %v, want initiator.ErrNoReconnect", err)
	}
}

// TestCloseWhileReconnecting: Close stops the reconnect attempts, and I/O
// waiting for them fails with ErrClosed.
func TestCloseWhileReconnecting(t *testing.T) {
	r := startRestartable(t)
	cfg := initiator.Config{Addr: r.addr, SubNQN: realNQN, IOQueues: 2, QueueDepth: 8, ReconnectDelay: 5 * time.Millisecond,
		CtrlLossTimeout: time.Hour, Options: initiator.Options{HostNQN: testHost}}
	c, err := initiator.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := openNS(t, c, 1)
	r.drop()
	res := make(chan error, 1)
	go func() {
		_, err := ns.ReadAt(make([]byte, 4096), 0)
		res <- err
	}()
	// The read fails on the dropped connection and waits for the next one
	// (or starts after Close): either way Close ends it, and Close returns
	// although the reconnect attempts would go on for an hour.
	c.Close()
	if err := <-res; !errors.Is(err, initiator.ErrClosed) {
		t.Fatalf("read during Close: %v, want initiator.ErrClosed", err)
	}
}

// TestReconnectRetryBound: a command that kills every connection it is
// sent on fails after MaxRetries reconnects instead of looping.
func TestReconnectRetryBound(t *testing.T) {
	tt := startFake(t, func(f *tcppeer.Controller) { f.KillFlush = true })
	c := connect(t, tt, fastReconnect(time.Minute))
	ns := openNS(t, c, 1)
	err := ns.Flush()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("failed on %d connections", initiator.MaxRetries+1)) {
		t.Fatalf("flush that kills its connection: %v", err)
	}
	// The controller itself is still there: other I/O works.
	if _, err := ns.WriteAt(make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
}

// waitReconnecting waits until c has noticed the lost connection.
func waitReconnecting(c *initiator.Controller) {
	for {
		up, changed := c.Connected()
		if !up {
			return
		}
		<-changed
	}
}

// TestIODuringReconnect: I/O started while the controller is reconnecting
// (its attempts failing, half-built sessions coming and going) waits for
// the new connection and completes on it.
func TestIODuringReconnect(t *testing.T) {
	r := startRestartable(t)
	c := connect(t, r.target(), fastReconnect(time.Minute))
	ns := openNS(t, c, 1)
	want := bytes.Repeat([]byte{0x5A}, 8192)
	if _, err := ns.WriteAt(want, 8192); err != nil {
		t.Fatal(err)
	}
	r.drop()
	// Make the controller notice: a read on the dropped connection.
	go ns.ReadAt(make([]byte, 512), 0)
	waitReconnecting(c)
	res := make(chan error, 4)
	for range 4 {
		go func() {
			got := make([]byte, 8192)
			_, err := ns.ReadAt(got, 8192)
			if err == nil && !bytes.Equal(got, want) {
				err = errors.New("read back differs")
			}
			res <- err
		}()
	}
	r.listen(r.addr)
	for range 4 {
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	}
}

// TestConnectDiscoveryPersistent: a persistent discovery connection gets a
// Discovery Log Page Change notice when a subsystem is added, reads the
// new log, and after the target drops every connection and comes back,
// reconnects and says so (Event.Reconnected), as the Linux host's
// rediscover event.
func TestConnectDiscoveryPersistent(t *testing.T) {
	r := startRestartable(t)
	events := make(chan initiator.Event, 8)
	c, err := initiator.ConnectDiscovery(context.Background(), initiator.Config{Addr: r.addr,
		Options:        initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)},
		ReconnectDelay: 5 * time.Millisecond, CtrlLossTimeout: time.Minute,
		Events: func(ev initiator.Event) { events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Identify().CntrlType != nvmeof.CtrlTypeDiscovery || len(c.Queues()) != 0 {
		t.Fatalf("controller type %d with %d I/O queues, want a discovery controller with none", c.Identify().CntrlType, len(c.Queues()))
	}
	log, err := c.DiscoveryLog(context.Background())
	if err != nil || len(log.Entries) != 1 || log.Entries[0].SubNQN != realNQN {
		t.Fatalf("discovery log %+v, %v", log.Entries, err)
	}
	if _, err := r.tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN + "-new", AllowAnyHost: true}); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; !ev.DiscoveryChanged() || ev.Err != nil {
		t.Fatalf("event %+v, want a discovery log change", ev)
	}
	log, err = c.DiscoveryLog(context.Background())
	if err != nil || len(log.Entries) != 2 {
		t.Fatalf("discovery log after the change: %+v, %v", log.Entries, err)
	}

	r.drop()
	r.listen(r.addr)
	// A notice the target sent just before the drop may come first, its
	// log page read failing with the lost connection; then Reconnected.
	for ev := <-events; !ev.Reconnected; ev = <-events {
		if !ev.DiscoveryChanged() {
			t.Fatalf("event %+v, want Reconnected", ev)
		}
	}
	// Notices still flow on the new connection.
	if err := r.tgt.RemoveSubsystem(realNQN + "-new"); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; !ev.DiscoveryChanged() {
		t.Fatalf("event %+v after reconnecting, want a discovery log change", ev)
	}
	if log, err = c.DiscoveryLog(context.Background()); err != nil || len(log.Entries) != 1 {
		t.Fatalf("discovery log after removal: %+v, %v", log.Entries, err)
	}
}

// TestConnectRefusesDiscoveryNQN: Connect to the discovery NQN points at
// ConnectDiscovery.
func TestConnectRefusesDiscoveryNQN(t *testing.T) {
	r := startRestartable(t)
	_, err := initiator.Connect(context.Background(), initiator.Config{Addr: r.addr, SubNQN: nvmeof.DiscoveryNQN,
		Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}})
	if err == nil || !strings.Contains(err.Error(), "ConnectDiscovery") {
		t.Fatalf("Connect to the discovery NQN: %v", err)
	}
}
