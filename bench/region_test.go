package bench

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// TestOffsetIncrement: with numjobs=2 and offset_increment, each clone
// writes (and verifies) its own region of one file: clone 1's region
// starts offset_increment bytes on, and each region's first block carries
// the verify header of its own offset.
func TestOffsetIncrement(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	rep, err := runJobs(t, Option{"ioengine", "psync"}, Option{"filename", name}, Option{"rw", "write"},
		Option{"bs", "4k"}, Option{"size", "64k"}, Option{"numjobs", "2"}, Option{"offset", "8k"},
		Option{"offset_increment", "1m"}, Option{"verify", "crc32c"})
	if err != nil {
		t.Fatal(err)
	}
	for c, r := range rep.Groups[0].Jobs {
		if r.Dir[DirWrite].IOs != 16 || r.Dir[DirRead].IOs != 16 {
			t.Fatalf("clone %d: %d writes, %d verify reads; want 16 and 16", c, r.Dir[DirWrite].IOs, r.Dir[DirRead].IOs)
		}
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 8<<10+1<<20+64<<10 {
		t.Fatalf("file is %d bytes, want offset + offset_increment + size = %d", len(b), 8<<10+1<<20+64<<10)
	}
	for _, start := range []int64{8 << 10, 8<<10 + 1<<20} {
		if got := int64(binary.LittleEndian.Uint64(b[start+16:])); got != start { // fio's verify header: offset at 16
			t.Errorf("block at %d carries the header of offset %d", start, got)
		}
	}
}

// TestNumberIOs: number_ios ends the job before size does.
func TestNumberIOs(t *testing.T) {
	rep, err := runJobs(t, Option{"ioengine", "null"}, Option{"rw", "randread"}, Option{"size", "1m"},
		Option{"iodepth", "4"}, Option{"number_ios", "10"})
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Groups[0].Jobs[0].Dir[DirRead].IOs; n != 10 {
		t.Fatalf("%d I/Os, want 10", n)
	}
}

// TestExitAll: a job with exitall ends its group when it finishes, here a
// time_based job with an hour to run (without exitall the test would hang
// until the go test timeout).
func TestExitAll(t *testing.T) {
	jobs, err := BuildJobs(nil, []Section{
		{Name: "short", Options: []Option{{"ioengine", "null"}, {"size", "64k"}, {"exitall", ""}}},
		{Name: "long", Options: []Option{{"ioengine", "null"}, {"size", "64k"}, {"time_based", ""}, {"runtime", "1h"}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 1 || len(rep.Groups[0].Jobs) != 2 {
		t.Fatalf("want one group of two jobs: %+v", rep.Groups)
	}
}
