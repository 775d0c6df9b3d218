package bench

import (
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
)

// rng is a PCG generator held by value in the worker: no allocation, no
// locking, reproducible from a seed (fio's randrepeat).
type rng struct{ pcg rand.PCG }

func newRNG(seed uint64) rng { return rng{pcg: *rand.NewPCG(seed, seed^0xda3e39cb94b95bdb)} }

// Uint64N returns a value in [0, n) by Lemire's multiply-shift (the bias
// is below 2^-40 for any block count a device has).
func (r *rng) Uint64N(n uint64) uint64 {
	hi, _ := bits.Mul64(r.pcg.Uint64(), n)
	return hi
}

// fill fills b with random bytes.
func (r *rng) fill(b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, r.pcg.Uint64())
		b = b[8:]
	}
	for i := range b {
		b[i] = byte(r.pcg.Uint64())
	}
}

func (r *rng) Float64() float64 { return float64(r.pcg.Uint64()>>11) / (1 << 53) }

// permutation visits every block in [0, n) exactly once per pass in a
// scrambled order, with no memory: fio's random map without the bitmap.
// It walks a counter through a keyed bijection on [0, 2^k) and cycle-walks
// values >= n back into range.
type permutation struct {
	n, mask, key uint64
	shift        uint
	i            uint64
}

func newPermutation(n uint64, key uint64) permutation {
	k := uint(bits.Len64(n - 1))
	if n <= 1 {
		k = 1
	}
	return permutation{n: n, mask: 1<<k - 1, key: key, shift: max(k/2, 1)}
}

func (p *permutation) mix(x uint64) uint64 {
	// Each step is a bijection modulo 2^k: xor with a constant, multiply by
	// an odd constant, xor with a right shift of itself.
	x = (x ^ p.key) & p.mask
	x = (x * 0x9e3779b97f4a7c15) & p.mask
	x ^= x >> p.shift
	x = (x * 0xbf58476d1ce4e5b9) & p.mask
	x ^= x >> p.shift
	return x
}

// next returns the next block and whether a pass ended with it.
func (p *permutation) next() (block uint64, wrapped bool) {
	y := p.mix(p.i)
	for y >= p.n {
		y = p.mix(y)
	}
	p.i++
	if p.i == p.n {
		p.i = 0
		p.key = p.key*6364136223846793005 + 1442695040888963407
		return y, true
	}
	return y, false
}

// zipf draws block numbers with a Zipf distribution of parameter theta
// (Gray et al., "Quickly generating billion-record synthetic databases",
// the generator fio and YCSB use), then scatters the hot blocks over the
// device as fio does, so that popularity is not also locality.
type zipf struct {
	n                        uint64
	theta, alpha, zetan, eta float64
	half                     float64
}

const zipfExactLimit = 1 << 22

func newZipf(n uint64, theta float64) zipf {
	zeta := func(m uint64) float64 {
		s := 0.0
		for i := uint64(1); i <= m; i++ {
			s += 1 / math.Pow(float64(i), theta)
		}
		return s
	}
	var zetan float64
	if n <= zipfExactLimit {
		zetan = zeta(n)
	} else {
		// Exact up to the limit, then the integral of x^-theta.
		m := float64(zipfExactLimit)
		zetan = zeta(zipfExactLimit) + (math.Pow(float64(n), 1-theta)-math.Pow(m, 1-theta))/(1-theta)
	}
	zeta2 := 1 + math.Pow(0.5, theta)
	return zipf{
		n: n, theta: theta, zetan: zetan,
		alpha: 1 / (1 - theta),
		eta:   (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/zetan),
		half:  math.Pow(0.5, theta),
	}
}

func (z *zipf) next(r *rng) uint64 {
	u := r.Float64()
	uz := u * z.zetan
	var v uint64
	switch {
	case uz < 1:
		v = 0
	case uz < 1+z.half:
		v = 1
	default:
		v = uint64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	}
	return scatter(v, z.n)
}

// scatter maps rank v to a fixed pseudo-random block of n, as fio hashes
// its zipf, pareto and normal draws: popularity is then not locality.
func scatter(v, n uint64) uint64 {
	h := (v + 1) * 0x9e3779b97f4a7c15
	h ^= h >> 29
	hi, _ := bits.Mul64(h, n)
	return hi
}

// skew draws block numbers from a non-uniform random_distribution.
type skew struct {
	kind  DistKind
	n     uint64
	z     zipf
	pow   float64     // pareto: rank = (n-1) * u^pow
	sigma float64     // normal: standard deviation in blocks
	zones []zoneRange // zoned
}

// zoneRange is a zone of a zoned distribution: draws with u below upTo
// land uniformly in blocks [lo, lo+n).
type zoneRange struct {
	upTo  float64
	lo, n uint64
}

func newSkew(n uint64, d Distribution) skew {
	s := skew{kind: d.Kind, n: n}
	switch d.Kind {
	case DistZipf:
		s.z = newZipf(n, d.Theta)
	case DistPareto:
		s.pow = math.Log(d.H) / math.Log(1-d.H)
	case DistNormal:
		s.sigma = float64(n) * d.Dev / 100
	case DistZoned:
		var acc, lo float64
		for i, z := range d.Zones {
			acc += z.Access / 100
			hi := lo + z.Range/100*float64(n)
			zr := zoneRange{upTo: acc, lo: uint64(lo), n: max(uint64(hi)-uint64(lo), 1)}
			if i == len(d.Zones)-1 {
				zr.upTo, zr.n = 1, max(n-zr.lo, 1)
			}
			s.zones = append(s.zones, zr)
			lo = hi
		}
	}
	return s
}

func (s *skew) next(r *rng) uint64 {
	switch s.kind {
	case DistZipf:
		return s.z.next(r)
	case DistPareto:
		return scatter(uint64(float64(s.n-1)*math.Pow(r.Float64(), s.pow)), s.n)
	case DistNormal:
		// Box-Muller around the middle; draws off the device are redrawn.
		c := float64(s.n) / 2
		for range 64 {
			x := c + s.sigma*math.Sqrt(-2*math.Log(1-r.Float64()))*math.Cos(2*math.Pi*r.Float64())
			if x >= 0 && x < float64(s.n) {
				return scatter(uint64(x), s.n)
			}
		}
		return scatter(uint64(c), s.n)
	case DistZoned:
		u := r.Float64()
		for _, z := range s.zones {
			if u < z.upTo && z.lo < s.n {
				return z.lo + r.Uint64N(min(z.n, s.n-z.lo))
			}
		}
		return r.Uint64N(s.n)
	}
	return r.Uint64N(s.n)
}

// coverMap is fio's random map (its axmap, two levels here): which of n
// blocks a pass has done, and the next one it has not.
type coverMap struct {
	words []uint64 // bit b: block b done
	full  []uint64 // bit i: words[i] all done
	n     uint64
	left  uint64 // blocks not done
}

func newCoverMap(n uint64) coverMap {
	nw := (n + 63) / 64
	c := coverMap{words: make([]uint64, nw), full: make([]uint64, (nw+63)/64), n: n}
	c.reset()
	return c
}

// reset marks every block not done; the bits past n count as done.
func (c *coverMap) reset() {
	if c.words == nil {
		return
	}
	clear(c.words)
	clear(c.full)
	c.left = c.n
	if r := c.n % 64; r != 0 {
		c.words[len(c.words)-1] = ^uint64(0) << r
	}
}

func (c *coverMap) isSet(b uint64) bool { return c.words[b/64]&(1<<(b%64)) != 0 }

func (c *coverMap) set(b uint64) {
	i := b / 64
	if c.words[i]&(1<<(b%64)) != 0 {
		return
	}
	c.words[i] |= 1 << (b % 64)
	c.left--
	if c.words[i] == ^uint64(0) {
		c.full[i/64] |= 1 << (i % 64)
	}
}

// nextFree is b if it is not done, else the first block after it that is
// not, going round past the end (fio's axmap_next_free); c must have one.
func (c *coverMap) nextFree(b uint64) uint64 {
	if !c.isSet(b) {
		return b
	}
	i := b / 64
	if w := c.words[i] | (uint64(1)<<(b%64+1) - 1); w != ^uint64(0) && b%64 != 63 {
		return i*64 + uint64(bits.TrailingZeros64(^w))
	}
	nw := uint64(len(c.words))
	for k := uint64(1); k <= nw; k++ {
		j := (i + k) % nw
		if c.full[j/64] == ^uint64(0) && j%64 == 0 && j+64 <= nw {
			k += 63 // a whole summary word of full words
			continue
		}
		if c.words[j] != ^uint64(0) {
			return j*64 + uint64(bits.TrailingZeros64(^c.words[j]))
		}
	}
	return b // none left: the caller resets
}
