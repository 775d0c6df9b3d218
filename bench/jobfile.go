package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// ParseJobFile reads a fio job file. Each returned section carries the
// options of the [global] sections above it followed by its own, which is
// fio's inheritance: a [global] section applies to the jobs after it.
//
// The grammar is fio's: a line whose first character is ';' or '#' is a
// comment, and so is the rest of any line from its first ';' or '#' (fio
// cuts every line there, inside a value too); a section whose name starts
// with "global" is a [global] one; "include FILE" reads FILE's options in
// place (FILE as named, or else beside the including file; it may not
// hold sections); ${VAR} expands from the environment, and $pagesize,
// $mb_memory and $ncpus to fio's values.
func ParseJobFile(r io.Reader, name string) ([]Section, error) {
	return parseJobFile(r, name, openInclude)
}

func openInclude(name string) (io.ReadCloser, error) { return os.Open(name) }

// maxIncludeDepth bounds nested includes (a file including itself).
const maxIncludeDepth = 16

type jobParser struct {
	open     func(string) (io.ReadCloser, error) // nil: include is an error
	global   []Option
	gwhere   []string
	sections []Section
	cur      *Section
	inGlobal bool
	// raw are the sections as written, [global] ones included, for
	// ShowCmd.
	raw []rawSection
}

// rawSection is one section of a job file as written.
type rawSection struct {
	name   string
	global bool
	opts   []Option
}

func parseJobFile(r io.Reader, name string, open func(string) (io.ReadCloser, error)) ([]Section, error) {
	p := &jobParser{open: open}
	if err := p.parse(r, name, 0); err != nil {
		return nil, err
	}
	if len(p.sections) == 0 {
		return nil, fmt.Errorf("%s: no job sections", name)
	}
	return p.sections, nil
}

// stripComment cuts a line at its first ';' or '#', as fio's
// strip_blank_end does, and trims the blanks around what is left.
func stripComment(s string) string {
	if i := strings.IndexAny(s, ";#"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func (p *jobParser) parse(r io.Reader, name string, depth int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		where := name + ":" + strconv.Itoa(line)
		t := stripComment(sc.Text())
		if t == "" {
			continue
		}
		if t[0] == '[' {
			if depth > 0 {
				return fmt.Errorf("%s: section %s in an included file (fio allows options only)", where, t)
			}
			// fio takes everything between the '[' and the line's last
			// character, blanks included, and any name that starts with
			// "global" is a [global] section.
			if !strings.HasSuffix(t, "]") {
				return fmt.Errorf("%s: unterminated section header %q", where, t)
			}
			sec := t[1 : len(t)-1]
			if sec == "" {
				return fmt.Errorf("%s: empty section name", where)
			}
			p.inGlobal = strings.HasPrefix(sec, "global")
			p.raw = append(p.raw, rawSection{name: sec, global: p.inGlobal})
			if p.inGlobal {
				p.cur = nil
				continue
			}
			p.sections = append(p.sections, Section{Name: sec, Options: slices.Clone(p.global), Where: slices.Clone(p.gwhere), Globals: len(p.global)})
			p.cur = &p.sections[len(p.sections)-1]
			continue
		}
		if inc, ok := strings.CutPrefix(t, "include"); ok && (inc == "" || inc[0] == ' ' || inc[0] == '\t') {
			if err := p.include(strings.TrimSpace(inc), name, where, depth); err != nil {
				return err
			}
			continue
		}
		k, v, _ := strings.Cut(t, "=")
		k = strings.TrimSpace(k)
		raw := strings.TrimSpace(v)
		v, err := expandValue(raw)
		if err != nil {
			return fmt.Errorf("%s: option %s: %w", where, k, err)
		}
		if v == "" && strings.Contains(raw, "${") {
			// fio substitutes nothing for an unset variable; say which.
			where += " (" + raw + " is empty)"
		}
		o := Option{Name: k, Value: v}
		if len(p.raw) > 0 {
			r := &p.raw[len(p.raw)-1]
			r.opts = append(r.opts, o)
		}
		switch {
		case p.inGlobal:
			p.global = append(p.global, o)
			p.gwhere = append(p.gwhere, where)
		case p.cur != nil:
			p.cur.Options = append(p.cur.Options, o)
			p.cur.Where = append(p.cur.Where, where)
		default:
			return fmt.Errorf("%s: option %s outside of a section", where, k)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// include reads the options of file into the current section (or
// [global]), as fio's include directive.
func (p *jobParser) include(file, from, where string, depth int) error {
	if file == "" {
		return fmt.Errorf("%s: include needs a file name", where)
	}
	if !p.inGlobal && p.cur == nil {
		return fmt.Errorf("%s: include %s outside of a section", where, file)
	}
	if p.open == nil {
		return fmt.Errorf("%s: include %s: includes are not read here", where, file)
	}
	if depth+1 >= maxIncludeDepth {
		return fmt.Errorf("%s: include %s: more than %d nested includes", where, file, maxIncludeDepth)
	}
	// fio opens the name as given, and when that does not exist, relative
	// to the including file's directory.
	f, err := p.open(file)
	if errors.Is(err, fs.ErrNotExist) && !filepath.IsAbs(file) {
		file = filepath.Join(filepath.Dir(from), file)
		f, err = p.open(file)
	}
	if err != nil {
		return fmt.Errorf("%s: include: %w", where, err)
	}
	defer f.Close()
	return p.parse(f, file, depth+1)
}

// expandValue expands ${VAR} from the environment (fio's syntax; a bare
// $ is left alone, because fio does not expand it either), then fio's
// reserved keywords $pagesize, $mb_memory and $ncpus.
func expandValue(s string) (string, error) {
	s, err := expandEnv(s)
	if err != nil || !strings.Contains(s, "$") {
		return s, err
	}
	for _, kw := range []struct {
		name string
		val  func() (string, error)
	}{
		{"$pagesize", func() (string, error) { return strconv.Itoa(os.Getpagesize()), nil }},
		{"$mb_memory", memoryMB},
		{"$ncpus", func() (string, error) { return strconv.Itoa(runtime.NumCPU()), nil }},
	} {
		if strings.Contains(s, kw.name) {
			v, err := kw.val()
			if err != nil {
				return "", fmt.Errorf("%s: %w", kw.name, err)
			}
			s = strings.ReplaceAll(s, kw.name, v)
		}
	}
	return s, nil
}

// memoryMB is fio's $mb_memory: the system's memory in MiB.
func memoryMB() (string, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				break
			}
			return strconv.FormatInt(kb/1024, 10), nil
		}
	}
	return "", errors.New("no MemTotal in /proc/meminfo")
}

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
// files, in order, each over overrides (command-line options), which are
// defaults beneath the files' own options as in fio. Without files the
// overrides alone define one job, named by name= or "job", as with fio's
// command line.
//
// With only, just the job sections of those names run (fio's --section);
// naming one the files lack is an error.
func LoadJobs(paths []string, overrides []Option, only ...string) ([]*Job, error) {
	var sections []Section
	found := map[string]bool{}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		s, err := ParseJobFile(f, p)
		f.Close()
		if err != nil {
			return nil, err
		}
		if len(only) > 0 {
			// fio's --section: the jobs of those names, in file order.
			s = slices.DeleteFunc(s, func(sec Section) bool { return !slices.Contains(only, sec.Name) })
			for _, sec := range s {
				found[sec.Name] = true
			}
		}
		// fio separates job files by a stonewall: the first job (of those
		// run) of every file after the first starts a new group.
		if len(s) > 0 {
			s[0].Stonewall = i > 0
		}
		sections = append(sections, s...)
	}
	for _, name := range only {
		if !found[name] {
			return nil, fmt.Errorf("--section %s: no job section of that name in %s", name, strings.Join(paths, ", "))
		}
	}
	if len(sections) == 0 {
		name := "job"
		for _, o := range overrides {
			if o.Name == "name" {
				name = o.Value
			}
		}
		return BuildJobs(nil, []Section{{Name: name}}, overrides)
	}
	// fio's command-line options are defaults beneath the job files' own,
	// [global] sections included, wherever they stand on the line. A list
	// value of a sweepable option (iodepth=1,8,32: flashpath's sweep, where
	// fio would take the first number) sweeps every job of the files.
	var defaults, sweeps []Option
	for _, o := range overrides {
		if s := findSpec(strings.TrimSpace(o.Name)); s != nil && s.sweep && strings.Contains(o.Value, ",") {
			sweeps = append(sweeps, o)
		} else {
			defaults = append(defaults, o)
		}
	}
	return BuildJobs(defaults, sections, sweeps)
}

// IsTerminal reports whether fd is a terminal (for the live progress line).
func IsTerminal(fd uintptr) bool { return isTerminal(fd) }

// ShowCmd writes each job file as fio's --showcmd does: one "fio ..."
// command line per file, a job section as --name=SECTION and its options
// (in fio's parse order), a [global] section as every global option so
// far.
func ShowCmd(w io.Writer, paths []string) error {
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		p := &jobParser{open: openInclude}
		err = p.parse(f, path, 0)
		f.Close()
		if err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString("fio ")
		opt := func(o Option) {
			switch {
			case o.Value == "":
				fmt.Fprintf(&b, "--%s ", o.Name)
			case strings.Contains(o.Value, " "):
				fmt.Fprintf(&b, "--%s=\"%s\" ", o.Name, o.Value)
			default:
				fmt.Fprintf(&b, "--%s=%s ", o.Name, o.Value)
			}
		}
		byPrio := func(a, b Option) int { return optionPrio(b.Name) - optionPrio(a.Name) }
		var globals []Option
		for _, r := range p.raw {
			own := slices.Clone(r.opts)
			slices.SortStableFunc(own, byPrio)
			if r.global {
				globals = append(globals, own...)
				for _, o := range globals {
					opt(o)
				}
				continue
			}
			fmt.Fprintf(&b, "--name=%s ", r.name)
			for _, o := range own {
				opt(o)
			}
		}
		b.WriteByte('\n')
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}
