// Package bufpool hands out page-aligned data buffers by size class without
// allocating on the I/O path.
//
// Buffers are carved from large anonymous mappings (slabs) that never move
// and are never returned to the Go heap, so a transport can register every
// slab once with a NIC (an RDMA memory region) or a GPU (pinned host memory)
// through OnSlab and then hand buffers to the hardware with no copy.
package bufpool

import (
	"fmt"
	"math/bits"
	"sync"
)

// Buffer size classes run from MinSize to MaxSize in powers of two.
const (
	MinSize  = 4 << 10
	MaxSize  = 1 << 20
	slabSize = 4 << 20
	classes  = 9 // 4K .. 1M
)

// Buf is one pooled buffer. B has the length asked for; its capacity is the
// size class. A Buf must be returned with Put exactly once.
type Buf struct {
	B     []byte
	full  []byte
	class int8
	slab  int32
	off   int32
}

// Slab is one registered region: every Buf lies inside exactly one.
type Slab struct {
	Index int
	Mem   []byte
}

// Pool is a set of free lists, one per size class. It is safe for
// concurrent use.
type Pool struct {
	mu      sync.Mutex
	free    [classes][]*Buf // guarded by mu
	slabs   []Slab          // guarded by mu
	carve   []carving       // guarded by mu: how each slab is cut now
	onSlab  []func(Slab) error
	maxMem  int64
	usedMem int64 // guarded by mu
}

// carving is a slab's current size class and how many of its buffers are
// in the pool: a slab whose buffers are all back can be cut anew for
// another class once the memory limit is reached.
type carving struct {
	class       int8
	total, free int32
}

// New returns a pool that maps at most maxMem bytes in total (0: no limit).
func New(maxMem int64) *Pool { return &Pool{maxMem: maxMem} }

// OnSlab registers a hook called for every slab, those mapped already and
// those to come (an RDMA transport registers each as a memory region).
func (p *Pool) OnSlab(f func(Slab) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.slabs {
		if err := f(s); err != nil {
			return err
		}
	}
	p.onSlab = append(p.onSlab, f)
	return nil
}

// Slabs returns the slabs mapped so far.
func (p *Pool) Slabs() []Slab {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Slab(nil), p.slabs...)
}

func classOf(n int) int {
	if n <= MinSize {
		return 0
	}
	return bits.Len(uint(n-1)) - bits.Len(uint(MinSize-1))
}

// ClassSize is the memory a buffer of n bytes takes: its size class (n
// itself when n is outside 1..MaxSize, which Get refuses).
func ClassSize(n int) int {
	if n <= 0 || n > MaxSize {
		return n
	}
	return MinSize << classOf(n)
}

// Get returns a buffer of length n (1 <= n <= MaxSize), page aligned.
func (p *Pool) Get(n int) (*Buf, error) {
	if n <= 0 || n > MaxSize {
		return nil, fmt.Errorf("bufpool: size %d outside 1..%d", n, MaxSize)
	}
	c := classOf(n)
	p.mu.Lock()
	fl := p.free[c]
	if len(fl) == 0 {
		if err := p.grow(c); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		fl = p.free[c]
	}
	b := fl[len(fl)-1]
	p.free[c] = fl[:len(fl)-1]
	p.carve[b.slab].free--
	p.mu.Unlock()
	b.B = b.full[:n]
	return b, nil
}

// Put returns a buffer to the pool.
func (p *Pool) Put(b *Buf) {
	if b == nil {
		return
	}
	b.B = nil
	p.mu.Lock()
	p.free[b.class] = append(p.free[b.class], b)
	p.carve[b.slab].free++
	p.mu.Unlock()
}

// SlabOf returns the index of the slab holding b and b's offset in it, so
// that a registered-memory user can name the buffer by (region, offset).
func (b *Buf) SlabOf() (slab int, offset int) { return int(b.slab), int(b.off) }

// grow maps one slab for class c; at the memory limit it cuts a slab of
// another class whose buffers are all free instead. Called with mu held.
func (p *Pool) grow(c int) error {
	if p.maxMem > 0 && p.usedMem+slabSize > p.maxMem {
		if p.recut(c) {
			return nil
		}
		return fmt.Errorf("bufpool: memory limit %d bytes reached, every slab in use (raise the pool limit)", p.maxMem)
	}
	mem, err := Map(slabSize)
	if err != nil {
		return fmt.Errorf("bufpool: map %d-byte slab: %w", slabSize, err)
	}
	s := Slab{Index: len(p.slabs), Mem: mem}
	for _, f := range p.onSlab {
		if err := f(s); err != nil {
			Unmap(mem)
			return fmt.Errorf("bufpool: register slab: %w", err)
		}
	}
	p.slabs = append(p.slabs, s)
	p.carve = append(p.carve, carving{})
	p.usedMem += slabSize
	p.cut(s, c)
	return nil
}

// cut carves slab s into buffers of class c and adds them to its free
// list. Called with mu held.
func (p *Pool) cut(s Slab, c int) {
	size := MinSize << c
	n := slabSize / size
	bufs := make([]Buf, n)
	if cap(p.free[c])-len(p.free[c]) < n {
		grown := make([]*Buf, len(p.free[c]), len(p.free[c])+n*2)
		copy(grown, p.free[c])
		p.free[c] = grown
	}
	for i := range bufs {
		bufs[i] = Buf{full: s.Mem[i*size : (i+1)*size : (i+1)*size], class: int8(c), slab: int32(s.Index), off: int32(i * size)}
		p.free[c] = append(p.free[c], &bufs[i])
	}
	p.carve[s.Index] = carving{class: int8(c), total: int32(n), free: int32(n)}
}

// recut takes a slab of another class whose buffers are all in the pool
// and cuts it for class c: the slab's memory (and any registration of it)
// stays, so a burst of one size does not starve every other size until a
// restart. It reports whether it found one. Called with mu held.
func (p *Pool) recut(c int) bool {
	for i, k := range p.carve {
		if int(k.class) == c || k.free != k.total {
			continue
		}
		old := int(k.class)
		fl := p.free[old][:0]
		for _, b := range p.free[old] {
			if int(b.slab) != i {
				fl = append(fl, b)
			}
		}
		clear(p.free[old][len(fl):])
		p.free[old] = fl
		p.cut(p.slabs[i], c)
		return true
	}
	return false
}

// Close unmaps every slab. Buffers still held become invalid.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first error
	for _, s := range p.slabs {
		if err := Unmap(s.Mem); err != nil && first == nil {
			first = err
		}
	}
	p.slabs = nil
	p.free = [classes][]*Buf{}
	p.usedMem = 0
	return first
}
