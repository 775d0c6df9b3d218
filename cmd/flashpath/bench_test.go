package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/gds/gdstest"
)

func runBenchCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newBenchCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestBenchCmdFioFlagsToJSON(t *testing.T) {
	out, err := runBenchCmd(t, "--name=rr", "--ioengine=null", "--rw=randread", "--bs=4k", "--iodepth=8",
		"--size=1m", "--norandommap", "--output-format=json", "--eta=never")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Jobs []struct {
			JobName string `json:"jobname"`
			Read    struct {
				TotalIOs uint64 `json:"total_ios"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc.Jobs) != 1 || doc.Jobs[0].JobName != "rr" || doc.Jobs[0].Read.TotalIOs != 256 {
		t.Fatalf("%+v", doc)
	}
}

func TestBenchCmdRejectsUnknownOptions(t *testing.T) {
	if _, err := runBenchCmd(t, "--ioengine=null", "--frobnicate=1"); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("err %v", err)
	}
	if _, err := runBenchCmd(t, "--ioengine=null", "--bs=4q"); err == nil || !strings.Contains(err.Error(), "option bs") {
		t.Fatalf("err %v", err)
	}
}

func TestBenchCmdSweepTable(t *testing.T) {
	out, err := runBenchCmd(t, "--ioengine=null", "--size=1m", "--iodepth=1,4", "--eta=never", "--output-format=table")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want header + 2 rows:\n%s", out)
	}
	// No --target-pid: the target column says so rather than 0.000.
	for _, l := range lines[1:] {
		if f := strings.Fields(l); f[len(f)-1] != "-" {
			t.Errorf("target CPU-s/GB without --target-pid: %q, want -\n%s", f[len(f)-1], out)
		}
	}
	out, err = runBenchCmd(t, "--ioengine=null", "--size=1m", "--iodepth=1,4", "--eta=never", "--output-format=table",
		"--target-pid="+strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		if f := strings.Fields(l); f[len(f)-1] == "-" || !strings.Contains(f[len(f)-1], ".") {
			t.Errorf("target CPU-s/GB with --target-pid: %q, want a number\n%s", f[len(f)-1], out)
		}
	}
}

// TestBenchCmdEngineOptionHelpNamesEveryEngine: an engine option's flag
// help names every engine that takes it (hostnqn: nvme-tcp too, as
// --enghelp=nvme-tcp lists it), not only the first.
func TestBenchCmdEngineOptionHelpNamesEveryEngine(t *testing.T) {
	fl := newBenchCmd().Flags()
	checked := 0
	for _, o := range bench.OptionTable() {
		f := fl.Lookup(o.Name)
		if len(o.Engines) == 0 || f == nil || !strings.HasPrefix(f.Usage, "engine option") {
			continue
		}
		checked++
		if want := "engine option (" + strings.Join(o.Engines, ", ") + ")"; f.Usage != want {
			t.Errorf("--%s: %q, want %q", o.Name, f.Usage, want)
		}
	}
	if checked == 0 {
		t.Fatal("no engine options among the flags")
	}
	out, err := runBenchCmd(t, "--enghelp=nvme-tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hostnqn", "dhchap_secret", "dhchap_ctrl_secret", "ctrl_loss_tmo"} {
		if !strings.Contains(out, name) {
			continue // not an option of this binary's nvme-tcp
		}
		if f := fl.Lookup(name); f == nil || !strings.Contains(f.Usage, "nvme-tcp") {
			t.Errorf("--%s is an nvme-tcp option (--enghelp=nvme-tcp), but its help does not say so: %+v", name, f)
		}
	}
}

// TestBenchCmdGPUEngines runs the gpu and cufile engines from flags (their
// engine options are flags too) against the fake CUDA driver: a verified
// write and a random read of a checkpoint-sized file in miniature.
func TestBenchCmdGPUEngines(t *testing.T) {
	gdstest.SkipWithoutBinding(t)
	fakeGPU(t)
	out, err := runBenchCmd(t, "--enghelp")
	if err != nil || !strings.Contains(out, "cufile\n") || !strings.Contains(out, "gpu\n") {
		t.Fatalf("--enghelp: %v\n%s", err, out)
	}
	name := t.TempDir() + "/ckpt"
	for _, args := range [][]string{
		{"--ioengine=gpu", "--gpu=0", "--rw=write", "--verify=crc32c", "--gpu_path=bounce"},
		{"--ioengine=gpu", "--gpu=0", "--rw=randread", "--gpu_threads=2"},
		{"--ioengine=cufile", "--rw=read"},
	} {
		out, err := runBenchCmd(t, append(args, "--name=g", "--filename="+name, "--bs=64k", "--iodepth=4", "--size=1m",
			"--output-format=json", "--eta=never")...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		var doc struct {
			Jobs []struct {
				Read struct {
					TotalIOs uint64 `json:"total_ios"`
				} `json:"read"`
				Write struct {
					TotalIOs uint64 `json:"total_ios"`
				} `json:"write"`
			} `json:"jobs"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if len(doc.Jobs) != 1 || doc.Jobs[0].Read.TotalIOs != 16 {
			t.Fatalf("%v: want 16 reads (verify or read): %s", args, out)
		}
	}
	if _, err := runBenchCmd(t, "--ioengine=cufile", "--gpu_path=bounce", "--filename="+name, "--size=1m"); err == nil ||
		!strings.Contains(err.Error(), "gpu_path") {
		t.Fatalf("cufile --gpu_path: err = %v", err)
	}
}

// TestBenchCmdSectionReadonlyParseOnly: --section runs only the named jobs
// of a file, --readonly refuses a job that writes (before any I/O), and
// --parse-only lists the jobs without running them.
func TestBenchCmdSectionReadonlyParseOnly(t *testing.T) {
	dir := t.TempDir()
	job := dir + "/j.fio"
	data := dir + "/data"
	if err := os.WriteFile(job, []byte("[global]\nioengine=psync\nsize=64k\nfilename="+data+"\n[reader]\nrw=read\n[writer]\nrw=write\nstonewall\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runBenchCmd(t, job, "--parse-only")
	if err != nil || !strings.Contains(out, "reader: (g=0): rw=read") || !strings.Contains(out, "writer: (g=1): rw=write") {
		t.Fatalf("--parse-only: %v\n%s", err, out)
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("--parse-only laid out the data file")
	}
	if _, err := runBenchCmd(t, job, "--readonly", "--eta=never"); err == nil || !strings.Contains(err.Error(), "job writer: rw=write writes or trims, and --readonly is set") {
		t.Fatalf("--readonly with a writer: %v", err)
	}
	if _, err := os.Stat(data); err == nil {
		t.Fatal("--readonly refused the run after laying out the data file")
	}
	out, err = runBenchCmd(t, job, "--section=writer", "--eta=never", "--output-format=json")
	// fio's JSON spacing: "key" : value.
	if err != nil || strings.Contains(out, `"jobname" : "reader"`) || !strings.Contains(out, `"jobname" : "writer"`) {
		t.Fatalf("--section=writer: %v\n%s", err, out)
	}
	if _, err := runBenchCmd(t, job, "--section=nope"); err == nil || !strings.Contains(err.Error(), "--section nope") {
		t.Fatalf("--section nope: %v", err)
	}
}

// TestBenchCmdBoolEngineOptions: boolean engine options may be given bare
// (--fixedbufs --registerfiles), as fio takes them, without swallowing the
// next flag; hipri needs direct=1, and where the device has no poll
// queues the error says how to get them.
func TestBenchCmdBoolEngineOptions(t *testing.T) {
	f := t.TempDir() + "/f"
	out, err := runBenchCmd(t, "--name=b", "--ioengine=io_uring", "--fixedbufs", "--registerfiles", "--rw=write", "--size=64k",
		"--filename="+f, "--verify=crc32c", "--eta=never", "--output-format=json")
	if errors.Is(err, bench.ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("bare engine options: %v\n%s", err, out)
	}
	if _, err := runBenchCmd(t, "--name=b", "--ioengine=io_uring", "--hipri", "--rw=read", "--size=64k", "--filename="+f, "--eta=never"); err == nil ||
		!strings.Contains(err.Error(), "option hipri: needs direct=1") {
		t.Fatalf("hipri without direct: %v", err)
	}
	_, err = runBenchCmd(t, "--name=b", "--ioengine=io_uring", "--hipri", "--direct=1", "--rw=read", "--size=64k", "--filename="+f, "--eta=never")
	if err != nil && !strings.Contains(err.Error(), "no poll queues for hipri (NVMe: nvme connect --nr-poll-queues") &&
		!strings.Contains(err.Error(), "O_DIRECT") {
		t.Fatalf("hipri with direct=1: %v", err)
	}
}

// TestBenchCmdFioHelpFlags: fio's --enghelp=ENGINE[,OPTION] and
// --cmdhelp[=NAME] spellings.
func TestBenchCmdFioHelpFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--enghelp=io_uring"}, "fixedbufs"},
		{[]string{"--enghelp=posixaio"}, "posixaio runs on flashpath's io_uring engine"},
		{[]string{"--enghelp=io_uring,hipri"}, "hipri: Use polled IO completions"},
		{[]string{"--enghelp=nvme-tcp"}, "hostnqn"},
		{[]string{"--cmdhelp=ratemin"}, "rate_min: Job must meet this rate"},
		{[]string{"--cmdhelp"}, "steadystate "},
		{[]string{"--cmdhelp", "--ioengine=null"}, "zonemode "},
	} {
		out, err := runBenchCmd(t, tc.args...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: %v, want %q in\n%s", tc.args, err, tc.want, out)
		}
	}
}

// TestBenchCmdFlagsBeneathJobFile: as fio, flags are defaults beneath the
// job file's options.
func TestBenchCmdFlagsBeneathJobFile(t *testing.T) {
	p := t.TempDir() + "/j.fio"
	if err := os.WriteFile(p, []byte("[global]\nioengine=null\nsize=64k\nbs=8k ; the file's\n[a]\n[b]\nbs=16k\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runBenchCmd(t, p, "--bs=64k", "--iodepth=3", "--parse-only")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a: (g=0): rw=read, bs=8192/8192/8192, ioengine=null, iodepth=3", "b: (g=0): rw=read, bs=16384/16384/16384, ioengine=null, iodepth=3"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in\n%s", want, out)
		}
	}
}

// TestBenchCmdNameWithJobFiles: fio makes --name a job of its own beside
// the files' jobs; without the flags' order that cannot be rebuilt, so it
// is an error that says so.
func TestBenchCmdNameWithJobFiles(t *testing.T) {
	p := t.TempDir() + "/j.fio"
	if err := os.WriteFile(p, []byte("[a]\nioengine=null\nsize=64k\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runBenchCmd(t, p, "--name=extra", "--parse-only"); err == nil || !strings.Contains(err.Error(), `separate job "extra"`) {
		t.Errorf("--name with a job file: %v", err)
	}
}

// TestBenchCmdFlagsInGivenOrder: options apply in the order given, as
// fio parses its command line: the later of two that set the same thing
// wins, and the JSON lists them in that order.
func TestBenchCmdFlagsInGivenOrder(t *testing.T) {
	for _, order := range [][]string{{"--rwmixwrite=40", "--rwmixread=70"}, {"--rwmixread=70", "--rwmixwrite=40"}} {
		args := append([]string{"--name=m", "--ioengine=null", "--rw=randrw", "--size=16m", "--eta=never", "--output-format=json"}, order...)
		out, err := runBenchCmd(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		a, b := strings.Index(out, `"`+strings.TrimPrefix(strings.Split(order[0], "=")[0], "--")+`"`), strings.Index(out, `"`+strings.TrimPrefix(strings.Split(order[1], "=")[0], "--")+`"`)
		if a < 0 || b < a {
			t.Errorf("%v: job options not in the given order:\n%s", order, out)
		}
		var doc struct {
			Jobs []struct {
				Read struct {
					IOs int `json:"total_ios"`
				} `json:"read"`
				Write struct {
					IOs int `json:"total_ios"`
				} `json:"write"`
			} `json:"jobs"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatal(err)
		}
		// 4096 blocks: 70% reads when rwmixread comes last, 60% otherwise
		// (a standard deviation is under 1%).
		want := 60.0
		if strings.HasPrefix(order[1], "--rwmixread") {
			want = 70
		}
		r, w := doc.Jobs[0].Read.IOs, doc.Jobs[0].Write.IOs
		if pct := 100 * float64(r) / float64(r+w); pct < want-4 || pct > want+4 {
			t.Errorf("%v: %.1f%% reads, want %.0f%%", order, pct, want)
		}
	}
}

// outputParts names the parts of an output of several formats in their
// order: the normal output's job lines, terse lines, a JSON document,
// the rest of the normal output.
func outputParts(out string) []string {
	var parts []string
	inJSON, started := false, false
	for _, l := range strings.Split(out, "\n") {
		var p string
		switch {
		case inJSON:
			inJSON = l != "}"
			continue
		case l == "{":
			p, inJSON = "json", true
		case strings.HasPrefix(l, "3;"):
			p = "terse"
		case strings.TrimSpace(l) == "":
			continue
		case !started:
			p = "job lines"
			started = strings.HasPrefix(l, "Starting ")
		default:
			p = "normal"
		}
		if len(parts) == 0 || parts[len(parts)-1] != p {
			parts = append(parts, p)
		}
	}
	return parts
}

// TestBenchCmdOutputFormatsInFiosOrder: several output formats come in
// fio 3.33's order whatever the list's (fio-3.33-null.formats is fio's
// --output-format=json,normal,terse): the normal output's job lines,
// terse, JSON, then the rest of the normal output; each once.
func TestBenchCmdOutputFormatsInFiosOrder(t *testing.T) {
	golden, err := os.ReadFile("../../bench/testdata/fio-3.33-null.formats")
	if err != nil {
		t.Fatal(err)
	}
	want := outputParts(string(golden))
	if !slices.Equal(want, []string{"job lines", "terse", "json", "normal"}) {
		t.Fatalf("fio's golden: %q", want)
	}
	for _, f := range []string{"json,normal,terse", "normal,terse,json", "terse,json,normal,json"} {
		out, err := runBenchCmd(t, "../../bench/testdata/fio-3.33-null.fio", "--eta=never", "--output-format="+f)
		if err != nil {
			t.Fatal(err)
		}
		if got := outputParts(out); !slices.Equal(got, want) {
			t.Errorf("--output-format=%s: %q, want fio's %q\n%s", f, got, want, out)
		}
	}
	out, err := runBenchCmd(t, "../../bench/testdata/fio-3.33-null.fio", "--eta=never", "--output-format=json,normal")
	if err != nil {
		t.Fatal(err)
	}
	if got := outputParts(out); !slices.Equal(got, []string{"job lines", "json", "normal"}) {
		t.Errorf("--output-format=json,normal: %q\n%s", got, out)
	}
}
