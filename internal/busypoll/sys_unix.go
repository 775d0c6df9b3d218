//go:build unix

package busypoll

import "syscall"

func readNonblock(fd int, p []byte) (int, error) { return syscall.Read(fd, p) }
