package testutil

import (
	"errors"
	"fmt"
	"testing"

	"github.com/flashpath/flashpath/internal/platform"
)

// recorder notes what SkipIfNotSupported asked of the test.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()      {}
func (r *recorder) Skip(...any)  { r.skipped = true }
func (r *recorder) Fatal(...any) { r.failed = true }

func TestSkipIfNotSupported(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		skip, fail bool
	}{
		{"nil", nil, false, false},
		{"not supported", fmt.Errorf("mem: needs Linux: %w", platform.ErrNotSupported), true, false},
		{"other", errors.New("permission denied"), false, true},
		{"same words", errors.New("not supported"), false, true},
	} {
		r := &recorder{}
		SkipIfNotSupported(r, tc.err)
		if r.skipped != tc.skip || r.failed != tc.fail {
			t.Errorf("%s: skipped %v failed %v, want %v %v", tc.name, r.skipped, r.failed, tc.skip, tc.fail)
		}
	}
}

func TestDirectIO(t *testing.T) {
	dir := t.TempDir()
	SkipIfNotSupported(t, DirectIO(dir))
	if err := DirectIO(dir + "/missing"); err == nil || errors.Is(err, platform.ErrNotSupported) {
		t.Errorf("DirectIO of a missing directory = %v, want an error other than not supported", err)
	}
}
