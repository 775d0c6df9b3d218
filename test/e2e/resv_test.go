package e2e

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

const resvHostB = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000b2"

var errConflict = &nvmeof.StatusError{Status: nvmeof.StatusReservationConflict}

// TestReservationFencing: host A holds a Write Exclusive reservation and
// writes its pattern with many writes in flight on an io_uring file
// namespace; host B, taking over, preempts A with abort, then writes its
// own pattern over the same blocks. Every block reads back as B's: none of
// A's writes landed after the preemption returned. A's writes after it
// fail with Reservation Conflict, and the report shows B holding. (The
// window for a late write is microseconds: target's
// TestPreemptAndAbortWaits holds one to show the wait.)
func TestReservationFencing(t *testing.T) {
	be, err := backend.OpenFile(t.TempDir()+"/ns.img", backend.FileOptions{Size: 8 << 20})
	testutil.SkipIfNotSupported(t, err)
	tgt := target.New(target.Options{Logger: slog.New(slog.DiscardHandler)})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN, AllowedHosts: []string{testHost, resvHostB}})
	if err != nil {
		t.Fatal(err)
	}
	tt := startTargetWith(t, tgt, ss, be, 0)
	ctx := context.Background()
	// Reservations name hosts by Host Identifier: each its own.
	nsA := openNS(t, connect(t, tt, func(c *initiator.Config) { c.Options.HostID = [16]byte{0xA} }), tt.nsid)
	nsB := openNS(t, connect(t, tt, func(c *initiator.Config) {
		c.Options.HostNQN, c.Options.HostID = resvHostB, [16]byte{0xB}
	}), tt.nsid)

	if err := nsA.ResvRegister(ctx, nvmeof.ResvRegister, false, 0, 0, 0xA); err != nil {
		t.Fatal(err)
	}
	if err := nsB.ResvRegister(ctx, nvmeof.ResvRegister, false, 0, 0, 0xB); err != nil {
		t.Fatal(err)
	}
	if err := nsA.ResvAcquire(ctx, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xA, 0); err != nil {
		t.Fatal(err)
	}
	const blk, blocks = 4096, 256
	if _, err := nsB.WriteAt(make([]byte, blk), 0); !errors.Is(err, errConflict) {
		t.Fatalf("B's write under A's reservation: %v, want a reservation conflict", err)
	}
	if _, err := nsB.ReadAt(make([]byte, blk), 0); err != nil {
		t.Fatalf("B's read under A's write exclusive: %v", err)
	}

	patA, patB := bytes.Repeat([]byte{0xAA}, blk), bytes.Repeat([]byte{0xBB}, blk)
	var wg sync.WaitGroup
	started := make(chan struct{}, 16)
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := nsA.WriteAt(patA, int64((w*blocks/16+i%(blocks/16))*blk))
				if i == 0 {
					started <- struct{}{}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 16 {
		<-started // every writer has had a write through
	}
	if err := nsB.ResvAcquire(ctx, nvmeof.ResvPreemptAndAbort, nvmeof.ResvWriteExclusive, 0xB, 0xA); err != nil {
		t.Fatal(err)
	}
	if _, err := nsB.WriteAt(bytes.Repeat(patB, blocks), 0); err != nil {
		t.Fatalf("B's write after preempting: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, errConflict) {
			t.Errorf("A's writer ended with %v, want a reservation conflict", err)
		}
	}
	got := make([]byte, blocks*blk)
	if _, err := nsB.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	for i := range blocks {
		if !bytes.Equal(got[i*blk:(i+1)*blk], patB) {
			t.Fatalf("block %d holds %#x: a write of the preempted host landed after Preempt and Abort", i, got[i*blk])
		}
	}
	rep, err := nsA.ResvReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Type != nvmeof.ResvWriteExclusive || rep.Regs != 1 || !rep.List[0].Holds || rep.List[0].Key != 0xB {
		t.Fatalf("report %+v, want B alone, holding", rep)
	}
	if err := nsA.ResvRegister(ctx, nvmeof.ResvRegister, false, 0, 0, 0xA); err != nil {
		t.Fatalf("A registers again: %v", err)
	}
	if err := nsB.ResvRelease(ctx, nvmeof.ResvClear, 0, 0xB); err != nil {
		t.Fatal(err)
	}
	if _, err := nsA.WriteAt(patA, 0); err != nil {
		t.Fatalf("A's write after the clear: %v", err)
	}
}
