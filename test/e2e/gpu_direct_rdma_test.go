package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/gds"
	"github.com/flashpath/flashpath/gds/safetensors"
	"github.com/flashpath/flashpath/initiator"
	hostrdma "github.com/flashpath/flashpath/initiator/rdma"
	"github.com/flashpath/flashpath/rdma/rdmatest"
	"github.com/flashpath/flashpath/target/backend"
)

// Checkpoint shards over NVMe/RDMA straight into (fake) GPU memory: two
// flashpath targets on the fake provider, the host's "rdma" transport on
// the same fabric, the fake libcuda's "device memory" (host memory, which
// the fabric's RDMA WRITEs reach once registered) as the GPU's.

// directTarget is a flashpath target serving one memory namespace over
// NVMe/RDMA on fab at listen; it returns the namespace's URL.
func directTarget(t *testing.T, fab *rdmatest.Fabric, listen string) string {
	t.Helper()
	return "rdma://" + rdmaTargetOn(t, fab, listen).Addr().String() + "/" + realNQN + "/1"
}

// TestShardedDirectRDMA: a checkpoint saved to two NVMe/RDMA targets (and
// a third shard on NVMe/TCP) loads with gpu path rdma and auto straight
// into GPU memory: equal tensors, reports naming rdma and the dma-buf, the
// fabric's RDMA WRITEs into device memory carrying every byte, no bounce
// buffer and no staging buffer used, one registration shared by both
// targets. Without dma-buf support auto falls back to staging and says
// why, rdma fails saying what to do; with nvidia-peermem the memory is
// registered by address. The NVMe/TCP shard stages, saying why, while the
// RDMA shards go direct.
func TestShardedDirectRDMA(t *testing.T) {
	if os.Getenv("FP_RDMA_ADDR") != "" {
		t.Skip("device memory needs a GPU: over real verbs there is none to register (the fake provider plays both)")
	}
	save := openFakeGPU(t)
	ctx := context.Background()
	fab := rdmatest.New()
	tr := hostrdma.New(fab)
	old := initiator.RegisterTransport(tr)
	t.Cleanup(func() { initiator.RegisterTransport(old) })
	urls := []string{directTarget(t, fab, "169.254.42.1:4420"), directTarget(t, fab, "169.254.42.2:4420")}
	tcpURL := startShardTarget(t, func() backend.Backend {
		be, err := backend.NewMem(32<<20, 512)
		if err != nil {
			t.Skip(err)
		}
		return be
	}()).url
	ro := gds.RemoteOptions{HostNQN: testHost, Queues: 2, ReconnectFor: -1}
	want := map[string][]byte{}
	var shards []gds.SaveShard
	for i, u := range append(urls, tcpURL) {
		ts, w := randomShard(t, save, fmt.Sprintf("layer%d", i), 4, uint64(40+i))
		for k, v := range w {
			want[k] = v
		}
		shards = append(shards, gds.SaveShard{Name: fmt.Sprintf("model-%05d-of-00003.safetensors", i+1), Location: u, Tensors: ts})
	}
	index := filepath.Join(t.TempDir(), safetensors.IndexFile)
	staged0 := tr.StagedBytes()
	rep, err := save.SaveShards(ctx, gds.SavePlan{Index: index, Shards: shards, Remote: ro, Workers: 2, Chunk: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	// The save's staging buffers are registered with the transport: the
	// NVMe/RDMA targets read the shards' bytes from them.
	if staged := tr.StagedBytes() - staged0; staged >= uint64(rep.Bytes)/4 {
		t.Errorf("the save copied %d bytes through the host's bounce buffers, the shards are %d bytes", staged, rep.Bytes)
	}
	for _, s := range rep.Shards {
		if s.Transport == "rdma" && !strings.Contains(s.Reason, "registered with the NIC") {
			t.Errorf("save report %+v: want the reason to say the staging buffers are registered with the NIC", s)
		}
	}
	_, all, err := gds.OpenIndex(index, nil)
	if err != nil {
		t.Fatal(err)
	}
	rdmaShards, rdmaWant := all[:2], map[string][]byte{}
	for k, v := range want {
		if !strings.HasPrefix(k, "layer2.") {
			rdmaWant[k] = v
		}
	}

	type result struct {
		ck       *gds.Sharded
		dev      *gds.Device
		staged   uint64
		fabStats rdmatest.Stats
	}
	load := func(t *testing.T, src []gds.ShardSource, path gds.Path, peermem bool) (result, error) {
		t.Helper()
		d := openFakeGPU(t) // a fresh device: its staging pool starts empty
		before, staged := fab.Stats(), tr.StagedBytes()
		ck, err := gds.LoadShards(ctx, gds.LoadPlan{Shards: src, Devices: []*gds.Device{d}, Verify: true, Remote: ro,
			PeerMem: func() bool { return peermem }, Options: gds.Options{Path: path, Workers: 3, Chunk: 128 << 10}})
		st := fab.Stats()
		st.DMABufRegistrations -= before.DMABufRegistrations
		st.AddrRegistrations -= before.AddrRegistrations
		st.DeviceWriteBytes -= before.DeviceWriteBytes
		st.DeviceReadBytes -= before.DeviceReadBytes
		if ck != nil {
			t.Cleanup(func() { ck.Close() })
		}
		return result{ck: ck, dev: d, staged: tr.StagedBytes() - staged, fabStats: st}, err
	}
	// direct checks what a load straight into GPU memory must show.
	direct := func(t *testing.T, r result, how string) {
		t.Helper()
		checkTensors(t, r.ck, rdmaWant)
		for _, s := range r.ck.Shards {
			if s.Path != gds.PathRDMA || s.Transport != "rdma" || !strings.Contains(s.Reason, how) || s.Bytes == 0 {
				t.Errorf("shard report %+v: want path rdma, a reason naming %q", s, how)
			}
		}
		if r.fabStats.DeviceWriteBytes < r.ck.Bytes {
			t.Errorf("the targets RDMA-WROTE %d bytes into GPU memory, want at least the %d bytes of tensors", r.fabStats.DeviceWriteBytes, r.ck.Bytes)
		}
		// Headers and Identify data are read through bounce buffers at
		// open; the tensors' bytes must not be.
		t.Logf("%d bytes of tensors, %d staged (headers, Identify), %+v", r.ck.Bytes, r.staged, r.fabStats)
		if r.staged >= uint64(r.ck.Bytes)/4 {
			t.Errorf("%d bytes went through bounce buffers, the tensors are %d bytes: the data was staged", r.staged, r.ck.Bytes)
		}
		if n := r.dev.StagingBytes(); n != 0 {
			t.Errorf("the device holds %d bytes of staging buffers after a direct load, want 0", n)
		}
	}

	for _, path := range []gds.Path{gds.PathRDMA, gds.PathAuto} {
		t.Run("dmabuf-"+string(path), func(t *testing.T) {
			r, err := load(t, rdmaShards, path, false)
			if err != nil {
				t.Fatal(err)
			}
			direct(t, r, "dma-buf")
			if r.fabStats.DMABufRegistrations != 1 || r.fabStats.AddrRegistrations != 0 {
				t.Errorf("registrations: %d dma-buf, %d by address; want one dma-buf shared by both targets",
					r.fabStats.DMABufRegistrations, r.fabStats.AddrRegistrations)
			}
		})
	}

	const noDMABuf = "GPU has no dma-buf support (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED=0) and nvidia-peermem is not loaded"
	t.Run("no-dmabuf", func(t *testing.T) {
		t.Setenv("FAKECUDA_NO_DMABUF", "1")
		r, err := load(t, rdmaShards, gds.PathAuto, false)
		if err != nil {
			t.Fatal(err)
		}
		checkTensors(t, r.ck, rdmaWant)
		const registered = "RDMA WRITEs land in pinned staging buffers registered with the NIC"
		for _, s := range r.ck.Shards {
			if s.Path != gds.PathStaging || !strings.Contains(s.Reason, noDMABuf) || !strings.Contains(s.Reason, registered) {
				t.Errorf("shard report %+v: want staging, the reasons %q and %q", s, noDMABuf, registered)
			}
		}
		// The staging buffers are registered with the transport: the
		// targets write into them, and nothing is copied through the
		// host's own bounce buffers beyond headers and Identify data.
		if r.staged >= uint64(r.ck.Bytes)/4 || r.fabStats.DeviceWriteBytes != 0 {
			t.Errorf("%d bytes through bounce buffers, %d RDMA-WRITTEN into GPU memory; want the %d bytes of tensors in registered staging buffers",
				r.staged, r.fabStats.DeviceWriteBytes, r.ck.Bytes)
		}
		_, err = load(t, rdmaShards, gds.PathRDMA, false)
		if err == nil || !strings.Contains(err.Error(), noDMABuf) || !strings.Contains(err.Error(), "modprobe nvidia-peermem") {
			t.Errorf("gpu path rdma without dma-buf or nvidia-peermem: %v, want the reason and what to do", err)
		}
	})

	t.Run("peermem", func(t *testing.T) {
		t.Setenv("FAKECUDA_NO_DMABUF", "1")
		r, err := load(t, rdmaShards, gds.PathRDMA, true)
		if err != nil {
			t.Fatal(err)
		}
		direct(t, r, "nvidia-peermem")
		if r.fabStats.AddrRegistrations != 1 || r.fabStats.DMABufRegistrations != 0 {
			t.Errorf("registrations: %d dma-buf, %d by address; want one by address", r.fabStats.DMABufRegistrations, r.fabStats.AddrRegistrations)
		}
	})

	t.Run("tcp-beside", func(t *testing.T) {
		r, err := load(t, all, gds.PathAuto, false)
		if err != nil {
			t.Fatal(err)
		}
		checkTensors(t, r.ck, want)
		var direct int64
		for _, s := range r.ck.Shards {
			switch s.Transport {
			case "rdma":
				direct += s.Bytes
				if s.Path != gds.PathRDMA || !strings.Contains(s.Reason, "dma-buf") {
					t.Errorf("NVMe/RDMA shard report %+v: want path rdma", s)
				}
			case "tcp":
				if s.Path != gds.PathStaging || !strings.Contains(s.Reason, "NVMe/TCP moves data through host memory") {
					t.Errorf("NVMe/TCP shard report %+v: want staging, saying TCP moves data through host memory", s)
				}
			}
		}
		if direct == 0 || r.fabStats.DeviceWriteBytes < direct {
			t.Errorf("the targets RDMA-WROTE %d bytes into GPU memory, want at least the NVMe/RDMA shards' %d", r.fabStats.DeviceWriteBytes, direct)
		}
		_, err = load(t, all, gds.PathRDMA, false)
		if err == nil || !strings.Contains(err.Error(), "NVMe/TCP moves data through host memory") {
			t.Errorf("gpu path rdma with an NVMe/TCP shard: %v, want it refused saying why", err)
		}
	})
}
