package bench

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readLog parses a log file into rows of integers, checking the field count.
func readLog(t *testing.T, name string, fields int) [][]int64 {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]int64
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ", ")
		if len(f) != fields {
			t.Fatalf("%s: %q has %d fields, want %d", name, line, len(f), fields)
		}
		row := make([]int64, len(f))
		for i, s := range f {
			if row[i], err = strconv.ParseInt(s, 10, 64); err != nil {
				t.Fatalf("%s: %q: %v", name, line, err)
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func runLogged(t *testing.T, kv ...string) *Report {
	t.Helper()
	jobs, err := BuildJobs(nil, []Section{{Name: "logged", Options: opts(kv...)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestLogsPerIO: without log_avg_msec the latency logs have a line per
// I/O (time, ns, direction, block size, [offset,] priority), per clone;
// the bandwidth and IOPS logs have a line per window.
func TestLogsPerIO(t *testing.T) {
	dir := t.TempDir()
	bw, lat := filepath.Join(dir, "bw"), filepath.Join(dir, "lat")
	rep := runLogged(t, "ioengine=null", "size=1m", "bs=4k", "rw=randwrite", "numjobs=2",
		"write_bw_log="+bw, "write_iops_log="+bw, "write_lat_log="+lat, "log_offset=1")
	for clone := 1; clone <= 2; clone++ {
		n := strconv.Itoa(clone)
		ios := rep.Groups[0].Jobs[clone-1].Dir[DirWrite].IOs
		for _, kind := range []string{"slat", "clat", "lat"} {
			rows := readLog(t, lat+"_"+kind+"."+n+".log", 6)
			if uint64(len(rows)) != ios || ios != 256 {
				t.Fatalf("%s log of clone %d: %d lines for %d writes", kind, clone, len(rows), ios)
			}
			for _, r := range rows {
				if r[1] < 0 || r[2] != 1 || r[3] != 4096 || r[4]%4096 != 0 || r[4] >= 1<<20 || r[5] != 0 {
					t.Fatalf("%s log: bad line %v", kind, r)
				}
			}
		}
		for _, kind := range []string{"bw", "iops"} {
			rows := readLog(t, bw+"_"+kind+"."+n+".log", 6)
			if len(rows) == 0 {
				t.Fatalf("%s log of clone %d is empty", kind, clone)
			}
			for _, r := range rows {
				if r[1] <= 0 || r[2] != 1 || r[3] != 0 || r[4] != 0 || r[5] != 0 {
					t.Fatalf("%s log: bad line %v", kind, r)
				}
			}
		}
	}
}

// TestLogsAveraged: with log_avg_msec each window holds one line per
// direction, block size 0; per_job_logs=0 puts both clones in one file
// named without the clone number, and an empty name is the job's.
func TestLogsAveraged(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	runLogged(t, "ioengine=null", "size=1m", "bs=4k", "rw=randrw", "numjobs=2", "per_job_logs=0",
		"write_lat_log", "log_avg_msec=60000")
	rows := readLog(t, filepath.Join(dir, "logged_clat.log"), 5)
	seen := map[int64]int{}
	for _, r := range rows {
		if r[3] != 0 || r[4] != 0 {
			t.Fatalf("averaged line %v: block size and priority must be 0", r)
		}
		seen[r[2]]++
	}
	// One window each (the job is far shorter than a minute), reads and
	// writes apart, from both clones.
	if seen[0] != 2 || seen[1] != 2 || len(rows) != 4 {
		t.Fatalf("averaged clat log: %v", rows)
	}
}

// TestLogsNumberedAcrossJobs: log files are numbered by fio's thread
// number, counted over every clone of every job, so jobs that share a
// prefix write distinct files (job b, second in the run, writes
// x_iops.3.log and x_iops.4.log); with per_job_logs=0 a file written by an
// earlier group is appended to, not truncated.
func TestLogsNumberedAcrossJobs(t *testing.T) {
	dir := t.TempDir()
	x := filepath.Join(dir, "x")
	common := []string{"ioengine=null", "size=64k", "bs=4k", "rw=write", "numjobs=2", "write_iops_log=" + x}
	jobs, err := BuildJobs(nil, []Section{
		{Name: "a", Options: opts(common...)},
		{Name: "b", Options: opts(append(common, "stonewall")...)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 4; n++ {
		if rows := readLog(t, x+"_iops."+strconv.Itoa(n)+".log", 5); len(rows) == 0 {
			t.Fatalf("x_iops.%d.log is empty", n)
		}
	}
	if _, err := os.Stat(x + "_iops.5.log"); err == nil {
		t.Fatal("a fifth log file for four clones")
	}

	// Shared across clones: one file holds all four clones' windows.
	y := filepath.Join(dir, "y")
	common = append(common[:len(common)-1], "write_iops_log="+y, "per_job_logs=0", "log_avg_msec=60000")
	if jobs, err = BuildJobs(nil, []Section{
		{Name: "a", Options: opts(common...)},
		{Name: "b", Options: opts(append(common, "stonewall")...)},
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	if rows := readLog(t, y+"_iops.log", 5); len(rows) != 4 {
		t.Fatalf("shared iops log: %d lines, want one window from each of 4 clones: %v", len(rows), rows)
	}
}
