//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func runJobs(t *testing.T, o ...Option) (*Report, error) {
	t.Helper()
	jobs, err := BuildJobs(nil, []Section{{Name: "e2e", Options: o}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return Run(context.Background(), Config{Jobs: jobs})
}

func skipUnsupported(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
}

// TestLocalEnginesEndToEnd writes a file with each engine and every
// direct mode, verifies it, then reads it randomly at depth.
func TestLocalEnginesEndToEnd(t *testing.T) {
	for _, engine := range []string{"psync", "io_uring"} {
		for _, direct := range []string{"0", "1"} {
			t.Run(engine+"/direct="+direct, func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "data")
				base := opts("ioengine="+engine, "filename="+file, "size=2m", "direct="+direct, "iodepth=16")
				rep, err := runJobs(t, append(base, opts("rw=randwrite", "bs=8k", "verify=crc32c")...)...)
				skipUnsupported(t, err)
				if err != nil && direct == "1" && strings.Contains(err.Error(), "direct I/O") {
					t.Skip(err)
				}
				if err != nil {
					t.Fatal(err)
				}
				r := rep.Groups[0].Jobs[0]
				if w := r.Dir[DirWrite]; w.IOs != 256 || w.Bytes != 2<<20 {
					t.Fatalf("writes: %d I/Os, %d bytes; want 256, 2 MiB", w.IOs, w.Bytes)
				}
				if rd := r.Dir[DirRead]; rd.IOs != 256 {
					t.Fatalf("verify pass read %d blocks, want 256", rd.IOs)
				}
				rep, err = runJobs(t, append(base, opts("rw=randread", "bs=4k", "norandommap", "io_size=1m")...)...)
				if err != nil {
					t.Fatal(err)
				}
				if rd := rep.Groups[0].Jobs[0].Dir[DirRead]; rd.IOs != 256 || rd.Lat.Count() != 256 {
					t.Fatalf("reads: %d I/Os, %d latencies", rd.IOs, rd.Lat.Count())
				}
			})
		}
	}
}

// TestVerifyCatchesCorruptBlock writes checksummed blocks, flips one byte
// of block 10 on disk behind the benchmark's back, and expects the read
// back to name that block's offset.
func TestVerifyCatchesCorruptBlock(t *testing.T) {
	for _, engine := range []string{"psync", "io_uring"} {
		t.Run(engine, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "data")
			base := opts("ioengine="+engine, "filename="+file, "size=256k", "bs=4k", "iodepth=8", "verify=crc32c")
			_, err := runJobs(t, append(base, opts("rw=write", "do_verify=0")...)...)
			skipUnsupported(t, err)
			if err != nil {
				t.Fatal(err)
			}
			// Intact: a read-verify pass is clean.
			if _, err := runJobs(t, append(base, opts("rw=randread")...)...); err != nil {
				t.Fatalf("clean file failed verify: %v", err)
			}
			f, err := os.OpenFile(file, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			const bad = 10 * 4096
			if _, err := f.WriteAt([]byte{0xff}, bad+1000); err != nil {
				t.Fatal(err)
			}
			f.Close()
			rep, err := runJobs(t, append(base, opts("rw=randread")...)...)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("corrupt block not reported: %v", err)
			}
			if ve.Offset != bad || !strings.Contains(ve.Reason, "crc32c") {
				t.Fatalf("reported %v, want crc32c mismatch at offset %d", ve, bad)
			}
			if e := errno(rep.Groups[0].Jobs[0].Err); e != 84 {
				t.Fatalf("fio error %d, want EILSEQ (84)", e)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("offset %d", bad)) {
				t.Fatalf("message does not name the offset: %v", err)
			}
		})
	}
}

func TestVerifyCatchesMisplacedBlock(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	base := opts("ioengine=psync", "filename="+file, "size=64k", "bs=4k", "verify=crc32c")
	if _, err := runJobs(t, append(base, opts("rw=write", "do_verify=0")...)...); err != nil {
		t.Fatal(err)
	}
	// Copy block 2 over block 5: a valid block in the wrong place.
	b, _ := os.ReadFile(file)
	copy(b[5*4096:6*4096], b[2*4096:3*4096])
	os.WriteFile(file, b, 0o644)
	_, err := runJobs(t, append(base, opts("rw=read")...)...)
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Offset != 5*4096 || !strings.Contains(ve.Reason, "misplaced") {
		t.Fatalf("got %v, want misplaced block at %d", err, 5*4096)
	}
}

func TestUnreadableFileFailsTheJob(t *testing.T) {
	_, err := runJobs(t, opts("ioengine=psync", "filename="+filepath.Join(t.TempDir(), "none"), "rw=read")...)
	if err == nil || !strings.Contains(err.Error(), "size= is not given") {
		t.Fatalf("err %v", err)
	}
}

// mallocs runs a job and returns how many heap allocations it made.
func mallocs(t *testing.T, o ...Option) uint64 {
	jobs, err := BuildJobs(nil, []Section{{Name: "a", Options: o}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		skipUnsupported(t, err)
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	return m1.Mallocs - m0.Mallocs
}

// TestNoAllocationPerIO runs the same job for 1k and for 64k I/Os: the
// allocation count must not grow with the number of I/Os.
func TestNoAllocationPerIO(t *testing.T) {
	for _, engine := range []string{"null", "io_uring"} {
		t.Run(engine, func(t *testing.T) {
			o := opts("ioengine="+engine, "rw=randrw", "bs=512", "iodepth=32", "size=512k", "norandommap")
			if engine != "null" {
				o = append(o, Option{"filename", filepath.Join(t.TempDir(), "f")})
			}
			small := mallocs(t, append(o, Option{"io_size", "512k"})...)
			large := mallocs(t, append(o, Option{"io_size", "32m"})...)
			if large > small+64 {
				t.Fatalf("%d allocations for 1k I/Os, %d for 64k I/Os", small, large)
			}
		})
	}
}
