package bench

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Section is one [section] of a job file, or the command line's options.
type Section struct {
	Name    string
	Options []Option
	// Where is each option's source, "file:line", for errors; parallel to
	// Options where set (a missing entry is the command line).
	Where []string
	// Globals is how many of the first Options came from [global]
	// sections (their name= does not name the job, as in fio).
	Globals int
}

// srcOption is an option with where it was written ("" : the command
// line).
type srcOption struct {
	Option
	where string
	// global: from [global] or the command line's defaults; its name=
	// does not name the job.
	global bool
}

// BuildJobs applies fio's inheritance to sections: every job starts from
// the defaults plus global (command-line options beneath job files, as in
// fio), then its section's options ([global] sections above it first),
// then overrides. kb_base applies to every size of the job, wherever it
// stands (fio parses it first). List values of sweepable options expand
// into one job per combination, each a reporting group of its own that
// runs after the previous one.
func BuildJobs(global []Option, sections []Section, overrides []Option) ([]*Job, error) {
	var jobs []*Job
	group := 0
	for _, sec := range sections {
		var opts []srcOption
		for _, o := range global {
			opts = append(opts, srcOption{Option: o, global: true})
		}
		for i, o := range sec.Options {
			so := srcOption{Option: o, global: i < sec.Globals}
			if i < len(sec.Where) {
				so.where = sec.Where[i]
			}
			opts = append(opts, so)
		}
		for _, o := range overrides {
			opts = append(opts, srcOption{Option: o})
		}
		expanded, err := expandSweeps(opts)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", sec.Name, err)
		}
		for k, eo := range expanded {
			j, err := buildJob(sec.Name, eo)
			if err != nil {
				return nil, err
			}
			if len(jobs) > 0 && (j.Stonewall || j.NewGroup || len(expanded) > 1 || k > 0) {
				group++
			}
			j.GroupID = group
			if len(expanded) > 1 {
				j.Stonewall = true
			}
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return nil, errors.New("no jobs defined")
	}
	return jobs, nil
}

// at prefixes an error with where its option was written.
func at(where string, err error) error {
	if where == "" {
		where = "command line"
	}
	return fmt.Errorf("%s: %w", where, err)
}

// buildJob applies one sweep point's options to fio's defaults and
// validates the job.
func buildJob(name string, eo sweepPoint) (*Job, error) {
	j := DefaultJob()
	j.Name = name
	j.Swept = eo.swept
	for _, o := range eo.opts {
		if s := findSpec(strings.TrimSpace(o.Name)); s != nil && s.name == "kb_base" {
			if err := j.apply(o.Option); err != nil {
				return nil, at(o.where, fmt.Errorf("job %s: %w", name, err))
			}
			j.KBBase, _ = strconv.Atoi(strings.TrimSpace(o.Value))
		}
	}
	// The options as fio lists them: the command line's, then [global]'s
	// ("global options"), then the job's own ("job options"); kb_base,
	// which fio parses first, first of its part.
	var cmdline, global, own [][2]string
	record := func(o srcOption, kv [2]string, first bool) {
		list := &own
		switch {
		case o.global && o.where == "":
			list = &cmdline
		case o.global:
			list = &global
		}
		if first {
			*list = append([][2]string{kv}, *list...)
		} else {
			*list = append(*list, kv)
		}
	}
	for _, o := range eo.opts {
		kv := [2]string{strings.TrimSpace(o.Name), strings.TrimSpace(o.Value)}
		s := findSpec(kv[0])
		switch {
		case s != nil && s.name == "kb_base":
			record(o, kv, true) // applied above
			continue
		case s != nil && s.name == "name" && o.global:
			record(o, kv, false) // [global]'s name= does not name the job (fio)
			continue
		}
		if err := j.apply(o.Option); err != nil {
			return nil, at(o.where, fmt.Errorf("job %s: %w", name, err))
		}
		record(o, kv, false)
	}
	j.Options, j.GlobalOptions = own, append(cmdline, global...)
	if err := j.checkEngineOptions(eo.opts); err != nil {
		return nil, fmt.Errorf("job %s: %w", j.Name, err)
	}
	if err := j.validate(); err != nil {
		return nil, fmt.Errorf("job %s: %w", j.Name, err)
	}
	return &j, nil
}

type sweepPoint struct {
	opts  []srcOption
	swept []Option
}

// expandSweeps returns one option list per combination of list values.
func expandSweeps(opts []srcOption) ([]sweepPoint, error) {
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
				return nil, at(o.where, fmt.Errorf("option %s: empty value in list %q", o.Name, o.Value))
			}
			vals = append(vals, v)
		}
		var next []sweepPoint
		for _, p := range out {
			for _, v := range vals {
				// A later list for the same option replaces the earlier one.
				swept := slices.DeleteFunc(slices.Clone(p.swept), func(s Option) bool { return s.Name == o.Name })
				pt := o
				pt.Value = v
				next = append(next, sweepPoint{
					opts:  append(slices.Clone(p.opts), pt),
					swept: append(swept, Option{o.Name, v}),
				})
			}
		}
		out = next
	}
	return out, nil
}
