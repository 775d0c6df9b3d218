//go:build !linux

package bench

import (
	"fmt"
	"os"

	"github.com/flashpath/flashpath/internal/platform"
)

// fileSize is the size of a regular file; block devices are Linux only.
func fileSize(name string) (int64, error) {
	st, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, fmt.Errorf("%s: the size of a device: %w", name, platform.ErrNotSupported)
	}
	return st.Size(), nil
}
