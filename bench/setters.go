package bench

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

func setFileService(j *Job, v string) error {
	kind, n, hasN := strings.Cut(v, ":")
	j.FileServiceN = 1
	if hasN {
		k, err := parseInt(n, 1, 1<<20)
		if err != nil {
			return err
		}
		j.FileServiceN = k
	}
	switch kind {
	case "roundrobin":
		j.FileService = ServiceRoundRobin
	case "sequential":
		j.FileService = ServiceSequential
	case "random":
		j.FileService = ServiceRandom
	default:
		return fmt.Errorf("%q: want roundrobin[:N], sequential or random", v)
	}
	if hasN && j.FileService != ServiceRoundRobin {
		return fmt.Errorf("%q: :N only with roundrobin here", v)
	}
	return nil
}

// logSetter turns a log on, its file name prefix the value: none (a bare
// --write_bw_log on the command line gives "1") means the job's name, as
// in fio.
func logSetter(on func(*LogOptions) (*bool, *string)) func(*Job, string) error {
	return func(j *Job, v string) error {
		b, name := on(&j.Logs)
		if v == "1" || v == "true" {
			v = ""
		}
		*b, *name = true, v
		return nil
	}
}

func setBS(j *Job, v string) error {
	parts := strings.Split(v, ",")
	if len(parts) > 3 {
		return fmt.Errorf("want bs or read,write[,trim], got %q", v)
	}
	var sizes []int
	for _, p := range parts {
		if p == "" {
			sizes = append(sizes, -1) // keep: fio's "bs=,8k"
			continue
		}
		n, err := ParseSize(p)
		if err != nil {
			return err
		}
		if n <= 0 || n > 1<<30 {
			return fmt.Errorf("block size %q out of range", p)
		}
		sizes = append(sizes, int(n))
	}
	if len(sizes) == 1 {
		j.BS = [numDirs]int{sizes[0], sizes[0], sizes[0]}
		return nil
	}
	for d, n := range sizes {
		if n > 0 {
			j.BS[d] = n
		}
	}
	return nil
}

// setBSSplit parses fio's bssplit: SIZE/PERCENT:SIZE/PERCENT..., one mix
// for every direction or read,write[,trim] mixes (an empty field keeps
// bs). Sizes without a percent share what the others leave.
func setBSSplit(j *Job, v string) (err error) {
	j.BSSplit, err = perDir(v, "want a mix or read,write[,trim] mixes, got %q", parseBSMix)
	return err
}

// perDir parses fio's per-direction lists: one value for every direction,
// or read,write[,trim] with empty fields left zero. tooMany formats the
// error for more than three fields.
func perDir[T any](v, tooMany string, parse func(string) (T, error)) ([numDirs]T, error) {
	var out [numDirs]T
	parts := strings.Split(v, ",")
	if len(parts) > int(numDirs) {
		return out, fmt.Errorf(tooMany, v)
	}
	for d, p := range parts {
		if p == "" {
			continue
		}
		x, err := parse(p)
		if err != nil {
			return out, err
		}
		out[d] = x
	}
	if len(parts) == 1 {
		out = [numDirs]T{out[0], out[0], out[0]}
	}
	return out, nil
}

func parseBSMix(s string) ([]BSWeight, error) {
	var out []BSWeight
	var sum float64
	unset := 0
	for _, e := range strings.Split(s, ":") {
		size, pct, hasPct := strings.Cut(e, "/")
		n, err := ParseSize(size)
		if err != nil {
			return nil, err
		}
		if n <= 0 || n > 1<<30 {
			return nil, fmt.Errorf("block size %q out of range", size)
		}
		w := BSWeight{Size: int(n), Pct: -1}
		if hasPct && pct != "" {
			if w.Pct, err = strconv.ParseFloat(pct, 64); err != nil || w.Pct < 0 || w.Pct > 100 {
				return nil, fmt.Errorf("percent %q of %s: want 0 to 100", pct, size)
			}
			sum += w.Pct
		} else {
			unset++
		}
		out = append(out, w)
	}
	if sum > 100+1e-9 {
		return nil, fmt.Errorf("%q: percents add up to %g, more than 100", s, sum)
	}
	if unset == 0 && sum < 100-1e-9 {
		return nil, fmt.Errorf("%q: percents add up to %g, not 100", s, sum)
	}
	smallest := out[0].Size
	for i := range out {
		if out[i].Pct < 0 {
			out[i].Pct = (100 - sum) / float64(unset)
		}
		smallest = min(smallest, out[i].Size)
	}
	for _, w := range out {
		if w.Size%smallest != 0 {
			return nil, fmt.Errorf("%q: %d is not a multiple of the smallest size %d (offsets stay on its grid)", s, w.Size, smallest)
		}
	}
	return out, nil
}

// rateSetter parses fio's rate lists: one value for every direction, or
// read,write[,trim] with empty fields left uncapped.
func rateSetter(field func(*Job) *[numDirs]int64) func(*Job, string) error {
	return func(j *Job, v string) error {
		out, err := perDir(v, "want a value or read,write[,trim], got %q", func(p string) (int64, error) {
			n, err := ParseSize(p)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("rate %q: want a non-negative number (fio units: 500k, 1g)", p)
			}
			return n, nil
		})
		if err != nil {
			return err
		}
		*field(j) = out
		return nil
	}
}

// setCPUs parses a CPU list: "0-3,8,10-11".
func setCPUs(j *Job, v string) error {
	var cpus []int
	for _, part := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= 1<<14 {
			return fmt.Errorf("CPU list %q: want numbers and ranges like 0-3,8", v)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	j.CPUs = cpus
	return nil
}

func setPercentiles(j *Job, v string) error {
	parts := strings.Split(v, ":")
	if len(parts) > 20 {
		return fmt.Errorf("at most 20 percentiles, got %d", len(parts))
	}
	ps := make([]float64, 0, len(parts))
	for _, p := range parts {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || !(f > 0 && f <= 100) {
			return fmt.Errorf("percentile %q: want a number above 0 and at most 100", p)
		}
		ps = append(ps, f)
	}
	j.Percentiles = ps
	return nil
}

func setDistribution(j *Job, v string) error {
	kind, arg, _ := strings.Cut(v, ":")
	num := func(what string, ok func(float64) bool) (float64, error) {
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || !ok(f) {
			return 0, fmt.Errorf("%s needs %s, got %q", kind, what, arg)
		}
		return f, nil
	}
	var err error
	switch kind {
	case "random":
		j.Dist = Distribution{}
		return nil
	case "zipf":
		j.Dist = Distribution{Kind: DistZipf}
		j.Dist.Theta, err = num("a theta > 0 and != 1", func(f float64) bool { return f > 0 && f != 1 })
		return err
	case "pareto":
		j.Dist = Distribution{Kind: DistPareto}
		j.Dist.H, err = num("an h between 0 and 1", func(f float64) bool { return f > 0 && f < 1 })
		return err
	case "normal", "gauss":
		j.Dist = Distribution{Kind: DistNormal}
		j.Dist.Dev, err = num("a deviation in percent, above 0 and at most 100", func(f float64) bool { return f > 0 && f <= 100 })
		return err
	case "zoned":
		j.Dist, err = parseZones(arg)
		return err
	}
	return fmt.Errorf("unsupported distribution %q (want random, zipf:THETA, pareto:H, normal:DEV%% or zoned:ACCESS/RANGE:...)", v)
}

// parseZones parses zoned's ACCESS/RANGE pairs, e.g. 60/10:30/20:10/70.
func parseZones(arg string) (Distribution, error) {
	d := Distribution{Kind: DistZoned}
	if strings.Contains(arg, ",") {
		return d, errors.New("zoned: one set of zones for reads and writes alike (no ',')")
	}
	var access, rng float64
	for _, z := range strings.Split(arg, ":") {
		a, r, ok := strings.Cut(z, "/")
		af, err1 := strconv.ParseFloat(a, 64)
		rf, err2 := strconv.ParseFloat(r, 64)
		if !ok || err1 != nil || err2 != nil || af < 0 || rf <= 0 {
			return d, fmt.Errorf("zoned: %q is not ACCESS/RANGE in percent, e.g. 60/10", z)
		}
		d.Zones = append(d.Zones, Zone{Access: af, Range: rf})
		access += af
		rng += rf
	}
	if math.Abs(access-100) > 1e-9 || math.Abs(rng-100) > 1e-9 {
		return d, fmt.Errorf("zoned: access percents sum to %g and range percents to %g; both must be 100", access, rng)
	}
	return d, nil
}

func intSetter(field func(*Job) *int, lo, hi int) func(*Job, string) error {
	return func(j *Job, v string) error {
		n, err := parseInt(v, lo, hi)
		if err != nil {
			return err
		}
		*field(j) = n
		return nil
	}
}

func parseInt(v string, lo, hi int) (int, error) {
	n, err := ParseSize(v) // fio ints take the same suffixes
	if err != nil {
		return 0, err
	}
	if n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("%s out of range [%d, %d]", v, lo, hi)
	}
	return int(n), nil
}

func sizeSetter(field func(*Job) *int64) func(*Job, string) error {
	return func(j *Job, v string) error {
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		*field(j) = n
		return nil
	}
}

func timeSetter(field func(*Job) *time.Duration) func(*Job, string) error {
	return func(j *Job, v string) error {
		d, err := ParseTime(v)
		if err != nil {
			return err
		}
		*field(j) = d
		return nil
	}
}

func boolSetter(field func(*Job) *bool) func(*Job, string) error {
	return func(j *Job, v string) error {
		switch strings.ToLower(v) {
		case "", "1", "true", "yes", "on":
			*field(j) = true
		case "0", "false", "no", "off":
			*field(j) = false
		default:
			return fmt.Errorf("not a boolean: %q", v)
		}
		return nil
	}
}

// enumSetter sets a field from a fixed set of spellings; want names them
// for the error.
func enumSetter[T any](field func(*Job) *T, want string, vals map[string]T) func(*Job, string) error {
	return func(j *Job, v string) error {
		x, ok := vals[v]
		if !ok {
			return fmt.Errorf("%q: want %s", v, want)
		}
		*field(j) = x
		return nil
	}
}
