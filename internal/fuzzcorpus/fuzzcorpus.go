// Package fuzzcorpus writes seed inputs of a []byte fuzz target as a Go
// fuzzing corpus (testdata/fuzz/<Target>/<name>), for tests that generate
// their seeds from protocol encoders.
package fuzzcorpus

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write writes each seed to testdata/fuzz/target/name in the "go test fuzz
// v1" format, relative to the package directory the test runs in.
func Write(target string, seeds map[string][]byte) error {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}
