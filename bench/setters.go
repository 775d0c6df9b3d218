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
		k, err := j.parseInt(n, 1, 1<<20)
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
		n, err := j.parseSize(p)
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
	j.BSSplit, err = perDir(v, "want a mix or read,write[,trim] mixes, got %q", func(s string) ([]BSWeight, error) { return parseBSMix(s, j.parseSize) })
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

// parseBSMix parses one bssplit mix by fio's rule (checked against fio
// 3.33's draws): percents are whole numbers (50.5 is 50) and 0 counts as
// not given; the sizes without a percent share what the others leave,
// each the whole-number quotient; what is still missing of 100 goes to
// the size with the largest percent (the later one of equals).
func parseBSMix(s string, parseSize func(string) (int64, error)) ([]BSWeight, error) {
	var out []BSWeight
	sum, unset := 0, 0
	for _, e := range strings.Split(s, ":") {
		size, pct, hasPct := strings.Cut(e, "/")
		n, err := parseSize(size)
		if err != nil {
			return nil, err
		}
		if n <= 0 || n > 1<<30 {
			return nil, fmt.Errorf("block size %q out of range", size)
		}
		w := BSWeight{Size: int(n), Pct: -1}
		if hasPct && pct != "" {
			f, err := strconv.ParseFloat(pct, 64)
			if err != nil || f < 0 || f > 100 {
				return nil, fmt.Errorf("percent %q of %s: want 0 to 100", pct, size)
			}
			if p := int(f); p > 0 {
				w.Pct = float64(p)
				sum += p
			}
		}
		if w.Pct < 0 {
			unset++
		}
		out = append(out, w)
	}
	if sum > 100 {
		return nil, fmt.Errorf("%q: percents add up to %d, more than 100", s, sum)
	}
	smallest := out[0].Size
	for i := range out {
		if out[i].Pct < 0 {
			out[i].Pct = float64((100 - sum) / unset)
		}
		smallest = min(smallest, out[i].Size)
	}
	total := 0.0
	last := 0
	for i, w := range out {
		total += w.Pct
		if w.Pct >= out[last].Pct {
			last = i
		}
	}
	out[last].Pct += 100 - total
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
			n, err := j.parseSize(p)
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
	prec := 0
	for _, p := range parts {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || !(f > 0 && f <= 100) {
			return fmt.Errorf("percentile %q: want a number above 0 and at most 100", p)
		}
		ps = append(ps, f)
		// fio's percentile_precision: the most digits after the point.
		if _, frac, ok := strings.Cut(p, "."); ok {
			n := 0
			for n < len(frac) && frac[n] >= '0' && frac[n] <= '9' {
				n++
			}
			prec = max(prec, n)
		}
	}
	j.Percentiles, j.PercentilePrecision = ps, prec
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
	if kind != "zoned" && strings.Contains(arg, ":") {
		return fmt.Errorf("%w: %q: a distribution center (fio's :CENTER) is not implemented", ErrRefusedOption, v)
	}
	// fio's defaults when the parameter is left out.
	if arg == "" && kind == "zipf" {
		arg = "1.1"
	} else if arg == "" && kind == "pareto" {
		arg = "0.2"
	}
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

// parseZones parses zoned's ACCESS/RANGE pairs, e.g. 60/10:30/20:10/70,
// by fio's rule: a range left out or 0 ("20/") shares what the others
// leave, each the whole-number quotient (the last zone runs to the end).
func parseZones(arg string) (Distribution, error) {
	d := Distribution{Kind: DistZoned}
	if strings.Contains(arg, ",") {
		return d, errors.New("zoned: one set of zones for reads and writes alike (no ',')")
	}
	var access, rng float64
	missing := 0
	for _, z := range strings.Split(arg, ":") {
		a, r, _ := strings.Cut(z, "/")
		af, err1 := strconv.ParseFloat(a, 64)
		rf := -1.0
		var err2 error
		if r != "" {
			if rf, err2 = strconv.ParseFloat(r, 64); err2 == nil {
				rf = math.Min(math.Trunc(rf), 100) // fio: atoi, at most 100
			}
		}
		if err1 != nil || err2 != nil || af < 0 || rf < 0 && r != "" {
			return d, fmt.Errorf("zoned: %q is not ACCESS/RANGE in percent, e.g. 60/10", z)
		}
		if rf <= 0 {
			rf = -1
			missing++
		} else {
			rng += rf
		}
		d.Zones = append(d.Zones, Zone{Access: af, Range: rf})
		access += af
	}
	if missing > 0 {
		share := math.Trunc((100 - rng) / float64(missing))
		for i := range d.Zones {
			if d.Zones[i].Range < 0 {
				d.Zones[i].Range = share
				rng += share
			}
		}
	}
	if math.Abs(access-100) > 1e-9 || rng > 100+1e-9 || rng < 100-float64(missing)-1e-9 || rng <= 0 {
		return d, fmt.Errorf("zoned: access percents sum to %g and range percents to %g; both must be 100", access, rng)
	}
	return d, nil
}

func intSetter(field func(*Job) *int, lo, hi int) func(*Job, string) error {
	return func(j *Job, v string) error {
		n, err := j.parseInt(v, lo, hi)
		if err != nil {
			return err
		}
		*field(j) = n
		return nil
	}
}

// parseInt parses an integer option: fio's ints take the same suffixes
// as sizes, by the job's kb_base.
func (j *Job) parseInt(v string, lo, hi int) (int, error) {
	neg := strings.HasPrefix(v, "-") && lo < 0
	n, err := j.parseSize(strings.TrimPrefix(v, "-"))
	if neg {
		n = -n
	}
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
		n, err := j.parseSize(v)
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

// setRW parses rw= with fio's optional ":<nr>" offset modifier
// (rw=read:8k, rw=randread:8).
func setRW(j *Job, v string) (err error) {
	pat, mod, hasMod := strings.Cut(v, ":")
	if j.RW, err = parseRW(pat); err != nil {
		return err
	}
	j.RWModifier = 0
	if hasMod {
		// fio's examples/backwards-read.fio: read:-8k reads backwards.
		n, err := j.parseSize(strings.TrimPrefix(mod, "-"))
		if err != nil {
			return fmt.Errorf("offset modifier of %q: %w", v, err)
		}
		if strings.HasPrefix(mod, "-") {
			n = -n
		}
		j.RWModifier = n
	}
	return nil
}

// setBSRange parses fio's bsrange: MIN-MAX, or read,write[,trim] ranges.
// fio draws MIN + a uniform fraction of MAX, rounded down to a multiple of
// MIN and capped at MAX: every multiple of MIN up to MAX equally often when
// MIN divides MAX. That is the bssplit mix it is turned into.
func setBSRange(j *Job, v string) error {
	ranges, err := perDir(v, "want MIN-MAX or read,write[,trim] ranges, got %q", func(p string) ([2]int, error) {
		lo, hi, ok := strings.Cut(p, "-")
		if !ok {
			return [2]int{}, fmt.Errorf("%q: want MIN-MAX, e.g. 4k-64k", p)
		}
		a, err1 := j.parseSize(lo)
		b, err2 := j.parseSize(hi)
		if err := errors.Join(err1, err2); err != nil {
			return [2]int{}, err
		}
		if a <= 0 || b < a || b > 1<<30 {
			return [2]int{}, fmt.Errorf("%q: want 0 < MIN <= MAX <= 1g", p)
		}
		if b%a != 0 {
			return [2]int{}, fmt.Errorf("%q: MAX must be a multiple of MIN here (fio then caps a share of the draws at MAX, off MIN's grid)", p)
		}
		if b/a > 4096 {
			return [2]int{}, fmt.Errorf("%q: more than 4096 sizes between MIN and MAX", p)
		}
		return [2]int{int(a), int(b)}, nil
	})
	if err != nil {
		return err
	}
	for d, r := range ranges {
		if r[0] == 0 {
			continue
		}
		j.BSRange[d] = r
		j.BS[d] = r[0]
		j.BSSplit[d] = nil
		if r[0] == r[1] {
			continue
		}
		n := r[1] / r[0]
		mix := make([]BSWeight, n)
		for k := range mix {
			mix[k] = BSWeight{Size: (k + 1) * r[0], Pct: 100 / float64(n)}
		}
		j.BSSplit[d] = mix
	}
	return nil
}

// setBlockAlign parses ba (blockalign): one alignment or read,write[,trim].
func setBlockAlign(j *Job, v string) error {
	out, err := perDir(v, "want a size or read,write[,trim] sizes, got %q", func(p string) (int, error) {
		n, err := j.parseSize(p)
		if err != nil || n <= 0 || n > 1<<30 {
			return 0, fmt.Errorf("alignment %q: want a size above 0", p)
		}
		return int(n), nil
	})
	if err != nil {
		return err
	}
	for d, n := range out {
		if n > 0 {
			j.BlockAlign[d] = n
		}
	}
	return nil
}

// pctSizeSetter parses a size or fio's N% (1 to 100) of the file's size.
func pctSizeSetter(field func(*Job) (*int64, *float64)) func(*Job, string) error {
	return func(j *Job, v string) error {
		n, pct := field(j)
		if p, ok := strings.CutSuffix(v, "%"); ok {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || !(f >= 0 && f <= 100) {
				return fmt.Errorf("%q: want a percentage from 0 to 100", v)
			}
			*n, *pct = 0, f
			return nil
		}
		x, err := j.parseSize(v)
		if err != nil {
			return err
		}
		*n, *pct = x, 0
		return nil
	}
}

// splitColons splits fio's colon-separated list, "\:" standing for a
// colon in a name.
func splitColons(v string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v) && v[i+1] == ':':
			b.WriteByte(':')
			i++
		case v[i] == ':':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(v[i])
		}
	}
	return append(out, b.String())
}

// setFilename parses filename=: one name, a namespace URL (whose colons
// are its own), or fio's a:b list of files.
func setFilename(j *Job, v string) error {
	j.Filename, j.Filenames = v, nil
	if strings.Contains(v, "://") {
		return nil
	}
	names := splitColons(v)
	for _, n := range names {
		if n == "" {
			return fmt.Errorf("%q: an empty file name in the list", v)
		}
	}
	j.Filename = names[0]
	if len(names) > 1 {
		j.Filenames = names
	}
	return nil
}

// setDirectory parses directory=: one directory (fio's a:b list of
// directories is refused).
func setDirectory(j *Job, v string) error {
	dirs := splitColons(v)
	if len(dirs) > 1 {
		return fmt.Errorf("%q: several directories (fio spreads files over them) are not supported; give one", v)
	}
	j.Directory = dirs[0]
	return nil
}

// setGPUDevIDs parses libcufile's gpu_dev_ids: a colon-separated list.
func setGPUDevIDs(j *Job, v string) error {
	var ids []int
	for _, p := range strings.Split(v, ":") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: want GPU IDs separated by ':', e.g. 0:1", v)
		}
		ids = append(ids, n)
	}
	j.GPUDevIDs = ids
	return nil
}

// setVerify sets verify=: fio's names of its checksums (verify.go's
// verifyKinds, crc32c-intel among them), 0 or none for off.
func setVerify(j *Job, v string) error {
	switch v {
	case "", "0", "none":
		j.Verify = ""
		return nil
	}
	if _, ok := verifyKinds[v]; !ok {
		return fmt.Errorf("%q: want one of fio's methods %v, or none", v, VerifyTypes())
	}
	j.Verify = v
	return nil
}
