package csi

import (
	"syscall"
	"testing"
)

// TestMountFlags: StorageClass mountOptions such as noatime are mount(2)
// flags, not file-system data (ext4 refuses "noatime" there).
func TestMountFlags(t *testing.T) {
	flags, data := mountFlags([]string{"noatime", "discard", "nosuid", "rw", "stripe=4", "lazytime"})
	if flags != syscall.MS_NOATIME|syscall.MS_NOSUID|1<<25 || data != "discard,stripe=4" {
		t.Fatalf("flags %#x data %q", flags, data)
	}
}
