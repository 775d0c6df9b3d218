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
