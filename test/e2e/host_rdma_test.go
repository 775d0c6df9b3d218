package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	hostrdma "github.com/flashpath/flashpath/initiator/rdma"
	_ "github.com/flashpath/flashpath/initiator/tcp"
	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/rdma"
	"github.com/flashpath/flashpath/rdma/rdmatest"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
	trdma "github.com/flashpath/flashpath/target/rdma"
)

// rdmaTarget runs flashpath's target with an NVMe/RDMA listener: over the
// in-process fake provider, or over real verbs where the lab passes a
// soft-RoCE address (FP_RDMA_ADDR).
func rdmaTarget(t testing.TB) (addr string, prov rdma.Provider, ln *trdma.Listener) {
	t.Helper()
	listen := "169.254.42.1:4420"
	if a := os.Getenv("FP_RDMA_ADDR"); a != "" {
		p, err := rdma.Verbs()
		if err != nil {
			t.Fatal(err)
		}
		prov, listen = p, net.JoinHostPort(a, "0")
	} else {
		prov = rdmatest.New()
	}
	ln = rdmaTargetOn(t, prov, listen)
	return "rdma://" + ln.Addr().String(), prov, ln
}

// rdmaTargetOn runs a target whose subsystem realNQN, allowing testHost
// only, serves a 32 MiB memory namespace as NSID 1 over NVMe/RDMA on prov
// at listen.
func rdmaTargetOn(t testing.TB, prov rdma.Provider, listen string) *trdma.Listener {
	t.Helper()
	return rdmaTargetKeys(t, prov, listen, nil)
}

// rdmaTargetKeys is rdmaTargetOn where the hosts in keys must authenticate.
func rdmaTargetKeys(t testing.TB, prov rdma.Provider, listen string, keys map[string]target.HostKeys) *trdma.Listener {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	tgt := target.New(target.Options{Logger: log})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN, AllowedHosts: []string{testHost}, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.NewMem(32<<20, 512)
	if err != nil {
		t.Skip(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	ln, err := trdma.Listen(tgt, listen, trdma.Options{Provider: prov, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ln.Close()
		tgt.Close()
	})
	return ln
}

func connectRDMA(t testing.TB, addr string, prov rdma.Provider, queues, depth int) *initiator.Controller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := initiator.Connect(ctx, initiator.Config{Addr: addr, SubNQN: realNQN, Transport: hostrdma.New(prov), IOQueues: queues, QueueDepth: depth,
		CtrlLossTimeout: -1, Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRDMAReadWrite: the blocking API over NVMe/RDMA, with buffers the
// provider does not know (bounced), buffers in registered memory (no
// copy), in-capsule writes, and a transfer at MDTS.
func TestRDMAReadWrite(t *testing.T) {
	addr, prov, _ := rdmaTarget(t)
	c := connectRDMA(t, addr, prov, 2, 32)
	ns, err := c.Namespace(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	id := c.Identify()
	if id.SGLS&nvmeof.SGLSKeyed == 0 {
		t.Fatalf("SGLS %#x: no keyed SGLs", id.SGLS)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	// Go heap buffers: bounced.
	heap := make([]byte, 1<<20)
	fill(heap)
	if _, err := ns.WriteAt(heap, 0); err != nil {
		t.Fatal(err)
	}
	small := make([]byte, 4096) // in the capsule
	fill(small)
	if _, err := ns.WriteAt(small, 2<<20); err != nil {
		t.Fatal(err)
	}
	// Registered memory: the target reads and writes it directly.
	reg, err := bufpool.Map(2 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer bufpool.Unmap(reg)
	region, err := prov.Register(reg)
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close()
	fill(reg[:1<<20])
	if _, err := ns.WriteAt(reg[:1<<20], 4<<20); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(reg[:1<<20])

	got := make([]byte, 1<<20)
	if _, err := ns.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, heap) {
		t.Fatal("bounced read differs from the bounced write")
	}
	if _, err := ns.ReadAt(got[:4096], 2<<20); err != nil || !bytes.Equal(got[:4096], small) {
		t.Fatalf("in-capsule write read back: %v", err)
	}
	clear(reg[1<<20:])
	if _, err := ns.ReadAt(reg[1<<20:], 4<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reg[1<<20:], want) {
		t.Fatal("registered-memory read differs from the registered-memory write")
	}
	if err := ns.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestRDMAQueueFull: the asynchronous API with every slot of a queue in
// flight, reads and writes mixed, each block checked.
func TestRDMAQueueFull(t *testing.T) {
	addr, prov, _ := rdmaTarget(t)
	const depth = 32
	c := connectRDMA(t, addr, prov, 1, depth)
	q := c.Queues()[0]
	done := make(chan *initiator.Request, depth)
	reqs := make([]initiator.Request, depth)
	bufs := make([][]byte, depth)
	for i := range reqs {
		bufs[i] = make([]byte, 8192)
		for j := range bufs[i] {
			bufs[i][j] = byte(i + j)
		}
		reqs[i] = initiator.Request{Op: initiator.OpWrite, NSID: 1, SLBA: uint64(i) * 16, NLB: 16, Buf: bufs[i], Done: done}
	}
	rs := make([]*initiator.Request, depth)
	for i := range reqs {
		rs[i] = &reqs[i]
	}
	if n, err := q.SubmitBatch(rs); err != nil || n != depth {
		t.Fatalf("SubmitBatch: %d, %v", n, err)
	}
	for range depth {
		if err := (<-done).Error(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range reqs {
		reqs[i].Op, reqs[i].Buf = initiator.OpRead, make([]byte, 8192)
	}
	if n, err := q.SubmitBatch(rs); err != nil || n != depth {
		t.Fatalf("SubmitBatch: %d, %v", n, err)
	}
	for range depth {
		r := <-done
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
		i := int(r.SLBA / 16)
		if !bytes.Equal(r.Buf, bufs[i]) {
			t.Fatalf("block %d read back differs", i)
		}
	}
}

// TestRDMAConnectionLost: the target going away fails the requests in
// flight with an error (no reconnect asked), never a hang.
func TestRDMAConnectionLost(t *testing.T) {
	addr, prov, ln := rdmaTarget(t)
	c := connectRDMA(t, addr, prov, 1, 8)
	ns, err := c.Namespace(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	buf := make([]byte, 4096)
	_, err = ns.ReadAt(buf, 0)
	if err == nil {
		t.Fatal("read succeeded after the target closed its connections")
	}
}

func TestRDMAAddressErrors(t *testing.T) {
	if _, _, err := initiator.SplitAddr("rdma://10.0.0.1", initiator.DefaultPort); err != nil {
		t.Fatal(err)
	}
	if tr, a, err := initiator.SplitAddr("rdma://[fe80::1]:4421", initiator.DefaultPort); err != nil || tr != "rdma" || a != "[fe80::1]:4421" {
		t.Fatalf("SplitAddr: %q %q %v", tr, a, err)
	}
	_, err := initiator.Connect(context.Background(), initiator.Config{Addr: "rdma://127.0.0.1:1", SubNQN: realNQN, Transport: hostrdma.New(rdmatest.New()), CtrlLossTimeout: -1,
		Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("connect to nothing: %v", err)
	}
	_, err = initiator.Connect(context.Background(), initiator.Config{Addr: "rdma://127.0.0.1:1", SubNQN: realNQN, Transport: hostrdma.New(rdmatest.New()),
		Options: initiator.Options{HostNQN: testHost, HeaderDigest: true, Logger: slog.New(slog.DiscardHandler)}})
	if err == nil || !strings.Contains(err.Error(), "digests") {
		t.Fatalf("digests over rdma: %v, want a refusal naming digests", err)
	}
}

// TestRDMADiscovery: a persistent discovery connection over NVMe/RDMA
// reads the log, which lists the RDMA port with its TSAS.
func TestRDMADiscovery(t *testing.T) {
	addr, prov, ln := rdmaTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := initiator.ConnectDiscovery(ctx, initiator.Config{Addr: addr, Transport: hostrdma.New(prov), CtrlLossTimeout: -1,
		Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log, err := c.DiscoveryLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Entries) != 1 {
		t.Fatalf("%d entries, want 1", len(log.Entries))
	}
	e := log.Entries[0]
	if e.TrType != nvmeof.TrTypeRDMA || e.SubNQN != realNQN || e.TrAddr != ln.Addr().Addr().String() || e.RDMACMS != nvmeof.RDMACMSRDMACM {
		t.Fatalf("entry %+v", e)
	}
}

// TestRDMANamespaceZeroAlloc: the blocking API over NVMe/RDMA allocates
// nothing per call, bounced buffers included (the fake provider allocates
// nothing in steady state either).
func TestRDMANamespaceZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	addr, prov, _ := rdmaTarget(t)
	c := connectRDMA(t, addr, prov, 1, 8)
	ns, err := c.Namespace(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	heap := make([]byte, 64<<10) // not registered: bounced
	for range 10 {               // warm up pools and queues
		ns.WriteAt(heap, 0)
		ns.ReadAt(heap, 0)
	}
	if n := testing.AllocsPerRun(200, func() {
		if _, err := ns.WriteAt(heap, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := ns.ReadAt(heap, 0); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per write+read of a bounced buffer, want 0", n)
	}
}
