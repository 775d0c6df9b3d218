package units

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Duration is a pflag.Value.
var _ interface {
	Set(string) error
	String() string
	Type() string
} = (*Duration)(nil)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Duration
	}{
		{"600", Duration(10 * time.Minute)},
		{"600s", Duration(10 * time.Minute)},
		{"10m", Duration(10 * time.Minute)},
		{"1h30m", Duration(90 * time.Minute)},
		{"50us", Duration(50 * time.Microsecond)},
		{"0.5", Duration(500 * time.Millisecond)},
		{"0", 0},
		{"0s", 0},
		{" 30 ", Duration(30 * time.Second)},
		{"-1", Forever},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		// What String writes reads back the same.
		if back, err := ParseDuration(got.String()); err != nil || back != got {
			t.Errorf("ParseDuration(%q) = %v, %v: String %q does not read back", tc.in, back, err, got.String())
		}
	}
	for _, bad := range []string{"", "soon", "-2", "-1s", "-0.5", "1.2.3", "1e3", "10 m", "0x10", "9999999999999h", ".", "+5"} {
		_, err := ParseDuration(bad)
		if err == nil || !strings.Contains(err.Error(), "want seconds (600), a number and a unit (600s, 10m") {
			t.Errorf("ParseDuration(%q): %v, want an error saying what is accepted", bad, err)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Duration
	}{
		{`600`, Duration(10 * time.Minute)},
		{`"600"`, Duration(10 * time.Minute)},
		{`"10m"`, Duration(10 * time.Minute)},
		{`-1`, Forever},
		{`"-1"`, Forever},
		{`1.5`, Duration(1500 * time.Millisecond)},
	} {
		var d Duration
		if err := json.Unmarshal([]byte(tc.in), &d); err != nil || d != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.in, d, err, tc.want)
		}
		b, err := json.Marshal(d)
		var back Duration
		if err == nil {
			err = json.Unmarshal(b, &back)
		}
		if err != nil || back != d {
			t.Errorf("%s: marshalled %s, read back %v, %v", tc.in, b, back, err)
		}
	}
	for _, bad := range []string{`-5`, `true`, `"soon"`, `1e3`, `{}`, `[]`} {
		var d Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil || !strings.Contains(err.Error(), "want seconds") {
			t.Errorf("%s: %v, want an error saying what is accepted", bad, err)
		}
	}
	d := Duration(time.Second) // null leaves a value as it is, as for other types
	if err := json.Unmarshal([]byte(`null`), &d); err != nil || d != Duration(time.Second) {
		t.Errorf("null: %v, %v", d, err)
	}
}

// TestDurationSet: as a flag value, -1 is Forever and 600 ten minutes;
// the CLI's tests (cmd/flashpath) parse real command lines.
func TestDurationSet(t *testing.T) {
	var tmo, iv Duration
	if err := tmo.Set("-1"); err != nil || tmo != Forever {
		t.Fatalf("Set(-1): %v, %v", tmo, err)
	}
	if err := iv.Set("600"); err != nil || iv.Duration() != 10*time.Minute {
		t.Fatalf("Set(600): %v, %v", iv, err)
	}
	if err := iv.Set("soon"); err == nil || !strings.Contains(err.Error(), "want seconds (600)") || iv.Duration() != 10*time.Minute {
		t.Fatalf("Set(soon): %v, %v", iv, err)
	}
	if iv.Type() != "duration" {
		t.Fatalf("Type %q", iv.Type())
	}
}

func TestDurationSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    Duration
		want int
		ok   bool
	}{
		{Forever, -1, true}, {0, 0, true}, {Duration(10 * time.Minute), 600, true},
		{Duration(1500 * time.Millisecond), 0, false}, {Duration(-2 * time.Second), 0, false},
	} {
		got, err := tc.d.Seconds()
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("%v.Seconds() = %d, %v", tc.d, got, err)
		}
	}
}
