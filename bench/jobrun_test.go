package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// writeJob writes the job file text job to a temporary file and returns
// its path.
func writeJob(t *testing.T, job string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.fio")
	if err := os.WriteFile(path, []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runJobFile runs the job file text job; a job file that does not load
// fails the test.
func runJobFile(t *testing.T, job string) (*Report, error) {
	t.Helper()
	return runJobPath(t, writeJob(t, job))
}

// runJobPath runs the job file at path; a job file that does not load
// fails the test.
func runJobPath(t *testing.T, path string) (*Report, error) {
	t.Helper()
	jobs, err := LoadJobs([]string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return Run(context.Background(), Config{Jobs: jobs})
}

// mustRun is a report that must have come without an error.
func mustRun(t *testing.T) func(*Report, error) *Report {
	return func(rep *Report, err error) *Report {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
}
