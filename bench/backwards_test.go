package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestRWBackwardsAsFio: rw=read:-8k (fio's examples/backwards-read.fio)
// runs as fio 3.33 runs it: each I/O starts 8k before the end of the
// last, one that would start before the region 8k before its end. fio's
// write_iolog of size=64k bs=4k: 0, 57344, 53248, ... 4096, 0 (16 reads,
// the last block never).
func TestRWBackwardsAsFio(t *testing.T) {
	run := func(opts ...Option) ([][2]int64, error) {
		jobs := mustJobs(t, append([]Option{{"ioengine", "test-record"}, {"bs", "4k"}, {"size", "64k"}}, opts...)...)
		_, err := Run(context.Background(), Config{Jobs: jobs})
		return lastRecordEngine.ios, err
	}
	ios, err := run(Option{"rw", "read:-8k"})
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{0}
	for off := int64(57344); off >= 0; off -= 4096 {
		want = append(want, off)
	}
	want = want[:16]
	got := make([]int64, len(ios))
	for i, io := range ios {
		got[i] = io[0]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rw=read:-8k: offsets %v, want fio's %v", got, want)
	}
	// -12k at 4k: two blocks back each time, wrapping 12k before the end.
	ios, err = run(Option{"rw", "read:-12k"}, Option{"number_ios", "6"})
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, io := range ios {
		got = append(got, io[0]/4096)
	}
	if fmt.Sprint(got) != "[0 13 11 9 7 5]" {
		t.Errorf("rw=read:-12k: blocks %v, want [0 13 11 9 7 5]", got)
	}
	for _, tc := range []struct {
		opts []Option
		want string
	}{
		{[]Option{{"rw", "read:-6k"}}, "multiples of the read block size"},
		{[]Option{{"rw", "read:-128k"}}, "more than the region's"},
		{[]Option{{"rw", "read:-8k"}, {"offset", "4k"}}, "from 0 only"},
		{[]Option{{"rw", "read:-8k"}, {"bssplit", "4k/50:8k/50"}}, "not bssplit"},
	} {
		if _, err := run(tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.opts, err, tc.want)
		}
	}
}
