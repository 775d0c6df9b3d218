package main

import (
	"runtime/debug"

	"github.com/flashpath/flashpath/internal/daemon"
)

// The daemons' flashpath_build_info reports the version `flashpath
// version` prints.
func init() { daemon.Version = fullVersion() }

// fullVersion is version, or for a build without one (go build, go run)
// "dev-" and the commit's first 12 hex digits where Go recorded it.
func fullVersion() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v = "dev-" + s.Value[:12]
			}
		}
	}
	return v
}
