package bench

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha3"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"slices"
	"strconv"
	"strings"
)

// Verify blocks are laid out as fio lays them (verify.c, verify.h), so
// that fio can check what the bench wrote and the other way round: every
// verify_interval bytes (the smallest write block size) a header,
// little-endian,
//
//	0      2      4      8          16         24      28      32     34      36      40
//	+------+------+------+----------+----------+-------+-------+------+-------+-------+-------- - -
//	|magic | type | len  | rand_seed| offset   | sec   | nsec  |thread|number | crc32c| checksum, data
//	+------+------+------+----------+----------+-------+-------+------+-------+-------+-------- - -
//
// magic 0xacca; type fio's VERIFY_* number; len the interval; offset the
// interval's offset in the file; crc32c over bytes 0..36. The checksum
// (its size by type) covers the data after it, to the interval's end;
// the data is pseudo-random from rand_seed, or verify_pattern. meta is
// the header alone; pattern (fio's VERIFY_PATTERN_NO_HDR) is
// verify_pattern alone, without a header.
const (
	verifyMagic     = 0xacca
	verifyHeaderLen = 40
)

// verifyKind is fio's verify type (enum in fio's verify.h).
type verifyKind uint16

const (
	verifyNone    verifyKind = 0
	verifyMeta    verifyKind = 1 // VERIFY_HDR_ONLY
	verifyMD5     verifyKind = 2
	verifyCRC64   verifyKind = 3
	verifyCRC32   verifyKind = 4
	verifyCRC32C  verifyKind = 5
	verifyCRC16   verifyKind = 7
	verifyCRC7    verifyKind = 8
	verifySHA256  verifyKind = 9
	verifySHA512  verifyKind = 10
	verifySHA3224 verifyKind = 11
	verifySHA3256 verifyKind = 12
	verifySHA3384 verifyKind = 13
	verifySHA3512 verifyKind = 14
	verifyXXHash  verifyKind = 15
	verifySHA1    verifyKind = 16
	verifyPattern verifyKind = 18 // VERIFY_PATTERN_NO_HDR
	verifyNull    verifyKind = 19
)

// verifyKinds maps verify= values to kinds and checksum sizes (fio's
// vhdr_* structures: sha256 and sha512 keep 64 and 128 bytes, and hold
// what fio's own implementations leave there: see fioSHA256, fioSHA512).
var verifyKinds = map[string]struct {
	kind verifyKind
	sum  int
}{
	"md5": {verifyMD5, 16}, "crc64": {verifyCRC64, 8}, "crc32": {verifyCRC32, 4},
	"crc32c": {verifyCRC32C, 4}, "crc32c-intel": {verifyCRC32C, 4},
	"crc16": {verifyCRC16, 2}, "crc7": {verifyCRC7, 1},
	"sha1": {verifySHA1, 20}, "sha256": {verifySHA256, 64}, "sha512": {verifySHA512, 128},
	"sha3-224": {verifySHA3224, 28}, "sha3-256": {verifySHA3256, 32}, "sha3-384": {verifySHA3384, 48}, "sha3-512": {verifySHA3512, 64},
	"xxhash": {verifyXXHash, 4}, "meta": {verifyMeta, 0}, "pattern": {verifyPattern, 0}, "null": {verifyNull, 0},
}

// VerifyTypes lists the verify= values the bench checks, as fio names
// them: all of fio 3.33's.
func VerifyTypes() []string {
	out := make([]string, 0, len(verifyKinds))
	for k := range verifyKinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	crc64Jones = crc64.MakeTable(0x95AC9329AC4BC9B5)
	// fio's crc16 (CRC-16/ARC from 0) and crc7 (the MMC CRC, x^7+x^3+1,
	// indexed by crc<<1 ^ byte as Linux's old crc7 table).
	crc16ARC = func() (t [256]uint16) {
		for i := range t {
			c := uint16(i)
			for range 8 {
				if c&1 != 0 {
					c = c>>1 ^ 0xA001
				} else {
					c >>= 1
				}
			}
			t[i] = c
		}
		return t
	}()
	crc7MMC = func() (t [256]uint8) {
		for i := range t {
			c := uint16(i) << 7
			for bit := 14; bit >= 7; bit-- {
				if c&(1<<bit) != 0 {
					c ^= 0x89 << (bit - 7)
				}
			}
			t[i] = uint8(c & 0x7f)
		}
		return t
	}()
	crc32POSIX = func() (t [256]uint32) {
		for i := range t {
			c := uint32(i) << 24
			for range 8 {
				if c&0x80000000 != 0 {
					c = c<<1 ^ 0x04C11DB7
				} else {
					c <<= 1
				}
			}
			t[i] = c
		}
		return t
	}()
)

// VerifyError is the first mismatch a verify pass found.
type VerifyError struct {
	Offset int64
	Len    int
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verify: block at offset %d (0x%x), length %d: %s", e.Offset, e.Offset, e.Len, e.Reason)
}

// fioCRC32C is fio's crc32c: Castagnoli from ~0, without the final
// inversion of the usual CRC-32C.
func fioCRC32C(b []byte) uint32 { return ^crc32.Checksum(b, castagnoli) }

// verifier writes and checks one job's verify blocks.
type verifier struct {
	kind     verifyKind
	sumLen   int
	interval int // bytes per header: the smallest write block size
	pat      *Pattern
	scratch  []byte // one period of pat
	thread   uint16
	// fatal is verify_fatal: stop at a block's first bad interval
	// (fio's default checks them all, then fails the job).
	fatal bool
}

func newVerifier(j *Job, thread int) (*verifier, error) {
	k, ok := verifyKinds[j.Verify]
	if !ok {
		return nil, fmt.Errorf("option verify: %q is not supported here (want one of %s)", j.Verify, strings.Join(VerifyTypes(), ", "))
	}
	v := &verifier{kind: k.kind, sumLen: k.sum, interval: j.BS[DirWrite], pat: j.VerifyPattern, thread: uint16(thread), fatal: j.VerifyFatal}
	if n := j.VerifyInterval; n > 0 {
		// verify_interval: a header every n bytes of each block.
		for _, w := range j.BSSplit[DirWrite] {
			if w.Size%n != 0 {
				return nil, fmt.Errorf("option verify_interval: %d does not divide the block size %d", n, w.Size)
			}
		}
		if j.BS[DirWrite]%n != 0 {
			return nil, fmt.Errorf("option verify_interval: %d does not divide the block size %d", n, j.BS[DirWrite])
		}
		v.interval = n
	}
	if v.kind == verifyPattern && v.pat == nil {
		return nil, errors.New("option verify: pattern needs verify_pattern")
	}
	if v.pat != nil {
		v.scratch = make([]byte, len(v.pat.Bytes))
	}
	if v.hasHeader() && v.interval <= verifyHeaderLen+v.sumLen {
		return nil, fmt.Errorf("option verify: a %d-byte block holds no %s header (%d bytes)", v.interval, j.Verify, verifyHeaderLen+v.sumLen)
	}
	return v, nil
}

func (v *verifier) hasHeader() bool { return v.kind != verifyPattern && v.kind != verifyNull }

// verifyStamp is what a write's headers carry besides the offset.
type verifyStamp struct {
	seed     uint64 // rand_seed: the data's generator
	unixNano int64  // sec, nsec: when the write was issued
	numberio uint16 // fio's count of writes issued before this one
}

// fill writes a block for offset off into b.
func (v *verifier) fill(b []byte, off int64, st verifyStamp) {
	if v.kind == verifyNull {
		return
	}
	if v.pat != nil {
		v.pat.fill(b, off, v.scratch)
	} else {
		fillRandom(b, st.seed)
	}
	if !v.hasHeader() {
		return
	}
	le := binary.LittleEndian
	for i := 0; i+v.interval <= len(b); i += v.interval {
		h := b[i : i+v.interval]
		le.PutUint16(h[0:], verifyMagic)
		le.PutUint16(h[2:], uint16(v.kind))
		le.PutUint32(h[4:], uint32(v.interval))
		le.PutUint64(h[8:], st.seed)
		le.PutUint64(h[16:], uint64(off)+uint64(i))
		le.PutUint32(h[24:], uint32(st.unixNano/1e9))
		le.PutUint32(h[28:], uint32(st.unixNano%1e9))
		le.PutUint16(h[32:], v.thread)
		le.PutUint16(h[34:], st.numberio)
		le.PutUint32(h[36:], fioCRC32C(h[:36]))
		v.sum(h[verifyHeaderLen:verifyHeaderLen+v.sumLen], h[verifyHeaderLen+v.sumLen:])
	}
}

// fillRandom fills b with xorshift bytes from seed (fio fills from its
// own generator; any data does, the checksum covers it).
func fillRandom(b []byte, seed uint64) {
	x := seed | 1
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	for ; i < len(b); i++ {
		b[i] = byte(x >> (8 * (i & 7)))
	}
}

// sum writes the checksum of data into dst, as fio stores it.
func (v *verifier) sum(dst, data []byte) {
	le := binary.LittleEndian
	switch v.kind {
	case verifyMD5:
		s := md5.Sum(data) // fio's uint32 words, little-endian: the digest's bytes
		copy(dst, s[:])
	case verifyCRC64:
		c := uint64(0)
		for _, x := range data {
			c = crc64Jones[byte(c)^x] ^ c>>8
		}
		le.PutUint64(dst, c)
	case verifyCRC32:
		c := uint32(0)
		for _, x := range data {
			c = c<<8 ^ crc32POSIX[byte(c>>24)^x]
		}
		le.PutUint32(dst, c)
	case verifyCRC32C:
		le.PutUint32(dst, fioCRC32C(data))
	case verifyCRC16:
		c := uint16(0)
		for _, x := range data {
			c = c>>8 ^ crc16ARC[byte(c)^x]
		}
		le.PutUint16(dst, c)
	case verifyCRC7:
		c := uint8(0)
		for _, x := range data {
			c = crc7MMC[c<<1^x]
		}
		dst[0] = c
	case verifySHA3224:
		s := sha3.Sum224(data)
		copy(dst, s[:])
	case verifySHA3256:
		s := sha3.Sum256(data)
		copy(dst, s[:])
	case verifySHA3384:
		s := sha3.Sum384(data)
		copy(dst, s[:])
	case verifySHA3512:
		s := sha3.Sum512(data)
		copy(dst, s[:])
	case verifySHA1:
		s := sha1.Sum(data) // fio keeps the five state words in host order
		for i := 0; i < 20; i += 4 {
			le.PutUint32(dst[i:], binary.BigEndian.Uint32(s[i:]))
		}
	case verifySHA256:
		fioSHA256((*[64]byte)(dst), data)
	case verifySHA512:
		fioSHA512((*[128]byte)(dst), data)
	case verifyXXHash:
		le.PutUint32(dst, xxh32(data, 1))
	}
}

// check checks a block read from off; nil if it is intact. numberio is
// the number of the write that put it there (-1: not known); sum holds a
// checksum (128 bytes). As fio, every interval of the block is checked
// unless verify_fatal stops at the first bad one; the first is
// returned, with how many others were bad.
func (v *verifier) check(b []byte, off int64, numberio int, sum []byte) *VerifyError {
	if v.kind == verifyNull {
		return nil
	}
	if !v.hasHeader() {
		return v.pat.check(b, off, v.scratch)
	}
	var first *VerifyError
	more := 0
	for i := 0; i+v.interval <= len(b); i += v.interval {
		e := v.checkInterval(b[i:i+v.interval], off, i, numberio, sum)
		switch {
		case e == nil:
		case first == nil:
			first = e
		default:
			more++
		}
		if first != nil && v.fatal {
			break
		}
	}
	if more > 0 {
		first.Reason += fmt.Sprintf(" (and %d more bad intervals of the %d-byte block)", more, len(b))
	}
	return first
}

// checkInterval checks one header's interval h, i bytes into the block
// read from off; numberio is the write's number the header must carry
// (-1: any).
func (v *verifier) checkInterval(h []byte, off int64, i int, numberio int, sum []byte) *VerifyError {
	at := off + int64(i)
	le := binary.LittleEndian
	fail := func(format string, args ...any) *VerifyError {
		return &VerifyError{Offset: at, Len: v.interval, Reason: fmt.Sprintf(format, args...)}
	}
	if m := le.Uint16(h[0:]); m != verifyMagic {
		return fail("bad magic header %x, wanted %x (block never written, or overwritten)", m, verifyMagic)
	}
	if n := le.Uint32(h[4:]); n != uint32(v.interval) {
		return fail("bad header length %d, wanted %d", n, v.interval)
	}
	if o := le.Uint64(h[16:]); o != uint64(at) {
		return fail("bad header offset %d, wanted %d: misplaced block", o, at)
	}
	if n := le.Uint16(h[34:]); numberio >= 0 && n != uint16(numberio) {
		return fail("bad header numberio %d, wanted %d: a stale block (a write lost)", n, numberio)
	}
	if c := fioCRC32C(h[:36]); c != le.Uint32(h[36:]) {
		return fail("bad header crc %x, calculated %x", le.Uint32(h[36:]), c)
	}
	if t := verifyKind(le.Uint16(h[2:])); t != v.kind {
		return fail("verify type mismatch (%d media, %d given)", t, v.kind)
	}
	got := h[verifyHeaderLen : verifyHeaderLen+v.sumLen]
	want := sum[:v.sumLen]
	v.sum(want, h[verifyHeaderLen+v.sumLen:])
	if n := len(h) - verifyHeaderLen - v.sumLen; v.kind == verifySHA512 && n < 128 {
		got, want = got[:n], want[:n] // fio's sha512 defines only that much
	}
	if !bytes.Equal(got, want) {
		return fail("bad %s checksum %x, calculated %x", v.name(), got, want)
	}
	if v.kind == verifyMeta && v.pat != nil {
		// meta with verify_pattern: the pattern after the header, as
		// fill laid it over the whole block (fio's verify_io_u_pattern:
		// %o is the I/O's offset, io_u->offset, not the interval's, and
		// the pattern goes on from the block's start: its phase at the
		// interval's data is (hdr_inc*hdr_num + header_size) %
		// pattern_size).
		return v.pat.checkFrom(h, verifyHeaderLen, off, i, v.scratch)
	}
	return nil
}

func (v *verifier) name() string {
	for n, k := range verifyKinds {
		if k.kind == v.kind && n != "crc32c-intel" {
			return n
		}
	}
	return "verify"
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
	return p.checkFrom(b, 0, off, 0, scratch)
}

// checkFrom compares b[from:] with the pattern that fill laid over the
// block at off, b being the part of that block from byte phase on (fio
// fills a block with the pattern, %o the block's offset, then writes a
// header over the start of each interval). A mismatch is reported at b's
// own offset, off+phase, with the byte's index in b.
func (p *Pattern) checkFrom(b []byte, from int, off int64, phase int, scratch []byte) *VerifyError {
	p.period(scratch, off)
	n := len(scratch)
	for i := from; i < len(b); {
		k := (phase + i) % n
		got := b[i:min(i+n-k, len(b))]
		if want := scratch[k : k+len(got)]; !bytes.Equal(got, want) {
			j := 0
			for got[j] == want[j] {
				j++
			}
			return &VerifyError{Offset: off + int64(phase), Len: len(b), Reason: fmt.Sprintf("byte %d is 0x%02x, the pattern says 0x%02x", i+j, got[j], want[j])}
		}
		i += len(got)
	}
	return nil
}
