package bench

import (
	"math"
	"math/bits"
)

// Histogram records latencies in nanoseconds in log-linear buckets, like
// HdrHistogram: values below 2^histSubBits are exact, and every power of
// two above is split into 2^histSubBits linear buckets, so any recorded
// value is known within 1/128 (0.8%). It is a fixed array: Record never
// allocates, and merging is adding arrays.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	min    uint64
	max    uint64
	sum    float64
	sumSq  float64
}

const (
	histSubBits = 7
	histMaxBits = 42 // 2^42 ns is 73 minutes; larger values land in the last bucket
	histBuckets = (histMaxBits - histSubBits + 1) << histSubBits
)

func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - histSubBits
	i := (shift+1)<<histSubBits + int(v>>uint(shift)&(1<<histSubBits-1))
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// histRange returns the lowest value of bucket i and the bucket width.
func histRange(i int) (lo, width uint64) {
	if i < 1<<histSubBits {
		return uint64(i), 1
	}
	shift := uint(i>>histSubBits - 1)
	mant := uint64(i&(1<<histSubBits-1) | 1<<histSubBits)
	return mant << shift, 1 << shift
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
	h.n++
	f := float64(ns)
	h.sum += f
	h.sumSq += f * f
}

// Reset forgets everything recorded.
func (h *Histogram) Reset() { *h = Histogram{} }

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
	h.sumSq += o.sumSq
}

// Count, Min, Max, Mean and Stddev summarize the values (exact, not bucketed).
func (h *Histogram) Count() uint64 { return h.n }
func (h *Histogram) Min() uint64   { return h.min }
func (h *Histogram) Max() uint64   { return h.max }
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Stddev is the sample standard deviation, as fio prints.
func (h *Histogram) Stddev() float64 {
	if h.n < 2 {
		return 0
	}
	m := h.Mean()
	v := (h.sumSq - float64(h.n)*m*m) / float64(h.n-1)
	if v < 0 {
		return 0
	}
	return math.Sqrt(v)
}

// Percentile returns the value at percentile p (0 < p <= 100): the middle
// of the bucket holding the ceil(p% * N)-th smallest value, clamped to
// the recorded min and max.
func (h *Histogram) Percentile(p float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := histRange(i)
			v := lo + w/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// CountBelow returns how many values are <= ns (bucket resolution).
func (h *Histogram) CountBelow(ns uint64) uint64 {
	var c uint64
	last := histIndex(ns)
	for i := 0; i <= last; i++ {
		c += h.counts[i]
	}
	return c
}

// DefaultPercentiles are fio's default percentile_list.
var DefaultPercentiles = []float64{1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99}
