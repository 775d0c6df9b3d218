package bench

import (
	"fmt"
	"os"
)

// LayoutFile writes [from, to) of a regular file with non-zero data and
// syncs it, as fio lays out a file shorter than the job needs before the
// job starts. Engines that open files call it.
func LayoutFile(name string, from, to int64) error {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*131 + 7)
	}
	for off := from; off < to; {
		n := min(int64(len(buf)), to-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return fmt.Errorf("lay out %s: %w", name, err)
		}
		off += n
	}
	return f.Sync()
}
