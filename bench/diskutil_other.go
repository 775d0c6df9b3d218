//go:build !linux

package bench

// diskUtil has nothing to sample off Linux: fio's disk_util reads
// /sys/block.
type diskUtil struct{}

func startDiskUtil([]*Job) *diskUtil  { return nil }
func (*diskUtil) stop() []fioDiskUtil { return nil }
func blockDirOf(string) string        { return "" }
