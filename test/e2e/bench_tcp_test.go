package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashpath/flashpath/bench"
	_ "github.com/flashpath/flashpath/bench/fabrics"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/tcp"
)

const benchNQN = "nqn.2026-11.io.flashpath:bench"

// startBenchTarget serves a 16 MiB memory namespace on 127.0.0.1 and returns
// the nvme-tcp filename of its namespace 1.
func startBenchTarget(t *testing.T) string {
	t.Helper()
	be, err := backend.NewMem(16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	return startBenchTargetWith(t, be)
}

// fuaCounter counts the writes that reach the backend with and without FUA.
type fuaCounter struct {
	backend.Backend
	fua, plain atomic.Int64
}

func (c *fuaCounter) WriteAt(p []byte, off int64, fua bool) error {
	if fua {
		c.fua.Add(1)
	} else {
		c.plain.Add(1)
	}
	return c.Backend.WriteAt(p, off, fua)
}

// TestEngineSyncFUA: sync=1 (and dsync) makes every write a FUA write, as
// O_SYNC does on a kernel-attached namespace; the default does not.
func TestEngineSyncFUA(t *testing.T) {
	mem, err := backend.NewMem(16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	be := &fuaCounter{Backend: mem}
	name := startBenchTargetWith(t, be)
	runJob(t, "ioengine=nvme-tcp", "filename="+name, "rw=write", "bs=4k", "size=256k", "iodepth=4")
	if be.fua.Load() != 0 || be.plain.Load() != 64 {
		t.Fatalf("sync=0: %d FUA and %d plain writes, want 0 and 64", be.fua.Load(), be.plain.Load())
	}
	for _, v := range []string{"1", "dsync"} {
		be.fua.Store(0)
		be.plain.Store(0)
		runJob(t, "ioengine=nvme-tcp", "filename="+name, "rw=write", "bs=4k", "size=256k", "iodepth=4", "sync="+v)
		if be.fua.Load() != 64 || be.plain.Load() != 0 {
			t.Fatalf("sync=%s: %d FUA and %d plain writes, want 64 and 0", v, be.fua.Load(), be.plain.Load())
		}
	}
}

// newBenchTarget is a target whose subsystem benchNQN (any host) has be as namespace 1.
func newBenchTarget(t *testing.T, be backend.Backend) *target.Target {
	t.Helper()
	tgt := target.New(target.Options{})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: benchNQN, AllowAnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	return tgt
}

func startBenchTargetWith(t *testing.T, be backend.Backend) string {
	t.Helper()
	tgt := newBenchTarget(t, be)
	ln, err := tcp.Listen(tgt, "127.0.0.1:0", tcp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); tgt.Close() })
	return "tcp://" + ln.Addr().String() + "/" + benchNQN + "/1"
}

// buildJobs builds the jobs of one section of NAME=VALUE options.
func buildJobs(t *testing.T, kv ...string) []*bench.Job {
	t.Helper()
	var o []bench.Option
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		o = append(o, bench.Option{Name: k, Value: v})
	}
	jobs, err := bench.BuildJobs(nil, []bench.Section{{Name: "nvme-tcp", Options: o}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func runJob(t *testing.T, kv ...string) *bench.JobResult {
	t.Helper()
	rep, err := bench.Run(context.Background(), bench.Config{Jobs: buildJobs(t, kv...)})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Groups[0].Jobs[0]
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	return r
}

// TestEngineVerifiedWriteThenRead writes the namespace through the engine
// with per-block checksums, reads it back verified, then reads randomly at
// depth 32 with digests on.
func TestEngineVerifiedWriteThenRead(t *testing.T) {
	dev := startBenchTarget(t)
	base := []string{"ioengine=nvme-tcp", "filename=" + dev, "size=4m"}
	r := runJob(t, append(base, "rw=randwrite", "bs=16k", "iodepth=16", "verify=crc32c")...)
	if w := r.Dir[bench.DirWrite]; w.IOs != 256 || w.Bytes != 4<<20 {
		t.Fatalf("writes: %d I/Os, %d bytes; want 256, 4 MiB", w.IOs, w.Bytes)
	}
	if rd := r.Dir[bench.DirRead]; rd.IOs != 256 {
		t.Fatalf("verify read %d blocks, want 256", rd.IOs)
	}
	// The same through the host's receive goroutine instead of a polled queue.
	r = runJob(t, append(base, "rw=randwrite", "bs=16k", "iodepth=16", "verify=crc32c", "polled=0")...)
	if rd := r.Dir[bench.DirRead]; rd.IOs != 256 {
		t.Fatalf("polled=0: verify read %d blocks, want 256", rd.IOs)
	}
	r = runJob(t, append(base, "rw=randread", "bs=4k", "iodepth=32", "io_size=2m", "norandommap", "hdr_digest=1", "data_digest=1")...)
	if rd := r.Dir[bench.DirRead]; rd.IOs != 512 || rd.Bytes != 2<<20 {
		t.Fatalf("reads: %d I/Os, %d bytes; want 512, 2 MiB", rd.IOs, rd.Bytes)
	}
	// 128 KiB writes cross the in-capsule limit and go through R2T.
	r = runJob(t, append(base, "rw=write", "bs=128k", "iodepth=8", "verify=crc32c")...)
	if rd := r.Dir[bench.DirRead]; rd.IOs != 32 {
		t.Fatalf("verify read %d blocks, want 32", rd.IOs)
	}
	// A mixed workload, then every block it wrote read back and checked.
	r = runJob(t, append(base, "rw=randrw", "bs=8k", "iodepth=16", "verify=crc32c")...)
	if w, rd := r.Dir[bench.DirWrite].IOs, r.Dir[bench.DirRead].IOs; w == 0 || rd != 512 {
		t.Fatalf("randrw verify: %d writes, %d reads; want 512 mixed I/Os plus a verify read per write", w, rd)
	}
	// Trims become Dataset Management deallocate commands: afterwards the
	// blocks read back as zeros (the mem namespace reports DLFEAT zeros), so
	// a verify pass over them fails on the first one.
	r = runJob(t, append(base, "rw=randtrim", "bs=64k", "iodepth=8", "size=1m")...)
	if tr := r.Dir[bench.DirTrim]; tr.IOs != 16 || tr.Bytes != 1<<20 {
		t.Fatalf("trims: %d I/Os, %d bytes; want 16, 1 MiB", tr.IOs, tr.Bytes)
	}
	jobs, _ := bench.BuildJobs(nil, []bench.Section{{Name: "v", Options: []bench.Option{{Name: "ioengine", Value: "nvme-tcp"},
		{Name: "filename", Value: dev}, {Name: "rw", Value: "read"}, {Name: "bs", Value: "64k"}, {Name: "size", Value: "1m"},
		{Name: "verify", Value: "crc32c"}}}}, nil)
	var ve *bench.VerifyError
	if _, err := bench.Run(context.Background(), bench.Config{Jobs: jobs}); !errors.As(err, &ve) || !strings.Contains(ve.Reason, "never written") {
		t.Fatalf("verify after trim: %v, want a block that reads as never written", err)
	}
	// fsync=8 and end_fsync become NVMe Flush commands: one after every
	// 8 writes but the last (as fio), then the end's.
	r = runJob(t, append(base, "rw=randwrite", "bs=64k", "iodepth=4", "fsync=8", "end_fsync=1")...)
	if r.Syncs.Count() != 8 {
		t.Fatalf("%d flushes, want 8 (64 writes, fsync=8: 7, then end_fsync)", r.Syncs.Count())
	}
}

func TestEngineRefusesUnknownSubsystem(t *testing.T) {
	dev := startBenchTarget(t)
	jobs, err := bench.BuildJobs(nil, []bench.Section{{Name: "x", Options: []bench.Option{
		{Name: "ioengine", Value: "nvme-tcp"}, {Name: "filename", Value: strings.Replace(dev, benchNQN, "nqn.2026-11.io.flashpath:nope", 1)},
		{Name: "rw", Value: "read"}, {Name: "size", Value: "1m"},
	}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := bench.Run(context.Background(), bench.Config{Jobs: jobs})
	if err == nil && rep.Groups[0].Jobs[0].Err == nil {
		t.Fatal("bench against an unknown subsystem succeeded")
	}
}

// dropAfter is a backend that calls drop (once, on its own goroutine)
// when the n-th write arrives.
type dropAfter struct {
	backend.Backend
	writes atomic.Int64
	n      int64
	drop   func()
}

func (d *dropAfter) WriteAt(p []byte, off int64, fua bool) error {
	if d.writes.Add(1) == d.n {
		go d.drop()
	}
	return d.Backend.WriteAt(p, off, fua)
}

// TestEngineRidesThroughReconnect drops every connection of the target in
// the middle of a verified write job and brings it back: as fio over the
// kernel host, the job waits for the reconnect, sends the I/O in flight
// again, and ends without an error, every block verified.
func TestEngineRidesThroughReconnect(t *testing.T) {
	mem, err := backend.NewMem(16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	tgt := target.New(target.Options{})
	t.Cleanup(func() { tgt.Close() })
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: benchNQN, AllowAnyHost: true})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ln *tcp.Listener
	listen := func(addr string) {
		l, err := tcp.Listen(tgt, addr, tcp.Options{})
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		ln = l
		mu.Unlock()
	}
	listen("127.0.0.1:0")
	addr := ln.Addr().String()
	dropped := make(chan struct{})
	be := &dropAfter{Backend: mem, n: 300, drop: func() {
		defer close(dropped)
		mu.Lock()
		l := ln
		mu.Unlock()
		l.Close() // every connection goes
		listen(addr)
	}}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		ln.Close()
	})
	r := runJob(t, "ioengine=nvme-tcp", "filename=tcp://"+addr+"/"+benchNQN+"/1", "rw=randwrite", "bs=4k", "size=4m",
		"iodepth=8", "verify=crc32c", "reconnect_delay=5ms")
	<-dropped
	if w, rd := r.Dir[bench.DirWrite].IOs, r.Dir[bench.DirRead].IOs; w != 1024 || rd != 1024 {
		t.Fatalf("%d writes and %d verified reads, want 1024 each", w, rd)
	}
}

// TestBusyPollBothEnds runs verified jobs with the target's connections and
// the host's queue busy-polling their sockets: data read back equals data
// written, at depth 1 and at depth, through in-capsule writes and R2T.
func TestBusyPollBothEnds(t *testing.T) {
	be, err := backend.NewMem(8<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	tgt := newBenchTarget(t, be)
	ln, err := tcp.Listen(tgt, "127.0.0.1:0", tcp.Options{BusyPoll: 200 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); tgt.Close() })
	dev := "tcp://" + ln.Addr().String() + "/" + benchNQN + "/1"
	for _, poll := range []string{"hipri", "busy_poll=100us"} {
		base := []string{"ioengine=nvme-tcp", "filename=" + dev, "size=2m", poll}
		r := runJob(t, append(base, "rw=randwrite", "bs=4k", "iodepth=1", "verify=crc32c")...)
		if rd := r.Dir[bench.DirRead]; rd.IOs != 512 {
			t.Fatalf("%s: verify read %d blocks, want 512", poll, rd.IOs)
		}
		r = runJob(t, append(base, "rw=write", "bs=128k", "iodepth=16", "verify=crc32c")...)
		if rd := r.Dir[bench.DirRead]; rd.IOs != 16 {
			t.Fatalf("%s: verify read %d blocks, want 16", poll, rd.IOs)
		}
	}
	rep, err := bench.Run(context.Background(), bench.Config{Jobs: buildJobs(t, "ioengine=nvme-tcp", "filename="+dev, "size=1m", "busy_poll=soon")})
	if err == nil && rep != nil {
		err = rep.Groups[0].Jobs[0].Err
	}
	if err == nil || !strings.Contains(err.Error(), "busy_poll") {
		t.Errorf("busy_poll=soon: %v, want an error naming the option", err)
	}
}
