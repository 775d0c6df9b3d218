package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/gds"
	"github.com/flashpath/flashpath/gds/safetensors"
	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

// sharedStorage is one backend behind two targets, as two storage nodes
// exporting the same backing storage: each target counts the commands it
// executes, and neither closes it.
type sharedStorage struct {
	backend.Backend
	ios atomic.Int64
	// since, when set (Unix ns), makes the next command note its time in
	// first.
	since, first atomic.Int64
}

func (s *sharedStorage) count() {
	s.ios.Add(1)
	if s.since.Load() != 0 && s.first.Load() == 0 {
		s.first.CompareAndSwap(0, time.Now().UnixNano())
	}
}

func (s *sharedStorage) ReadAt(p []byte, off int64) error {
	s.count()
	return s.Backend.ReadAt(p, off)
}

func (s *sharedStorage) WriteAt(p []byte, off int64, fua bool) error {
	s.count()
	return s.Backend.WriteAt(p, off, fua)
}

func (s *sharedStorage) Close() error { return nil }

// progress counts completed operations and lets a test wait for more.
type progress struct {
	mu      sync.Mutex
	n       int
	waiters []progressWaiter
}

type progressWaiter struct {
	at int
	ch chan struct{}
}

func (p *progress) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	keep := p.waiters[:0]
	for _, w := range p.waiters {
		if p.n >= w.at {
			close(w.ch)
		} else {
			keep = append(keep, w)
		}
	}
	p.waiters = keep
}

// wait waits (bounded) until k more operations completed.
func (p *progress) wait(t *testing.T, k int, what string) {
	t.Helper()
	p.mu.Lock()
	w := progressWaiter{at: p.n + k, ch: make(chan struct{})}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	select {
	case <-w.ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: fewer than %d operations completed in 30 s", what, k)
	}
}

// waitPath waits (bounded) until path i of m is in the state ok accepts.
func waitPath(t *testing.T, m *initiator.Multipath, i int, what string, ok func(initiator.PathInfo) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		changed := m.Changed()
		if in := m.States()[i]; ok(in) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("path %d never became %s: %+v", i, what, m.States()[i])
		}
	}
}

// TestMultipathFailover: one namespace through two targets on the same
// storage. Writers and readers keep going, each checking what it reads,
// while target A drops every connection (I/O fails over to B with no
// error to the caller; A reconnects in the background), and then while
// B turns ANA inaccessible (I/O moves to A). Each target's executed
// commands show where the I/O went.
func TestMultipathFailover(t *testing.T) {
	mem, err := backend.NewMem(16<<20, 512)
	testutil.SkipIfNotSupported(t, err)
	t.Cleanup(func() { mem.Close() })
	sa, sb := &sharedStorage{Backend: mem}, &sharedStorage{Backend: mem}
	a, b := startRestartableOn(t, sa), startRestartableOn(t, sb)

	cfg := func(addr string) initiator.Config {
		return initiator.Config{Addr: "tcp://" + addr, SubNQN: realNQN, IOQueues: 2, QueueDepth: 16,
			ReconnectDelay: 5 * time.Millisecond, CtrlLossTimeout: 30 * time.Second,
			Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := initiator.ConnectMultipath(ctx, []initiator.Config{cfg(a.addr), cfg(b.addr)}, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for i, in := range m.States() {
		if !in.Usable() || in.ANA != nvmeof.ANAOptimized {
			t.Fatalf("path %d at the start: %+v", i, in)
		}
	}

	// Four workers, each on its own 64 KiB region: write a numbered
	// pattern, read it back, compare.
	var done progress
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(w) << 16
			out, in := make([]byte, 64<<10), make([]byte, 64<<10)
			for seq := uint64(0); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < len(out); i += 8 {
					binary.LittleEndian.PutUint64(out[i:], seq<<8|uint64(w))
				}
				if _, err := m.WriteAt(out, off); err != nil {
					t.Errorf("worker %d write %d: %v", w, seq, err)
					return
				}
				if _, err := m.ReadAt(in, off); err != nil {
					t.Errorf("worker %d read %d: %v", w, seq, err)
					return
				}
				if !bytes.Equal(in, out) {
					t.Errorf("worker %d: read back differs from write %d", w, seq)
					return
				}
				done.add()
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })

	done.wait(t, 100, "both paths up")
	if sa.ios.Load() == 0 || sb.ios.Load() == 0 {
		t.Errorf("with both paths optimized, commands on A %d and B %d: want both used", sa.ios.Load(), sb.ios.Load())
	}

	// Target A drops every connection and refuses new ones.
	a.drop()
	waitPath(t, m, 0, "disconnected", func(in initiator.PathInfo) bool { return !in.Connected })
	beforeA := sa.ios.Load()
	done.wait(t, 200, "with path A down")
	if got := sa.ios.Load(); got != beforeA {
		t.Errorf("path A down, yet it executed %d commands", got-beforeA)
	}

	// A comes back; B turns inaccessible.
	a.listen(a.addr)
	waitPath(t, m, 0, "reconnected", initiator.PathInfo.Usable)
	keyB := target.PortKey{TrType: uint8(nvmeof.TrTypeTCP), Addr: netip.MustParseAddrPort(b.addr)}
	if err := b.ss.SetANAState(keyB, 1, nvmeof.ANAInaccessible); err != nil {
		t.Fatal(err)
	}
	waitPath(t, m, 1, "inaccessible", func(in initiator.PathInfo) bool { return in.ANA == nvmeof.ANAInaccessible })
	beforeA, beforeB := sa.ios.Load(), sb.ios.Load()
	done.wait(t, 200, "with path B inaccessible")
	if got := sb.ios.Load(); got != beforeB {
		t.Errorf("path B inaccessible, yet it executed %d commands", got-beforeB)
	}
	if sa.ios.Load() == beforeA {
		t.Error("path B inaccessible and no command on A")
	}

	// Both optimized again: both take I/O.
	if err := b.ss.SetANAState(keyB, 1, nvmeof.ANAOptimized); err != nil {
		t.Fatal(err)
	}
	waitPath(t, m, 1, "optimized", initiator.PathInfo.Usable)
	beforeB = sb.ios.Load()
	done.wait(t, 100, "both paths up again")
	if sb.ios.Load() == beforeB {
		t.Error("path B optimized again and no command on it")
	}
	if err := m.Flush(); err != nil {
		t.Errorf("flush: %v", err)
	}
}

// TestMultipathRefusesOtherNamespace: paths to different storage (other
// identifiers) are refused with an error naming both.
func TestMultipathRefusesOtherNamespace(t *testing.T) {
	a := startRestartable(t)
	b := startTarget(t, 8<<20, 0)
	cfg := func(addr string) initiator.Config {
		return initiator.Config{Addr: "tcp://" + addr, SubNQN: realNQN, CtrlLossTimeout: -1,
			Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}}
	}
	m, err := initiator.ConnectMultipath(context.Background(), []initiator.Config{cfg(a.addr), cfg(b.addr)}, 1)
	if err == nil {
		m.Close()
		t.Fatal("paths to a 16 MiB and an 8 MiB namespace accepted as one")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("do not lead to the same namespace")) {
		t.Errorf("error: %v", err)
	}
}

// killAfter is shared storage that runs kill (once, on its own goroutine)
// at the n-th command it executes (n 0: never). The command itself goes
// on: the target dies around it, as a node losing power would.
type killAfter struct {
	*sharedStorage
	n     atomic.Int64
	kill  func()
	fired atomic.Bool
}

// check starts kill once the storage is about to execute its n-th
// command; once only, even when commands run at the same time (two could
// both see n-1 done).
func (k *killAfter) check() {
	if n := k.n.Load(); n != 0 && k.ios.Load()+1 >= n && k.fired.CompareAndSwap(false, true) {
		go k.kill()
	}
}

func (k *killAfter) ReadAt(p []byte, off int64) error {
	k.check()
	return k.sharedStorage.ReadAt(p, off)
}

func (k *killAfter) WriteAt(p []byte, off int64, fua bool) error {
	k.check()
	return k.sharedStorage.WriteAt(p, off, fua)
}

// TestEngineMultipathFailover: a verified bench job over two paths
// (tcp://A,B/NQN/1), A optimized and B non-optimized, so A takes every
// command until it is killed in the middle of the write phase, never to
// return: every write completes and every block reads back verified
// through B, and the job reports no error. The time from the kill to B's
// first command (the failover) is logged.
func TestEngineMultipathFailover(t *testing.T) {
	mem, err := backend.NewMem(16<<20, 512)
	testutil.SkipIfNotSupported(t, err)
	t.Cleanup(func() { mem.Close() })
	sb := &sharedStorage{Backend: mem}
	killed := make(chan struct{})
	var a *restartable
	sa := &killAfter{sharedStorage: &sharedStorage{Backend: mem}}
	sa.n.Store(200)
	a = startRestartableOn(t, sa)
	var beforeKill int64
	sa.kill = func() {
		defer close(killed)
		beforeKill = sb.ios.Load()
		sb.since.Store(time.Now().UnixNano())
		a.drop() // every connection goes; nothing listens on A again
	}
	b := startRestartableOn(t, sb)
	keyB := target.PortKey{TrType: uint8(nvmeof.TrTypeTCP), Addr: netip.MustParseAddrPort(b.addr)}
	if err := b.ss.SetANAState(keyB, 1, nvmeof.ANANonOptimized); err != nil {
		t.Fatal(err)
	}
	r := runJob(t, "ioengine=nvme-tcp", "filename=tcp://"+a.addr+","+b.addr+"/"+realNQN+"/1", "hostnqn="+testHost,
		"rw=randwrite", "bs=4k", "size=4m", "iodepth=16", "verify=crc32c", "reconnect_delay=5ms", "ctrl_loss_tmo=1s")
	<-killed
	if w, rd := r.Dir[bench.DirWrite].IOs, r.Dir[bench.DirRead].IOs; w != 1024 || rd != 1024 {
		t.Fatalf("%d writes and %d verified reads, want 1024 each", w, rd)
	}
	if beforeKill != 0 {
		t.Errorf("B (non-optimized) executed %d commands while A (optimized) was up", beforeKill)
	}
	if sb.ios.Load() < 1024 {
		t.Errorf("target B executed %d commands; the verify phase alone is 1024 reads", sb.ios.Load())
	}
	t.Logf("failover: B's first command %v after A was killed", time.Duration(sb.first.Load()-sb.since.Load()))
}

// TestShardedCheckpointMultipath: a checkpoint shard saved through a
// two-path URL (tcp://A,B/NQN/1; two targets on the same storage) loads
// back verified while target A is killed in the middle of the load: the
// reads fail over to B, and the load reports no error.
func TestShardedCheckpointMultipath(t *testing.T) {
	d := openFakeGPU(t)
	ctx := context.Background()
	mem, err := backend.NewMem(32<<20, 512)
	testutil.SkipIfNotSupported(t, err)
	t.Cleanup(func() { mem.Close() })
	sa, sb := &killAfter{sharedStorage: &sharedStorage{Backend: mem}}, &sharedStorage{Backend: mem}
	a, b := startRestartableOn(t, sa), startRestartableOn(t, sb)
	killed := make(chan struct{})
	sa.kill = func() {
		defer close(killed)
		a.drop()
	}
	// B non-optimized: A takes every command while it is up.
	keyB := target.PortKey{TrType: uint8(nvmeof.TrTypeTCP), Addr: netip.MustParseAddrPort(b.addr)}
	if err := b.ss.SetANAState(keyB, 1, nvmeof.ANANonOptimized); err != nil {
		t.Fatal(err)
	}
	url := "tcp://" + a.addr + "," + b.addr + "/" + realNQN + "/1"
	ro := gds.RemoteOptions{HostNQN: testHost, Queues: 2, ReconnectFor: -1}
	ts, want := randomShard(t, d, "layer0", 6, 1)
	dir := t.TempDir()
	index := filepath.Join(dir, safetensors.IndexFile)
	rep, err := d.SaveShards(ctx, gds.SavePlan{Index: index, Shards: []gds.SaveShard{{Name: "model-00001-of-00001.safetensors", Location: url, Tensors: ts}},
		Remote: ro, Workers: 2, Chunk: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Shards[0]; s.Target != a.addr+","+b.addr {
		t.Errorf("save report: target %q, want both paths", s.Target)
	}
	if sb.ios.Load() != 0 {
		t.Errorf("B (non-optimized) executed %d commands of the save while A (optimized) was up", sb.ios.Load())
	}
	sa.n.Store(sa.ios.Load() + 8) // A dies eight commands into the load
	_, src, err := gds.OpenIndex(index, nil)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := gds.LoadShards(ctx, gds.LoadPlan{Shards: src, Devices: []*gds.Device{d}, Verify: true, Remote: ro,
		Options: gds.Options{Workers: 2, Chunk: 128 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	<-killed
	if sb.ios.Load() == 0 {
		t.Error("A was killed during the load, yet B executed nothing")
	}
	checkTensors(t, ck, want)
}

// TestMultipathZeroAlloc: a blocking read or write through a Multipath
// allocates nothing, as through a Namespace.
func TestMultipathZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	mem, err := backend.NewMem(4<<20, 512)
	testutil.SkipIfNotSupported(t, err)
	t.Cleanup(func() { mem.Close() })
	a, b := startRestartableOn(t, &sharedStorage{Backend: mem}), startRestartableOn(t, &sharedStorage{Backend: mem})
	var cfgs []initiator.Config
	for _, addr := range []string{a.addr, b.addr} {
		cfgs = append(cfgs, initiator.Config{Addr: "tcp://" + addr, SubNQN: realNQN, IOQueues: 1,
			Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}})
	}
	m, err := initiator.ConnectMultipath(context.Background(), cfgs, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	buf := make([]byte, 4096)
	if n := testing.AllocsPerRun(200, func() {
		if _, err := m.WriteAt(buf, 4096); err != nil {
			t.Fatal(err)
		}
		if _, err := m.ReadAt(buf, 4096); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per write and read through two paths, want 0", n)
	}
}

// TestCntlIDRange: two targets serving one subsystem for multipath give
// their controllers IDs from disjoint ranges (min_cntlid, max_cntlid), so
// a host that joins them into one subsystem never sees one ID twice; a
// range that is used up refuses the next controller, saying so.
func TestCntlIDRange(t *testing.T) {
	mem, err := backend.NewMem(4<<20, 512)
	testutil.SkipIfNotSupported(t, err)
	t.Cleanup(func() { mem.Close() })
	start := func(lo, hi uint16) string {
		tgt := target.New(target.Options{Logger: slog.New(slog.DiscardHandler)})
		ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN, AllowedHosts: []string{testHost}, MinCntlID: lo, MaxCntlID: hi})
		if err != nil {
			t.Fatal(err)
		}
		return startTargetWith(t, tgt, ss, &sharedStorage{Backend: mem}, 0).addr
	}
	a, b := start(1, 2), start(3, 4)
	tt := func(addr string) testTarget { return testTarget{addr: addr, subnqn: realNQN, nsid: 1} }
	var ids []uint16
	for _, addr := range []string{a, a, b, b} {
		ids = append(ids, connect(t, tt(addr), func(c *initiator.Config) { c.Options.HostNQN = testHost }).CntlID())
	}
	if ids[0] == ids[1] || ids[2] == ids[3] || ids[0] > 2 || ids[1] > 2 || ids[2] < 3 || ids[3] < 3 || ids[2] > 4 || ids[3] > 4 {
		t.Errorf("controller IDs %v: want A's in 1-2 and B's in 3-4", ids)
	}
	_, err = initiator.Connect(context.Background(), initiator.Config{Addr: "tcp://" + a, SubNQN: realNQN, CtrlLossTimeout: -1,
		Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}})
	if err == nil {
		t.Fatal("a third controller on A connected with its range (1-2) used up")
	}
}
