// Package gdstest builds the fake libcuda and libcufile of
// gds/internal/cuda/testdata and points the loader at them, so tests of the
// GPU data path run on machines without a GPU.
package gdstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/flashpath/flashpath/internal/testutil"
)

// Build compiles the fakes into dir and returns their paths.
func Build(dir string) (libcuda, libcufile string, err error) {
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "..", "internal", "cuda", "testdata")
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	libcuda = filepath.Join(dir, "libfakecuda.so")
	libcufile = filepath.Join(dir, "libfakecufile.so")
	for _, b := range [][2]string{{"fakecuda.c", libcuda}, {"fakecufile.c", libcufile}} {
		out, err := exec.Command(cc, "-shared", "-fPIC", "-O1", "-o", b[1], filepath.Join(src, b[0]), "-lpthread").CombinedOutput()
		if err != nil {
			return "", "", fmt.Errorf("build %s: %v\n%s", b[0], err, out)
		}
	}
	return libcuda, libcufile, nil
}

// Setup builds the fakes into a new temporary directory and sets
// FLASHPATH_LIBCUDA and FLASHPATH_LIBCUFILE. Call it from TestMain, before
// anything loads the driver; cleanup removes the directory.
func Setup() (cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "flashpath-fakecuda-")
	if err != nil {
		return nil, err
	}
	cuda, cufile, err := Build(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	os.Setenv("FLASHPATH_LIBCUDA", cuda)
	os.Setenv("FLASHPATH_LIBCUFILE", cufile)
	return func() { os.RemoveAll(dir) }, nil
}

// DevicesEnv is the fake libcuda's number of GPUs (default 1): set it
// (t.Setenv) before opening devices to test several.
const DevicesEnv = "FAKECUDA_DEVICES"

// AllocDevice returns the GPU on which the fake libcuda allocated the
// device memory holding p (the one whose context was current): -1 with no
// context current, -2 for memory the fake did not allocate (or has freed),
// -3 where the fake is not loaded.
func AllocDevice(p uint64) int { return allocDevice(p) }

// SkipWithoutBinding skips a test that needs the fakes where this build
// has no CUDA binding to load them with (no cgo, not Linux).
func SkipWithoutBinding(tb testing.TB) {
	tb.Helper()
	testutil.SkipIfNotSupported(tb, errBinding)
}

// Main is a TestMain body: it sets the fakes up, runs the tests, removes
// the fakes and exits with the tests' status.
func Main(m *testing.M) {
	cleanup, err := Setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}
