package e2e

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/tcp"
)

const (
	realNQN  = "nqn.2026-11.io.flashpath:initiator-test"
	testHost = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"
)

// startTarget runs the flashpath target in process on 127.0.0.1:0 with a
// mem namespace of size bytes, allowing testHost only.
func startTarget(t testing.TB, size int64, maxH2C int) testTarget {
	t.Helper()
	be, err := backend.NewMem(size, 512)
	testutil.SkipIfNotSupported(t, err)
	return startTargetOn(t, target.Options{}, be, maxH2C)
}

// startTargetOn runs a target with opts whose subsystem realNQN, allowing
// testHost only, serves be as namespace 1 on 127.0.0.1:0.
func startTargetOn(t testing.TB, opts target.Options, be backend.Backend, maxH2C int) testTarget {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	tgt := target.New(opts)
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN, AllowedHosts: []string{testHost}})
	if err != nil {
		t.Fatal(err)
	}
	return startTargetWith(t, tgt, ss, be, maxH2C)
}

// startTargetWith serves be as namespace 1 of ss on 127.0.0.1:0.
func startTargetWith(t testing.TB, tgt *target.Target, ss *target.Subsystem, be backend.Backend, maxH2C int) testTarget {
	return startTargetListen(t, tgt, ss, be, tcp.Options{MaxH2CData: maxH2C})
}

// startTargetListen serves be as namespace 1 of ss on a listener on
// 127.0.0.1:0 with opts.
func startTargetListen(t testing.TB, tgt *target.Target, ss *target.Subsystem, be backend.Backend, opts tcp.Options) testTarget {
	t.Helper()
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	ln, err := tcp.Listen(tgt, "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ln.Close()
		tgt.Close()
	})
	a := ln.Addr().String()
	return testTarget{addr: a, disc: a, subnqn: realNQN, nsid: 1, tgt: tgt, ss: ss, ln: ln}
}

func TestDiscoverTarget(t *testing.T) {
	testDiscover(t, startTarget(t, 16<<20, 0))
}

func TestReadWriteTarget(t *testing.T) {
	for _, tc := range []struct {
		name         string
		hdgst, ddgst bool
	}{{"plain", false, false}, {"digests", true, true}, {"header-digest", true, false}, {"data-digest", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			// MAXH2CDATA 16 KiB: writes beyond it take several H2CData PDUs.
			tt := startTarget(t, 16<<20, 16<<10)
			c := connect(t, tt, func(c *initiator.Config) { c.HeaderDigest, c.DataDigest = tc.hdgst, tc.ddgst })
			if len(c.Queues()) != 4 {
				t.Fatalf("%d I/O queues, want 4", len(c.Queues()))
			}
			readWriteRandom(t, openNS(t, c, tt.nsid), 2)
		})
	}
}

func TestCommandsTarget(t *testing.T) {
	testCommands(t, startTarget(t, 16<<20, 0))
}

func TestAsyncTarget(t *testing.T) {
	testAsync(t, startTarget(t, 16<<20, 0))
}

// TestAsyncLargeReadsTarget reads 128 KiB at depth: the target gathers
// several reads' data per write, straight from their buffers, and each
// must still come back with its own data.
func TestAsyncLargeReadsTarget(t *testing.T) {
	testAsyncBlocks(t, startTarget(t, 16<<20, 0), 256)
}

// TestFileTarget runs the random read/write and 64-in-flight tests on a
// file namespace: through io_uring (O_DIRECT and buffered) and with the
// synchronous path.
func TestFileTarget(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts backend.FileOptions
	}{
		{"io_uring", backend.FileOptions{}},
		{"io_uring-buffered", backend.FileOptions{Buffered: true}},
		{"sync", backend.FileOptions{SyncIO: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Size = 16 << 20
			be, err := backend.OpenFile(t.TempDir()+"/ns.img", tc.opts)
			testutil.SkipIfNotSupported(t, err)
			if f := be; tc.opts.SyncIO == f.AsyncIO() {
				t.Fatalf("AsyncIO = %v with %+v", f.AsyncIO(), tc.opts)
			}
			tgt := target.New(target.Options{Logger: slog.New(slog.DiscardHandler)})
			ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN, AllowedHosts: []string{testHost}})
			if err != nil {
				t.Fatal(err)
			}
			tt := startTargetWith(t, tgt, ss, be, 16<<10)
			c := connect(t, tt, nil)
			readWriteRandom(t, openNS(t, c, tt.nsid), 2)
			testAsync(t, tt)
			if !tc.opts.Buffered {
				return
			}
			// 256 KiB reads of a buffered file go out by sendfile, 64 at
			// a time, between writes of the same blocks.
			testAsyncBlocks(t, tt, 256<<10/be.BlockSize())
			if n := ss.Namespace(tt.nsid).Stats().BytesFromFile; n == 0 {
				t.Error("no read of the buffered file was sent from the page cache")
			}
		})
	}
}

func TestConnectInvalidHostTarget(t *testing.T) {
	tt := startTarget(t, 1<<20, 0)
	_, err := initiator.Connect(context.Background(), initiator.Config{Addr: tt.addr, SubNQN: tt.subnqn,
		Options: initiator.Options{HostNQN: "nqn.2014-08.org.nvmexpress:uuid:99999999-0000-4000-8000-000000000001", Logger: slog.New(slog.DiscardHandler)}})
	var se *nvmeof.StatusError
	if !errors.As(err, &se) || se.Status.Code() != nvmeof.StatusConnectInvalidHost {
		t.Fatalf("Connect: %v, want a *nvmeof.StatusError with connect invalid host", err)
	}
	if !strings.Contains(err.Error(), "allowed hosts") {
		t.Errorf("error %q does not say what to do", err)
	}
}

func TestAdminTarget(t *testing.T) {
	testAdmin(t, startTarget(t, 16<<20, 0))
}

// TestSubmitBatch writes and reads back more requests than the queue holds
// in flight through SubmitBatch, which must flush what it buffered before
// it waits for a slot.
func TestSubmitBatch(t *testing.T) {
	tt := startTarget(t, 8<<20, 0)
	c := connect(t, tt, func(cfg *initiator.Config) { cfg.IOQueues = 1; cfg.QueueDepth = 8 })
	ns := openNS(t, c, tt.nsid)
	q := c.Queues()[0]
	const n = 40 // five times the depth
	bs := ns.BlockSize()
	done := make(chan *initiator.Request, n)
	reqs := make([]initiator.Request, n)
	batch := make([]*initiator.Request, n)
	for _, op := range []initiator.Op{initiator.OpWrite, initiator.OpRead} {
		for i := range reqs {
			buf := make([]byte, 2*bs)
			if op == initiator.OpWrite {
				for j := range buf {
					buf[j] = byte(i*7 + j)
				}
			}
			reqs[i] = initiator.Request{Op: op, NSID: tt.nsid, SLBA: uint64(2 * i), NLB: 2, Buf: buf, Done: done, Tag: uint64(i)}
			batch[i] = &reqs[i]
		}
		if sent, err := q.SubmitBatch(batch); err != nil || sent != len(batch) {
			t.Fatalf("submitted %d of %d: %v", sent, len(batch), err)
		}
		for range n {
			r := <-done
			if err := r.Error(); err != nil {
				t.Fatalf("%v %d: %v", r.Op, r.Tag, err)
			}
			if r.Op == initiator.OpRead {
				for j, b := range r.Buf {
					if want := byte(int(r.Tag)*7 + j); b != want {
						t.Fatalf("request %d byte %d: %#x, want %#x", r.Tag, j, b, want)
					}
				}
			}
		}
	}
}
