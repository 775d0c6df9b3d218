package bench

import (
	"os"

	"golang.org/x/sys/unix"
)

// fileSize is the size of a regular file or a block device (BLKGETSIZE64).
func fileSize(name string) (int64, error) {
	st, err := os.Stat(name)
	if err != nil {
		return 0, err
	}
	if st.Mode()&os.ModeDevice == 0 {
		return st.Size(), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return 0, os.NewSyscallError("ioctl BLKGETSIZE64", err)
	}
	return int64(n), nil
}
