// Package testutil holds helpers shared by flashpath's tests.
package testutil

import (
	"errors"
	"testing"

	"github.com/flashpath/flashpath/internal/platform"
)

// SkipIfNotSupported skips the test when err wraps
// platform.ErrNotSupported (this machine or build lacks what the test
// needs; the message says what) and fails it on any other error.
func SkipIfNotSupported(tb testing.TB, err error) {
	tb.Helper()
	switch {
	case err == nil:
	case errors.Is(err, platform.ErrNotSupported):
		tb.Skip(err)
	default:
		tb.Fatal(err)
	}
}
