package e2e

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flashpath/flashpath/bench"
	_ "github.com/flashpath/flashpath/bench/gpu" // ioengine=gpu
	"github.com/flashpath/flashpath/gds"
	"github.com/flashpath/flashpath/gds/gdstest"
	_ "github.com/flashpath/flashpath/gds/nvmf"
	"github.com/flashpath/flashpath/gds/safetensors"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

// Remote checkpoints into (fake) GPU memory: shards served by flashpath
// targets over NVMe/TCP on 127.0.0.1, loaded and saved through
// flashpath's host with the fake libcuda (gds/gdstest).

var (
	fakeCUDAOnce sync.Once
	fakeCUDAErr  error
)

func openFakeGPU(t testing.TB) *gds.Device {
	t.Helper()
	gdstest.SkipWithoutBinding(t)
	fakeCUDAOnce.Do(func() { _, fakeCUDAErr = gdstest.Setup() })
	if fakeCUDAErr != nil {
		t.Fatal(fakeCUDAErr)
	}
	d, err := gds.OpenDevice(0)
	if errors.Is(err, gds.ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// tripwire is a backend that kills its target at the n-th read or write
// (n counted from when it is armed).
type tripwire struct {
	backend.Backend
	reads, writes atomic.Int64 // left before the kill; <= 0: disarmed
	kill          func()
	once          sync.Once
}

func (w *tripwire) trip(left *atomic.Int64) error {
	if left.Load() > 0 && left.Add(-1) == 0 {
		w.once.Do(w.kill)
		return errors.New("target killed")
	}
	return nil
}

func (w *tripwire) ReadAt(p []byte, off int64) error {
	if err := w.trip(&w.reads); err != nil {
		return err
	}
	return w.Backend.ReadAt(p, off)
}

func (w *tripwire) WriteAt(p []byte, off int64, fua bool) error {
	if err := w.trip(&w.writes); err != nil {
		return err
	}
	return w.Backend.WriteAt(p, off, fua)
}

// shardTarget is one storage node: a flashpath target serving one
// namespace, which the test may kill.
type shardTarget struct {
	url  string
	wire *tripwire
}

func startShardTarget(t testing.TB, be backend.Backend) *shardTarget {
	t.Helper()
	w := &tripwire{Backend: be}
	tt := startTargetOn(t, target.Options{}, w, 0)
	var once sync.Once
	w.kill = func() {
		go once.Do(func() { tt.ln.Close(); tt.tgt.Close() }) // not on the queue goroutine that is running this I/O
	}
	return &shardTarget{url: "tcp://" + tt.addr + "/" + tt.subnqn + "/1", wire: w}
}

// randomShard returns tensors of random sizes and bytes, in GPU memory.
func randomShard(t *testing.T, d *gds.Device, prefix string, n int, seed uint64) ([]gds.SaveTensor, map[string][]byte) {
	r := rand.New(rand.NewPCG(seed, 7))
	var ts []gds.SaveTensor
	want := map[string][]byte{}
	for i := range n {
		size := 1 + r.IntN(600<<10)
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		name := prefix + ".w" + string(rune('a'+i))
		ts = append(ts, gds.SaveTensor{Name: name, DType: "U8", Shape: []int64{int64(size)}, Ptr: toDevice(t, d, b)})
		want[name] = b
	}
	return ts, want
}

// toDevice copies b into new GPU memory, freed when the test ends.
func toDevice(t *testing.T, d *gds.Device, b []byte) gds.DevicePtr {
	t.Helper()
	buf, err := d.Alloc(int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	if err := buf.CopyFromHost(b, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Ptr()
}

func checkTensors(t *testing.T, ck *gds.Sharded, want map[string][]byte) {
	t.Helper()
	if len(ck.Tensors) != len(want) {
		t.Fatalf("loaded %d tensors, want %d", len(ck.Tensors), len(want))
	}
	for _, ten := range ck.Tensors {
		b := ck.BufferOf(&ten)
		got := make([]byte, ten.Size)
		if err := b.CopyToHost(got, int64(ten.Ptr-b.Ptr())); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[ten.Name]) {
			t.Fatalf("tensor %s: GPU memory differs from what was saved", ten.Name)
		}
	}
}

// A checkpoint of three shards saved to three targets (two memory
// namespaces and a file namespace), loaded back from them all at once and
// verified; a corrupted shard names its tensor; a save killed half way is
// reported incomplete while the previous checkpoint still loads; a target
// killed mid-load fails the load naming shard and target.
func TestShardedCheckpointOverTCP(t *testing.T) {
	d := openFakeGPU(t)
	ctx := context.Background()
	dir := t.TempDir()
	mem := func() backend.Backend {
		be, err := backend.NewMem(32<<20, 512)
		if err != nil {
			t.Skip(err)
		}
		return be
	}
	fileBE, err := backend.OpenFile(filepath.Join(dir, "ns3.img"), backend.FileOptions{Size: 32 << 20})
	if err != nil {
		t.Skip(err)
	}
	tgts := []*shardTarget{startShardTarget(t, mem()), startShardTarget(t, mem()), startShardTarget(t, fileBE)}
	ro := gds.RemoteOptions{HostNQN: testHost, Queues: 3, ReconnectFor: -1}
	want := map[string][]byte{}
	var shards []gds.SaveShard
	for i, tg := range tgts {
		ts, w := randomShard(t, d, "layer"+string(rune('0'+i)), 4, uint64(i))
		for k, v := range w {
			want[k] = v
		}
		shards = append(shards, gds.SaveShard{Name: "model-0000" + string(rune('1'+i)) + "-of-00003.safetensors", Location: tg.url, Tensors: ts})
	}
	index := filepath.Join(dir, safetensors.IndexFile)
	rep, err := d.SaveShards(ctx, gds.SavePlan{Index: index, Shards: shards, Metadata: map[string]string{"format": "pt"},
		Remote: ro, Workers: 3, Chunk: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Shards {
		if s.Path != gds.PathStaging || s.Transport != "tcp" || s.Queues != 3 || s.NIC != "lo" {
			t.Errorf("save report %+v", s)
		}
	}
	load := func(index string) (*gds.Sharded, error) {
		_, src, err := gds.OpenIndex(index, nil)
		if err != nil {
			return nil, err
		}
		return gds.LoadShards(ctx, gds.LoadPlan{Shards: src, Devices: []*gds.Device{d}, Verify: true, Remote: ro,
			Options: gds.Options{Workers: 3, Chunk: 128 << 10}})
	}
	ck, err := load(index)
	if err != nil {
		t.Fatal(err)
	}
	checkTensors(t, ck, want)
	for _, s := range ck.Shards {
		if s.Path != gds.PathStaging || s.Transport != "tcp" || s.NIC != "lo" || !strings.Contains(s.Location, "tcp://127.0.0.1:") || s.Bytes == 0 {
			t.Errorf("shard report %+v", s)
		}
	}
	ck.Close()

	// One shard loaded alone by its URL.
	one, err := gds.LoadShards(ctx, gds.LoadPlan{Shards: []gds.ShardSource{{Name: tgts[1].url, Location: tgts[1].url}},
		Devices: []*gds.Device{d}, Verify: true, Remote: ro})
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Tensors) != 4 {
		t.Errorf("one shard: %d tensors", len(one.Tensors))
	}
	one.Close()

	// A save to other namespaces, killed half way: the new index is
	// incomplete, the previous checkpoint still loads.
	spare := []*shardTarget{startShardTarget(t, mem()), startShardTarget(t, mem()), startShardTarget(t, mem())}
	next := append([]gds.SaveShard(nil), shards...)
	for i := range next {
		next[i].Location = spare[i].url
	}
	spare[1].wire.writes.Store(3)
	index2 := filepath.Join(dir, "step2.index.json")
	_, err = d.SaveShards(ctx, gds.SavePlan{Index: index2, Shards: next, Remote: ro, Workers: 3, Chunk: 256 << 10})
	if err == nil || !strings.Contains(err.Error(), next[1].Name) {
		t.Fatalf("save with a target killed: %v, want an error naming shard %s", err, next[1].Name)
	}
	if _, err := load(index2); !gds.IsIncomplete(err) {
		t.Fatalf("load of the interrupted save: %v, want incomplete", err)
	}
	if ck, err := load(index); err != nil {
		t.Fatalf("the previous checkpoint no longer loads: %v", err)
	} else {
		ck.Close()
	}

	// A corrupted byte in the file namespace's shard: the load names the
	// tensor (the shard's last, whose last byte is flipped).
	f, err := os.OpenFile(filepath.Join(dir, "ns3.img"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := shards[2].Tensors[len(shards[2].Tensors)-1].Name
	b := []byte{0}
	st := fileShardEnd(t, f)
	f.ReadAt(b, st-1)
	f.WriteAt([]byte{^b[0]}, st-1)
	f.Close()
	if _, err := load(index); err == nil || !strings.Contains(err.Error(), `"`+last+`"`) {
		t.Fatalf("load of a corrupted shard: %v, want it to name tensor %s", err, last)
	}
	f, _ = os.OpenFile(filepath.Join(dir, "ns3.img"), os.O_RDWR, 0)
	f.WriteAt(b, st-1)
	f.Close()

	// A target killed mid-load: the load fails naming shard and target, and
	// reports nothing loaded.
	tgts[0].wire.reads.Store(2)
	ck, err = load(index)
	if err == nil {
		ck.Close()
		t.Fatal("load with a target killed succeeded")
	}
	if ck != nil || !strings.Contains(err.Error(), shards[0].Name) || !strings.Contains(err.Error(), strings.TrimPrefix(tgts[0].url, "tcp://")[:15]) {
		t.Fatalf("load with a target killed: %v, want an error naming shard %s and %s", err, shards[0].Name, tgts[0].url)
	}
}

// fileShardEnd returns where the data of the safetensors shard at the
// start of f ends (its last tensor's last byte is at the result - 1).
func fileShardEnd(t *testing.T, f *os.File) int64 {
	t.Helper()
	st, _ := f.Stat()
	h, err := safetensors.Read(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	for _, ten := range h.Tensors {
		end = max(end, h.DataOffset+ten.End)
	}
	return end
}

// The gpu bench engine over a namespace URL: writes then reads verified,
// through the staging pipeline into (fake) GPU memory.
func TestGPUBenchOverTCP(t *testing.T) {
	openFakeGPU(t)
	be, err := backend.NewMem(8<<20, 512)
	if err != nil {
		t.Skip(err)
	}
	st := startShardTarget(t, be)
	base := []string{"ioengine=gpu", "filename=" + st.url, "size=4m", "hostnqn=" + testHost}
	r := runJob(t, append(base, "rw=randwrite", "bs=64k", "iodepth=8", "verify=crc32c")...)
	if w := r.Dir[bench.DirWrite]; w.Bytes != 4<<20 {
		t.Fatalf("wrote %d bytes, want 4 MiB", w.Bytes)
	}
	if rd := r.Dir[bench.DirRead]; rd.IOs != 64 {
		t.Fatalf("verify read %d blocks, want 64", rd.IOs)
	}
	// The bytes are on the target: read through the plain host too.
	c := connect(t, testTarget{addr: strings.SplitN(st.url, "/", 4)[2], subnqn: realNQN}, nil)
	ns := openNS(t, c, 1)
	p := make([]byte, 64<<10)
	if _, err := ns.ReadAt(p, 0); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p, make([]byte, len(p))) {
		t.Fatal("the namespace still reads zeros after the GPU engine wrote it")
	}
	if _, err := gds.OpenRemote(context.Background(), "tcp://127.0.0.1:1/nqn.x:y/1", false, gds.RemoteOptions{}); err == nil {
		t.Fatal("open of a URL nobody serves succeeded")
	}
}
