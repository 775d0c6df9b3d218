package bench

import (
	"encoding/binary"
	"math/bits"
)

// fioSHA256 is what fio 3.x stores for verify=sha256 (crc/sha256.c as
// verify.c drives it), so that the tools check each other's blocks. It
// is not SHA-256: the message length is appended little-endian, and the
// 64 bytes kept are fio's scratch block after the last compression (the
// tail of the data, the padding and the length) with its first eight
// bytes replaced by the low byte of each state word.
func fioSHA256(dst *[64]byte, data []byte) {
	h := [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
	n := len(data)
	for len(data) >= 64 {
		sha256Block(&h, data[:64])
		data = data[64:]
	}
	// The tail, 0x80, zeros to 56 mod 64, the bit length little-endian.
	var tail [128]byte
	k := copy(tail[:], data)
	tail[k] = 0x80
	end := 64
	if k >= 56 {
		end = 128
	}
	binary.LittleEndian.PutUint64(tail[end-8:], uint64(n)<<3)
	sha256Block(&h, tail[:64])
	last := tail[:64]
	if end == 128 {
		sha256Block(&h, tail[64:128])
		last = tail[64:128]
	}
	copy(dst[:], last)
	for i, v := range h {
		dst[i] = byte(v)
	}
}

var sha256K = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// sha256Block is SHA-256's compression of one 64-byte block into h.
func sha256Block(h *[8]uint32, p []byte) {
	var w [64]uint32
	for i := range 16 {
		w[i] = binary.BigEndian.Uint32(p[4*i:])
	}
	for i := 16; i < 64; i++ {
		s0 := bits.RotateLeft32(w[i-15], -7) ^ bits.RotateLeft32(w[i-15], -18) ^ w[i-15]>>3
		s1 := bits.RotateLeft32(w[i-2], -17) ^ bits.RotateLeft32(w[i-2], -19) ^ w[i-2]>>10
		w[i] = w[i-16] + s0 + w[i-7] + s1
	}
	a, b, c, d, e, f, g, hh := h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
	for i := range 64 {
		t1 := hh + (bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)) + (e&f ^ ^e&g) + sha256K[i] + w[i]
		t2 := (bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)) + (a&b ^ a&c ^ b&c)
		hh, g, f, e, d, c, b, a = g, f, e, d+t1, c, b, a, t1+t2
	}
	h[0] += a
	h[1] += b
	h[2] += c
	h[3] += d
	h[4] += e
	h[5] += f
	h[6] += g
	h[7] += hh
}

// fioSHA512 is what fio 3.x stores for verify=sha512: its
// fio_sha512_update buffers into the stored field and verify.c never
// finalises, so the 128 bytes are data, not a digest: the data's last
// len%128 bytes, then the rest of its first 128. It catches what fio's
// catches (a change there, or in the header); the middle of the data is
// not covered, in fio or here.
func fioSHA512(dst *[128]byte, data []byte) {
	if len(data) < 128 {
		copy(dst[:], data) // fio leaves the rest as it was: not compared here
		return
	}
	copy(dst[:], data[:128])
	copy(dst[:], data[128+(len(data)-128)/128*128:])
}
