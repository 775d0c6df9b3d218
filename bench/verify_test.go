//go:build linux

package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyChecksums: each of fio's checksums the bench has writes
// blocks that read back clean, and a byte flipped on disk in block 10's
// data is reported at that block with the checksum named; meta, which
// checks the header alone, catches a flipped header byte instead.
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
			if kind == "meta" {
				at, want = bad+20, "bad header offset"
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
			if e := v.check(b, 8192, sum[:]); e != nil {
				t.Fatal(e)
			}
		}); n != 0 {
			t.Errorf("verify=%s: %v allocations per block", kind, n)
		}
	}
}
