//go:build cgo

package gdstest

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// alloc_device asks the loaded fake libcuda (path) where p was allocated;
// RTLD_NOLOAD: only the library the binding already opened.
static int alloc_device(const char *path, unsigned long long p) {
	void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (!lib)
		return -3;
	int (*f)(unsigned long long) = (int (*)(unsigned long long))dlsym(lib, "fakecuda_alloc_device");
	int dev = f ? f(p) : -3;
	dlclose(lib);
	return dev;
}
*/
import "C"

import (
	"os"
	"unsafe"
)

// errBinding is nil: this build has gds/internal/cuda's cgo binding, which
// loads the fakes.
var errBinding error

func allocDevice(p uint64) int {
	cs := C.CString(os.Getenv("FLASHPATH_LIBCUDA"))
	defer C.free(unsafe.Pointer(cs))
	return int(C.alloc_device(cs, C.ulonglong(p)))
}
