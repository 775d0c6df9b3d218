package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Section is one [section] of a job file, or the command line's options.
type Section struct {
	Name    string
	Options []Option
}

// BuildJobs applies fio's inheritance to sections: every job starts from
// the defaults plus global (and the [global] sections above it, in file
// order), then its own options, then overrides (command-line flags). List
// values of sweepable options expand into one job per combination, each a
// reporting group of its own that runs after the previous one.
func BuildJobs(global []Option, sections []Section, overrides []Option) ([]*Job, error) {
	var jobs []*Job
	group := 0
	for _, sec := range sections {
		opts := slices.Concat(global, sec.Options, overrides)
		expanded, err := expandSweeps(opts)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", sec.Name, err)
		}
		for k, eo := range expanded {
			j := DefaultJob()
			j.Name = sec.Name
			j.Swept = eo.swept
			for _, o := range eo.opts {
				if err := j.apply(o); err != nil {
					return nil, fmt.Errorf("job %s: %w", sec.Name, err)
				}
			}
			if err := j.validate(); err != nil {
				return nil, fmt.Errorf("job %s: %w", j.Name, err)
			}
			if len(jobs) > 0 && (j.Stonewall || j.NewGroup || len(expanded) > 1 || k > 0) {
				group++
			}
			j.GroupID = group
			if len(expanded) > 1 {
				j.Stonewall = true
			}
			jobs = append(jobs, &j)
		}
	}
	if len(jobs) == 0 {
		return nil, errors.New("no jobs defined")
	}
	return jobs, nil
}

type sweepPoint struct {
	opts, swept []Option
}

// expandSweeps returns one option list per combination of list values.
func expandSweeps(opts []Option) ([]sweepPoint, error) {
	out := []sweepPoint{{}}
	for _, o := range opts {
		s := findSpec(strings.TrimSpace(o.Name))
		if s == nil || !s.sweep || !strings.Contains(o.Value, ",") {
			for i := range out {
				out[i].opts = append(out[i].opts, o)
			}
			continue
		}
		var vals []string
		for _, v := range strings.Split(o.Value, ",") {
			if v = strings.TrimSpace(v); v == "" {
				return nil, fmt.Errorf("option %s: empty value in list %q", o.Name, o.Value)
			}
			vals = append(vals, v)
		}
		var next []sweepPoint
		for _, p := range out {
			for _, v := range vals {
				// A later list for the same option replaces the earlier one.
				swept := slices.DeleteFunc(slices.Clone(p.swept), func(s Option) bool { return s.Name == o.Name })
				next = append(next, sweepPoint{
					opts:  append(slices.Clone(p.opts), Option{o.Name, v}),
					swept: append(swept, Option{o.Name, v}),
				})
			}
		}
		out = next
	}
	return out, nil
}
