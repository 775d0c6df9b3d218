//go:build cgo

package gdstest

// errBinding is nil: this build has gds/internal/cuda's cgo binding, which
// loads the fakes.
var errBinding error
