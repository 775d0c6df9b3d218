package units

import (
	"strconv"
	"strings"
	"testing"
)

// TestParseIEC: flashpath's own sizes (backend specs, the CLI): K and KiB
// are 1024, KB is 1000.
func TestParseIEC(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"4096", 4096, ""},
		{"512B", 512, ""},
		{"1K", 1024, ""},
		{"1k", 1024, ""},
		{"4KiB", 4096, ""},
		{"1KB", 1000, ""},
		{"64MiB", 64 << 20, ""},
		{"64M", 64 << 20, ""},
		{"64mb", 64e6, ""},
		{"1GiB", 1 << 30, ""},
		{"1G", 1 << 30, ""},
		{"10GB", 10e9, ""},
		{"1TiB", 1 << 40, ""},
		{"2T", 2 << 40, ""},
		{"1TB", 1e12, ""},
		{"1PiB", 1 << 50, ""},
		{" 8 GiB ", 8 << 30, ""},
		{"", 0, "want a whole number"},
		{"GiB", 0, "want a whole number"},
		{"-1G", 0, "want a whole number"},
		{"1.5G", 0, "fractions are not supported"},
		{"1X", 0, "unknown unit"},
		{"1GiBs", 0, "unknown unit"},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"9223372036854775808", 0, "too large"},
		{"8388608TiB", 0, "too large"},
		{"0x1000", 0, "unknown unit"}, // no hex
		{"10%", 0, "unknown unit"},
	} {
		got, err := Parse(c.in, IEC)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q, IEC) = %d, %v; want an error containing %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Parse(%q, IEC) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

// TestParseFio: fio's rule under its default kb_base=1024, and under
// kb_base=1000, where the spellings swap.
func TestParseFio(t *testing.T) {
	tests := []struct {
		in        string
		want      int64 // Fio
		want1000  int64 // Fio1000
		errSubstr string
	}{
		{"4096", 4096, 4096, ""},
		{"4k", 4096, 4000, ""},
		{"4K", 4096, 4000, ""},
		{"4kb", 4096, 4000, ""},  // fio: a trailing b changes nothing
		{"4KiB", 4000, 4096, ""}, // fio (kb_base=1024): the IEC spelling means base 10
		{"128k", 128 << 10, 128e3, ""},
		{"1m", 1 << 20, 1e6, ""},
		{"1g", 1 << 30, 1e9, ""},
		{"2t", 2 << 40, 2e12, ""},
		{"1p", 1 << 50, 1e15, ""},
		{"1.5m", 3 << 19, 1.5e6, ""},
		{"0.5k", 512, 500, ""},
		{"0x1000", 4096, 4096, ""},
		{"0X1F", 31, 31, ""},
		{"512b", 512, 512, ""},
		{" 4k ", 4096, 4000, ""},
		{"8388607t", 8388607 << 40, 8388607e12, ""},
		{"", 0, 0, "want a number"},
		{"k", 0, 0, "want a number"},
		{"4x", 0, 0, "unknown unit"},
		{"4 k", 0, 0, "unknown unit"},
		{"10%", 0, 0, "percentages are not supported"},
		{"-1", 0, 0, "want a number"},
		{"0x-1", 0, 0, "hexadecimal"},
		{"1.2.3", 0, 0, "want a number"},
		{"9223373t", 0, 0, "too large"},
		{"9999999999p", 0, 0, "too large"},
		{"9999999999.5p", 0, 0, "too large"},
	}
	for _, tc := range tests {
		for _, r := range []struct {
			rule Rule
			name string
			want int64
		}{{Fio, "Fio", tc.want}, {Fio1000, "Fio1000", tc.want1000}} {
			got, err := Parse(tc.in, r.rule)
			if tc.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Errorf("Parse(%q, %s) = %d, %v; want an error containing %q", tc.in, r.name, got, err, tc.errSubstr)
				}
				continue
			}
			if err != nil || got != r.want {
				t.Errorf("Parse(%q, %s) = %d, %v; want %d", tc.in, r.name, got, err, r.want)
			}
		}
	}
	if n, err := Parse("8388608t", Fio); err == nil { // 2^63
		t.Errorf("Parse(8388608t, Fio) = %d, want too large", n)
	}
}

// FuzzParse: under every rule any text gives a non-negative size or an
// error, never a panic, and a size written as a plain number reads back
// the same under every rule.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"4096", "4k", "4KiB", "1.5m", "0x1000", " 8 GiB ", "10%", "8388608t", "9999999999.5p", "1e3", "0x", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range []Rule{IEC, Fio, Fio1000} {
			n, err := Parse(s, r)
			if err != nil {
				continue
			}
			if n < 0 {
				t.Fatalf("Parse(%q, %d) = %d", s, r, n)
			}
			for _, r2 := range []Rule{IEC, Fio, Fio1000} {
				if m, err := Parse(strconv.FormatInt(n, 10), r2); err != nil || m != n {
					t.Fatalf("Parse(%q, %d) = %d, but Parse(%d, %d) = %d, %v", s, r, n, n, r2, m, err)
				}
			}
		}
	})
}
