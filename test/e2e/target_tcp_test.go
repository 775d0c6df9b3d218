package e2e

// flashpath's host against its NVMe/TCP target: digests, access control,
// durability across a restart, concurrency.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/tcp"
)

const strangerN = "nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555"

// startTCPTarget serves be (a 16 MiB mem namespace when nil) as
// namespace 1 of realNQN, allowing testHost.
func startTCPTarget(t testing.TB, be backend.Backend) testTarget {
	t.Helper()
	if be == nil {
		var err error
		if be, err = backend.NewMem(16<<20, 512); err != nil {
			t.Fatal(err)
		}
	}
	return startTargetOn(t, target.Options{MaxQueueDepth: 128}, be, 0)
}

// withOptions sets the host options of connect's configuration.
func withOptions(o initiator.Options) func(*initiator.Config) {
	return func(c *initiator.Config) {
		o.HostNQN = cmp.Or(o.HostNQN, c.HostNQN)
		o.Logger = slog.New(slog.DiscardHandler)
		c.Options, c.IOQueues = o, 2
	}
}

// roundTrip writes a pattern at off and reads it back.
func roundTrip(t testing.TB, ns *initiator.Namespace, off int64, n int, seed byte) {
	t.Helper()
	p := make([]byte, n)
	for i := range p {
		p[i] = seed ^ byte(i*13)
	}
	if _, err := ns.WriteAt(p, off); err != nil {
		t.Fatalf("write %d at %d: %v", n, off, err)
	}
	got := make([]byte, n)
	if _, err := ns.ReadAt(got, off); err != nil {
		t.Fatalf("read %d at %d: %v", n, off, err)
	}
	if !bytes.Equal(got, p) {
		t.Fatalf("read %d at %d: data differs from what was written", n, off)
	}
}

func TestDigestsEndToEnd(t *testing.T) {
	tt := startTCPTarget(t, nil)
	for _, o := range []initiator.Options{{HeaderDigest: true}, {DataDigest: true}, {HeaderDigest: true, DataDigest: true}} {
		ns := openNS(t, connect(t, tt, withOptions(o)), 1)
		roundTrip(t, ns, 0, 4096, 1)
		roundTrip(t, ns, 1<<20, 256<<10, 2) // R2T/H2CData and large C2HData
	}
}

func TestHostNotAllowed(t *testing.T) {
	tt := startTCPTarget(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := initiator.Connect(ctx, initiator.Config{Addr: tt.addr, SubNQN: realNQN,
		Options: initiator.Options{HostNQN: strangerN, Logger: slog.New(slog.DiscardHandler)}})
	if !errors.Is(err, &nvmeof.StatusError{Status: nvmeof.StatusConnectInvalidHost}) {
		t.Fatalf("connect as a stranger: %v, want Connect Invalid Host", err)
	}
	var se *nvmeof.StatusError
	if !errors.As(err, &se) || se.Status.SCT() != 1 || se.Status.SC() != 0x84 {
		t.Errorf("status %+v, want sct 1 sc 0x84", se)
	}
	if tt.tgt.Controllers() != 0 {
		t.Errorf("Controllers() = %d", tt.tgt.Controllers())
	}
	// Allowing the host lets it in.
	tt.ss.AllowHost(strangerN)
	c := connect(t, tt, withOptions(initiator.Options{HostNQN: strangerN}))
	roundTrip(t, openNS(t, c, 1), 0, 4096, 9)
}

// fuaSpy records the FUA flag of writes and counts flushes.
type fuaSpy struct {
	backend.Backend
	fuaWrites, writes, flushes atomic.Int64
}

func (s *fuaSpy) WriteAt(p []byte, off int64, fua bool) error {
	s.writes.Add(1)
	if fua {
		s.fuaWrites.Add(1)
	}
	return s.Backend.WriteAt(p, off, fua)
}

func (s *fuaSpy) Flush() error {
	s.flushes.Add(1)
	return s.Backend.Flush()
}

func TestFlushAndFUA(t *testing.T) {
	mem, err := backend.NewMem(16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	spy := &fuaSpy{Backend: mem}
	tt := startTCPTarget(t, spy)
	ns := openNS(t, connect(t, tt, withOptions(initiator.Options{})), 1)
	p := bytes.Repeat([]byte{0x5A}, 4096)
	if _, err := ns.WriteAt(p, 0); err != nil {
		t.Fatal(err)
	}
	if spy.writes.Load() != 1 || spy.fuaWrites.Load() != 0 {
		t.Errorf("plain write: %d writes, %d FUA", spy.writes.Load(), spy.fuaWrites.Load())
	}
	if _, err := ns.WriteAtFUA(p, 4096); err != nil {
		t.Fatal(err)
	}
	if spy.fuaWrites.Load() != 1 {
		t.Errorf("WriteAtFUA reached the backend without FUA")
	}
	flushes := spy.flushes.Load()
	if err := ns.Flush(); err != nil {
		t.Fatal(err)
	}
	if spy.flushes.Load() != flushes+1 {
		t.Errorf("Flush did not reach the backend")
	}
}

func TestFileBackendSurvivesRestart(t *testing.T) {
	path := t.TempDir() + "/ns1.img"
	open := func() backend.Backend {
		be, err := backend.OpenFile(path, backend.FileOptions{Size: 8 << 20, BlockSize: 4096})
		testutil.SkipIfNotSupported(t, err)
		return be
	}
	want := make([]byte, 128<<10)
	for i := range want {
		want[i] = byte(i*31 + i>>8)
	}

	// First life: write, flush, shut everything down.
	{
		tgt := target.New(target.Options{Logger: slog.New(slog.DiscardHandler)})
		ss, _ := tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN, AllowAnyHost: true})
		if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: open()}); err != nil {
			t.Fatal(err)
		}
		ln, err := tcp.Listen(tgt, "127.0.0.1:0", tcp.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		tt := testTarget{addr: ln.Addr().String(), subnqn: realNQN, nsid: 1}
		c := connect(t, tt, withOptions(initiator.Options{}))
		ns := openNS(t, c, 1)
		if _, err := ns.WriteAt(want, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := ns.Flush(); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tgt.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 8<<20 {
		t.Fatalf("backing file: %v %v", fi, err)
	}
	// Second life: a new target over the same file reads the data back.
	tt := startTCPTarget(t, open())
	c := connect(t, tt, withOptions(initiator.Options{}))
	ns := openNS(t, c, 1)
	if ns.Size() != 8<<20 || ns.BlockSize() != 4096 {
		t.Fatalf("namespace size %d block %d", ns.Size(), ns.BlockSize())
	}
	got := make([]byte, len(want))
	if _, err := ns.ReadAt(got, 1<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("data written and flushed before the restart is not there")
	}
}

func TestManyHostsConcurrently(t *testing.T) {
	tt := startTCPTarget(t, nil)
	ns := openNS(t, connect(t, tt, withOptions(initiator.Options{})), 1)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := bytes.Repeat([]byte{byte(g + 1)}, 16<<10)
			got := make([]byte, len(p))
			for i := range 20 {
				off := int64(g)*(1<<20) + int64(i)*int64(len(p))
				if _, err := ns.WriteAt(p, off); err != nil {
					errs <- err
					return
				}
				if _, err := ns.ReadAt(got, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, p) {
					errs <- errors.New("data mismatch")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
