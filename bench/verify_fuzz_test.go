package bench

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzVerifyCheck feeds the verify checker (fio's verify headers,
// checksums and verify_pattern, read back from the device under test)
// blocks written by fill and arbitrary ones: a *VerifyError or nil, never
// a panic. data: [kind, interval lo, interval hi, mode, rest...]. mode
// bit 0: fill a block; bit 1: verify_fatal; bit 2: meta with
// verify_pattern 0xdeadbeef%o (pattern always has it); bit 3: the
// expected numberio is known; bits 4-5: intervals per block less one; the
// block's offset is mode*4096. With bit 0 set, the block as fill wrote it
// must verify; the same block with one byte flipped (at rest[0:2] modulo
// the block, by rest[2], 0xff if absent or zero) must fail, at the
// flipped byte's interval, where that byte is checked (see
// verifyCovers); and the block XORed with rest is checked for panics
// alone. With bit 0 clear, rest is the block.
func FuzzVerifyCheck(f *testing.F) {
	kinds := VerifyTypes()
	for i := range kinds {
		f.Add([]byte{byte(i), 0, 2, 1})
		f.Add([]byte{byte(i), 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
		f.Add([]byte{byte(i), 200, 0, 0, 0xca, 0xac})
		f.Add([]byte{byte(i), 0, 0x10, 0x3d, 0x29, 0x10, 0x77}) // 4 4k intervals, a flip in the second's data
	}
	pat, err := ParsePattern("0xdeadbeef%o")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		k := verifyKinds[kinds[int(data[0])%len(kinds)]]
		interval := int(binary.LittleEndian.Uint16(data[1:])) % 8192
		mode, rest := data[3], data[4:]
		v := &verifier{kind: k.kind, sumLen: k.sum, interval: interval, thread: 3, fatal: mode&2 != 0}
		if k.kind == verifyPattern || (k.kind == verifyMeta && mode&4 != 0) {
			v.pat = pat
			v.scratch = make([]byte, len(pat.Bytes))
		}
		if v.hasHeader() && v.interval <= verifyHeaderLen+v.sumLen {
			return // newVerifier refuses it
		}
		if v.interval <= 0 {
			v.interval = 512
		}
		n := v.interval * (1 + int(mode>>4)%4)
		off := int64(mode) * 4096
		numberio := -1
		if mode&8 != 0 {
			numberio = 7
		}
		var sum [128]byte
		check := func(b []byte) *VerifyError {
			e := v.check(b, off, numberio, sum[:])
			if e != nil {
				if e.Offset < off || e.Offset >= off+int64(n) || e.Len <= 0 || e.Error() == "" {
					t.Fatalf("%s: an error outside the block at %d (%d bytes): %v", v.name(), off, n, e)
				}
			}
			return e
		}
		b := make([]byte, n)
		if mode&1 == 0 {
			copy(b, rest)
			check(b)
			return
		}
		v.fill(b, off, verifyStamp{seed: 42, unixNano: 1e9 + 5, numberio: 7})
		if e := check(b); e != nil {
			t.Fatalf("%s (interval %d, block %d, pattern %v): a block as fill wrote it fails: %v", v.name(), v.interval, n, v.pat != nil, e)
		}
		good := bytes.Clone(b)
		if len(rest) >= 2 {
			p := int(binary.LittleEndian.Uint16(rest)) % n
			x := byte(0xff)
			if len(rest) >= 3 && rest[2] != 0 {
				x = rest[2]
			}
			b[p] ^= x
			e := check(b)
			if verifyCovers(v, p) {
				want := off
				if v.hasHeader() {
					want += int64(p / v.interval * v.interval)
				}
				if e == nil || e.Offset != want {
					t.Fatalf("%s (interval %d, block %d, pattern %v): byte %d ^ 0x%02x: %v, want an error at %d", v.name(), v.interval, n, v.pat != nil, p, x, e, want)
				}
			}
			copy(b, good)
		}
		for i, x := range rest {
			b[i%n] ^= x
		}
		check(b)
	})
}

// verifyCovers says whether v's check catches any change of byte p of a
// block (what fio's verify catches). null checks nothing; pattern every
// byte; the others each interval's header (magic, length, offset,
// numberio, and the rest under the header's crc32c), and meta the data
// after it only with verify_pattern. A checksum kind covers its stored
// checksum (fio's sha512 only as far as the data goes) and the data,
// but for crc7 (a byte's change can be a multiple of its 7-bit
// polynomial) and sha512 (fio's keeps data bytes, not a digest).
func verifyCovers(v *verifier, p int) bool {
	switch {
	case v.kind == verifyNull:
		return false
	case !v.hasHeader():
		return true
	}
	q := p % v.interval
	switch {
	case q < verifyHeaderLen:
		return true
	case v.kind == verifyMeta:
		return v.pat != nil
	case q < verifyHeaderLen+v.sumLen:
		return v.kind != verifySHA512 || q-verifyHeaderLen < v.interval-verifyHeaderLen-v.sumLen
	}
	return v.kind != verifyCRC7 && v.kind != verifySHA512
}
