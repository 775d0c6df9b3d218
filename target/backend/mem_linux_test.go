package backend

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestMem(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		m, err := NewMem(8<<20, bs)
		if err != nil {
			t.Fatal(err)
		}
		if m.Size() != 8<<20 || m.BlockSize() != bs || m.Kind() != "mem" || m.VolatileWriteCache() {
			t.Fatalf("NewMem(8MiB, %d): size %d, bs %d, kind %q, vwc %v", bs, m.Size(), m.BlockSize(), m.Kind(), m.VolatileWriteCache())
		}
		conformance(t, m, true)
		checkNoAllocs(t, m)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.ReadAt(make([]byte, bs), 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("ReadAt after Close: %v, want ErrClosed", err)
		}
		if err := m.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close: %v, want ErrClosed", err)
		}
	}
}

// A 1 TiB namespace costs only the pages written, and zeroing gives whole
// pages back to the kernel while clearing partial ones.
func TestMemSparse(t *testing.T) {
	m, err := NewMem(1<<40, 512)
	if err != nil {
		t.Fatalf("NewMem(1TiB): %v", err)
	}
	defer m.Close()
	b := m.Bytes()
	if int64(len(b)) != m.Size() {
		t.Fatalf("len(Bytes()) = %d, want %d", len(b), m.Size())
	}
	page := unix.Getpagesize()
	if uintptr(unsafe.Pointer(unsafe.SliceData(b)))%uintptr(page) != 0 {
		t.Fatalf("Bytes() is not page-aligned")
	}
	resident := func(off, n int) int {
		vec := make([]byte, (n+page-1)/page)
		_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[off])), uintptr(n), uintptr(unsafe.Pointer(&vec[0])))
		if e != 0 {
			t.Fatalf("mincore: %v", e)
		}
		c := 0
		for _, v := range vec {
			c += int(v & 1)
		}
		return c
	}
	if r := resident(0, 1<<20); r != 0 {
		t.Fatalf("%d pages resident before any write, want 0", r)
	}

	// Fill 16 pages near the end of the namespace.
	off := int64(1<<40 - 16*page)
	p := make([]byte, 16*page)
	for i := range p {
		p[i] = 0x5a
	}
	if err := m.WriteAt(p, off, true); err != nil {
		t.Fatal(err)
	}
	if r := resident(int(off), len(p)); r != 16 {
		t.Fatalf("%d pages resident after writing 16, want 16", r)
	}
	// Zero from 512 bytes into page 1 to 512 bytes into page 14: pages 2..13
	// are dropped, the edges cleared in place.
	zoff, zn := off+int64(page)+512, int64(13*page)
	if err := m.Discard(zoff, zn); err != nil {
		t.Fatal(err)
	}
	if r := resident(int(off), len(p)); r != 4 {
		t.Errorf("%d pages resident after discarding 12 whole pages of 16, want 4", r)
	}
	got := make([]byte, len(p))
	if err := m.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		want := byte(0x5a)
		if int64(i) >= zoff-off && int64(i) < zoff-off+zn {
			want = 0
		}
		if got[i] != want {
			t.Fatalf("byte %d after Discard = %#x, want %#x", i, got[i], want)
		}
	}
}
