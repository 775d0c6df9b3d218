package bench

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestHistogramBucketsAreContiguous(t *testing.T) {
	prevLo := uint64(0)
	for i := 1; i < histBuckets; i++ {
		lo, w := histRange(i)
		plo, pw := histRange(i - 1)
		if lo != plo+pw || lo <= prevLo && i > 1 {
			t.Fatalf("bucket %d starts at %d, previous [%d,+%d)", i, lo, plo, pw)
		}
		if histIndex(lo) != i || histIndex(lo+w-1) != i {
			t.Fatalf("bucket %d [%d,+%d) maps back to %d/%d", i, lo, w, histIndex(lo), histIndex(lo+w-1))
		}
		prevLo = lo
	}
}

func TestHistogramPercentilesWithinOnePercent(t *testing.T) {
	var h Histogram
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]uint64, 100000)
	for i := range vals {
		vals[i] = uint64(math.Exp(r.NormFloat64()*1.5+10)) + 1 // log-normal, like latencies
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, p := range DefaultPercentiles {
		exact := vals[fioRank(p, uint64(len(vals)))-1] // the value at fio's rank
		got := h.Percentile(p)
		if rel := math.Abs(float64(got)-float64(exact)) / float64(exact); rel > 0.01 {
			t.Errorf("p%v = %d, exact %d (%.2f%% off)", p, got, exact, 100*rel)
		}
	}
	if h.Min() != vals[0] || h.Max() != vals[len(vals)-1] || h.Count() != uint64(len(vals)) {
		t.Errorf("min/max/count %d/%d/%d", h.Min(), h.Max(), h.Count())
	}
	var sum float64
	for _, v := range vals {
		sum += float64(v)
	}
	if math.Abs(h.Mean()-sum/float64(len(vals))) > 1e-6*h.Mean() {
		t.Errorf("mean %v, want %v", h.Mean(), sum/float64(len(vals)))
	}
	var m Histogram
	m.Merge(&h)
	m.Merge(&h)
	if m.Count() != 2*h.Count() || m.Percentile(50) != h.Percentile(50) {
		t.Errorf("merge: count %d, p50 %d vs %d", m.Count(), m.Percentile(50), h.Percentile(50))
	}
}

// TestHistogramBucketsAreFios: values map to fio's buckets (stat.c
// plat_val_to_idx) and each bucket reports fio's value for it
// (plat_idx_to_val), so percentiles print as fio prints them.
func TestHistogramBucketsAreFios(t *testing.T) {
	// plat_val_to_idx and plat_idx_to_val, transcribed from fio 3.33.
	fioIdx := func(v uint64) int {
		msb := 0
		if v != 0 {
			msb = 63 - bits.LeadingZeros64(v)
		}
		if msb <= 6 {
			return int(v)
		}
		eb := msb - 6
		idx := (eb+1)<<6 + int(63&(v>>uint(eb)))
		return min(idx, 29*64-1)
	}
	fioVal := func(idx int) uint64 {
		if idx < 128 {
			return uint64(idx)
		}
		eb := idx>>6 - 1
		return uint64(1)<<(eb+6) + uint64((float64(idx%64)+0.5)*float64(uint64(1)<<eb))
	}
	r := rand.New(rand.NewPCG(3, 4))
	vals := []uint64{0, 1, 127, 128, 129, 200, 201, 1000, 50432, 1 << 33, 1<<34 - 1, 1 << 34, 1 << 40}
	for range 10000 {
		vals = append(vals, r.Uint64N(1<<36))
	}
	for _, v := range vals {
		i := histIndex(v)
		if i != fioIdx(v) {
			t.Fatalf("value %d: bucket %d, fio's %d", v, i, fioIdx(v))
		}
		lo, w := histRange(i)
		if lo+w/2 != fioVal(i) {
			t.Fatalf("bucket %d: value %d, fio's %d", i, lo+w/2, fioVal(i))
		}
		var h Histogram
		h.Record(v)
		if h.Percentile(50) != fioVal(fioIdx(v)) {
			t.Fatalf("p50 of {%d} = %d, fio prints %d", v, h.Percentile(50), fioVal(fioIdx(v)))
		}
	}
}

// TestPercentileRankIsFios: a percentile is the value at fio's rank,
// compared in long double as fio 3.33's calc_clat_percentiles does on
// x86-64 (testdata/fio-3.33-percentile-rank.txt, from compiling fio's
// test): p30 of 50 values is the 16th.
func TestPercentileRankIsFios(t *testing.T) {
	b, err := os.ReadFile("testdata/fio-3.33-percentile-rank.txt")
	if err != nil {
		t.Fatal(err)
	}
	cases := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		var p float64
		var n, want uint64
		if _, err := fmt.Sscanf(line, "%g %d %d", &p, &n, &want); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got := fioRank(p, n); got != want {
			t.Errorf("rank of p%v among %d values: %d, fio's %d", p, n, got, want)
		}
		cases++
	}
	// And through a histogram: 50 exact values 1..50, p30 is 16.
	var h Histogram
	for v := uint64(1); v <= 50; v++ {
		h.Record(v)
	}
	if got := h.Percentile(30); got != 16 || cases < 400 {
		t.Errorf("p30 of 1..50 = %d, fio prints 16 (%d table cases)", got, cases)
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	h := new(Histogram)
	if a := testing.AllocsPerRun(1000, func() { h.Record(12345) }); a != 0 {
		t.Fatalf("%v allocs", a)
	}
}

func TestPermutationVisitsEveryBlockOnce(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 7, 64, 1000, 4097} {
		p := newPermutation(n, 42)
		seen := make([]bool, n)
		for i := uint64(0); i < n; i++ {
			b, wrapped := p.next()
			if b >= n || seen[b] {
				t.Fatalf("n=%d: block %d out of range or repeated at step %d", n, b, i)
			}
			seen[b] = true
			if wrapped != (i == n-1) {
				t.Fatalf("n=%d: wrapped=%v at step %d", n, wrapped, i)
			}
		}
	}
}

func TestZipfIsSkewed(t *testing.T) {
	z := newZipf(10000, 1.2)
	r := newRNG(1)
	counts := map[uint64]int{}
	for range 100000 {
		b := z.next(&r)
		if b >= 10000 {
			t.Fatalf("block %d out of range", b)
		}
		counts[b]++
	}
	top := 0
	for _, c := range counts {
		top = max(top, c)
	}
	// With theta 1.2 the hottest block takes far more than the uniform 10.
	if top < 1000 || len(counts) < 100 {
		t.Fatalf("hottest block %d hits, %d distinct blocks", top, len(counts))
	}
}

// TestSkewedDistributions: pareto and normal concentrate hits on few
// blocks, zoned sends each zone its share of the I/O, every draw in range.
func TestSkewedDistributions(t *testing.T) {
	const n, draws = 10000, 200000
	for _, tc := range []struct {
		d Distribution
		// share of the draws that the hottest 10% of blocks take, at least
		hot float64
	}{
		{Distribution{Kind: DistPareto, H: 0.9}, 0.5},
		{Distribution{Kind: DistNormal, Dev: 5}, 0.5},
		{Distribution{Kind: DistZipf, Theta: 1.2}, 0.5},
		{Distribution{}, 0},
	} {
		s := newSkew(n, tc.d)
		r := newRNG(7)
		counts := make([]int, n)
		for range draws {
			b := s.next(&r)
			if b >= n {
				t.Fatalf("%+v: block %d out of range", tc.d, b)
			}
			counts[b]++
		}
		slices.Sort(counts)
		top := 0
		for _, c := range counts[n-n/10:] {
			top += c
		}
		if share := float64(top) / draws; share < tc.hot || (tc.d.Kind == DistRandom && share > 0.15) {
			t.Errorf("%+v: hottest 10%% of blocks take %.2f of the draws", tc.d, share)
		}
	}
	s := newSkew(n, Distribution{Kind: DistZoned, Zones: []Zone{{60, 10}, {30, 20}, {10, 70}}})
	r := newRNG(9)
	var zone [3]int
	for range draws {
		switch b := s.next(&r); {
		case b < n/10:
			zone[0]++
		case b < 3*n/10:
			zone[1]++
		default:
			zone[2]++
		}
	}
	for i, want := range []float64{0.6, 0.3, 0.1} {
		if got := float64(zone[i]) / draws; math.Abs(got-want) > 0.01 {
			t.Errorf("zone %d took %.3f of the I/O, want %.2f", i, got, want)
		}
	}
}
