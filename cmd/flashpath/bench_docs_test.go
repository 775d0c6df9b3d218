package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/bench"
)

// updateDocs rewrites the generated files instead of checking them (go
// generate ./cmd/flashpath sets it).
var updateDocs = os.Getenv("FLASHPATH_UPDATE_DOCS") == "1"

const (
	optionDocs    = "../../docs/bench-options.md"
	readme        = "../../README.md"
	refusedBegin  = "<!-- generated from bench's option table by go generate ./cmd/flashpath: begin -->\n"
	refusedEnd    = "<!-- generated: end -->\n"
	regenerateHow = "run go generate ./cmd/flashpath"
)

// TestBenchOptionDocs: docs/bench-options.md and the README's list of
// refused options are what the option table (with every engine this
// binary registers) generates.
func TestBenchOptionDocs(t *testing.T) {
	var docs bytes.Buffer
	bench.WriteOptionDocs(&docs)
	checkGenerated(t, optionDocs, docs.Bytes())

	var list bytes.Buffer
	bench.WriteRefusedList(&list)
	old, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	s := string(old)
	i, j := strings.Index(s, refusedBegin), strings.Index(s, refusedEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the markers %q and %q", refusedBegin, refusedEnd)
	}
	want := s[:i] + refusedBegin + list.String() + s[j:]
	checkGenerated(t, readme, []byte(want))
}

func checkGenerated(t *testing.T, path string, want []byte) {
	t.Helper()
	if updateDocs {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (%s)", err, regenerateHow)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what the option table generates: %s", path, regenerateHow)
	}
}
