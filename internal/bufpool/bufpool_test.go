package bufpool

import (
	"testing"
	"unsafe"
)

func TestGetPutClasses(t *testing.T) {
	p := New(0)
	defer p.Close()
	for _, n := range []int{1, 512, 4096, 4097, 8192, 65536, 100000, MaxSize} {
		b, err := p.Get(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.B) != n || cap(b.B) < n {
			t.Fatalf("Get(%d): len %d cap %d", n, len(b.B), cap(b.B))
		}
		if uintptr(unsafe.Pointer(&b.B[0]))%4096 != 0 {
			t.Fatalf("Get(%d): not page aligned", n)
		}
		b.B[n-1] = 1
		p.Put(b)
	}
	if _, err := p.Get(MaxSize + 1); err == nil {
		t.Fatal("Get beyond MaxSize succeeded")
	}
	if _, err := p.Get(0); err == nil {
		t.Fatal("Get(0) succeeded")
	}
}

func TestDistinctBuffers(t *testing.T) {
	p := New(0)
	defer p.Close()
	seen := map[*byte]bool{}
	var held []*Buf
	for i := 0; i < 3000; i++ { // crosses several slabs
		b, err := p.Get(4096)
		if err != nil {
			t.Fatal(err)
		}
		if seen[&b.B[0]] {
			t.Fatal("buffer handed out twice")
		}
		seen[&b.B[0]] = true
		held = append(held, b)
	}
	for _, b := range held {
		p.Put(b)
	}
}

func TestOnSlabAndLimit(t *testing.T) {
	p := New(2 * slabSize)
	defer p.Close()
	var got []int
	if err := p.OnSlab(func(s Slab) error { got = append(got, s.Index); return nil }); err != nil {
		t.Fatal(err)
	}
	a, _ := p.Get(MaxSize)
	b, _ := p.Get(4096)
	if len(got) != 2 {
		t.Fatalf("OnSlab saw %v, want 2 slabs", got)
	}
	if _, err := p.Get(64 << 10); err == nil {
		t.Fatal("third slab mapped beyond the limit")
	}
	p.Put(a)
	p.Put(b)
}

func TestNoAllocs(t *testing.T) {
	p := New(0)
	defer p.Close()
	b, _ := p.Get(128 << 10)
	p.Put(b)
	if n := testing.AllocsPerRun(1000, func() {
		b, _ := p.Get(128 << 10)
		p.Put(b)
	}); n != 0 {
		t.Fatalf("Get/Put allocates %v per run", n)
	}
}

func BenchmarkGetPut(b *testing.B) {
	p := New(0)
	defer p.Close()
	b.ReportAllocs()
	for b.Loop() {
		x, _ := p.Get(4096)
		p.Put(x)
	}
}

// TestMemoryMovesAcrossClasses: at the memory limit, a slab whose
// buffers are all back is cut for the size now asked for (the security
// issue found every 128 KiB read failing after a burst of 1 MiB writes,
// until a restart); a slab with a buffer still out is left alone.
func TestMemoryMovesAcrossClasses(t *testing.T) {
	p := New(2 * slabSize)
	defer p.Close()
	var big []*Buf
	for range 2 * slabSize / MaxSize {
		b, err := p.Get(MaxSize)
		if err != nil {
			t.Fatal(err)
		}
		big = append(big, b)
	}
	if _, err := p.Get(128 << 10); err == nil {
		t.Fatal("a 128 KiB buffer with every slab out")
	}
	held := big[0] // keeps its slab
	for _, b := range big[1:] {
		p.Put(b)
	}
	var small []*Buf
	for range slabSize / (128 << 10) {
		b, err := p.Get(128 << 10)
		if err != nil {
			t.Fatalf("128 KiB buffer %d after the 1 MiB burst: %v", len(small), err)
		}
		if s, _ := b.SlabOf(); s == int(held.slab) {
			t.Fatalf("a 128 KiB buffer cut from slab %d, which still lends a 1 MiB buffer", s)
		}
		small = append(small, b)
	}
	if _, err := p.Get(128 << 10); err == nil {
		t.Fatal("a 128 KiB buffer from the slab still lending a 1 MiB buffer")
	}
	p.Put(held)
	b, err := p.Get(128 << 10)
	if err != nil {
		t.Fatalf("after the last 1 MiB buffer came back: %v", err)
	}
	small = append(small, b)
	// Every buffer is its own memory.
	seen := map[*byte]bool{}
	for _, b := range small {
		b.B[0] = 1
		if seen[&b.B[0]] {
			t.Fatal("two buffers share memory")
		}
		seen[&b.B[0]] = true
	}
	if len(p.Slabs()) != 2 {
		t.Errorf("%d slabs mapped, want the 2 the limit allows", len(p.Slabs()))
	}
}
