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
	// Stonewall starts a new group with this job without a stonewall
	// option (fio's first job of every job file after the first).
	Stonewall bool
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
			j.Stonewall = j.Stonewall || sec.Stonewall
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
	// ("global options"), then the job's own ("job options"), each part
	// in fio's parse order (see optionPrio).
	var cmdline, global, own [][2]string
	record := func(o srcOption, kv [2]string) {
		switch {
		case o.global && o.where == "":
			cmdline = append(cmdline, kv)
		case o.global:
			global = append(global, kv)
		default:
			own = append(own, kv)
		}
	}
	// Refused and unknown options are all listed, in the order written
	// (file order, then the command line's), each with where it was
	// written; any other error stops at its option.
	var bad []optionError
	for i, o := range eo.opts {
		kv := [2]string{strings.TrimSpace(o.Name), strings.TrimSpace(o.Value)}
		s := findSpec(kv[0])
		switch {
		case s != nil && s.name == "kb_base":
			record(o, kv) // applied above
			continue
		case s != nil && s.name == "name" && o.global:
			record(o, kv) // [global]'s name= does not name the job (fio)
			continue
		}
		if err := j.apply(o.Option); err != nil {
			err = at(o.where, fmt.Errorf("job %s: %w", name, err))
			if errors.Is(err, ErrRefusedOption) {
				// Listed with the unknown options below, all of them.
				bad = append(bad, optionError{i, err})
				continue
			}
			return nil, joinOptionErrors(append(bad, optionError{i, err}))
		}
		record(o, kv)
	}
	byPrio := func(a, b [2]string) int { return optionPrio(b[0]) - optionPrio(a[0]) }
	slices.SortStableFunc(global, byPrio)
	slices.SortStableFunc(own, byPrio)
	j.Options, j.GlobalOptions = own, append(cmdline, global...)
	unknown, err := j.checkEngineOptions(eo.opts)
	if err != nil {
		return nil, joinOptionErrors(append(bad, optionError{len(eo.opts), fmt.Errorf("job %s: %w", j.Name, err)}))
	}
	for _, u := range unknown {
		bad = append(bad, optionError{u.i, at(eo.opts[u.i].where, fmt.Errorf("job %s: %w", j.Name, u.err))})
	}
	if len(bad) > 0 {
		return nil, joinOptionErrors(bad)
	}
	if err := j.validate(); err != nil {
		return nil, whereNamed(eo.opts, fmt.Errorf("job %s: %w", j.Name, err))
	}
	return &j, nil
}

// optionError is an error of the i-th option of a job as written.
type optionError struct {
	i   int
	err error
}

// joinOptionErrors joins errs in the order their options were written.
func joinOptionErrors(errs []optionError) error {
	slices.SortStableFunc(errs, func(a, b optionError) int { return a.i - b.i })
	all := make([]error, len(errs))
	for k, e := range errs {
		all[k] = e.err
	}
	return errors.Join(all...)
}

// whereNamed prefixes a validation error that names an option ("option
// bs: ...") with where that option was last written, as the errors of a
// single option are.
func whereNamed(opts []srcOption, err error) error {
	_, rest, ok := strings.Cut(err.Error(), ": option ")
	if !ok {
		return err
	}
	name, _, _ := strings.Cut(rest, ":")
	s := findSpec(name)
	for i := len(opts) - 1; i >= 0 && s != nil; i-- {
		if findSpec(strings.TrimSpace(opts[i].Name)) == s {
			if opts[i].where == "" {
				return err
			}
			return at(opts[i].where, err)
		}
	}
	return err
}

// optionPrio is fio's parse priority: fio sorts a section's options by
// it (stably) before parsing them, and lists them in that order.
func optionPrio(name string) int {
	s := findSpec(name)
	if s == nil {
		return 0
	}
	switch s.name {
	case "lockfile", "cpus_allowed_policy", "kb_base", "unit_base":
		return 1
	case "filename", "filename_format":
		return -1
	}
	return 0
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
