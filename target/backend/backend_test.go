package backend

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// alignedBuf returns n bytes whose first byte is aligned to align.
func alignedBuf(n, align int) []byte {
	raw := make([]byte, n+align)
	skip := int(-uintptr(unsafe.Pointer(&raw[0])) & uintptr(align-1))
	return raw[skip : skip+n : skip+n]
}

// conformance checks the behaviour every Backend promises, against a model
// of what it should hold. The backend must be freshly created, its first
// modelSize bytes zero. stores is false for null, which keeps nothing.
func conformance(t *testing.T, b Backend, stores bool) {
	t.Helper()
	bs := int64(b.BlockSize())
	modelSize := min(b.Size(), 4<<20)
	model := make([]byte, modelSize)
	src := rand.NewChaCha8([32]byte{byte(bs >> 8)})
	rng := rand.New(src)
	buf := alignedBuf(256<<10, 4096)

	// randRange picks a block-aligned range inside the model, up to max bytes.
	randRange := func(max int64) (off, n int64) {
		n = (1 + rng.Int64N(max/bs)) * bs
		off = rng.Int64N((modelSize-n)/bs+1) * bs
		return off, n
	}
	verify := func(what string) {
		t.Helper()
		got := alignedBuf(int(modelSize), 4096)
		if err := b.ReadAt(got, 0); err != nil {
			t.Fatalf("%s: ReadAt(whole model): %v", what, err)
		}
		want := model
		if !stores {
			want = make([]byte, modelSize)
		}
		if i := firstDiff(got, want); i >= 0 {
			t.Fatalf("%s: byte %d (block %d) = %#x, want %#x", what, i, int64(i)/bs, got[i], want[i])
		}
	}

	verify("fresh backend")
	for i := range 300 {
		switch op := rng.IntN(10); {
		case op < 6: // write
			off, n := randRange(int64(len(buf)))
			p := buf[:n]
			src.Read(p)
			if err := b.WriteAt(p, off, rng.IntN(8) == 0); err != nil {
				t.Fatalf("op %d: WriteAt(%d bytes at %d): %v", i, n, off, err)
			}
			copy(model[off:], p)
		case op < 8: // read a random range
			off, n := randRange(int64(len(buf)))
			p := buf[:n]
			if err := b.ReadAt(p, off); err != nil {
				t.Fatalf("op %d: ReadAt(%d bytes at %d): %v", i, n, off, err)
			}
			want := model[off : off+n]
			if !stores {
				want = make([]byte, n)
			}
			if j := firstDiff(p, want); j >= 0 {
				t.Fatalf("op %d: ReadAt(%d bytes at %d): byte %d = %#x, want %#x", i, n, off, j, p[j], want[j])
			}
		default: // zero, sometimes large enough to cover whole pages
			off, n := randRange(modelSize / 4)
			var err error
			if op == 8 {
				err = b.WriteZeroes(off, n)
			} else {
				err = b.Discard(off, n)
			}
			if err != nil {
				t.Fatalf("op %d: zero %d bytes at %d (op %d): %v", i, n, off, op, err)
			}
			clear(model[off : off+n])
		}
	}
	verify("after random writes, zeroes and discards")
	if err := b.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	// Zero ranges whose edges fall inside pages (with 512-byte blocks):
	// the edges must be cleared and the bytes just outside kept.
	for _, r := range [][2]int64{{bs, 3 * 4096}, {4096 - bs, 2*4096 + 2*bs}, {3 * bs, bs}, {0, 64 << 10}} {
		p := bytes.Repeat([]byte{0xa5}, 128<<10)
		if err := b.WriteAt(p, 0, false); err != nil {
			t.Fatal(err)
		}
		copy(model, p)
		if err := b.WriteZeroes(r[0], r[1]); err != nil {
			t.Fatalf("WriteZeroes(%d, %d): %v", r[0], r[1], err)
		}
		clear(model[r[0] : r[0]+r[1]])
		verify("after WriteZeroes with partial-page edges")
		if err := b.WriteAt(p, 0, false); err != nil {
			t.Fatal(err)
		}
		copy(model, p)
		if err := b.Discard(r[0], r[1]); err != nil {
			t.Fatalf("Discard(%d, %d): %v", r[0], r[1], err)
		}
		clear(model[r[0] : r[0]+r[1]])
		verify("after Discard with partial-page edges")
	}

	// The last block is reachable; one past it is not.
	last := b.Size() - bs
	if err := b.WriteAt(buf[:bs], last, false); err != nil {
		t.Fatalf("WriteAt(last block): %v", err)
	}
	if err := b.ReadAt(buf[:bs], last); err != nil {
		t.Fatalf("ReadAt(last block): %v", err)
	}
	for _, c := range []struct {
		name string
		err  error
		call func() error
	}{
		{"ReadAt past end", ErrOutOfRange, func() error { return b.ReadAt(buf[:bs], b.Size()) }},
		{"ReadAt across end", ErrOutOfRange, func() error { return b.ReadAt(buf[:2*bs], last) }},
		{"WriteAt across end", ErrOutOfRange, func() error { return b.WriteAt(buf[:2*bs], last, false) }},
		{"WriteAt negative", ErrOutOfRange, func() error { return b.WriteAt(buf[:bs], -bs, false) }},
		{"WriteZeroes across end", ErrOutOfRange, func() error { return b.WriteZeroes(last, 2*bs) }},
		{"Discard huge", ErrOutOfRange, func() error { return b.Discard(bs, 1<<62) }},
		{"ReadAt unaligned offset", ErrUnaligned, func() error { return b.ReadAt(buf[:bs], 1) }},
		{"WriteAt unaligned length", ErrUnaligned, func() error { return b.WriteAt(buf[:bs-1], 0, false) }},
		{"Discard unaligned", ErrUnaligned, func() error { return b.Discard(0, bs+1) }},
	} {
		if err := c.call(); !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
	}

	// Concurrent writers and readers on disjoint blocks.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			p := alignedBuf(int(bs), 4096)
			q := alignedBuf(int(bs), 4096)
			for k := range 32 {
				off := int64(g+4*k) * bs
				for j := range p {
					p[j] = byte(g*32 + k + 1)
				}
				if err := b.WriteAt(p, off, false); err != nil {
					t.Errorf("concurrent WriteAt: %v", err)
					return
				}
				if err := b.ReadAt(q, off); err != nil {
					t.Errorf("concurrent ReadAt: %v", err)
					return
				}
				if stores && !bytes.Equal(p, q) {
					t.Errorf("concurrent: block %d reads back %#x, want %#x", off/bs, q[0], p[0])
					return
				}
			}
		})
	}
	wg.Wait()
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// checkNoAllocs asserts that 4 KiB ReadAt and WriteAt on an aligned buffer
// do not allocate.
func checkNoAllocs(t *testing.T, b Backend) {
	t.Helper()
	p := alignedBuf(4096, 4096)
	for _, fua := range []bool{false, true} {
		if a := testing.AllocsPerRun(50, func() {
			if err := b.WriteAt(p, 8192, fua); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s: WriteAt(fua=%v) allocates %v times per call, want 0", b.Kind(), fua, a)
		}
	}
	if a := testing.AllocsPerRun(50, func() {
		if err := b.ReadAt(p, 8192); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%s: ReadAt allocates %v times per call, want 0", b.Kind(), a)
	}
	if a := testing.AllocsPerRun(50, func() { _ = b.ReadAt(p, b.Size()) }); a != 0 {
		t.Errorf("%s: out-of-range ReadAt allocates %v times per call, want 0", b.Kind(), a)
	}
}

func TestNull(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		b, err := NewNull(1<<40, bs)
		if err != nil {
			t.Fatal(err)
		}
		if b.Size() != 1<<40 || b.BlockSize() != bs || b.Kind() != "null" || b.VolatileWriteCache() {
			t.Fatalf("NewNull(1TiB, %d): size %d, bs %d, kind %q, vwc %v", bs, b.Size(), b.BlockSize(), b.Kind(), b.VolatileWriteCache())
		}
		conformance(t, b, false)
		checkNoAllocs(t, b)
		// A read clears whatever the buffer held.
		p := bytes.Repeat([]byte{0xff}, bs)
		if err := b.ReadAt(p, 1<<40-int64(bs)); err != nil || !bytes.Equal(p, make([]byte, bs)) {
			t.Fatalf("ReadAt did not clear the buffer: err %v", err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGeometryErrors(t *testing.T) {
	for _, c := range []struct {
		size int64
		bs   int
		want string
	}{
		{0, 512, "positive size"},
		{-4096, 512, "positive size"},
		{1000, 512, "not a multiple of the block size 512"},
		{4096, 1024, "use 512 or 4096"},
	} {
		if _, err := NewNull(c.size, c.bs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewNull(%d, %d): %v, want an error containing %q", c.size, c.bs, err, c.want)
		}
	}
}

// TestParseSizeRule: backend specs read sizes by the IEC rule (the
// cases are in internal/units): KiB is 1024, KB 1000.
func TestParseSizeRule(t *testing.T) {
	if k, err := ParseSize("4KiB"); err != nil || k != 4096 {
		t.Errorf("ParseSize(4KiB) = %d, %v; want 4096", k, err)
	}
	if k, err := ParseSize("4KB"); err != nil || k != 4000 {
		t.Errorf("ParseSize(4KB) = %d, %v; want 4000", k, err)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1000: "1000B", 4096: "4KiB", 1 << 30: "1GiB", 3 << 40: "3TiB", 1536 << 20: "1536MiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
