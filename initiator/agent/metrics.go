package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the kernel host's NVMe-oF controllers and their
// namespaces' I/O counters (read from sysfs at scrape time), and the
// agent's own counters, to Prometheus.
type Collector struct {
	a *Agent

	passes, connects, connectErrors, discoveries, discoveryErrors, wanted *prometheus.Desc
	ctrlInfo, ctrlLive                                                    *prometheus.Desc
	nsIOs, nsBytes, nsTicks, nsInFlight                                   *prometheus.Desc
	pathState                                                             *prometheus.Desc
}

// NewCollector returns the agent's metrics collector.
func NewCollector(a *Agent) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("flashpath_initiator_"+name, help, labels, nil)
	}
	return &Collector{
		a:               a,
		passes:          d("passes_total", "Checks that every configured subsystem is connected."),
		connects:        d("connects_total", "Controllers connected through the kernel host."),
		connectErrors:   d("connect_errors_total", "Connects that failed."),
		discoveries:     d("discoveries_total", "Discovery logs read."),
		discoveryErrors: d("discovery_errors_total", "Discovery log reads that failed."),
		wanted:          d("subsystems_wanted", "Subsystems configured or discovered at the last check."),
		ctrlInfo:        d("controller_info", "An NVMe-oF controller of the kernel host (1), with its state.", "ctrl", "subsys", "transport", "traddr", "trsvcid", "state"),
		ctrlLive:        d("controller_live", "1 when the controller is live, 0 while it reconnects or resets.", "ctrl", "subsys"),
		nsIOs:           d("namespace_ios_total", "I/Os completed on the namespace's block device.", "device", "subsys", "op"),
		nsBytes:         d("namespace_bytes_total", "Bytes moved on the namespace's block device.", "device", "subsys", "op"),
		nsTicks:         d("namespace_io_seconds_total", "Time spent on I/Os (the block layer's read/write ticks).", "device", "subsys", "op"),
		nsInFlight:      d("namespace_in_flight", "I/Os in flight on the namespace's block device.", "device", "subsys"),
		pathState:       d("path_state", "1 for the state of each subsystem the last check wanted, at its address: connected (the kernel's controller is live), connecting (reconnecting or resetting) or failed (no controller: the connect failed, or the kernel gave up); 0 for the other two.", "subsys", "transport", "traddr", "trsvcid", "state"),
	}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.passes, float64(a.passes.Load()))
	counter(c.connects, float64(a.connects.Load()))
	counter(c.connectErrors, float64(a.connectErrors.Load()))
	counter(c.discoveries, float64(a.discoveries.Load()))
	counter(c.discoveryErrors, float64(a.discoveryErrors.Load()))
	gauge(c.wanted, float64(a.Last().Wanted))
	ctrls, err := a.host.Controllers()
	if err != nil {
		a.log.Warn("metrics: list controllers", "err", err)
		return
	}
	for _, p := range a.Paths(ctrls) {
		for _, st := range []string{PathConnected, PathConnecting, PathFailed} {
			v := 0.0
			if p.State == st {
				v = 1
			}
			gauge(c.pathState, v, p.NQN, p.Transport, p.TrAddr, p.TrSvcID, st)
		}
	}
	seen := map[string]bool{}
	for i := range ctrls {
		k := &ctrls[i]
		if !k.Fabrics() {
			continue
		}
		gauge(c.ctrlInfo, 1, k.Name, k.SubNQN, k.Transport, k.TrAddr, k.TrSvcID, k.State)
		live := 0.0
		if k.State == "live" {
			live = 1
		}
		gauge(c.ctrlLive, live, k.Name, k.SubNQN)
		for _, dev := range k.Namespaces {
			// With multipath, every controller of a subsystem lists its heads.
			if seen[dev] {
				continue
			}
			seen[dev] = true
			st, err := a.host.Stat(dev)
			if err != nil {
				continue // removed while scraped
			}
			counter(c.nsIOs, float64(st.ReadIOs), dev, k.SubNQN, "read")
			counter(c.nsIOs, float64(st.WriteIOs), dev, k.SubNQN, "write")
			counter(c.nsBytes, float64(st.ReadBytes), dev, k.SubNQN, "read")
			counter(c.nsBytes, float64(st.WriteBytes), dev, k.SubNQN, "write")
			counter(c.nsTicks, float64(st.ReadTicks)/1e3, dev, k.SubNQN, "read")
			counter(c.nsTicks, float64(st.WriteTicks)/1e3, dev, k.SubNQN, "write")
			gauge(c.nsInFlight, float64(st.InFlight), dev, k.SubNQN)
		}
	}
}
