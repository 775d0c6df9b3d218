package daemon

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is the flashpath version the daemons' metrics report
// (flashpath_build_info); cmd/flashpath sets it to its own.
var Version = "dev"

// buildInfo is flashpath_build_info{version, goversion}, always 1, as
// Prometheus' own prometheus_build_info: group_left joins it onto other
// series, and a fleet's versions are one query away.
func buildInfo() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "flashpath_build_info",
		Help:        "Always 1: the version of flashpath and of Go it was built with.",
		ConstLabels: prometheus.Labels{"version": Version, "goversion": runtime.Version()},
	}, func() float64 { return 1 })
}
