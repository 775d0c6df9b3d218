package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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
		{Path: "rdma", Direct: "auto", Output: "text"},
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
	if out, err := run(t, "load", path, "--verify", "--repeat", "2"); err != nil || !strings.Contains(out, "verify:   OK") || !strings.Contains(out, "warm:") {
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
