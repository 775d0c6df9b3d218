package e2e

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/tcp"

	"github.com/flashpath/flashpath/nvmeof"
)

// testTarget is a running controller for the end-to-end tests: the fake
// controller of internal/tcppeer or the real target.
type testTarget struct {
	addr   string // I/O controller
	disc   string // discovery controller
	subnqn string
	nsid   uint32
	fake   *tcppeer.Controller
	// The real target's parts (startTargetWith).
	tgt *target.Target
	ss  *target.Subsystem
	ln  *tcp.Listener
}

func startFake(t testing.TB, mut func(*tcppeer.Controller)) testTarget {
	f := tcppeer.NewController(t, mut)
	return testTarget{addr: f.Addr(), disc: f.Addr(), subnqn: f.SubNQN, nsid: 1, fake: f}
}

func connect(t testing.TB, tt testTarget, mut func(*initiator.Config)) *initiator.Controller {
	t.Helper()
	cfg := initiator.Config{Addr: "tcp://" + tt.addr, SubNQN: tt.subnqn, IOQueues: 4, QueueDepth: 32,
		Options: initiator.Options{HostNQN: "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"}}
	if mut != nil {
		mut(&cfg)
	}
	c, err := initiator.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func openNS(t testing.TB, c *initiator.Controller, nsid uint32) *initiator.Namespace {
	t.Helper()
	ns, err := c.Namespace(context.Background(), nsid)
	if err != nil {
		t.Fatalf("Namespace(%d): %v", nsid, err)
	}
	return ns
}

// extent is a byte range of a namespace.
type extent struct{ off, n int64 }

// randomExtents returns up to count non-overlapping block-aligned extents
// inside limit bytes, sizes log-uniform between 512 B and 1 MiB, in random order.
func randomExtents(rng *rand.Rand, count int, limit int64, bs int64) []extent {
	sizes := make([]int64, 0, count)
	var total int64
	for range count {
		shift := 9 + rng.IntN(12) // 512 B .. 1 MiB
		n := int64(1) << shift
		if shift < 20 {
			n += rng.Int64N(n) // and in between
		}
		n = max(n/bs*bs, bs)
		if total+n > limit/2 {
			break
		}
		sizes = append(sizes, n)
		total += n
	}
	slack := limit - total
	var out []extent
	pos := int64(0)
	for _, n := range sizes {
		gap := rng.Int64N(slack/int64(len(sizes))+1) / bs * bs
		pos += gap
		out = append(out, extent{pos, n})
		pos += n
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// readWriteRandom writes random data to random extents from 64
// goroutines, reads everything back concurrently, and compares.
func readWriteRandom(t *testing.T, ns *initiator.Namespace, rounds int) {
	rng := rand.New(rand.NewPCG(1, uint64(rounds)))
	limit := min(ns.Size(), 8<<20)
	for round := range rounds {
		exts := randomExtents(rng, 64, limit, int64(ns.BlockSize()))
		want := make([][]byte, len(exts))
		for i, e := range exts {
			want[i] = make([]byte, e.n)
			for j := range want[i] {
				want[i][j] = byte(rng.Uint32())
			}
		}
		parallel(t, len(exts), func(i int) error {
			_, err := ns.WriteAt(want[i], exts[i].off)
			return err
		})
		got := make([][]byte, len(exts))
		parallel(t, len(exts), func(i int) error {
			got[i] = make([]byte, exts[i].n)
			_, err := ns.ReadAt(got[i], exts[i].off)
			return err
		})
		for i := range exts {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("round %d: extent %d bytes at %d read back different data", round, exts[i].n, exts[i].off)
			}
		}
	}
}

func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoverFake(t *testing.T) {
	tt := startFake(t, nil)
	testDiscover(t, tt)
}

func testDiscover(t *testing.T, tt testTarget) {
	log, err := initiator.Discover(context.Background(), "tcp://"+tt.disc, initiator.Options{HostNQN: testHost})
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if log.NumRec != uint64(len(log.Entries)) {
		t.Errorf("NUMREC %d, %d entries decoded", log.NumRec, len(log.Entries))
	}
	i := slices.IndexFunc(log.Entries, func(e nvmeof.DiscoveryEntry) bool { return e.SubNQN == tt.subnqn })
	if i < 0 {
		t.Fatalf("discovery log %+v has no entry for %s", log.Entries, tt.subnqn)
	}
	if e := log.Entries[i]; e.TrType != nvmeof.TrTypeTCP || e.SubType != nvmeof.SubTypeNVM || e.TrSvcID == "" {
		t.Errorf("entry %+v: want TCP, NVM subsystem, a service id", e)
	}
}

func TestReadWriteFake(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*tcppeer.Controller)
		cfg  func(*initiator.Config)
	}{
		{name: "plain"},
		{name: "digests", cfg: func(c *initiator.Config) { c.HeaderDigest, c.DataDigest = true, true }},
		{name: "header-digest", cfg: func(c *initiator.Config) { c.HeaderDigest = true }},
		{name: "data-digest", cfg: func(c *initiator.Config) { c.DataDigest = true }},
		// CPDA 3: data at 16-byte boundaries; R2Ts of 20 KiB answered in
		// 4 KiB H2CData PDUs; C2HData in 12 KiB pieces ending in SUCCESS.
		{name: "cpda-small-pdus", mut: func(f *tcppeer.Controller) {
			f.CPDA, f.MaxH2C, f.R2TChunk, f.C2HChunk, f.Success = 3, 4096, 20480, 12288, true
		}, cfg: func(c *initiator.Config) { c.HeaderDigest, c.DataDigest = true, true }},
		{name: "no-incapsule-4k", mut: func(f *tcppeer.Controller) { f.IOCCSZ, f.BS = 4, 4096 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := startFake(t, func(f *tcppeer.Controller) {
				f.Data = make([]byte, 8<<20)
				f.MDTS = 7 // 512 KiB: 1 MiB I/Os are split
				if tc.mut != nil {
					tc.mut(f)
				}
			})
			c := connect(t, tt, tc.cfg)
			if len(c.Queues()) != 4 {
				t.Fatalf("%d I/O queues, want 4", len(c.Queues()))
			}
			readWriteRandom(t, openNS(t, c, tt.nsid), 2)
		})
	}
}

func TestCommandsFake(t *testing.T) {
	tt := startFake(t, nil)
	testCommands(t, tt)
}

// testCommands checks flush, write zeroes, deallocate and compare.
func testCommands(t *testing.T, tt testTarget) {
	c := connect(t, tt, nil)
	ns := openNS(t, c, tt.nsid)
	bs := ns.BlockSize()
	ones := bytes.Repeat([]byte{0xA5}, 16*bs)
	zeros := make([]byte, 16*bs)
	got := make([]byte, 16*bs)
	if _, err := ns.WriteAt(ones, 0); err != nil {
		t.Fatal(err)
	}
	if err := ns.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := ns.Compare(ones, 0); err != nil {
		t.Errorf("Compare of equal data: %v", err)
	}
	err := ns.Compare(zeros, 0)
	if !errors.Is(err, &nvmeof.StatusError{Status: nvmeof.StatusCompareFailure}) {
		t.Errorf("Compare of different data: %v, want compare failure", err)
	}

	if err := ns.WriteZeroes(int64(4*bs), int64(4*bs)); err != nil {
		t.Fatalf("WriteZeroes: %v", err)
	}
	if _, err := ns.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(ones)
	clear(want[4*bs : 8*bs])
	if !bytes.Equal(got, want) {
		t.Errorf("after WriteZeroes of blocks 4-7, read back does not match")
	}

	if err := ns.Deallocate(int64(10*bs), int64(3*bs)); err != nil {
		t.Fatalf("Deallocate: %v", err)
	}
	if _, err := ns.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	clear(want[10*bs : 13*bs])
	if !bytes.Equal(got, want) {
		t.Errorf("after Deallocate of blocks 10-12, read back does not match")
	}

	if _, err := ns.ReadAt(got[:bs], ns.Size()); err == nil {
		t.Errorf("read past the end succeeded")
	}
	if _, err := ns.ReadAt(got[:100], 0); err == nil || !strings.Contains(err.Error(), "block size") {
		t.Errorf("unaligned read: %v, want a block size error", err)
	}
}

func TestAsyncFake(t *testing.T) {
	tt := startFake(t, nil)
	testAsync(t, tt)
}

// testAsync keeps 64 requests in flight over 4 queues with the async API.
func testAsync(t *testing.T, tt testTarget) { testAsyncBlocks(t, tt, 8) }

// testAsyncBlocks keeps 64 requests of blocks blocks each in flight over
// the controller's queues, each slot alternating a write of a pattern of
// its own and a read that must return it.
func testAsyncBlocks(t *testing.T, tt testTarget, blocks int) {
	c := connect(t, tt, nil)
	ns := openNS(t, c, tt.nsid)
	bs := ns.BlockSize()
	const inflight, total = 64, 512
	done := make(chan *initiator.Request, inflight)
	reqs := make([]initiator.Request, inflight)
	bufs := make([][]byte, inflight)
	qs := c.Queues()
	size := blocks * bs
	for i := range reqs {
		bufs[i] = make([]byte, size)
	}
	// Each slot i owns blocks [i*blocks, (i+1)*blocks): write a pattern,
	// read it back.
	submit := func(i, n int) {
		r := &reqs[i]
		op := initiator.OpWrite
		if n%2 == 1 {
			op = initiator.OpRead
		} else {
			for j := range bufs[i] {
				bufs[i][j] = byte(n + i + j)
			}
		}
		*r = initiator.Request{Op: op, NSID: tt.nsid, SLBA: uint64(i * blocks), NLB: uint32(blocks), Buf: bufs[i], Done: done, Tag: uint64(n<<8 | i)}
		if err := qs[i%len(qs)].Submit(r); err != nil {
			t.Fatalf("Submit: %v", err)
		}
	}
	for i := range inflight {
		submit(i, 0)
	}
	for k := 0; k < total; k++ {
		r := <-done
		if err := r.Error(); err != nil {
			t.Fatalf("request %v: %v", r.Op, err)
		}
		i, n := int(r.Tag&0xFF), int(r.Tag>>8)
		if r.Op == initiator.OpRead {
			for j, b := range bufs[i] {
				if b != byte(n-1+i+j) {
					t.Fatalf("slot %d round %d: byte %d is %#x, want %#x", i, n, j, b, byte(n-1+i+j))
				}
			}
		}
		if k+inflight < total {
			submit(i, n+1)
		}
	}
}

func TestConnectInvalidHostFake(t *testing.T) {
	tt := startFake(t, func(f *tcppeer.Controller) { f.Hosts = []string{"nqn.2014-08.org.nvmexpress:uuid:someone-else"} })
	_, err := initiator.Connect(context.Background(), initiator.Config{Addr: tt.addr, SubNQN: tt.subnqn, Options: initiator.Options{HostNQN: "nqn.2014-08.org.nvmexpress:uuid:me"}})
	var se *nvmeof.StatusError
	if !errors.As(err, &se) || se.Status.Code() != nvmeof.StatusConnectInvalidHost {
		t.Fatalf("Connect: %v, want a *nvmeof.StatusError with connect invalid host", err)
	}
	if strings.Contains(err.Error(), "connect: connect:") {
		t.Errorf("Connect: %v says connect twice", err)
	}
	if !strings.Contains(err.Error(), "allowed hosts") {
		t.Errorf("error %q does not say what to do", err)
	}
}

func TestConnectUnknownSubsystemFake(t *testing.T) {
	tt := startFake(t, nil)
	_, err := initiator.Connect(context.Background(), initiator.Config{Addr: tt.addr, SubNQN: "nqn.2024-01.io.flashpath:nope"})
	if !errors.Is(err, &nvmeof.StatusError{Status: nvmeof.StatusConnectInvalidParam}) || !strings.Contains(err.Error(), "flashpath discover") {
		t.Fatalf("Connect: %v, want connect invalid parameters and a hint", err)
	}
}

func TestConnectRefused(t *testing.T) {
	f := tcppeer.NewController(t, nil)
	addr := f.Addr()
	f.Close()
	_, err := initiator.Connect(context.Background(), initiator.Config{Addr: addr, SubNQN: "nqn.x"})
	if err == nil || !strings.Contains(err.Error(), "flashpath target") {
		t.Fatalf("Connect to a closed port: %v, want a hint to start the target", err)
	}
}

func TestAsyncEventFake(t *testing.T) {
	tt := startFake(t, nil)
	c := connect(t, tt, nil)
	tt.fake.NSChanged()
	ev := <-c.Events()
	if ev.Err != nil || ev.Type != nvmeof.AEReasonNotice || !slices.Equal(ev.ChangedNamespaces, []uint32{1}) {
		t.Fatalf("event %+v, want a namespace change of NSID 1", ev)
	}
	// The AER is posted again.
	tt.fake.NSChanged()
	if ev := <-c.Events(); ev.Info != nvmeof.AENoticeNSAttrChanged {
		t.Fatalf("second event %+v", ev)
	}
}

// testAdmin reads every log page and feature the host offers, on a fresh
// controller of tt, and returns the controller.
func testAdmin(t *testing.T, tt testTarget) *initiator.Controller {
	t.Helper()
	c := connect(t, tt, nil)
	ctx := context.Background()
	ids, err := c.ActiveNamespaces(ctx)
	if err != nil || !slices.Equal(ids, []uint32{tt.nsid}) {
		t.Fatalf("ActiveNamespaces: %v, %v", ids, err)
	}
	if _, err := c.NamespaceDescriptors(ctx, 1); err != nil {
		t.Errorf("NamespaceDescriptors: %v", err)
	}
	if _, err := c.SMARTLog(ctx); err != nil {
		t.Errorf("SMARTLog: %v", err)
	}
	if _, err := c.ErrorLog(ctx); err != nil {
		t.Errorf("ErrorLog: %v", err)
	}
	if _, _, err := c.FirmwareSlotLog(ctx); err != nil {
		t.Errorf("FirmwareSlotLog: %v", err)
	}
	if _, _, err := c.CommandEffects(ctx); err != nil {
		t.Errorf("CommandEffects: %v", err)
	}
	if _, err := c.GetFeature(ctx, nvmeof.FeatKeepAlive, 0); err != nil {
		t.Errorf("GetFeature: %v", err)
	}
	if c.Identify().SubNQN != tt.subnqn {
		t.Errorf("Identify SUBNQN %q, want %q", c.Identify().SubNQN, tt.subnqn)
	}
	return c
}

func TestAdminFake(t *testing.T) {
	tt := startFake(t, nil)
	c := testAdmin(t, tt)
	ctx := context.Background()
	if _, err := c.Namespace(ctx, 99); !errors.Is(err, &nvmeof.StatusError{Status: nvmeof.StatusInvalidNamespace}) {
		t.Errorf("Namespace(99): %v, want invalid namespace", err)
	}
}
