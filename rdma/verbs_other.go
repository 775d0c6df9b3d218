//go:build !linux || !cgo

package rdma

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrNotSupported is wrapped by the errors that mean this machine lacks
// rdma-core or an RDMA device at the address asked for: callers fall back,
// tests skip.
var ErrNotSupported = errors.New("RDMA unavailable")

// Verbs returns the libibverbs/librdmacm provider, which needs Linux and
// cgo: this build lacks one, so it always fails with ErrNotSupported.
func Verbs() (Provider, error) {
	return nil, fmt.Errorf("%w: the verbs provider needs a Linux build with cgo (CGO_ENABLED=1); this one is %s/%s",
		ErrNotSupported, runtime.GOOS, runtime.GOARCH)
}
