package bench

import (
	"math"
	"math/big"
	"math/bits"
)

// Histogram records latencies in nanoseconds in fio's buckets (stat.c
// plat_val_to_idx): values below 128 are exact, and every power of two
// above is split into 64 linear buckets, so a value is known within 1/128
// of itself (0.8%), up to 2^34 ns (17 s; larger values land in the last
// bucket). With fio's buckets, percentiles and json+ bins are the numbers
// fio prints for the same latencies. It is a fixed array: Record never
// allocates, and merging is adding arrays; min, max, mean and stddev are
// exact.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	min    uint64
	max    uint64
	// mean and s are Welford's running mean and sum of squared
	// differences from it, as fio's io_stat keeps them (add_stat_sample):
	// a stddev without the cancellation of sums of squares.
	mean, s float64
	sum     float64 // the values' total
}

const (
	histBits    = 6  // fio's FIO_IO_U_PLAT_BITS
	histGroups  = 29 // fio's FIO_IO_U_PLAT_GROUP_NR
	histBuckets = histGroups << histBits
)

// histIndex is fio's plat_val_to_idx.
func histIndex(v uint64) int {
	if v < 2<<histBits {
		return int(v)
	}
	errBits := bits.Len64(v) - 1 - histBits
	i := (errBits+1)<<histBits + int(v>>uint(errBits)&(1<<histBits-1))
	return min(i, histBuckets-1)
}

// histRange returns the lowest value of bucket i and the bucket width;
// lo+width/2 is fio's plat_idx_to_val, the value fio reports for it.
func histRange(i int) (lo, width uint64) {
	if i < 2<<histBits {
		return uint64(i), 1
	}
	errBits := uint(i>>histBits - 1)
	return uint64(1)<<(errBits+histBits) + uint64(i&(1<<histBits-1))<<errBits, 1 << errBits
}

// Record adds one value.
func (h *Histogram) Record(ns uint64) {
	h.counts[histIndex(ns)]++
	if h.n == 0 || ns < h.min {
		h.min = ns
	}
	if ns > h.max {
		h.max = ns
	}
	v := float64(ns)
	h.sum += v
	if d := v - h.mean; d != 0 {
		h.mean += d / float64(h.n+1)
		h.s += d * (v - h.mean)
	}
	h.n++
}

// Reset forgets everything recorded.
func (h *Histogram) Reset() { *h = Histogram{} }

// Merge adds o's values to h (fio's __sum_stat: the parallel form of
// Welford's algorithm).
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.sum += o.sum
	if h.n == 0 {
		h.min, h.max, h.n, h.mean, h.s = o.min, o.max, o.n, o.mean, o.s
		return
	}
	h.min, h.max = min(h.min, o.min), max(h.max, o.max)
	hn, on := float64(h.n), float64(o.n)
	d := o.mean - h.mean
	h.mean = (o.mean*on + h.mean*hn) / (hn + on)
	h.s += o.s + d*d*hn*on/(hn+on)
	h.n += o.n
}

// Count, Min, Max, Mean and Stddev summarize the values (exact, not bucketed).
func (h *Histogram) Count() uint64 { return h.n }
func (h *Histogram) Min() uint64   { return h.min }
func (h *Histogram) Max() uint64   { return h.max }
func (h *Histogram) Mean() float64 { return h.mean }

// Stddev is the sample standard deviation, as fio prints.
func (h *Histogram) Stddev() float64 {
	if h.n < 2 {
		return 0
	}
	return math.Sqrt(h.s / float64(h.n-1))
}

// Percentile returns the value at percentile p (0 < p <= 100) as fio's
// calc_clat_percentiles does: the middle of the first bucket at which
// fioRank(p, N) of the values are counted (fio's plat_idx_to_val).
func (h *Histogram) Percentile(p float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := fioRank(p, h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := histRange(i)
			return lo + w/2
		}
	}
	lo, w := histRange(histBuckets - 1)
	return lo + w/2
}

// fioRank is how many of n values fio counts before it takes a bucket as
// percentile p: the least count with count >= p / 100.0 * n, which fio
// computes in long double. The rank is that of fio on x86-64, whose long
// double has a 64-bit mantissa: there p=30 of 50 values is the 16th, not
// the 15th (0.3 rounds up in 64 bits, and 15 a hair above 15 rounds up
// again), so the same latencies give the same percentiles as fio.
func fioRank(p float64, n uint64) uint64 {
	const prec = 64 // x87 extended precision
	x := new(big.Float).SetPrec(prec).SetFloat64(p)
	x.Quo(x, new(big.Float).SetPrec(prec).SetFloat64(100))
	x.Mul(x, new(big.Float).SetPrec(prec).SetUint64(n))
	r, _ := x.Uint64() // truncated
	if new(big.Float).SetPrec(prec).SetUint64(r).Cmp(x) < 0 {
		r++
	}
	return max(r, 1)
}

// DefaultPercentiles are fio's default percentile_list.
var DefaultPercentiles = []float64{1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99}
