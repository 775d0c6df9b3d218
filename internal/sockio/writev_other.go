//go:build !(linux || darwin)

package sockio

import "syscall"

// Elsewhere the writer uses net.Buffers on the connection.
const rawWritev = false

const maxIovecs = 1024

type iovec struct{}

func makeIovec([]byte) iovec { return iovec{} }

func writev(uintptr, []iovec) (int, syscall.Errno) { return 0, syscall.ENOSYS }
