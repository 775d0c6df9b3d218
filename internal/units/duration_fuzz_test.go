package units

import "testing"

// FuzzParseDuration: any text (config files' durations, as a string or a
// JSON value) gives a non-negative duration, Forever, or an error; never a
// panic.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"600", "0.5", "10m", "1h30m", "-1", "-2s", "1e3", ".", `"5s"`, "null", "9223372036854775807", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseDuration(s); err == nil && d < 0 && d != Forever {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
		var d Duration
		if err := d.UnmarshalJSON([]byte(s)); err == nil && d < 0 && d != Forever {
			t.Fatalf("UnmarshalJSON(%q) = %v", s, d)
		}
	})
}
