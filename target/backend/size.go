package backend

import (
	"strconv"

	"github.com/flashpath/flashpath/internal/units"
)

// ParseSize parses a byte count such as "4096", "512B", "64MiB", "1G" or
// "10GB" by the IEC rule (units.IEC): K/KiB, M/MiB, G/GiB, T/TiB and P/PiB
// are powers of 1024, KB, MB, GB, TB and PB powers of 1000, B bytes;
// case-insensitive, spaces allowed before the unit, whole numbers only
// ("1.5G" is rejected: write "1536M").
func ParseSize(s string) (int64, error) { return units.Parse(s, units.IEC) }

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	tib = 1 << 40
	pib = 1 << 50
)

// formatSize renders n with the largest binary unit that divides it exactly,
// for messages: 1073741824 → "1GiB".
func formatSize(n int64) string {
	binary := []struct {
		name string
		v    int64
	}{{"PiB", pib}, {"TiB", tib}, {"GiB", gib}, {"MiB", mib}, {"KiB", kib}}
	for _, u := range binary {
		if n != 0 && n%u.v == 0 {
			return strconv.FormatInt(n/u.v, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
