package bench

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseSize parses a fio integer with size suffix. As in fio (kb_base=1024,
// the default), k/m/g/t/p and kb/mb/... are powers of 1024, while the
// explicit IEC spellings kib/mib/... are powers of 1000; a 0x prefix is hex.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, errors.New("empty size")
	}
	if strings.HasPrefix(t, "0x") {
		n, err := strconv.ParseInt(t[2:], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("bad hex number %q", s)
		}
		return n, nil
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, suf := t[:i], t[i:]
	if num == "" {
		return 0, fmt.Errorf("bad size %q", s)
	}
	var base, mult float64 = 1024, 1
	switch {
	case strings.HasSuffix(suf, "ib"):
		base = 1000
		suf = strings.TrimSuffix(suf, "ib")
	case strings.HasSuffix(suf, "b") && len(suf) > 1:
		suf = strings.TrimSuffix(suf, "b")
	}
	switch suf {
	case "", "b":
	case "k":
		mult = base
	case "m":
		mult = base * base
	case "g":
		mult = math.Pow(base, 3)
	case "t":
		mult = math.Pow(base, 4)
	case "p":
		mult = math.Pow(base, 5)
	case "%":
		return 0, fmt.Errorf("percentage sizes are not supported: %q", s)
	default:
		return 0, fmt.Errorf("bad size suffix in %q", s)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad size %q", s)
		}
		if mult > 1 && float64(n)*mult > math.MaxInt64 {
			return 0, fmt.Errorf("size %q overflows", s)
		}
		return n * int64(mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * mult), nil
}

// ParseTime parses a fio time value: seconds unless suffixed with
// us/usec, ms/msec, s/sec, m/min, h/hour or d/day.
func ParseTime(s string) (time.Duration, error) { return parseTimeUnit(s, time.Second) }

// parseTimeUnit is ParseTime with def the unit of a bare number (fio's
// thinktime counts microseconds).
func parseTimeUnit(s string, def time.Duration) (time.Duration, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad time %q", s)
	}
	var unit time.Duration
	switch t[i:] {
	case "":
		unit = def
	case "s", "sec":
		unit = time.Second
	case "us", "usec":
		unit = time.Microsecond
	case "ms", "msec":
		unit = time.Millisecond
	case "m", "min":
		unit = time.Minute
	case "h", "hour":
		unit = time.Hour
	case "d", "day":
		unit = 24 * time.Hour
	default:
		return 0, fmt.Errorf("bad time suffix in %q", s)
	}
	return time.Duration(n) * unit, nil
}
