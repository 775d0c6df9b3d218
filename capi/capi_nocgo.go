//go:build !cgo

package main

import (
	"fmt"
	"os"
)

// Without cgo there is no C ABI to export: the command only says how to
// build the library.
func main() {
	fmt.Fprintln(os.Stderr, "capi is flashpath's C ABI, a shared library that needs cgo: "+
		"build it with CGO_ENABLED=1 go build -buildmode=c-shared -o libflashpath.so ./capi")
	os.Exit(2)
}
