package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flashpath/flashpath/gds"
	"github.com/flashpath/flashpath/gds/safetensors"
	"github.com/flashpath/flashpath/target/backend"
)

// goBuild builds pkg (a path inside the module, "./capi") into out with
// the go command, with extra build flags.
func goBuild(t *testing.T, out, pkg string, flags ...string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building %s needs the go command in PATH: %v", pkg, err)
	}
	cmd := exec.Command(goBin, append(append([]string{"build"}, flags...), "-o", out, pkg)...)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// repoRoot is the module's root directory.
func repoRoot() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..")
}

// buildCAPI builds the C ABI (./capi) as a shared library into dir.
func buildCAPI(t *testing.T, dir string) string {
	t.Helper()
	lib := filepath.Join(dir, "libflashpath.so")
	goBuild(t, lib, "./capi", "-buildmode=c-shared")
	return lib
}

// exampleRun is what capi/testdata/example_check.py prints.
type exampleRun struct {
	Load       map[string][3]json.RawMessage `json:"load"` // name → dtype, shape, sha256
	Reload     map[string][3]json.RawMessage `json:"reload"`
	LoadInfo   loadInfo                      `json:"load_info"`
	ReloadInfo loadInfo                      `json:"reload_info"`
	Save       struct {
		Index  string            `json:"index"`
		Bytes  int64             `json:"bytes"`
		Shards []gds.ShardReport `json:"shards"`
	} `json:"save"`
	CudaInitialized bool   `json:"cuda_initialized"`
	Synchronized    []int  `json:"synchronized"`
	MissingError    string `json:"missing_error"`
}

// loadInfo is fp_load_ex's report, less its tensors.
type loadInfo struct {
	Path   gds.Path          `json:"path"`
	Bytes  int64             `json:"bytes"`
	Shards []gds.ShardReport `json:"shards"`
}

// The Python step of remote checkpoints, as a user runs it: capi/example.py
// through libflashpath.so (the C ABI) loads a sharded checkpoint whose
// shards three flashpath targets export byte for byte (read-only buffered
// file namespaces, over NVMe/TCP on 127.0.0.1), saves the tensors with
// save_sharded to three other targets' memory namespaces, and loads that
// back, both loads verified. Behind the fake libcuda and a stand-in for
// the parts of torch example.py uses (capi/testdata/faketorch): every
// tensor's bytes, dtype and shape must come back as written.
func TestPythonExampleOverTCP(t *testing.T) {
	d := openFakeGPU(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found (make deps installs it)")
	}
	dir := t.TempDir()
	lib := buildCAPI(t, dir)

	// The checkpoint: three shards of random U8 tensors, and a BF16 one.
	want := map[string][]byte{}
	var shards []gds.SaveShard
	for i := range 3 {
		ts, w := randomShard(t, d, "layer"+string(rune('0'+i)), 3, uint64(10+i))
		for k, v := range w {
			want[k] = v
		}
		name := "model-0000" + string(rune('1'+i)) + "-of-00003.safetensors"
		shards = append(shards, gds.SaveShard{Name: name, Location: filepath.Join(dir, name), Tensors: ts})
	}
	bf := make([]byte, 2*3001)
	for i := range bf {
		bf[i] = byte(i*29 + i>>8)
	}
	want["norm.weight"] = bf
	shards[0].Tensors = append(shards[0].Tensors, gds.SaveTensor{Name: "norm.weight", DType: "BF16", Shape: []int64{3001}, Ptr: toDevice(t, d, bf)})
	index := filepath.Join(dir, safetensors.IndexFile)
	ctx := context.Background()
	if _, err := d.SaveShards(ctx, gds.SavePlan{Index: index, Shards: shards, Metadata: map[string]string{"format": "pt"}}); err != nil {
		t.Fatal(err)
	}

	// Each shard file exported read-only through the page cache, on its
	// own target; three memory namespaces to save to.
	locs := map[string]string{}
	var saveTo []string
	for _, s := range shards {
		be, err := backend.OpenFile(s.Location, backend.FileOptions{ReadOnly: true, Buffered: true})
		if err != nil {
			t.Fatal(err)
		}
		locs[s.Name] = startShardTarget(t, be).url
		mem, err := backend.NewMem(16<<20, 512)
		if err != nil {
			t.Skip(err)
		}
		saveTo = append(saveTo, startShardTarget(t, mem).url)
	}
	locJSON, _ := json.Marshal(locs)
	out := filepath.Join(dir, "saved", safetensors.IndexFile)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}

	script := filepath.Join(repoRoot(), "capi", "testdata", "example_check.py")
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, py, script, lib, testHost, index, string(locJSON), strings.Join(saveTo, ","), out)
	cmd.Stderr = &testWriter{t: t}
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("example_check.py: %v", err)
	}
	var run exampleRun
	if err := json.Unmarshal(stdout, &run); err != nil {
		t.Fatalf("example_check.py printed %q: %v", stdout, err)
	}

	check := func(what string, got map[string][3]json.RawMessage) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d tensors, want %d", what, len(got), len(want))
		}
		for name, b := range want {
			sum := sha256.Sum256(b)
			dtype, shape := `"torch.uint8"`, "["+strconv.Itoa(len(b))+"]"
			if name == "norm.weight" {
				dtype, shape = `"torch.bfloat16"`, "["+strconv.Itoa(len(b)/2)+"]"
			}
			g := got[name]
			if string(g[0]) != dtype || string(g[1]) != shape || string(g[2]) != `"`+hex.EncodeToString(sum[:])+`"` {
				t.Errorf("%s: tensor %s is %s %s %s, want %s %s (sha256 %x)", what, name, g[0], g[1], g[2], dtype, shape, sum)
			}
		}
	}
	check("load from the targets", run.Load)
	check("load of what save_sharded wrote", run.Reload)
	if !run.CudaInitialized || len(run.Synchronized) != 1 || run.Synchronized[0] != 0 {
		t.Errorf("torch.cuda: init %v, synchronize calls %v; want init, then one synchronize(0) before the save", run.CudaInitialized, run.Synchronized)
	}
	for what, info := range map[string]struct {
		shards []gds.ShardReport
		urls   []string
	}{
		"load": {run.LoadInfo.Shards, []string{locs[shards[0].Name], locs[shards[1].Name], locs[shards[2].Name]}},
		"save": {run.Save.Shards, saveTo}, "reload": {run.ReloadInfo.Shards, saveTo},
	} {
		if len(info.shards) != 3 {
			t.Fatalf("%s report: %d shards, want 3", what, len(info.shards))
		}
		for _, s := range info.shards {
			if s.Transport != "tcp" || s.Path != gds.PathStaging || !slices.Contains(info.urls, s.Location) || s.Bytes == 0 {
				t.Errorf("%s report of shard %s: transport %q, path %q, location %q, %d bytes; want tcp, %s, one of %v", what, s.Name, s.Transport, s.Path, s.Location, s.Bytes, gds.PathStaging, info.urls)
			}
		}
	}
	var total int64
	for _, b := range want {
		total += int64(len(b))
	}
	if run.LoadInfo.Path != gds.PathStaging || run.LoadInfo.Bytes < total {
		t.Errorf("load report: path %q, %d bytes; want %s and at least the tensors' %d", run.LoadInfo.Path, run.LoadInfo.Bytes, gds.PathStaging, total)
	}
	if run.Save.Index != out {
		t.Errorf("save report names index %q, want %q", run.Save.Index, out)
	}
	if !strings.Contains(run.MissingError, "no such file") {
		t.Errorf("load of a missing index raised %q, want the file's error", run.MissingError)
	}
}

// testWriter sends a subprocess's output to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
