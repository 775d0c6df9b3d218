package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// ParseJobFile reads a fio job file. Each returned section carries the
// options of the [global] sections above it followed by its own, which is
// fio's inheritance: a [global] section applies to the jobs after it.
// Lines starting with ';' or '#' are comments; ${VAR} expands from the
// environment, as in fio.
func ParseJobFile(r io.Reader, name string) ([]Section, error) {
	var (
		global   []Option
		sections []Section
		cur      *Section
		inGlobal bool
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] == ';' || t[0] == '#' {
			continue
		}
		if t[0] == '[' {
			end := strings.IndexByte(t, ']')
			if end < 0 {
				return nil, fmt.Errorf("%s:%d: unterminated section header %q", name, line, t)
			}
			sec := strings.TrimSpace(t[1:end])
			if sec == "" {
				return nil, fmt.Errorf("%s:%d: empty section name", name, line)
			}
			inGlobal = sec == "global"
			if inGlobal {
				cur = nil
				continue
			}
			sections = append(sections, Section{Name: sec, Options: append([]Option(nil), global...)})
			cur = &sections[len(sections)-1]
			continue
		}
		if strings.HasPrefix(t, "include ") {
			return nil, fmt.Errorf("%s:%d: include is not supported", name, line)
		}
		k, v, _ := strings.Cut(t, "=")
		k = strings.TrimSpace(k)
		v, err := expandEnv(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		o := Option{Name: k, Value: v}
		switch {
		case inGlobal:
			global = append(global, o)
		case cur != nil:
			cur.Options = append(cur.Options, o)
		default:
			return nil, fmt.Errorf("%s:%d: option %s outside of a section", name, line, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(sections) == 0 {
		return nil, fmt.Errorf("%s: no job sections", name)
	}
	return sections, nil
}

// expandEnv replaces ${VAR} with the environment value (fio's syntax;
// a bare $ is left alone, because fio does not expand it either).
func expandEnv(s string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		b.WriteString(s[:i])
		b.WriteString(os.Getenv(s[i+2 : i+end]))
		s = s[i+end+1:]
	}
}

// LoadJobs builds the jobs of one invocation: the sections of the job
// files, in order, with overrides (command-line options) applied to every
// job last. Without files the overrides alone define one job, named by
// name= or "job", as with fio's command line.
//
// With only, just the job sections of those names run (fio's --section);
// naming one the files lack is an error.
func LoadJobs(paths []string, overrides []Option, only ...string) ([]*Job, error) {
	var sections []Section
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		s, err := ParseJobFile(f, p)
		f.Close()
		if err != nil {
			return nil, err
		}
		sections = append(sections, s...)
	}
	if len(only) > 0 {
		var kept []Section
		for _, name := range only {
			found := false
			for _, s := range sections {
				if s.Name == name {
					kept, found = append(kept, s), true
				}
			}
			if !found {
				return nil, fmt.Errorf("--section %s: no job section of that name in %s", name, strings.Join(paths, ", "))
			}
		}
		sections = kept
	}
	if len(sections) == 0 {
		name := "job"
		for _, o := range overrides {
			if o.Name == "name" {
				name = o.Value
			}
		}
		sections = []Section{{Name: name}}
	}
	return BuildJobs(nil, sections, overrides)
}

// IsTerminal reports whether fd is a terminal (for the live progress line).
func IsTerminal(fd uintptr) bool { return isTerminal(fd) }
