package e2e

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/tcp"
)

// TestHostileHosts is the security issue's soak: while four hostile hosts
// (other loopback addresses) do their worst, a well-behaved host runs
// verified I/O through the bench with no error, and the target's buffers
// stay within buffer_memory. One hoards buffers with writes whose data it
// never sends, one sends reads and never reads the responses, one opens
// 2,000 connections and says nothing, one sends malformed PDUs. The
// figures (the well-behaved host's rate alone and under attack) are
// printed, not asserted: the machine's load decides them.
func TestHostileHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: runs for several seconds")
	}
	const memory = 64 << 20
	be, err := backend.NewMem(64<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	tgt := target.New(target.Options{BufferMemory: memory, Logger: slog.New(slog.DiscardHandler)})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: benchNQN, AllowAnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	ln, err := tcp.Listen(tgt, "127.0.0.1:0", tcp.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); tgt.Close() })
	addr := ln.Addr().String()
	dev := "tcp://" + addr + "/" + benchNQN + "/1"

	// The well-behaved host: 64 MiB written at depth 16 with checksums,
	// then read back and verified.
	wellBehaved := func(phase string) float64 {
		t.Helper()
		start := time.Now()
		rep, err := bench.Run(context.Background(), bench.Config{Jobs: buildJobs(t, "ioengine=nvme-tcp", "filename="+dev,
			"rw=randwrite", "bs=64k", "size=64m", "iodepth=16", "verify=crc32c")})
		if err != nil {
			t.Fatalf("%s: %v", phase, err)
		}
		r := rep.Groups[0].Jobs[0]
		if r.Err != nil {
			t.Fatalf("%s: %v", phase, r.Err)
		}
		if w, rd := r.Dir[bench.DirWrite].Bytes, r.Dir[bench.DirRead].Bytes; w != 64<<20 || rd != 64<<20 {
			t.Fatalf("%s: %d bytes written, %d verified; want 64 MiB each", phase, w, rd)
		}
		mbps := 128 / time.Since(start).Seconds()
		t.Logf("%s: well-behaved host: 64 MiB written and 64 MiB verified at %.0f MiB/s", phase, mbps)
		return mbps
	}
	wellBehaved("warm-up") // the pool's slabs and the connection paths, first touched
	alone := wellBehaved("alone")

	from := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, last}) }
	var wg sync.WaitGroup
	stop := make(chan struct{})

	// 1. The hoarder: on eight I/O queues, writes of 128 KiB whose data
	// never comes, until the target refuses them (its share of the pool).
	const hogHost = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000a2"
	hog := tcppeer.ConnectFrom(t, addr, from(2), false, false, benchNQN, hogHost, [16]byte{2})
	hoarded, refused := 0, 0
	for qid := uint16(1); qid <= 8; qid++ {
		q := hog.IO
		if qid > 1 {
			q = tcppeer.DialFrom(t, addr, from(2))
			q.Init(false, false)
			if st := q.ConnectIO(qid, 31, hog.CntlID, benchNQN, hogHost, [16]byte{2}); !st.OK() {
				t.Fatalf("hoarder: connect I/O queue %d: %v", qid, st)
			}
		}
		for i := range 31 {
			q.Write(q.Capsule(tcppeer.IOCommand(nvmeof.NVMWrite, q.NextCID(), int64(i)<<17, 128<<10), nil))
			if hd, _ := q.ReadPDU(); hd.Type == nvmeof.PDUR2T {
				hoarded++
			} else {
				refused++
			}
		}
	}
	peak := tgt.BufferHeld()
	// 2. The one that never reads: reads of 128 KiB until its socket is
	// full (the writes then block; closing the connection ends them).
	deaf := tcppeer.ConnectFrom(t, addr, from(3), false, false, benchNQN, "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000a3", [16]byte{3})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 4000 {
			sqe := tcppeer.IOCommand(nvmeof.NVMRead, uint16(i%31), int64(i%256)<<17, 128<<10)
			if _, err := deaf.IO.NC.Write(deaf.IO.Capsule(sqe, nil)); err != nil {
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()

	// 3. 2,000 connections that say nothing.
	var idle []net.Conn
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from(4), 0))}
	for range 2000 {
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			break
		}
		idle = append(idle, nc)
	}

	// 4. Malformed PDUs: random bytes after a valid ICReq, on connection
	// after connection (at most 5,000) until the well-behaved host is done.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(4, 5))
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from(5), 0)), Timeout: 5 * time.Second}
		for range 5000 {
			select {
			case <-stop:
				return
			default:
			}
			nc, err := d.Dial("tcp", addr)
			if err != nil {
				continue
			}
			junk := make([]byte, 8+rng.IntN(256))
			for i := range junk {
				junk[i] = byte(rng.Uint32())
			}
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			nc.Write(append(tcppeer.ICReqBytes(nvmeof.ICReq{}), junk...))
			var b [256]byte
			for {
				if _, err := nc.Read(b[:]); err != nil {
					break // the target hung up (or the deadline passed)
				}
			}
			nc.Close()
		}
	}()

	attacked := wellBehaved("under attack")
	peak = max(peak, tgt.BufferHeld())
	close(stop)
	deaf.IO.NC.Close()
	for _, nc := range idle {
		nc.Close()
	}
	wg.Wait()

	t.Logf("under attack the well-behaved host ran at %.0f%% of its rate alone (%.0f vs %.0f MiB/s)", 100*attacked/alone, attacked, alone)
	t.Logf("hoarder: %d buffers of 128 KiB held, %d refused (share %d MiB); 2,000 silent connections: %d refused at accept; %d connections ended for malformed PDUs; buffers held at most %d of %d MiB",
		hoarded, refused, memory/4>>20, ln.Rejected.Load(), ln.ProtocolErrors.Load(), peak>>20, memory>>20)
	if hoarded*128<<10 > memory/4 || refused == 0 {
		t.Errorf("the hoarder holds %d KiB (share %d KiB) and was refused %d times", hoarded*128, memory/4>>10, refused)
	}
	if ln.Rejected.Load() == 0 {
		t.Error("2,000 connections from one address were all accepted (limit 1,024)")
	}
	if ln.ProtocolErrors.Load() == 0 {
		t.Error("no malformed PDU was seen")
	}
	if peak > memory {
		t.Errorf("buffers held %d bytes > buffer_memory %d", peak, memory)
	}
}
