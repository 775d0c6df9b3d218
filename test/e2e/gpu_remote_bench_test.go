package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/gds"
	"github.com/flashpath/flashpath/gds/safetensors"
	"github.com/flashpath/flashpath/target/backend"
)

// BenchmarkRemoteCheckpoint: a checkpoint of three shards on three
// targets (memory namespaces, in this process), saved and loaded through
// flashpath's host into the fake GPU (host memory: what is measured is
// the NVMe/TCP path into pinned staging buffers), beside the bench's
// nvme-tcp engine reading and writing the same namespaces with as many
// connections. Reports GB/s and CPU-s/GB (the process's: targets
// included).
//
//	go test ./test/e2e -run '^$' -bench RemoteCheckpoint -benchtime 5x
func BenchmarkRemoteCheckpoint(b *testing.B) {
	const shard = 64 << 20
	const queues = 4
	d := openFakeGPU(b)
	var tgts []*shardTarget
	for range 3 {
		be, err := backend.NewMem(2*shard, 512)
		if err != nil {
			b.Skip(err)
		}
		tgts = append(tgts, startShardTarget(b, be))
	}
	ro := gds.RemoteOptions{HostNQN: testHost, Queues: queues, ReconnectFor: -1}
	var shards []gds.SaveShard
	for i, tg := range tgts {
		buf, err := d.Alloc(shard)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { buf.Close() })
		var ts []gds.SaveTensor
		for k := range 16 {
			ts = append(ts, gds.SaveTensor{Name: fmt.Sprintf("l%d.w%d", i, k), DType: "U8", Shape: []int64{shard/16 - 4096}, Ptr: buf.Ptr() + gds.DevicePtr(k*shard/16)})
		}
		shards = append(shards, gds.SaveShard{Name: fmt.Sprintf("model-%05d-of-00003.safetensors", i+1), Location: tg.url, Tensors: ts})
	}
	index := filepath.Join(b.TempDir(), safetensors.IndexFile)
	ctx := context.Background()
	var bytes int64
	b.Run("save", func(b *testing.B) {
		var rep *gds.SaveReport
		var err error
		cpu := cpuNow()
		t0 := time.Now()
		for range b.N {
			if rep, err = d.SaveShards(ctx, gds.SavePlan{Index: index, Shards: shards, Remote: ro, Overwrite: true}); err != nil {
				b.Fatal(err)
			}
		}
		bytes = rep.Bytes
		report(b, bytes, time.Since(t0), cpuNow()-cpu)
	})
	b.Run("load", func(b *testing.B) {
		_, src, err := gds.OpenIndex(index, nil)
		if err != nil {
			b.Skip("no checkpoint saved:", err)
		}
		var xfer, cpu time.Duration
		for range b.N {
			ck, err := gds.LoadShards(ctx, gds.LoadPlan{Shards: src, Devices: []*gds.Device{d}, Remote: ro})
			if err != nil {
				b.Fatal(err)
			}
			bytes, xfer, cpu = ck.Bytes, xfer+ck.Transfer, cpu+ck.CPU
			ck.Close()
		}
		report(b, bytes, xfer, cpu) // the transfer: connecting and allocating are setup
	})
	for _, rw := range []string{"read", "write"} {
		b.Run("bench-"+rw, func(b *testing.B) {
			var secs []bench.Section
			for i, tg := range tgts {
				secs = append(secs, bench.Section{Name: fmt.Sprintf("t%d", i), Options: []bench.Option{
					{Name: "ioengine", Value: "nvme-tcp"}, {Name: "filename", Value: tg.url}, {Name: "hostnqn", Value: testHost},
					{Name: "rw", Value: rw}, {Name: "bs", Value: "1m"}, {Name: "iodepth", Value: "8"},
					{Name: "numjobs", Value: fmt.Sprint(queues)}, {Name: "size", Value: fmt.Sprint(shard / queues)},
					{Name: "offset_increment", Value: fmt.Sprint(shard / queues)}}})
			}
			jobs, err := bench.BuildJobs(nil, secs, nil)
			if err != nil {
				b.Fatal(err)
			}
			cpu := cpuNow()
			var moved int64
			var xfer time.Duration
			for range b.N {
				rep, err := bench.Run(ctx, bench.Config{Jobs: jobs})
				if err != nil {
					b.Fatal(err)
				}
				for _, g := range rep.Groups {
					xfer += g.Elapsed
					for _, j := range g.Jobs {
						if j.Err != nil {
							b.Fatal(j.Err)
						}
						for _, d := range j.Dir {
							moved += int64(d.Bytes)
						}
					}
				}
			}
			report(b, moved/int64(b.N), xfer, cpuNow()-cpu) // the jobs' elapsed time: connecting is outside it
		})
	}
}

// report puts GB/s over d (not the op's wall time, which includes
// connecting and allocating) and CPU-s/GB.
func report(b *testing.B, bytes int64, d, cpu time.Duration) {
	gb := float64(bytes) * float64(b.N) / 1e9
	b.ReportMetric(gb/d.Seconds(), "GB/s")
	b.ReportMetric(cpu.Seconds()/gb, "CPU-s/GB")
}

// cpuNow is the process's user and system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
