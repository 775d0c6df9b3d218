package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashpath/flashpath/target/tcp"
)

// collector exposes the target's plain counters to Prometheus at scrape time.
type collector struct {
	s *Server

	controllers, connects, connectErrors, kaExpired, protoErrors, noBuffer, accepted, rejected *prometheus.Desc
	auths, authFailures, hostBufLimited, bufHeld, logSuppressed                                *prometheus.Desc
	tlsHandshakes, tlsFailures, plainRefused                                                   *prometheus.Desc
	nsOps, nsBytes, nsErrors, nsSize                                                           *prometheus.Desc
}

func newCollector(s *Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("flashpath_target_"+name, help, labels, nil)
	}
	return &collector{
		s:              s,
		controllers:    d("controllers", "Live controllers."),
		connects:       d("connects_total", "Successful Connect commands (admin and I/O queues)."),
		connectErrors:  d("connect_errors_total", "Refused Connect commands."),
		kaExpired:      d("keepalive_expired_total", "Controllers deleted because their keep-alive timer expired."),
		protoErrors:    d("protocol_errors_total", "Connections terminated for transport protocol errors."),
		noBuffer:       d("buffer_shortages_total", "Commands failed because the data buffer pool was exhausted."),
		logSuppressed:  d("log_lines_suppressed_total", "Warning and error lines held back by the log rate limits (a burst of 10, then one a second per kind)."),
		bufHeld:        d("buffer_bytes_held", "Data buffer memory held by commands in flight (at most buffer_memory)."),
		hostBufLimited: d("host_buffer_limited_total", "Commands failed because their host address held its share of the buffer pool (max_host_buffer), or the pool was down to its reserve."),
		auths:          d("authentications_total", "Queues whose host authenticated (DH-HMAC-CHAP)."),
		authFailures:   d("authentication_failures_total", "Failed DH-HMAC-CHAP transactions: wrong keys, or hosts that do not follow the protocol."),
		tlsHandshakes:  d("tls_handshakes_total", "NVMe/TCP connections that completed the TLS handshake.", "listener"),
		tlsFailures:    d("tls_handshake_failures_total", "NVMe/TCP TLS handshakes that failed: an unknown PSK identity, a wrong key, a timeout.", "listener"),
		plainRefused:   d("tls_plain_refused_total", "Plain NVMe/TCP connections closed by a listener with tls=required.", "listener"),
		accepted:       d("connections_accepted_total", "Transport connections accepted.", "listener", "trtype"),
		rejected:       d("connections_rejected_total", "Transport connections refused: NVMe/RDMA private data, or over the NVMe/TCP connection limits.", "listener", "trtype"),
		nsOps:          d("namespace_commands_total", "I/O commands completed successfully.", "subsys", "nsid", "op"),
		nsBytes:        d("namespace_bytes_total", "Bytes moved.", "subsys", "nsid", "op"),
		nsErrors:       d("namespace_errors_total", "I/O commands failed by the backend.", "subsys", "nsid"),
		nsSize:         d("namespace_size_bytes", "Namespace capacity.", "subsys", "nsid"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	t := c.s.Target
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(c.controllers, prometheus.GaugeValue, float64(t.Controllers()))
	counter(c.connects, t.Stats.Connects.Load())
	counter(c.connectErrors, t.Stats.ConnectErrors.Load())
	counter(c.kaExpired, t.Stats.KeepAliveExpired.Load())
	counter(c.protoErrors, t.Stats.ProtocolErrors.Load())
	counter(c.noBuffer, t.Stats.BufferShortages.Load())
	counter(c.auths, t.Stats.Authentications.Load())
	counter(c.hostBufLimited, t.Stats.HostBufferLimited.Load())
	c.s.lnMu.Lock()
	defer c.s.lnMu.Unlock()
	suppressed := t.LogSuppressed()
	for _, ln := range c.s.Listeners {
		suppressed += ln.LogSuppressed()
	}
	for _, ln := range c.s.RDMA {
		suppressed += ln.LogSuppressed()
	}
	counter(c.logSuppressed, suppressed)
	ch <- prometheus.MustNewConstMetric(c.bufHeld, prometheus.GaugeValue, float64(t.BufferHeld()))
	counter(c.authFailures, t.Stats.AuthFailures.Load())
	for _, ln := range c.s.Listeners {
		counter(c.accepted, ln.Accepted.Load(), ln.Addr().String(), "tcp")
		counter(c.rejected, ln.Rejected.Load(), ln.Addr().String(), "tcp")
		if ln.TLS() != tcp.TLSOff {
			counter(c.tlsHandshakes, ln.TLSHandshakes.Load(), ln.Addr().String())
			counter(c.tlsFailures, ln.TLSFailures.Load(), ln.Addr().String())
			counter(c.plainRefused, ln.PlainRefused.Load(), ln.Addr().String())
		}
	}
	for _, ln := range c.s.RDMA {
		counter(c.accepted, ln.Accepted.Load(), ln.Addr().String(), "rdma")
		counter(c.rejected, ln.Rejected.Load(), ln.Addr().String(), "rdma")
	}
	for _, ss := range t.Subsystems() {
		for _, ns := range ss.Namespaces() {
			id := fmt.Sprint(ns.ID)
			st := ns.Stats()
			counter(c.nsOps, st.Reads, ss.NQN(), id, "read")
			counter(c.nsOps, st.Writes, ss.NQN(), id, "write")
			counter(c.nsBytes, st.BytesRead, ss.NQN(), id, "read")
			counter(c.nsBytes, st.BytesWritten, ss.NQN(), id, "write")
			counter(c.nsErrors, st.Errors, ss.NQN(), id)
			ch <- prometheus.MustNewConstMetric(c.nsSize, prometheus.GaugeValue, float64(ns.Backend.Size()), ss.NQN(), id)
		}
	}
}
