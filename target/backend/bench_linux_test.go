package backend

import (
	"path/filepath"
	"testing"
)

// benchIO measures 4 KiB I/O on b, walking through 64 MiB in a scattered
// order so that a file backend does not stay in one page.
func benchIO(bench *testing.B, b Backend, write, fua bool) {
	p := alignedBuf(4096, 4096)
	for i := range p {
		p[i] = byte(i)
	}
	const span = 64 << 20
	blocks := int64(min(span, b.Size()) / 4096)
	// Touch the span once so reads do not measure first faults.
	for off := int64(0); off < blocks*4096; off += 4096 {
		if err := b.WriteAt(p, off, false); err != nil {
			bench.Fatal(err)
		}
	}
	bench.SetBytes(4096)
	bench.ReportAllocs()
	var k int64
	for bench.Loop() {
		off := (k * 7919 % blocks) * 4096
		k++
		var err error
		if write {
			err = b.WriteAt(p, off, fua)
		} else {
			err = b.ReadAt(p, off)
		}
		if err != nil {
			bench.Fatal(err)
		}
	}
}

func benchAll(bench *testing.B, write bool) {
	bench.Run("null", func(bench *testing.B) {
		b, _ := NewNull(1<<30, 512)
		benchIO(bench, b, write, false)
	})
	bench.Run("mem", func(bench *testing.B) {
		b, err := NewMem(64<<20, 512)
		if err != nil {
			bench.Fatal(err)
		}
		defer b.Close()
		benchIO(bench, b, write, false)
	})
	for _, buffered := range []bool{false, true} {
		name := "file-direct"
		if buffered {
			name = "file-buffered"
		}
		fuas := []bool{false}
		if write {
			fuas = append(fuas, true)
		}
		for _, fua := range fuas {
			n := name
			if fua {
				n += "-fua"
			}
			bench.Run(n, func(bench *testing.B) {
				f, err := OpenFile(filepath.Join(bench.TempDir(), "bench.img"), FileOptions{Size: 64 << 20, Buffered: buffered})
				if err != nil {
					bench.Fatal(err)
				}
				defer f.Close()
				if !buffered && !f.Direct() {
					bench.Skip("O_DIRECT not available in the temporary directory")
				}
				benchIO(bench, f, write, fua)
			})
		}
	}
}

func BenchmarkReadAt4K(b *testing.B)  { benchAll(b, false) }
func BenchmarkWriteAt4K(b *testing.B) { benchAll(b, true) }
