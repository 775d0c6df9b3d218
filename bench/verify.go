package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
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

// fillVerify writes a checksummed block for offset into b: after the
// header, pat (verify_pattern, with scratch for one period) or
// pseudo-random bytes.
func fillVerify(b []byte, off int64, seed, seq uint64, pat *Pattern, scratch []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], verifyMagic)
	le.PutUint64(b[8:], uint64(off))
	le.PutUint32(b[16:], uint32(len(b)))
	le.PutUint32(b[20:], uint32(seed))
	le.PutUint64(b[24:], seq)
	if pat != nil {
		pat.fill(b[verifyHeaderLen:], off, scratch)
	} else {
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

// Pattern is fio's verify_pattern / buffer_pattern: bytes repeated over
// the block, with the block's offset (8 bytes, little-endian) pasted at
// each %o.
type Pattern struct {
	Bytes   []byte
	Offsets []int // where in Bytes a %o slot starts
}

// ParsePattern reads fio's pattern syntax: a concatenation of hex numbers
// (0xdeadbeef: those bytes in that order), decimal numbers in the int32
// range (little-endian, as few bytes as hold them: 66 is one byte, -1024
// four), strings in double quotes, and %o (the block offset).
func ParsePattern(s string) (*Pattern, error) {
	p := &Pattern{}
	in := s
	for len(in) > 0 {
		switch {
		case in[0] == '"':
			end := strings.IndexByte(in[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("pattern %q: unterminated string", s)
			}
			if end == 0 {
				return nil, fmt.Errorf("pattern %q: empty string", s)
			}
			p.Bytes = append(p.Bytes, in[1:1+end]...)
			in = in[2+end:]
		case strings.HasPrefix(in, "%o"):
			p.Offsets = append(p.Offsets, len(p.Bytes))
			p.Bytes = append(p.Bytes, make([]byte, 8)...)
			in = in[2:]
		case len(in) > 2 && in[0] == '0' && (in[1] == 'x' || in[1] == 'X') && isHex(in[2]):
			n := 2
			for n < len(in) && isHex(in[n]) && !(in[n] == '0' && n+1 < len(in) && (in[n+1] == 'x' || in[n+1] == 'X')) {
				n++
			}
			digits := in[2:n]
			if len(digits)%2 == 1 {
				digits = "0" + digits
			}
			for i := 0; i < len(digits); i += 2 {
				v, _ := strconv.ParseUint(digits[i:i+2], 16, 8)
				p.Bytes = append(p.Bytes, byte(v))
			}
			in = in[n:]
		case in[0] == '-' || (in[0] >= '0' && in[0] <= '9'):
			n := 1
			for n < len(in) && in[n] >= '0' && in[n] <= '9' && !(in[n] == '0' && n+1 < len(in) && (in[n+1] == 'x' || in[n+1] == 'X')) {
				n++
			}
			v, err := strconv.ParseInt(in[:n], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %q is not a number in the int32 range", s, in[:n])
			}
			u := uint32(v)
			if u == 0 {
				p.Bytes = append(p.Bytes, 0)
			}
			for ; u != 0; u >>= 8 {
				p.Bytes = append(p.Bytes, byte(u))
			}
			in = in[n:]
		case in[0] == '\'':
			return nil, fmt.Errorf("pattern %q: patterns from files ('name') are not supported: write the bytes", s)
		default:
			return nil, fmt.Errorf("pattern %q: unexpected %q (want 0x hex, decimal, \"string\" or %%o)", s, in[:1])
		}
	}
	if len(p.Bytes) == 0 {
		return nil, fmt.Errorf("pattern %q is empty", s)
	}
	if len(p.Bytes) > 1<<20 {
		return nil, fmt.Errorf("pattern %q: %d bytes, more than 1 MiB", s, len(p.Bytes))
	}
	return p, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// period writes one repetition of the pattern for a block at off into dst
// (len(p.Bytes) bytes).
func (p *Pattern) period(dst []byte, off int64) {
	copy(dst, p.Bytes)
	for _, o := range p.Offsets {
		binary.LittleEndian.PutUint64(dst[o:], uint64(off))
	}
}

// fill writes the pattern for a block at off over b; scratch holds one
// period.
func (p *Pattern) fill(b []byte, off int64, scratch []byte) {
	p.period(scratch, off)
	for i := 0; i < len(b); i += len(scratch) {
		copy(b[i:], scratch)
	}
}

// check compares b, read from off, with the pattern; scratch holds one
// period.
func (p *Pattern) check(b []byte, off int64, scratch []byte) *VerifyError {
	p.period(scratch, off)
	for i := 0; i < len(b); i += len(scratch) {
		got := b[i:min(i+len(scratch), len(b))]
		if want := scratch[:len(got)]; !bytes.Equal(got, want) {
			k := 0
			for got[k] == want[k] {
				k++
			}
			return &VerifyError{Offset: off, Len: len(b), Reason: fmt.Sprintf("byte %d is 0x%02x, the pattern says 0x%02x", i+k, got[k], want[k])}
		}
	}
	return nil
}
