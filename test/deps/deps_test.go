// Package deps checks the module's package graph, as Go's own
// go/build/deps_test.go does: every import of every package, test files
// included, must be an edge written down in docs/design.md.
package deps

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// rules is the allowed graph: for each package of the module (by its
// path inside the module), what its non-test files may import (prod) and
// what its test files may import besides (test). Entries are packages of
// the module, again by path inside it, or import paths outside it; the
// standard library is free.
type rules map[string]*rule

type rule struct {
	prod, test map[string]bool
	line       int
}

// The allowed graph is the fenced block of docs/design.md that starts
// with this line.
const blockStart = "```deps"

// parseRules reads the deps block of the design document: lines
// "PKG: DEP DEP ..." for what a package may import and
// "PKG (test): DEP ..." for what its tests may import besides; "#" starts
// a comment; "." names the module's root package.
func parseRules(r io.Reader) (rules, error) {
	rs := rules{}
	sc := bufio.NewScanner(r)
	in := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case !in:
			in = line == blockStart
			continue
		case line == "```":
			return rs, nil
		}
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		head, deps, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: %q: want PKG: DEPS or PKG (test): DEPS", n, line)
		}
		head = strings.TrimSpace(head)
		pkg, test := strings.CutSuffix(head, " (test)")
		pkg = strings.TrimSpace(pkg)
		r := rs[pkg]
		if r == nil {
			r = &rule{prod: map[string]bool{}, test: map[string]bool{}, line: n}
			rs[pkg] = r
		}
		set := r.prod
		if test {
			set = r.test
		}
		for _, d := range strings.Fields(deps) {
			if set[d] {
				return nil, fmt.Errorf("line %d: %s lists %s twice", n, head, d)
			}
			set[d] = true
		}
	}
	if !in {
		return nil, fmt.Errorf("no %q block", blockStart)
	}
	return nil, fmt.Errorf("the %q block does not end", blockStart)
}

// pkg is what go list says of one package.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// standard reports whether path is in the standard library (its first
// element has no dot), or cgo's "C".
func standard(path string) bool {
	return !strings.Contains(strings.SplitN(path, "/", 2)[0], ".")
}

// check returns every import of pkgs that rs does not allow, every
// package without a rule and every rule without a package. module is the
// module path.
func check(rs rules, module string, pkgs []pkg) []string {
	rel := func(p string) string {
		if p == module {
			return "."
		}
		return strings.TrimPrefix(p, module+"/")
	}
	var bad []string
	seen := map[string]bool{}
	for _, p := range pkgs {
		name := rel(p.ImportPath)
		seen[name] = true
		r := rs[name]
		if r == nil {
			bad = append(bad, fmt.Sprintf("%s: no rule: add what it may import to the deps block of docs/design.md", name))
			continue
		}
		edge := func(imp string, test bool) {
			if standard(imp) {
				return
			}
			d := rel(imp)
			if r.prod[d] || (test && (r.test[d] || d == name)) {
				return
			}
			kind := "imports"
			if test {
				kind = "tests import"
			}
			bad = append(bad, fmt.Sprintf("%s %s %s: not in docs/design.md's deps block", name, kind, d))
		}
		for _, imp := range p.Imports {
			edge(imp, false)
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			edge(imp, true)
		}
	}
	for name, r := range rs {
		if !seen[name] {
			bad = append(bad, fmt.Sprintf("rule at line %d for %s, which is no package of the module", r.line, name))
		}
	}
	sort.Strings(bad)
	return bad
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// TestPackageGraph lists the module's packages with go list (for every
// build context's files: GOOS and cgo choose nothing here, tags do not
// hide an edge) and checks each import against docs/design.md.
func TestPackageGraph(t *testing.T) {
	root := moduleRoot(t)
	f, err := os.Open(filepath.Join(root, "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, err := parseRules(f)
	if err != nil {
		t.Fatalf("docs/design.md: %v", err)
	}
	var pkgs []pkg
	var module string
	// One list per platform the project builds for: files behind build
	// constraints (_linux.go, cgo) count on the platform that builds them.
	for _, env := range [][]string{{"GOOS=linux", "CGO_ENABLED=1"}, {"GOOS=linux", "CGO_ENABLED=0"}, {"GOOS=darwin", "CGO_ENABLED=0"}} {
		cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Module", "./...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list (%v): %v\n%s", env, err, stderr.Bytes())
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var p struct {
				pkg
				Module struct{ Path string }
			}
			if err := dec.Decode(&p); err != nil {
				t.Fatal(err)
			}
			module = p.Module.Path
			pkgs = append(pkgs, p.pkg)
		}
	}
	for _, b := range slices.Compact(check(rs, module, pkgs)) {
		t.Error(b)
	}
}

// TestCheckFindsForbiddenEdges: the checker itself, on a made-up graph.
func TestCheckFindsForbiddenEdges(t *testing.T) {
	rs, err := parseRules(strings.NewReader("intro\n```deps\n# the core\nnvmeof:\ntarget: nvmeof golang.org/x/sys/unix\ntarget (test): internal/peer\ngone:\n```\n"))
	if err != nil {
		t.Fatal(err)
	}
	const m = "example.com/m"
	got := check(rs, m, []pkg{
		{ImportPath: m + "/nvmeof", Imports: []string{"fmt", m + "/target"}},
		{ImportPath: m + "/target", Imports: []string{"C", m + "/nvmeof", "golang.org/x/sys/unix"},
			TestImports: []string{m + "/internal/peer"}, XTestImports: []string{m + "/target", m + "/initiator"}},
		{ImportPath: m + "/initiator"},
	})
	want := []string{
		"initiator: no rule: add what it may import to the deps block of docs/design.md",
		"nvmeof imports target: not in docs/design.md's deps block",
		"rule at line 7 for gone, which is no package of the module",
		"target tests import initiator: not in docs/design.md's deps block",
	}
	if !slices.Equal(got, want) {
		t.Errorf("check found\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := parseRules(strings.NewReader("```deps\nno colon here\n```\n")); err == nil {
		t.Error("a line without a colon parsed")
	}
}
