package dhchap

import (
	"bytes"
	"testing"
)

// FuzzParseSecret: ParseSecret returns an error or a secret the kernel
// would accept, never panics, and what it accepts survives String and a
// second parse unchanged. Seeds are in testdata/fuzz/FuzzParseSecret.
func FuzzParseSecret(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSecret(in)
		if err != nil {
			if s.Hash != 0 || s.Key != nil {
				t.Fatalf("ParseSecret(%q) failed but returned a non-zero Secret", in)
			}
			return
		}
		if s.Hash > SHA512 {
			t.Fatalf("ParseSecret(%q): hash %d", in, s.Hash)
		}
		if n := len(s.Key); n != 32 && n != 48 && n != 64 {
			t.Fatalf("ParseSecret(%q): %d-byte key", in, n)
		}
		text := s.String()
		again, err := ParseSecret(text)
		if err != nil {
			t.Fatalf("ParseSecret(%q) = %v, but ParseSecret of its String %q: %v", in, s.Hash, text, err)
		}
		if again.Hash != s.Hash || !bytes.Equal(again.Key, s.Key) || again.String() != text {
			t.Fatalf("ParseSecret(%q) does not round-trip through String %q", in, text)
		}
	})
}
