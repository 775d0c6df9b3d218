package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePattern(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []byte
		offs []int
	}{
		{`"abcd"`, []byte("abcd"), nil},
		{"-1024", []byte{0x00, 0xfc, 0xff, 0xff}, nil},
		{"66", []byte{0x42}, nil},
		{"0", []byte{0}, nil},
		{"0xFF0X1", []byte{0xff, 0x01}, nil},
		{"0xdeadbeef", []byte{0xde, 0xad, 0xbe, 0xef}, nil},
		{"%o", make([]byte, 8), []int{0}},
		{`"123"0xFFeeCC`, []byte{'1', '2', '3', 0xff, 0xee, 0xcc}, nil},
		{`-100xab"1"%o"2"`, append(append([]byte{0xf6, 0xff, 0xff, 0xff, 0xab, '1'}, make([]byte, 8)...), '2'), []int{6}},
		{"%o0xdeadbeef%o", append(append(make([]byte, 8), 0xde, 0xad, 0xbe, 0xef), make([]byte, 8)...), []int{0, 12}},
	} {
		p, err := ParsePattern(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !bytes.Equal(p.Bytes, tc.want) || len(p.Offsets) != len(tc.offs) || (len(tc.offs) > 0 && p.Offsets[len(p.Offsets)-1] != tc.offs[len(tc.offs)-1]) {
			t.Errorf("%s: % x %v, want % x %v", tc.in, p.Bytes, p.Offsets, tc.want, tc.offs)
		}
	}
	for _, bad := range []string{"", `"abc`, `""`, "zz", "99999999999", "0x", "%d"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestVerifyPattern: verify_pattern with %o writes the pattern with each
// block's offset and checks it back; a read-only job with another pattern
// fails naming the first differing byte; buffer_pattern fills writes.
func TestVerifyPattern(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	common := []Option{{"ioengine", "psync"}, {"filename", name}, {"bs", "4k"}, {"size", "64k"}}
	if _, err := runJobs(t, append(common, Option{"rw", "randwrite"}, Option{"verify_pattern", "0xdeadbeef%o"})...); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	blk := b[8192 : 8192+4096]
	for i := 0; i+12 <= len(blk); i += 12 {
		if !bytes.Equal(blk[i:i+4], []byte{0xde, 0xad, 0xbe, 0xef}) || binary.LittleEndian.Uint64(blk[i+4:]) != 8192 {
			t.Fatalf("block at 8192, byte %d: % x", i, blk[i:i+12])
		}
	}
	// Read back with the same pattern: fine; with another: the first byte named.
	if _, err := runJobs(t, append(common, Option{"rw", "read"}, Option{"verify_pattern", "0xdeadbeef%o"})...); err != nil {
		t.Fatalf("read-only verify of the same pattern: %v", err)
	}
	_, err = runJobs(t, append(common, Option{"rw", "read"}, Option{"verify_pattern", "0xdeadbeee%o"})...)
	var verr *VerifyError
	if !errors.As(err, &verr) || verr.Offset != 0 || !strings.Contains(verr.Reason, "byte 3 is 0xef, the pattern says 0xee") {
		t.Fatalf("verify with another pattern: %v", err)
	}

	// crc32c with a pattern after the header.
	if _, err := runJobs(t, append(common, Option{"rw", "write"}, Option{"verify", "crc32c"}, Option{"verify_pattern", "0x55"})...); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(name)
	if hl := verifyHeaderLen + 4; !bytes.Equal(b[4096+hl:8192], bytes.Repeat([]byte{0x55}, 4096-hl)) {
		t.Fatal("verify=crc32c with verify_pattern: the data after the header is not the pattern")
	}

	if _, err := runJobs(t, append(common, Option{"rw", "write"}, Option{"buffer_pattern", `"ab"`})...); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(name)
	if !bytes.Equal(b[:64<<10], bytes.Repeat([]byte("ab"), 32<<10)) {
		t.Fatal("buffer_pattern: the file is not the pattern")
	}
	if _, err := BuildJobs(nil, []Section{{Name: "x", Options: []Option{{"buffer_pattern", "%o"}}}}, nil); err == nil {
		t.Fatal("buffer_pattern with an offset format accepted")
	}
}

// FuzzParsePattern: any text gives a pattern or an error, never a panic;
// a pattern fills and checks a block consistently.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{`"abcd"`, "-1024", "0xFF0X1", `-100xab"1"%o"2"`, "%o0xdeadbeef%o", "0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			return
		}
		b := make([]byte, 4096+7)
		scratch := make([]byte, len(p.Bytes))
		p.fill(b, 12345, scratch)
		if verr := p.check(b, 12345, scratch); verr != nil {
			t.Fatalf("%q: a block filled with the pattern fails its check: %v", s, verr)
		}
	})
}

// TestVerifyMetaPatternInterval: verify=meta with a verify_pattern that
// holds %o and verify_interval below bs. As fio (verify.c), the pattern
// is laid over the whole block with the block's offset at each %o (the
// I/O's offset, io_u->offset), then a header goes at the start of every
// interval; the check compares each interval's data after its header with
// the pattern at the same place in the block. An intact file verifies; a
// flipped byte in the second interval's pattern is found there.
func TestVerifyMetaPatternInterval(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	job := func(rw string) []*Job {
		t.Helper()
		secs, err := ParseJobFile(strings.NewReader(`[meta-pattern]
ioengine=psync
filename=`+name+`
size=64k
bs=8k
rw=`+rw+`
verify=meta
verify_interval=4096
verify_pattern=0xdeadbeef%o
`), "meta-pattern.fio")
		if err != nil {
			t.Fatal(err)
		}
		jobs, err := BuildJobs(nil, secs, nil)
		if err != nil {
			t.Fatal(err)
		}
		return jobs
	}
	if _, err := Run(context.Background(), Config{Jobs: job("write")}); err != nil {
		t.Fatalf("write with do_verify: %v", err)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	// Block 8192, second interval (12288): the header, then the pattern
	// continuing from the block's start, %o the block's offset.
	const blk, iv = 8192, 8192 + 4096
	if o := binary.LittleEndian.Uint64(b[iv+16:]); o != iv {
		t.Fatalf("second interval's header names offset %d, want %d", o, iv)
	}
	want := make([]byte, 8192+12)
	for i := 0; i+12 <= len(want); i += 12 {
		copy(want[i:], []byte{0xde, 0xad, 0xbe, 0xef})
		binary.LittleEndian.PutUint64(want[i+4:], blk)
	}
	if got := b[iv+verifyHeaderLen : blk+8192]; !bytes.Equal(got, want[4096+verifyHeaderLen:8192]) {
		t.Fatalf("second interval's data is not the block's pattern: % x", got[:24])
	}
	if _, err := Run(context.Background(), Config{Jobs: job("read")}); err != nil {
		t.Fatalf("read-only verify of an intact file: %v", err)
	}
	// 4096+41 into the block: byte 9 of a period, %o's byte 5 (0x00).
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x77}, iv+41); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Run(context.Background(), Config{Jobs: job("read")})
	var verr *VerifyError
	if !errors.As(err, &verr) || verr.Offset != iv || !strings.Contains(verr.Reason, "byte 41 is 0x77, the pattern says 0x00") {
		t.Fatalf("a flipped pattern byte in the second interval: %v", err)
	}
}
