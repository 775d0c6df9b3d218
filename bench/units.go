package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flashpath/flashpath/internal/units"
)

// ParseSize parses a fio integer with size suffix by fio's rule under its
// default kb_base=1024 (units.Fio): k/m/g/t/p and kb/mb/... are powers of
// 1024, while the explicit IEC spellings kib/mib/... are powers of 1000; a
// 0x prefix is hex, and fractions (1.5m) are allowed.
func ParseSize(s string) (int64, error) { return units.Parse(s, units.Fio) }

// parseSize parses a size by the job's kb_base.
func (j *Job) parseSize(s string) (int64, error) {
	if j.KBBase == 1000 {
		return units.Parse(s, units.Fio1000)
	}
	return units.Parse(s, units.Fio)
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
	if i < len(t) && t[i] == '.' {
		// fio 3.33 reads runtime=1.5s as 1s: refuse rather than differ.
		return 0, fmt.Errorf("time %q: fractions are not supported (fio drops them); use a smaller unit, e.g. 1500ms", s)
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
