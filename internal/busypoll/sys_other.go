//go:build !unix

package busypoll

import "syscall"

// Elsewhere every try finds nothing: the reader parks after the window.
func readNonblock(int, []byte) (int, error) { return 0, syscall.EAGAIN }

type pollFd struct{}

func pollIn(int32) pollFd { return pollFd{} }

func anyReadable([]pollFd) bool { return false }
