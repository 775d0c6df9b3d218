package bench

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// recordEngine is the null engine keeping every I/O's offset and length.
type recordEngine struct {
	nullEngine
	ios   [][2]int64
	files []int
}

var lastRecordEngine *recordEngine

func init() {
	RegisterEngine("test-record", func(cfg *EngineConfig) (Engine, error) {
		e := &recordEngine{nullEngine: nullEngine{done: make([]*IO, 0, cfg.IODepth), files: max(len(cfg.Filenames), 1)}}
		lastRecordEngine = e
		return e, nil
	})
}

func (e *recordEngine) Queue(io *IO) error {
	e.ios = append(e.ios, [2]int64{io.Offset, int64(io.Len)})
	e.files = append(e.files, io.File)
	return e.nullEngine.Queue(io)
}

func TestParseBSSplit(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want [numDirs][]BSWeight
	}{
		{"4k/60:64k/30:1m/10", [numDirs][]BSWeight{
			{{4096, 60}, {65536, 30}, {1 << 20, 10}}, {{4096, 60}, {65536, 30}, {1 << 20, 10}}, {{4096, 60}, {65536, 30}, {1 << 20, 10}}}},
		{"4k/50:8k:16k", [numDirs][]BSWeight{
			{{4096, 50}, {8192, 25}, {16384, 25}}, {{4096, 50}, {8192, 25}, {16384, 25}}, {{4096, 50}, {8192, 25}, {16384, 25}}}},
		{"4k/100,64k/100", [numDirs][]BSWeight{{{4096, 100}}, {{65536, 100}}, nil}},
		{",128k/100", [numDirs][]BSWeight{nil, {{131072, 100}}, nil}},
		// fio 3.33's rule, measured from its draws: whole percents, 0 is
		// unset, integer shares, the rest to the largest percent.
		{"4k:8k:16k", [numDirs][]BSWeight{{{4096, 33}, {8192, 33}, {16384, 34}}, {{4096, 33}, {8192, 33}, {16384, 34}}, {{4096, 33}, {8192, 33}, {16384, 34}}}},
		{"8k/40:4k/50,4k/50.5:8k/49.5", [numDirs][]BSWeight{{{8192, 40}, {4096, 60}}, {{4096, 51}, {8192, 49}}, nil}},
		{"4k/0:8k/50,4k/10:16k/20:8k/30", [numDirs][]BSWeight{{{4096, 50}, {8192, 50}}, {{4096, 10}, {16384, 20}, {8192, 70}}, nil}},
	} {
		var j Job
		if err := setBSSplit(&j, tc.v); err != nil {
			t.Fatalf("%s: %v", tc.v, err)
		}
		if !reflect.DeepEqual(j.BSSplit, tc.want) {
			t.Errorf("%s: %v, want %v", tc.v, j.BSSplit, tc.want)
		}
	}
	for _, bad := range []string{"4k/60:8k/60", "4k/50:6k/50", "4k/x", "4k/101", "0/100", "1,2,3,4"} {
		var j Job
		if err := setBSSplit(&j, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := BuildJobs(nil, []Section{{Name: "v", Options: opts("bssplit=4k/50:8k/50", "verify=crc32c", "rw=write", "size=1m")}}, nil); err == nil ||
		!strings.Contains(err.Error(), "bssplit") {
		t.Errorf("verify with bssplit: %v", err)
	}
}

// TestBSSplitRun: each I/O takes a size of the mix in its proportion, on
// the grid of the smallest and inside the region; sequential I/O moves on
// by the size it took, with no gap or overlap; with the random map, as
// fio's, an I/O stops short of the blocks the pass has done already.
func TestBSSplitRun(t *testing.T) {
	_, err := runJobs(t, Option{"ioengine", "test-record"}, Option{"rw", "randread"}, Option{"size", "4g"}, Option{"norandommap", ""},
		Option{"offset", "1m"}, Option{"bssplit", "4k/70:64k/20:1m/10"}, Option{"number_ios", "4000"}, Option{"iodepth", "8"})
	if err != nil {
		t.Fatal(err)
	}
	count := map[int64]int{}
	for _, io := range lastRecordEngine.ios {
		count[io[1]]++
		if io[0]%4096 != 0 || io[0] < 1<<20 || io[0]+io[1] > 1<<20+4<<30 {
			t.Fatalf("I/O at %d, %d bytes: off the 4k grid or outside [1m, 1m+4g)", io[0], io[1])
		}
	}
	if len(lastRecordEngine.ios) != 4000 || len(count) != 3 {
		t.Fatalf("%d I/Os of sizes %v", len(lastRecordEngine.ios), count)
	}
	// The seeded generator makes this deterministic; the bounds are ~5 sigma.
	for size, pct := range map[int64]float64{4096: 70, 65536: 20, 1 << 20: 10} {
		if got := float64(count[size]) / 40; got < pct-4 || got > pct+4 {
			t.Errorf("%d-byte I/Os: %.1f%%, want about %g%%", size, got, pct)
		}
	}

	// The random map: one pass covers each block exactly once.
	if _, err := runJobs(t, Option{"ioengine", "test-record"}, Option{"rw", "randread"}, Option{"size", "8m"},
		Option{"bssplit", "4k/50:64k/50"}, Option{"iodepth", "4"}); err != nil {
		t.Fatal(err)
	}
	seen, shrunk := make([]bool, 2048), 0
	for _, io := range lastRecordEngine.ios {
		if io[1]%4096 != 0 || io[1] > 64<<10 || io[0]+io[1] > 8<<20 {
			t.Fatalf("I/O at %d, %d bytes: off the grid, larger than the mix or past the end", io[0], io[1])
		}
		if io[1] != 4096 && io[1] != 64<<10 {
			shrunk++
		}
		for b := io[0] / 4096; b < (io[0]+io[1])/4096; b++ {
			if seen[b] {
				t.Fatalf("block %d done twice in one pass", b)
			}
			seen[b] = true
		}
	}
	if slices.Contains(seen, false) || shrunk == 0 {
		t.Fatalf("a pass left blocks undone, or no I/O was shortened by done blocks (%d)", shrunk)
	}

	if _, err := runJobs(t, Option{"ioengine", "test-record"}, Option{"rw", "write"}, Option{"size", "8m"},
		Option{"bssplit", "4k/50:128k/50"}); err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for _, io := range lastRecordEngine.ios {
		if io[0] != next {
			t.Fatalf("sequential I/O at %d, want %d", io[0], next)
		}
		next = io[0] + io[1]
	}
	if next != 8<<20 {
		t.Fatalf("sequential pass ended at %d, want 8m", next)
	}
}

// TestCoverMap: the random map's next free block, going round past the
// end as fio's axmap_next_free, across the summary of full words.
func TestCoverMap(t *testing.T) {
	c := newCoverMap(64*70 + 3)
	for b := range c.n {
		if b != 5 && b != c.n-1 {
			c.set(b)
		}
	}
	if got := c.nextFree(6); got != c.n-1 || c.left != 2 {
		t.Fatalf("next free after 6: %d (want %d), %d left (want 2)", got, c.n-1, c.left)
	}
	c.set(c.n - 1)
	if got := c.nextFree(100); got != 5 {
		t.Fatalf("next free after 100, going round: %d, want 5", got)
	}
	if c.nextFree(5) != 5 || c.isSet(5) {
		t.Fatal("block 5 is free")
	}
	c.set(5)
	if c.left != 0 {
		t.Fatalf("%d left, want 0", c.left)
	}
	c.reset()
	if c.left != c.n || c.nextFree(c.n-1) != c.n-1 {
		t.Fatal("reset left blocks done")
	}
}
