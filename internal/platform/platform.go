// Package platform holds the one error that flashpath wraps wherever this
// machine or this build lacks what a feature needs: an operating system
// other than Linux, a build without cgo, a missing library (libcuda,
// libcufile, rdma-core), driver, device or kernel feature (io_uring). The
// error's message says what to install, load or build with; callers may
// fall back, tests skip (internal/testutil.SkipIfNotSupported).
package platform

import "errors"

// ErrNotSupported is wrapped by every error that means "not on this
// machine or build". It is also errors.ErrUnsupported, so
// errors.Is(err, errors.ErrUnsupported) holds for it too.
var ErrNotSupported error = notSupported{}

type notSupported struct{}

func (notSupported) Error() string { return "not supported" }
func (notSupported) Unwrap() error { return errors.ErrUnsupported }

// Unavailable returns an error that reads msg and wraps ErrNotSupported,
// for messages that name what is missing in their own words ("RDMA
// unavailable: ...") rather than end in "not supported".
func Unavailable(msg string) error { return &unavailable{msg} }

type unavailable struct{ msg string }

func (e *unavailable) Error() string { return e.msg }
func (e *unavailable) Unwrap() error { return ErrNotSupported }
