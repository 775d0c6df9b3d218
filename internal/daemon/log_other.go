//go:build !unix

package daemon

import "os"

// fileID: no journald here.
func fileID(*os.File) (dev, ino uint64, ok bool) { return 0, 0, false }
