//go:build linux

package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVerifyChecksums: each of fio's checksums writes blocks that read
// back clean, and a byte flipped on disk in block 10's data is reported
// at that block with the checksum named; meta, which checks the header
// alone, catches a flipped header byte instead, and fio's sha512, which
// keeps data bytes rather than a digest, one in the block's tail.
func TestVerifyChecksums(t *testing.T) {
	for _, kind := range VerifyTypes() {
		if kind == "pattern" || kind == "null" {
			continue
		}
		t.Run(kind, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "data")
			base := opts("ioengine=psync", "filename="+file, "size=128k", "bs=4k", "verify="+kind)
			if _, err := runJobs(t, append(base, opts("rw=randwrite")...)...); err != nil {
				t.Fatalf("write and verify: %v", err)
			}
			const bad = 10 * 4096
			at, want := int64(bad+2000), strings.TrimSuffix(kind, "-intel")
			switch kind {
			case "meta":
				at, want = bad+20, "bad header offset"
			case "sha512":
				// fio's sha512 keeps the data's first 128 bytes and its
				// tail, not a digest: a flip in the middle goes unseen,
				// in fio as here.
				at = bad + 4096 - 10
			}
			flipByte(t, file, at)
			_, err := runJobs(t, append(base, opts("rw=read")...)...)
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Offset != bad || !strings.Contains(ve.Reason, want) {
				t.Fatalf("byte %d flipped: %v, want a %q error at offset %d", at, err, want, bad)
			}
		})
	}
}

// TestVerifyHeaderChecks: fio's header checks: the header's own crc32c,
// a block of another length, and verify_pattern under a checksum.
func TestVerifyHeaderChecks(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	base := opts("ioengine=psync", "filename="+file, "size=64k", "verify=md5")
	if _, err := runJobs(t, append(base, opts("rw=write", "bs=4k", "do_verify=0")...)...); err != nil {
		t.Fatal(err)
	}
	var ve *VerifyError
	if _, err := runJobs(t, append(base, opts("rw=read", "bs=8k")...)...); !errors.As(err, &ve) || !strings.Contains(ve.Reason, "bad header length 4096, wanted 8192") {
		t.Errorf("read back with another block size: %v", err)
	}
	flipByte(t, file, 3*4096+30) // the header's time: only its crc covers it
	if _, err := runJobs(t, append(base, opts("rw=read", "bs=4k")...)...); !errors.As(err, &ve) || ve.Offset != 3*4096 || !strings.Contains(ve.Reason, "bad header crc") {
		t.Errorf("header byte flipped: %v", err)
	}
}

func flipByte(t *testing.T, name string, at int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestXXH32: fio's verify=xxhash is XXH32; reference values of xxHash.
func TestXXH32(t *testing.T) {
	for _, tc := range []struct {
		in   string
		seed uint32
		want uint32
	}{
		{"", 0, 0x02cc5d05},
		{"abc", 0, 0x32d153ff},
		{"Nobody inspects the spammish repetition", 0, 0xe2293b2f},
	} {
		if got := xxh32([]byte(tc.in), tc.seed); got != tc.want {
			t.Errorf("xxh32(%q, %d) = %#x, want %#x", tc.in, tc.seed, got, tc.want)
		}
	}
}

// TestVerifyNoAlloc: writing and checking a verify block allocates
// nothing, whatever the checksum (it runs for every I/O of a verify job).
func TestVerifyNoAlloc(t *testing.T) {
	b := make([]byte, 8192)
	var sum [128]byte
	for _, kind := range VerifyTypes() {
		j := DefaultJob()
		j.Verify = kind
		if kind == "pattern" {
			j.VerifyPattern = &Pattern{Bytes: []byte{1, 2, 3}}
		}
		v, err := newVerifier(&j, 1)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() {
			v.fill(b, 8192, verifyStamp{seed: 7, numberio: 1})
			if e := v.check(b, 8192, 1, sum[:]); e != nil {
				t.Fatal(e)
			}
		}); n != 0 {
			t.Errorf("verify=%s: %v allocations per block", kind, n)
		}
	}
}

// TestVerifyFatal: without verify_fatal every interval of a bad block is
// checked (the first reported, the others counted), with it the check
// stops at the first, as fio.
func TestVerifyFatal(t *testing.T) {
	j := DefaultJob()
	j.Verify, j.BS[DirWrite] = "crc32c", 4096
	b := make([]byte, 16384)
	var sum [128]byte
	for _, fatal := range []bool{false, true} {
		j.VerifyFatal = fatal
		v, err := newVerifier(&j, 1)
		if err != nil {
			t.Fatal(err)
		}
		v.fill(b, 65536, verifyStamp{seed: 3})
		b[4096+100] ^= 1
		b[3*4096+100] ^= 1
		e := v.check(b, 65536, -1, sum[:])
		if e == nil || e.Offset != 65536+4096 || strings.Contains(e.Reason, "and 1 more") == fatal {
			t.Errorf("verify_fatal=%v: %v", fatal, e)
		}
	}
}

// TestVerifyOnly: verify_only works out the write job's blocks without
// writing and reads them back: a clean file passes, a flipped byte is
// found, and nothing is written.
func TestVerifyOnly(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	base := opts("ioengine=psync", "filename="+file, "size=64k", "bs=4k", "verify=crc32c", "rw=randwrite")
	if _, err := runJobs(t, append(base, opts("do_verify=0")...)...); err != nil {
		t.Fatal(err)
	}
	run := func() (*JobResult, error) {
		jobs := mustJobs(t, base...)
		jobs[0].VerifyOnly = true
		rep, err := Run(context.Background(), Config{Jobs: jobs})
		return rep.Groups[0].Jobs[0], err
	}
	r, err := run()
	if err != nil || r.Dir[DirWrite].IOs != 0 || r.Dir[DirRead].IOs != 16 {
		t.Fatalf("verify_only on a clean file: %v, %d writes (want 0), %d reads (want 16)", err, r.Dir[DirWrite].IOs, r.Dir[DirRead].IOs)
	}
	flipByte(t, file, 5*4096+999)
	var ve *VerifyError
	if _, err := run(); !errors.As(err, &ve) || ve.Offset != 5*4096 {
		t.Fatalf("verify_only after a flip: %v", err)
	}
}

// TestRateMin: fio's rate_min and rate_iops_min: after a 2-second
// settle, a direction that did less than the floor over a 1-second cycle
// fails the job with EIO; one that kept up goes on.
func TestRateMin(t *testing.T) {
	const s = int64(time.Second)
	for _, tc := range []struct {
		iopsMin, bpsMin int64
		ios             uint64 // done in the cycle
		fail            bool
	}{{100, 0, 150, false}, {100, 0, 50, true}, {0, 1 << 20, 300, false}, {0, 1 << 20, 200, true}} {
		j := DefaultJob()
		j.RateIOPSMin[DirRead], j.RateMin[DirRead] = tc.iopsMin, tc.bpsMin
		w := &worker{job: &j, recording: true}
		w.stats[DirRead].IOs, w.stats[DirRead].Bytes = 1000, 1000*4096
		w.checkMinRate(s) // in the settle: nothing
		w.checkMinRate(2 * s)
		w.stats[DirRead].IOs += tc.ios
		w.stats[DirRead].Bytes += tc.ios * 4096
		w.checkMinRate(3 * s)
		if (w.ioErr != nil) != tc.fail || (tc.fail && !errors.Is(w.ioErr, syscall.EIO)) {
			t.Errorf("rate_iops_min=%d rate_min=%d, %d I/Os in the cycle: %v", tc.iopsMin, tc.bpsMin, tc.ios, w.ioErr)
		}
	}
}

// TestVerifyInterval: verify_interval=4k puts a header every 4k of a
// 16k block, each naming its own offset, as fio's.
func TestVerifyInterval(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	jobs := mustJobs(t, opts("ioengine=psync", "filename="+file, "size=64k", "bs=16k", "verify=crc32c", "rw=write")...)
	jobs[0].VerifyInterval = 4096
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(b); off += 4096 {
		if m, o, n := binary.LittleEndian.Uint16(b[off:]), binary.LittleEndian.Uint64(b[off+16:]), binary.LittleEndian.Uint32(b[off+4:]); m != verifyMagic || o != uint64(off) || n != 4096 {
			t.Fatalf("at %d: magic %x, offset %d, length %d; want a 4k interval's header for %d", off, m, o, n, off)
		}
	}
	jobs[0].VerifyInterval = 3000
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err == nil || !strings.Contains(err.Error(), "verify_interval") {
		t.Errorf("verify_interval=3000 with bs=16k: %v", err)
	}
}

// TestSHA256Block: the compression function is SHA-256's: with the
// standard padding (big-endian length) it gives crypto/sha256's digest.
func TestSHA256Block(t *testing.T) {
	msg := []byte("abc")
	var blk [64]byte
	copy(blk[:], msg)
	blk[3] = 0x80
	binary.BigEndian.PutUint64(blk[56:], 24)
	h := [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
	sha256Block(&h, blk[:])
	want := sha256.Sum256(msg)
	for i, v := range h {
		if binary.BigEndian.Uint32(want[4*i:]) != v {
			t.Fatalf("word %d: %08x, want %08x", i, v, binary.BigEndian.Uint32(want[4*i:]))
		}
	}
}
