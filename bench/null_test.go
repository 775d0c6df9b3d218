package bench

import (
	"context"
	"os"
	"testing"
)

func mustJobs(t testing.TB, opts ...Option) []*Job {
	t.Helper()
	jobs, err := BuildJobs(nil, []Section{{Name: "t", Options: opts}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func TestNullEngineRandRead(t *testing.T) {
	jobs := mustJobs(t, Option{"ioengine", "null"}, Option{"rw", "randread"}, Option{"bs", "4k"},
		Option{"iodepth", "32"}, Option{"size", "64m"})
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Groups[0].Jobs[0]
	if got, want := r.Dir[DirRead].IOs, uint64(64<<20/4096); got != want {
		t.Fatalf("ios %d, want %d (one pass over size with the random map)", got, want)
	}
	if testing.Verbose() {
		rep.WriteText(os.Stdout)
	}
}
