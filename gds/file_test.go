package gds

import (
	"strings"
	"testing"
)

// TestChoosePath: the path policy alone, without a file or cuFile. A read
// of a file mostly in the page cache goes bounce without asking cuFile;
// any other file goes cufile only with true GDS; a path asked for is
// taken as it is.
func TestChoosePath(t *testing.T) {
	auto := Options{}.withDefaults()
	gds := CuFileStatus{Available: true, Usable: true, TrueGDS: true, Reason: "true GDS (nvidia-fs 2.17)"}
	compat := CuFileStatus{Available: true, Usable: true, CompatMode: true, Reason: "compat mode"}
	off := CuFileStatus{Available: true, Reason: "compat mode is off"}
	absent := CuFileStatus{Reason: "libcufile.so.0 not found"}
	for _, tc := range []struct {
		name   string
		o      Options
		write  bool
		size   int64
		cached float64
		cf     *CuFileStatus // nil: the policy must not probe
		want   Path
		reason string
	}{
		{"cached read", auto, false, 1 << 20, 0.9, nil, PathBounce, "90% of the file is in the page cache"},
		{"cached read, true GDS", auto, false, 1 << 20, 0.5, nil, PathBounce, "page cache"},
		{"uncached read, true GDS", auto, false, 1 << 20, 0.1, &gds, PathCuFile, "cuFile true GDS"},
		{"empty file", auto, false, 0, 1, &gds, PathCuFile, "cuFile true GDS"},
		{"write, true GDS", auto, true, 1 << 20, 1, &gds, PathCuFile, "cuFile true GDS"},
		{"compat mode", auto, false, 1 << 20, 0, &compat, PathBounce, "cuFile in compat mode; the bounce pipeline is faster"},
		{"compat mode off", auto, true, 0, 0, &off, PathBounce, "cuFile compat mode is off"},
		{"no cuFile", auto, false, 1 << 20, 0, &absent, PathBounce, "cuFile unavailable (libcufile.so.0 not found)"},
		{"asked for cufile", Options{Path: PathCuFile}.withDefaults(), false, 1 << 20, 1, nil, PathCuFile, "requested with --gpu-path cufile"},
		{"asked for bounce", Options{Path: PathBounce}.withDefaults(), true, 1 << 20, 0, nil, PathBounce, "requested with --gpu-path bounce"},
	} {
		probed := false
		got, reason := choosePath(tc.o, tc.write, tc.size, tc.cached, func() CuFileStatus {
			probed = true
			if tc.cf == nil {
				t.Errorf("%s: probed cuFile", tc.name)
				return CuFileStatus{}
			}
			return *tc.cf
		})
		if got != tc.want || !strings.Contains(reason, tc.reason) {
			t.Errorf("%s: %s (%s), want %s (%s)", tc.name, got, reason, tc.want, tc.reason)
		}
		if tc.cf != nil && !probed {
			t.Errorf("%s: did not probe cuFile", tc.name)
		}
	}
}
