// Package units parses byte counts with unit suffixes by one of two rules,
// which every caller names: IEC for flashpath's own sizes (backend specs,
// the CLI's offsets and lengths), where KB is 1000 and KiB 1024 as the
// standards have it, and fio's for fio job options, where k and kb are
// 1024 and the IEC spellings 1000 unless kb_base says otherwise. It also
// parses durations in flashpath's one syntax (ParseDuration: seconds, a
// number and a unit, or -1 for forever), for every flag, configuration
// field and engine option that takes one.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Rule is how Parse reads a size: what its units mean and what forms its
// number may take. Units are case-insensitive under every rule.
type Rule uint8

const (
	// IEC is the rule of flashpath's own sizes:
	//
	//	B or none              bytes
	//	K KiB, M MiB, G GiB,   powers of 1024 (Ki, Mi, ... too)
	//	T TiB, P PiB
	//	KB MB GB TB PB         powers of 1000 (as disk vendors count)
	//
	// Spaces between the number and the unit are allowed. Only whole
	// decimal numbers are accepted; "1.5G" is rejected (write "1536M").
	IEC Rule = iota

	// Fio is fio's rule under its default kb_base=1024 (fio's
	// compatibility mode): k, m, g, t, p and kb, mb, ... are powers of
	// 1024, while the IEC spellings kib, mib, ... are powers of 1000. A
	// trailing b changes nothing ("4kb" is "4k"). The number may have a
	// fraction ("1.5m", rounded down to a byte) or be hexadecimal with a
	// 0x prefix and no unit. No space may come before the unit, and
	// percentages ("10%") are rejected.
	Fio

	// Fio1000 is fio's rule under kb_base=1000: k, kb, ... are powers of
	// 1000 and kib, mib, ... powers of 1024; otherwise as Fio.
	Fio1000
)

// rule is what a Rule allows, for Parse.
type rule struct {
	units     map[string]int64 // lower-case unit → multiplier
	fractions bool             // 1.5m
	hex       bool             // 0x1000
	spaces    bool             // 4 KiB
	percent   bool             // fio's size=10%: say that it is not supported
	number    string           // what the number must be, for errors
	unitHelp  string           // the units, for errors
}

var rules = [...]rule{
	IEC: {
		units:    iecUnits(),
		spaces:   true,
		number:   "a whole number of bytes with an optional unit, e.g. 4096, 64MiB, 1GiB",
		unitHelp: "use B, KiB, MiB, GiB, TiB, PiB (or K, M, G, T, P; powers of 1024) or KB, MB, GB, TB, PB (powers of 1000)",
	},
	Fio:     fioRule(1024, 1000, "use k, m, g, t, p (powers of 1024; fio reads kib, mib, ... as powers of 1000)"),
	Fio1000: fioRule(1000, 1024, "use k, m, g, t, p (kb_base=1000: powers of 1000; kib, mib, ...: powers of 1024)"),
}

// prefixes are the unit prefixes, each a power of the base above the one
// before.
const prefixes = "kmgtp"

func iecUnits() map[string]int64 {
	u := map[string]int64{"": 1, "b": 1}
	bin, dec := int64(1), int64(1)
	for _, p := range prefixes {
		bin, dec = bin*1024, dec*1000
		for _, s := range []string{"", "i", "ib"} {
			u[string(p)+s] = bin
		}
		u[string(p)+"b"] = dec
	}
	return u
}

// fioRule is fio's rule with kb_base=base: a prefix alone or with b is a
// power of base, with ib a power of ibBase; b, bb, ib and bib are bytes.
func fioRule(base, ibBase int64, unitHelp string) rule {
	u := map[string]int64{}
	for _, p := range []string{"", "b"} {
		u[p], u[p+"b"], u[p+"ib"] = 1, 1, 1
	}
	m, ib := int64(1), int64(1)
	for _, p := range prefixes {
		m, ib = m*base, ib*ibBase
		u[string(p)], u[string(p)+"b"], u[string(p)+"ib"] = m, m, ib
	}
	return rule{
		units:     u,
		fractions: true,
		hex:       true,
		percent:   true,
		number:    "a number of bytes with an optional unit, e.g. 4096, 4k, 1.5m, 0x1000",
		unitHelp:  unitHelp,
	}
}

// Parse parses s, a non-negative byte count with an optional unit, by
// rule r.
func Parse(s string, r Rule) (int64, error) {
	ru := &rules[r]
	t := strings.TrimSpace(s)
	if ru.hex && len(t) > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') {
		n, err := strconv.ParseUint(t[2:], 16, 63)
		if err != nil {
			return 0, fmt.Errorf("size %q: not a hexadecimal number below 2^63", s)
		}
		return int64(n), nil
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.' && ru.fractions) {
		i++
	}
	num, unit := t[:i], t[i:]
	if ru.spaces {
		unit = strings.TrimSpace(unit)
	}
	if num == "" {
		return 0, fmt.Errorf("size %q: want %s", s, ru.number)
	}
	mult, ok := ru.units[strings.ToLower(unit)]
	switch {
	case ok:
	case !ru.fractions && strings.HasPrefix(unit, "."):
		return 0, fmt.Errorf("size %q: fractions are not supported: use a smaller unit, e.g. 1536MiB for 1.5GiB", s)
	case ru.percent && strings.Contains(unit, "%"):
		return 0, fmt.Errorf("size %q: percentages are not supported", s)
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q: %s", s, unit, ru.unitHelp)
	}
	if strings.Contains(num, ".") {
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("size %q: want %s", s, ru.number)
		}
		if f *= float64(mult); f >= 1<<63 {
			return 0, tooLarge(s)
		}
		return int64(f), nil
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, tooLarge(s)
	}
	return n * mult, nil
}

func tooLarge(s string) error {
	return fmt.Errorf("size %q: too large: at most %d bytes", s, int64(math.MaxInt64))
}
