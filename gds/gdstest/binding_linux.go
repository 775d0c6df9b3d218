//go:build cgo

package gdstest

// binding is nil: this build has gds/internal/cuda's cgo binding, which
// loads the fakes.
var binding error
