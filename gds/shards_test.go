package gds

import (
	"bytes"
	"context"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/gds/safetensors"
)

func TestCRC32Combine(t *testing.T) {
	a, b := randBytes(1000, 1), randBytes(4097, 2)
	whole := crc32.Checksum(append(append([]byte{}, a...), b...), castagnoli)
	if got := crc32Combine(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), int64(len(b))); got != whole {
		t.Fatalf("combine = %08x, want %08x", got, whole)
	}
	if got := crc32Combine(0, crc32.Checksum(a, castagnoli), int64(len(a))); got != crc32.Checksum(a, castagnoli) {
		t.Fatalf("combine onto the empty CRC = %08x", got)
	}
}

// gpuTensors puts tensors of the given sizes (bytes, U8) in one GPU
// buffer filled with random bytes and returns them and their bytes.
func gpuTensors(t *testing.T, d *Device, prefix string, sizes []int, seed uint64) ([]SaveTensor, map[string][]byte) {
	total := 0
	for _, n := range sizes {
		total += n
	}
	data := randBytes(max(total, 1), seed)
	b, err := d.Alloc(int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.CopyFromHost(data, 0); err != nil {
		t.Fatal(err)
	}
	var ts []SaveTensor
	want := map[string][]byte{}
	off := 0
	for i, n := range sizes {
		name := prefix + "." + string(rune('a'+i))
		ts = append(ts, SaveTensor{Name: name, DType: "U8", Shape: []int64{int64(n)}, Ptr: b.Ptr() + DevicePtr(off)})
		want[name] = data[off : off+n]
		off += n
	}
	return ts, want
}

func checkLoaded(t *testing.T, ck *Sharded, want map[string][]byte) {
	t.Helper()
	if len(ck.Tensors) != len(want) {
		t.Fatalf("loaded %d tensors, want %d", len(ck.Tensors), len(want))
	}
	for _, ten := range ck.Tensors {
		b := ck.BufferOf(&ten)
		got := readBack(t, b, int64(ten.Ptr-b.Ptr()), ten.Size)
		if !bytes.Equal(got, want[ten.Name]) {
			t.Fatalf("tensor %s differs from what was saved", ten.Name)
		}
	}
}

// A sharded save to local files, then a load of its index: every tensor
// equal, verified against the CRCs the save recorded; a corrupted shard
// names the tensor; a save that fails half way leaves the previous
// checkpoint loadable and the new one incomplete.
func TestShardedSaveLoadFiles(t *testing.T) {
	d := openDev(t)
	dir := t.TempDir()
	t1, want := gpuTensors(t, d, "layer1", []int{5000, 77, 0, 300000}, 1)
	t2, want2 := gpuTensors(t, d, "layer2", []int{123457, 9}, 2)
	for k, v := range want2 {
		want[k] = v
	}
	index := filepath.Join(dir, safetensors.IndexFile)
	plan := SavePlan{Index: index, Metadata: map[string]string{"format": "pt"}, Workers: 3, Chunk: 8192, Shards: []SaveShard{
		{Name: "model-00001-of-00002.safetensors", Location: filepath.Join(dir, "model-00001-of-00002.safetensors"), Tensors: t1},
		{Name: "model-00002-of-00002.safetensors", Location: filepath.Join(dir, "model-00002-of-00002.safetensors"), Tensors: t2},
	}}
	rep, err := d.SaveShards(context.Background(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Shards) != 2 || rep.Bytes == 0 {
		t.Fatalf("report %+v", rep)
	}
	if _, err := os.Stat(index + ".partial"); !os.IsNotExist(err) {
		t.Errorf("the .partial record outlived the save: %v", err)
	}
	load := func(locs map[string]string) (*Sharded, error) {
		_, shards, err := OpenIndex(index, locs)
		if err != nil {
			return nil, err
		}
		return LoadShards(context.Background(), LoadPlan{Shards: shards, Devices: []*Device{d}, Verify: true,
			Options: Options{Workers: 2, Chunk: 16384}})
	}
	ck, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, ck, want)
	if len(ck.Checks) != len(want) || len(ck.Shards) != 2 || ck.Shards[0].Path != PathBounce {
		t.Errorf("checks %d, shards %+v", len(ck.Checks), ck.Shards)
	}
	ck.Close()

	// The same files read by safetensors' rules: each shard is a valid file.
	for _, sh := range plan.Shards {
		f, err := os.Open(sh.Location)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		if _, err := safetensors.Read(f, st.Size()); err != nil {
			t.Errorf("%s: %v", sh.Name, err)
		}
		f.Close()
	}

	// Saving over the locations the index keeps is refused without Overwrite.
	if _, err := d.SaveShards(context.Background(), plan); err == nil || !strings.Contains(err.Error(), "would destroy") {
		t.Errorf("save over the previous checkpoint's shards: %v", err)
	}

	// A save that fails half way (its second shard cannot be created):
	// the previous index still loads; a new index path is incomplete.
	bad := plan
	bad.Shards = []SaveShard{plan.Shards[0], plan.Shards[1]}
	bad.Shards[0].Location = filepath.Join(dir, "new-1.safetensors")
	bad.Shards[1].Location = filepath.Join(dir, "no-such-dir", "new-2.safetensors")
	if _, err := d.SaveShards(context.Background(), bad); err == nil {
		t.Fatal("save into a missing folder succeeded")
	}
	if ck, err := load(nil); err != nil {
		t.Fatalf("the previous checkpoint no longer loads: %v", err)
	} else {
		ck.Close()
	}
	bad.Index = filepath.Join(dir, "other.index.json")
	d.SaveShards(context.Background(), bad)
	if _, _, err := OpenIndex(bad.Index, nil); !IsIncomplete(err) {
		t.Errorf("load of an interrupted save: %v, want incomplete", err)
	}

	// One corrupted byte in a shard: the load names the tensor.
	f, err := os.OpenFile(plan.Shards[1].Location, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	f.WriteAt([]byte{0x5a ^ 0xff}, st.Size()-3) // inside layer2.b, the last tensor
	f.Close()
	if _, err := load(nil); err == nil || !strings.Contains(err.Error(), `"layer2.b"`) {
		t.Fatalf("load of a corrupted shard: %v, want it to name tensor layer2.b", err)
	}
}

// Tensors placed on two devices by name: each lands on its own.
func TestShardedPlacement(t *testing.T) {
	d := openDev(t)
	dir := t.TempDir()
	ts, want := gpuTensors(t, d, "m", []int{4096, 100, 8191, 3}, 3)
	index := filepath.Join(dir, "idx.json")
	_, err := d.SaveShards(context.Background(), SavePlan{Index: index, Shards: []SaveShard{
		{Name: "s.safetensors", Location: filepath.Join(dir, "s.safetensors"), Tensors: ts}}})
	if err != nil {
		t.Fatal(err)
	}
	_, shards, err := OpenIndex(index, nil)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := LoadShards(context.Background(), LoadPlan{Shards: shards, Devices: []*Device{d, d}, Verify: true,
		Place: func(_ int, name string) int { return int(name[len(name)-1]-'a') % 2 }, Options: Options{Workers: 2, Chunk: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	checkLoaded(t, ck, want)
}

// Locations that swap two shards are caught by the index's weight map,
// before anything is read into GPU memory.
func TestShardLocationsSwapped(t *testing.T) {
	d := openDev(t)
	dir := t.TempDir()
	t1, _ := gpuTensors(t, d, "x", []int{100}, 5)
	t2, _ := gpuTensors(t, d, "y", []int{200}, 6)
	index := filepath.Join(dir, "i.json")
	_, err := d.SaveShards(context.Background(), SavePlan{Index: index, Shards: []SaveShard{
		{Name: "a.safetensors", Location: filepath.Join(dir, "a.safetensors"), Tensors: t1},
		{Name: "b.safetensors", Location: filepath.Join(dir, "b.safetensors"), Tensors: t2}}})
	if err != nil {
		t.Fatal(err)
	}
	_, shards, err := OpenIndex(index, map[string]string{"a.safetensors": filepath.Join(dir, "b.safetensors"), "b.safetensors": filepath.Join(dir, "a.safetensors")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadShards(context.Background(), LoadPlan{Shards: shards, Devices: []*Device{d}})
	if err == nil || !strings.Contains(err.Error(), "is the location right") {
		t.Fatalf("swapped locations: %v", err)
	}
	if _, _, err := OpenIndex(index, map[string]string{"c.safetensors": "x"}); err == nil {
		t.Fatal("a location for a shard the index does not name was accepted")
	}
}

func TestIsURL(t *testing.T) {
	for s, want := range map[string]bool{"tcp://a/b/1": true, "rdma://x": true, "/ckpt/a.safetensors": false,
		"a:b": false, `c:\x`: false, "://x": false, "model.safetensors.index.json": false} {
		if IsURL(s) != want {
			t.Errorf("IsURL(%q) = %v", s, !want)
		}
	}
}
