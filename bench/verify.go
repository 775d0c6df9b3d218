package bench

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Verify block layout (little-endian), written at the start of every block
// by write jobs with verify=crc32c:
//
//	0      4       8          16     20     24       32
//	+------+-------+----------+------+------+--------+---------- - -
//	|magic | crc32c| offset   | len  | seed | seq    | pattern...
//	+------+-------+----------+------+------+--------+---------- - -
//
// crc32c covers bytes 8..len. offset and len name the block the header was
// written for, so a block landing at the wrong place is caught as well as
// flipped bits.
const (
	verifyMagic     = 0x31565046 // "FPV1"
	verifyHeaderLen = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// VerifyError is the first mismatch a verify pass found.
type VerifyError struct {
	Offset int64
	Len    int
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verify: block at offset %d (0x%x), length %d: %s", e.Offset, e.Offset, e.Len, e.Reason)
}

// fillVerify writes a checksummed block for offset into b.
func fillVerify(b []byte, off int64, seed, seq uint64) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], verifyMagic)
	le.PutUint64(b[8:], uint64(off))
	le.PutUint32(b[16:], uint32(len(b)))
	le.PutUint32(b[20:], uint32(seed))
	le.PutUint64(b[24:], seq)
	x := uint64(off) ^ seed ^ 0x2545f4914f6cdd1d
	i := verifyHeaderLen
	for ; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		le.PutUint64(b[i:], x)
	}
	for ; i < len(b); i++ {
		b[i] = byte(x >> (8 * (i & 7)))
	}
	le.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
}

// checkVerify checks a block read from offset; nil if it is intact.
func checkVerify(b []byte, off int64) *VerifyError {
	le := binary.LittleEndian
	fail := func(format string, args ...any) *VerifyError {
		return &VerifyError{Offset: off, Len: len(b), Reason: fmt.Sprintf(format, args...)}
	}
	if len(b) < verifyHeaderLen {
		return fail("block shorter than the %d-byte verify header", verifyHeaderLen)
	}
	if m := le.Uint32(b[0:]); m != verifyMagic {
		return fail("bad magic 0x%08x, want 0x%08x (block never written, or overwritten)", m, verifyMagic)
	}
	if o := int64(le.Uint64(b[8:])); o != off {
		return fail("header is for offset %d: misplaced block", o)
	}
	if n := le.Uint32(b[16:]); n != uint32(len(b)) {
		return fail("header length %d, read %d", n, len(b))
	}
	want := le.Uint32(b[4:])
	if got := crc32.Checksum(b[8:], castagnoli); got != want {
		return fail("bad crc32c 0x%08x, want 0x%08x", got, want)
	}
	return nil
}
