package backend

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSize parses a byte count such as "4096", "512B", "64MiB", "1G" or
// "10GB". Units are case-insensitive:
//
//	B                      bytes
//	K KiB, M MiB, G GiB,   powers of 1024
//	T TiB, P PiB
//	KB MB GB TB PB         powers of 1000 (as disk vendors count)
//
// Spaces between the number and the unit are allowed. Only whole,
// non-negative numbers are accepted; "1.5G" is rejected (write "1536M").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: want a whole number of bytes with an optional unit, e.g. 4096, 64MiB, 1GiB", s)
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		if strings.HasPrefix(unit, ".") {
			return 0, fmt.Errorf("size %q: fractions are not supported: use a smaller unit, e.g. 1536MiB for 1.5GiB", s)
		}
		return 0, fmt.Errorf("size %q: unknown unit %q: use B, KiB, MiB, GiB, TiB, PiB (or K, M, G, T, P; powers of 1024) or KB, MB, GB, TB, PB (powers of 1000)", s, unit)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large: at most %d bytes", s, int64(math.MaxInt64))
	}
	return v * mult, nil
}

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	tib = 1 << 40
	pib = 1 << 50
)

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": kib, "ki": kib, "kib": kib, "kb": 1e3,
	"m": mib, "mi": mib, "mib": mib, "mb": 1e6,
	"g": gib, "gi": gib, "gib": gib, "gb": 1e9,
	"t": tib, "ti": tib, "tib": tib, "tb": 1e12,
	"p": pib, "pi": pib, "pib": pib, "pb": 1e15,
}

// formatSize renders n with the largest binary unit that divides it exactly,
// for messages: 1073741824 → "1GiB".
func formatSize(n int64) string {
	units := []struct {
		name string
		v    int64
	}{{"PiB", pib}, {"TiB", tib}, {"GiB", gib}, {"MiB", mib}, {"KiB", kib}}
	for _, u := range units {
		if n != 0 && n%u.v == 0 {
			return strconv.FormatInt(n/u.v, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
