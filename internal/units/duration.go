package units

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Duration is a time span as every flag and configuration field of
// flashpath's commands takes it (ParseDuration): "600" (seconds), "600s",
// "10m", "1h30m", "50us", and "-1" (Forever) where a setting gives it a
// meaning. In a YAML or JSON file it is a string or a number (600, -1).
// As a pflag.Value (fl.Var(&d, name, usage)) it is a command-line flag.
type Duration time.Duration

// Forever is what "-1" stands for: as in nvme-cli's --ctrl-loss-tmo -1,
// reconnect forever. Settings that have no use for it refuse it when they
// validate (any negative Duration is refused there).
const Forever Duration = -1

// durationHelp says what ParseDuration accepts, for errors.
const durationHelp = "want seconds (600), a number and a unit (600s, 10m, 1h30m, 50us) or -1 (forever, where the setting takes it)"

// ParseDuration parses a duration in flashpath's one syntax: a bare
// number is seconds ("600", "0.5"); otherwise a number and a unit as
// time.ParseDuration reads them ("600s", "10m", "1h30m", "50us"); "-1"
// alone is Forever, and other negative durations are errors, which say
// what is accepted.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "-1" {
		return Forever, nil
	}
	if seconds(t) {
		t += "s"
	}
	v, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %s", s, durationHelp)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q: negative: %s", s, durationHelp)
	}
	return Duration(v), nil
}

// seconds reports whether s is a bare decimal number: digits with at most
// one decimal point.
func seconds(s string) bool {
	digits, points := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			points++
		default:
			return false
		}
	}
	return digits > 0 && points <= 1
}

// UnmarshalJSON takes a string ("10m", "600") or a number (600, -1) as
// ParseDuration reads it; null changes nothing. Its errors are
// *json.UnmarshalTypeError, which the decoder gives the field's path and
// ParseConfig turns into "field: what is wrong".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if string(b) == "null" {
		return nil
	}
	var err error
	if len(b) > 0 && b[0] != '"' {
		var n json.Number
		if json.Unmarshal(b, &n) == nil {
			s = n.String()
		} else {
			err = fmt.Errorf("duration %s: %s", b, durationHelp)
		}
	} else if json.Unmarshal(b, &s) != nil {
		err = fmt.Errorf("duration %s: %s", b, durationHelp)
	}
	var v Duration
	if err == nil {
		v, err = ParseDuration(s)
	}
	if err != nil {
		return &json.UnmarshalTypeError{Value: err.Error(), Type: reflect.TypeFor[Duration]()}
	}
	*d = v
	return nil
}

// MarshalJSON writes d as String does, as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// String is d as ParseDuration reads it back: "-1" for Forever, "0" for
// none, else as time.Duration writes it ("10m0s").
func (d Duration) String() string {
	switch d {
	case Forever:
		return "-1"
	case 0:
		return "0"
	}
	return time.Duration(d).String()
}

// Set parses a flag's value (pflag.Value).
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Type names the flag's value in help text (pflag.Value).
func (d *Duration) Type() string { return "duration" }

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// Seconds returns d in whole seconds, -1 for Forever, for settings the
// kernel takes in seconds; an error where d is not a whole number of
// seconds.
func (d Duration) Seconds() (int, error) {
	if d == Forever {
		return -1, nil
	}
	if d < 0 || time.Duration(d)%time.Second != 0 {
		return 0, fmt.Errorf("%v: want whole seconds (the kernel counts seconds)", d)
	}
	return int(time.Duration(d) / time.Second), nil
}
