package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/testutil"
)

// freePorts returns the first of n consecutive ports that 127.0.0.1 has
// free now, from 24400 up (below the ephemeral range other tests bind).
func freePorts(t *testing.T, n int, from int) int {
	t.Helper()
	for base := from; base < from+2000; base += 10 {
		var ls []net.Listener
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		ok := len(ls) == n
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports from %d", n, from)
	return 0
}

// The GPU machine's remote-load check (scripts/gpu-remote.sh, part of make
// gpu-check) runs only where a GPU is lent, minutes at a time: here it runs
// as a dry run, so that a broken step is found before then. A 100 MiB
// checkpoint in 4 shards written without torch, three flashpath targets,
// the loopback bench, the load sweep, the verified load, the local load and
// the sendfile A/B all run behind the fake libcuda; only the torch steps
// (pinned copy, safetensors, Python) fail, and the summary must still say
// what ran.
func TestGPURemoteScriptDryRun(t *testing.T) {
	log, b := runGPUScript(t, "gpu-remote.sh", 5*time.Minute, func(string) []string {
		return []string{"FP_GIB=0.1", "FP_SHARDS=4", "FP_SHAPES=2:2 4:4:1", "FP_TCP_JOBS=2",
			fmt.Sprintf("FP_PORT=%d", freePorts(t, 3, 24400)), fmt.Sprintf("FP_METRICS_PORT=%d", freePorts(t, 3, 26400))}
	})
	type targets struct {
		ReadGB        float64 `json:"read_gb"`
		CPUSPerGB     float64 `json:"cpu_s_per_gb"`
		SendfileShare float64 `json:"sendfile_share"`
	}
	type load struct {
		GBps     float64 `json:"gbps"`
		Verified *bool   `json:"verified"`
	}
	var sum struct {
		TCP        float64         `json:"tcp_loopback_gbps"`
		Best       load            `json:"remote_best"`
		Runs       map[string]load `json:"remote_runs"`
		Local      float64         `json:"local_files_gbps"`
		Targets    targets         `json:"targets"`
		SendfileAB map[string]struct {
			GBps    float64 `json:"gbps"`
			Targets targets `json:"targets"`
		} `json:"sendfile_ab"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary %s: %v", b, err)
	}
	if sum.TCP <= 0 || sum.Best.GBps <= 0 || sum.Local <= 0 {
		t.Errorf("summary: loopback bench %.2f, best remote load %.2f, local load %.2f GB/s; want each measured", sum.TCP, sum.Best.GBps, sum.Local)
	}
	if len(sum.Runs) != 3 {
		t.Errorf("summary lists %d remote loads, want the 2 shapes and the verified one: %v", len(sum.Runs), sum.Runs)
	}
	if v := sum.Runs["verify"].Verified; v == nil || !*v {
		t.Errorf("the verified remote load: verified %v, want true", v)
	}
	if sum.Targets.ReadGB < 0.2 || sum.Targets.SendfileShare < 0.5 {
		t.Errorf("targets read %.2f GB, %.2f of it by sendfile; want all loads counted and most sent from the page cache", sum.Targets.ReadGB, sum.Targets.SendfileShare)
	}
	on, off := sum.SendfileAB["true"], sum.SendfileAB["false"]
	if on.GBps <= 0 || off.GBps <= 0 || on.Targets.SendfileShare < 0.5 || off.Targets.SendfileShare != 0 {
		t.Errorf("sendfile A/B: %+v; want both loads measured, most sent by sendfile with it, none without", sum.SendfileAB)
	}
	if bytes.Contains(log, []byte("did not start")) {
		t.Errorf("a target did not start:\n%s", log)
	}
}

// runGPUScript runs scripts/NAME as a dry run, behind the fake libcuda
// and libcufile, with a flashpath built here, FP_DIR and OUT in a new
// directory, and the variables env returns (given that directory). It
// fails the test if the script fails or a step that needs no torch does,
// and returns the script's output and its JSON summary (OUT/NAME less
// ".sh" plus ".json").
func runGPUScript(t *testing.T, name string, timeout time.Duration, env func(dir string) []string) (log, summary []byte) {
	t.Helper()
	if raceEnabled {
		// Nothing here runs under the detector: the script's flashpath is
		// built without it. make test runs this in unit-norace, and the
		// race phase keeps its CPUs for what the detector checks.
		t.Skip("the GPU scripts run binaries built without -race: this runs in the tests without it")
	}
	openFakeGPU(t) // FLASHPATH_LIBCUDA and FLASHPATH_LIBCUFILE: the fakes
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found (make deps installs it)")
	}
	dir := t.TempDir()
	fp := filepath.Join(dir, "flashpath")
	goBuild(t, fp, "./cmd/flashpath")
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(), "scripts", name))
	cmd.Env = append(append(os.Environ(), "FP="+fp, "FP_DIR="+filepath.Join(dir, "ckpt"), "OUT="+out), env(dir)...)
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, log)
	}
	for _, line := range strings.Split(string(log), "\n") {
		if strings.HasPrefix(line, "!! ") && !torchStep(line) {
			t.Errorf("%s: a step that needs no torch failed: %s", name, line)
		}
	}
	summary, err = os.ReadFile(filepath.Join(out, strings.TrimSuffix(name, ".sh")+".json"))
	if err != nil {
		t.Fatalf("%s: no summary: %v\n%s", name, err, log)
	}
	return log, summary
}

// torchStep reports whether a failed step of a GPU script ("!! NAME: ...")
// is one that needs torch (or another GPU-machine Python package), which
// the dry runs do not have.
func torchStep(line string) bool {
	for _, s := range []string{"torch", "safetensors", "kvikio", "cuMemHostRegister", "capi/example.py", "Python"} {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// The GPU machine's main check (scripts/gpu-check.sh, make gpu-check) as a
// dry run behind the fake libcuda and libcufile: a 256 MiB checkpoint
// written without torch, loaded through every flashpath path (bounce from
// the page cache and from the drive, both readers, cuFile and its batch
// API, auto), the bounce sweep and the bench's GPU engine, each load
// verified, and the summary with its goals. Only the torch baselines fail.
func TestGPUCheckScriptDryRun(t *testing.T) {
	testutil.SkipIfNotSupported(t, testutil.DirectIO(t.TempDir())) // its O_DIRECT rows
	log, b := runGPUScript(t, "gpu-check.sh", 8*time.Minute, func(dir string) []string {
		return []string{"CAPI=" + buildCAPI(t, dir), "FP_GIB=0.25", "FP_SWEEP=4:2:4 4:2:4:mmap", "FP_BENCH_SIZE=256m",
			"FP_NO_UDEV_SHIM=1"} // nothing written outside the test's directory
	})
	var sum struct {
		Results []struct {
			Name     string  `json:"name"`
			GBps     float64 `json:"gbps"`
			Verified *bool   `json:"verified"`
		} `json:"results"`
		Goals []struct {
			Goal string `json:"goal"`
		} `json:"goals"`
		VerifyFailed []string `json:"verify_failed"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary %s: %v", b, err)
	}
	rows := map[string]bool{}
	for _, r := range sum.Results {
		rows[r.Name] = true
		if strings.HasPrefix(r.Name, "flashpath") && !strings.Contains(r.Name, "sweep") && (r.Verified == nil || !*r.Verified || r.GBps <= 0) {
			t.Errorf("row %q: %.2f GB/s, verified %v; want measured and verified", r.Name, r.GBps, r.Verified)
		}
	}
	for _, want := range []string{
		"flashpath bounce, buffered (file in page cache)", "flashpath bounce, mmap reader (page cache pinned in place)",
		"flashpath bounce, O_DIRECT (from the drive), io_uring reader", "flashpath bounce, O_DIRECT (from the drive), pread reader",
		"flashpath cufile, O_DIRECT (from the drive)", "flashpath cufile batch API, O_DIRECT (from the drive)",
		"flashpath cufile, buffered fd (page cache)", "flashpath load, auto path (file in page cache)",
		"flashpath bounce sweep: best shape, warm (page cache)",
	} {
		if !rows[want] {
			t.Errorf("summary has no row %q", want)
		}
	}
	if len(sum.Goals) == 0 || len(sum.VerifyFailed) != 0 {
		t.Errorf("summary: goals %+v, verify failed %v; want the goals computed and nothing failed", sum.Goals, sum.VerifyFailed)
	}
	if !bytes.Contains(log, []byte("gpu-write: (groupid=0")) || !bytes.Contains(log, []byte("gpu-read: (groupid=0")) {
		t.Errorf("the bench's GPU engine did not report its read and write jobs:\n%s", log)
	}
}
