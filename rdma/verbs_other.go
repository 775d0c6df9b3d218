//go:build !linux || !cgo

package rdma

import (
	"fmt"
	"runtime"
)

// Verbs returns the libibverbs/librdmacm provider, which needs Linux and
// cgo: this build lacks one, so it always fails with ErrNotSupported.
func Verbs() (Provider, error) {
	return nil, fmt.Errorf("%w: the verbs provider needs a Linux build with cgo (CGO_ENABLED=1); this one is %s/%s",
		errUnavailable, runtime.GOOS, runtime.GOARCH)
}
