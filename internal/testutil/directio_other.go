//go:build !linux

package testutil

import (
	"fmt"
	"runtime"

	"github.com/flashpath/flashpath/internal/platform"
)

// DirectIO reports an error wrapping platform.ErrNotSupported: O_DIRECT
// is Linux's.
func DirectIO(dir string) error {
	return fmt.Errorf("O_DIRECT in %s: needs Linux, this is %s: %w", dir, runtime.GOOS, platform.ErrNotSupported)
}
