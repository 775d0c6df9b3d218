package bench

import (
	"context"
	"errors"
	"strconv"
	"testing"
)

func runJobs(t *testing.T, o ...Option) (*Report, error) {
	t.Helper()
	jobs, err := BuildJobs(nil, []Section{{Name: "e2e", Options: o}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return Run(context.Background(), Config{Jobs: jobs})
}

// skipUnsupported skips the test where err wraps ErrNotSupported; the
// caller fails it on any other error.
func skipUnsupported(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
}

// BenchmarkNullEngine measures the core alone: random 4k reads at depth
// 32 through the in-process null engine, one job. The bench must sustain
// well over 1M IOPS here, or it would be the bottleneck of the paths it
// measures. Reports IOPS.
func BenchmarkNullEngine(b *testing.B) {
	for _, qd := range []int{1, 32} {
		b.Run("iodepth="+strconv.Itoa(qd), func(b *testing.B) {
			jobs, err := BuildJobs(nil, []Section{{Name: "null", Options: []Option{
				{"ioengine", "null"}, {"rw", "randread"}, {"bs", "4k"}, {"iodepth", strconv.Itoa(qd)},
				{"io_size", strconv.Itoa(b.N * 4096)}, {"norandommap", ""},
			}}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			rep, err := Run(context.Background(), Config{Jobs: jobs})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			r := rep.Groups[0].Jobs[0]
			b.ReportMetric(float64(r.Dir[DirRead].IOs)/b.Elapsed().Seconds(), "IOPS")
		})
	}
}
