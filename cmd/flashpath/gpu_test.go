package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flashpath/flashpath/gds"
	"github.com/flashpath/flashpath/gds/gdstest"
	"github.com/flashpath/flashpath/gds/safetensors"
)

var (
	fakeOnce sync.Once
	fakeErr  error
)

// fakeGPU points the loader at the fake libcuda/libcufile (no GPU needed).
// It must run before anything loads the driver; without a TestMain of its
// own (the package is shared), the fakes' directory stays in $TMPDIR.
func fakeGPU(t *testing.T) {
	t.Helper()
	fakeOnce.Do(func() { _, fakeErr = gdstest.Setup() })
	if fakeErr != nil {
		t.Fatal(fakeErr)
	}
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	fakeGPU(t)
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestLoadConfigValidation(t *testing.T) {
	for _, c := range []loadConfig{
		{Path: "warp", Direct: "auto", Output: "text"},
		{Path: "auto", Direct: "maybe", Output: "text"},
		{Path: "auto", Direct: "auto", Output: "yaml"},
		{Path: "auto", Direct: "auto", Output: "text", GPU: -1},
	} {
		if _, err := c.options(); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
	o, err := loadConfig{Path: "bounce", Direct: "off", Output: "json", ChunkMiB: 4}.options()
	if err != nil || o.Chunk != 4<<20 || o.Path != "bounce" {
		t.Fatalf("options = %+v, %v", o, err)
	}
}

func TestTopoRuns(t *testing.T) {
	out, err := run(t, "topo", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("topo json: %v\n%s", err, out)
	}
	if _, ok := r["cufile"]; !ok {
		t.Fatalf("no cufile status in %s", out)
	}
	if out, err := run(t, "topo"); err != nil || !strings.Contains(out, "GPUs") {
		t.Fatalf("topo text: %v\n%s", err, out)
	}
}

func TestLoadCommand(t *testing.T) {
	gdstest.SkipWithoutBinding(t)
	h := &safetensors.Header{Tensors: []safetensors.Tensor{{Name: "w", DType: "BF16", Shape: []int64{3, 1000}}}}
	size, _ := safetensors.Layout(h.Tensors, 1)
	hdr, _ := h.Encode(8)
	path := filepath.Join(t.TempDir(), "m.safetensors")
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	os.WriteFile(path, append(hdr, data...), 0o644)
	for _, p := range []string{"auto", "bounce", "cufile"} {
		out, err := run(t, "load", path, "--gpu-path", p, "--verify", "--output", "json", "--chunk-mib", "1")
		if err != nil {
			t.Fatalf("%s: %v\n%s", p, err, out)
		}
		var r loadResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Bytes != size || r.Verified == nil || !*r.Verified || r.Reason == "" || (p != "auto" && string(r.Path) != p) {
			t.Fatalf("%s: %+v", p, r)
		}
	}
	out, err := run(t, "load", path, "--gpu-path", "bounce", "--repeat", "3", "--verify", "-o", "json", "--workers", "2", "--depth", "2", "--chunk-mib", "1")
	if err != nil {
		t.Fatalf("--repeat: %v\n%s", err, out)
	}
	var r loadResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Runs != 3 || r.Warm == nil || r.Warm.TotalGBps <= 0 || r.TotalGBps <= 0 || r.StagingMiB != 4 || r.Workers != 2 ||
		r.Verified == nil || !*r.Verified {
		t.Fatalf("--repeat 3: %s", out)
	}
	// The JSON says which reader ran: pread for buffered reads, io_uring
	// for O_DIRECT ones where the kernel and file system allow both.
	for _, tc := range []struct{ direct, want string }{{"off", "pread"}, {"on", "io_uring"}} {
		out, err := run(t, "load", path, "--gpu-path", "bounce", "--direct", tc.direct, "--verify", "-o", "json", "--chunk-mib", "1")
		if err != nil && tc.direct == "on" {
			t.Logf("--direct on: %v (O_DIRECT refused here)", err)
			continue
		}
		var r loadResult
		if err != nil || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("--direct %s: %v\n%s", tc.direct, err, out)
		}
		if string(r.Reader) != tc.want && !(tc.want == "io_uring" && r.Reader == "pread" && strings.Contains(r.Reason, "io_uring")) {
			t.Errorf("--direct %s: reader %q (%s), want %s", tc.direct, r.Reader, r.Reason, tc.want)
		}
		if r.Verified == nil || !*r.Verified {
			t.Errorf("--direct %s: not verified: %s", tc.direct, out)
		}
	}
	if _, err := run(t, "load", path, "--reader", "aio"); err == nil || !strings.Contains(err.Error(), "--reader") {
		t.Errorf("--reader aio: err = %v", err)
	}
	if _, err := run(t, "load", path, "--cufile-io", "turbo"); err == nil || !strings.Contains(err.Error(), "--cufile-io") {
		t.Errorf("--cufile-io turbo: err = %v", err)
	}
	out, err = run(t, "load", path, "--gpu-path", "cufile", "--cufile-io", "batch", "--verify", "-o", "json")
	if err != nil || !strings.Contains(out, "batch API, 4 threads") || !strings.Contains(out, `"verified": true`) {
		t.Errorf("--cufile-io batch: %v\n%s", err, out)
	}
	if out, err := run(t, "load", path, "--verify", "--repeat", "2"); err != nil || !strings.Contains(out, "verify:   OK") || !strings.Contains(out, "warm:") ||
		!strings.Contains(out, ": 1 tensor, 6.0 kB into GPU 0") {
		t.Fatalf("text output: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	os.WriteFile(bad, []byte{255, 255, 255, 255, 0, 0, 0, 0, '{', '}'}, 0o644)
	if _, err := run(t, "load", bad); err == nil || !isMalformed(err) {
		t.Fatalf("malformed file: err = %v", err)
	}
}

func isMalformed(err error) bool {
	return strings.Contains(err.Error(), "malformed safetensors header")
}

// TestWriteShardedText: the text report counts in words that fit (1
// shard, 1 tensor, kB), names a namespace loaded alone by its URL once,
// and a shard of an index by name and location.
func TestWriteShardedText(t *testing.T) {
	url := "tcp://127.0.0.1:4420/nqn.2026-12.io.flashpath:ckpt/1"
	ok := true
	var b bytes.Buffer
	writeSharded(&b, shardedResult{Checkpoint: url, GPUs: []int{0}, Tensors: 1, Bytes: 6000, Verified: &ok,
		Shards: []gds.ShardReport{{Name: url, Location: url, Path: gds.PathStaging, GPUs: []int{0}, Tensors: 1, Bytes: 6000, Reason: "NVMe/TCP"}}})
	out := b.String()
	for _, want := range []string{"loaded " + url + ": 1 shard, 1 tensor, 6.0 kB into GPU [0]\n", "shard:    " + url + "  6.0 kB in ", "verify:   OK, 1 tensor match"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if strings.Count(out, url) != 2 {
		t.Errorf("the URL appears %d times, want 2 (loaded, shard)\n%s", strings.Count(out, url), out)
	}
	b.Reset()
	writeSharded(&b, shardedResult{Checkpoint: "model.safetensors.index.json", GPUs: []int{0}, Tensors: 4, Bytes: 3 << 30,
		Shards: []gds.ShardReport{{Name: "model-00001-of-00002.safetensors", Location: url, Bytes: 1 << 30}, {Name: "model-00002-of-00002.safetensors", Location: "/ckpt/b.safetensors", Bytes: 2 << 30}}})
	out = b.String()
	for _, want := range []string{": 2 shards, 4 tensors, 3.22 GB into GPU [0]", "shard:    model-00001-of-00002.safetensors  " + url + "  1.07 GB in "} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}
