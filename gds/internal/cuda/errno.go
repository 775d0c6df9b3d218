package cuda

import "syscall"

func errnoErr(n int) error { return syscall.Errno(n) }
