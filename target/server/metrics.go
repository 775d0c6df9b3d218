package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/tcp"
)

// collector exposes the target's plain counters to Prometheus at scrape
// time: the I/O path only adds to atomics and bucket arrays kept on the
// namespaces and hosts (target/iostats.go); the metrics are made here.
type collector struct {
	s *Server

	controllers, connects, connectErrors, kaExpired, protoErrors, noBuffer, accepted, rejected *prometheus.Desc
	resvConflicts, resvPreempted                                                               *prometheus.Desc
	auths, authFailures, hostBufLimited, bufHeld, logSuppressed                                *prometheus.Desc
	tlsHandshakes, tlsFailures, plainRefused                                                   *prometheus.Desc
	nsOps, nsBytes, nsErrors, nsSize, nsLatency, nsInFlight, nsSendfile                        *prometheus.Desc
	adminCmds, ctrlDeleted, reconnects, ctrlQueues, ctrlDepth                                  *prometheus.Desc
	hostCtrls, hostConns, hostConnects, hostReconnects, hostBytes                              *prometheus.Desc
}

// latencyBounds are target.LatencyBuckets in seconds.
var latencyBounds = func() (b [len(target.LatencyBuckets)]float64) {
	for i, d := range target.LatencyBuckets {
		b[i] = d.Seconds()
	}
	return b
}()

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
		resvConflicts:  d("reservation_conflicts_total", "I/O commands refused by a namespace's reservation (status Reservation Conflict)."),
		resvPreempted:  d("reservation_preemptions_total", "Host registrations removed by a Reservation Acquire that preempted them (a failover fencing the old host)."),
		protoErrors:    d("protocol_errors_total", "Connections terminated for transport protocol errors, by kind: the NVMe/TCP fatal error status (invalid_pdu, pdu_sequence, header_digest, data_out_of_range, data_limit_exceeded, unsupported_parameter) or data_digest.", "kind"),
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
		nsOps:          d("namespace_commands_total", "I/O commands completed successfully, by operation (read, write, compare, flush, write_zeroes, deallocate, other: Dataset Management hints).", "subsys", "nsid", "op"),
		nsBytes:        d("namespace_bytes_total", "Bytes the successful commands moved (read, write, compare) or covered (write_zeroes, deallocate).", "subsys", "nsid", "op"),
		nsErrors:       d("namespace_errors_total", "I/O commands the namespace's backend failed.", "subsys", "nsid", "op"),
		nsLatency:      d("namespace_latency_seconds", "Latency of the successful I/O commands, from their execution on the target (their data received) to their completion handed to the transport. Present for an operation once it has run.", "subsys", "nsid", "op"),
		nsInFlight:     d("namespace_in_flight", "Commands running on the namespace's backend now.", "subsys", "nsid"),
		nsSize:         d("namespace_size_bytes", "Namespace capacity.", "subsys", "nsid"),
		nsSendfile:     d("namespace_sendfile_bytes_total", "Of the bytes reads moved, those sent straight from the page cache into the socket (sendfile), with no copy in the target: reads of 256 KiB or more from buffered file namespaces, over NVMe/TCP without data digest or TLS.", "subsys", "nsid"),
		adminCmds:      d("admin_commands_total", "Admin commands run by the subsystem's controllers (the discovery subsystem's included).", "subsys"),
		ctrlDeleted:    d("controllers_deleted_total", "I/O controllers deleted, by reason: shutdown (by the host), keep_alive (expired), connection_lost (the admin connection went without a shutdown), removed (subsystem removed, target stopping).", "reason"),
		reconnects:     d("reconnects_total", "Controllers a host created on a path (subsystem and target address) where it had one before."),
		ctrlQueues:     d("controller_io_queues", "I/O queues connected on the controller; ctrl=\"other\" sums the controllers of the hosts beyond metrics_max_hosts.", "subsys", "host", "ctrl"),
		ctrlDepth:      d("controller_queue_depth", "Commands outstanding on the controller's I/O queues: received from the host and not yet completed.", "subsys", "host", "ctrl"),
		hostCtrls:      d("host_controllers", "Controllers of the host now (discovery included); host=\"other\" counts the hosts beyond metrics_max_hosts.", "host"),
		hostConns:      d("host_connections", "Queues (connections) of the host connected now.", "host"),
		hostConnects:   d("host_connects_total", "Queues the host connected.", "host"),
		hostReconnects: d("host_reconnects_total", "Controllers the host created on a path where it had one before.", "host"),
		hostBytes:      d("host_bytes_total", "Data the host read (dir=\"read\") and wrote (dir=\"write\").", "host", "dir"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	t := c.s.Target
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.controllers, float64(t.Controllers()))
	counter(c.connects, t.Stats.Connects.Load())
	counter(c.connectErrors, t.Stats.ConnectErrors.Load())
	counter(c.kaExpired, t.Stats.KeepAliveExpired.Load())
	counter(c.resvConflicts, t.Stats.ResvConflicts.Load())
	counter(c.resvPreempted, t.Stats.ResvPreempted.Load())
	for k := range target.NumProtocolErrorKinds {
		counter(c.protoErrors, t.Stats.ProtocolErrorKinds[k].Load(), k.String())
	}
	for r := range target.NumDeleteReasons {
		counter(c.ctrlDeleted, t.Stats.ControllersDeleted[r].Load(), r.String())
	}
	counter(c.reconnects, t.Stats.Reconnects.Load())
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
	gauge(c.bufHeld, float64(t.BufferHeld()))
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
	counter(c.adminCmds, t.Discovery().AdminCommands(), t.Discovery().NQN())
	for _, ss := range t.Subsystems() {
		counter(c.adminCmds, ss.AdminCommands(), ss.NQN())
		for _, ns := range ss.Namespaces() {
			c.collectNamespace(ch, ss.NQN(), ns)
		}
		c.collectControllers(ch, ss)
	}
	for _, h := range t.HostStats() {
		gauge(c.hostCtrls, float64(h.Controllers), h.Host)
		gauge(c.hostConns, float64(h.Queues), h.Host)
		counter(c.hostConnects, h.QueuesConnected, h.Host)
		counter(c.hostReconnects, h.Reconnects, h.Host)
		counter(c.hostBytes, h.BytesRead, h.Host, "read")
		counter(c.hostBytes, h.BytesWritten, h.Host, "write")
	}
}

func (c *collector) collectNamespace(ch chan<- prometheus.Metric, nqn string, ns *target.Namespace) {
	id := fmt.Sprint(ns.ID)
	st := ns.Stats()
	for op := range target.NumOps {
		o := &st.Ops[op]
		name := op.String()
		ch <- prometheus.MustNewConstMetric(c.nsOps, prometheus.CounterValue, float64(o.Commands), nqn, id, name)
		ch <- prometheus.MustNewConstMetric(c.nsErrors, prometheus.CounterValue, float64(o.Errors), nqn, id, name)
		switch op {
		case target.OpFlush, target.OpOther:
		default:
			ch <- prometheus.MustNewConstMetric(c.nsBytes, prometheus.CounterValue, float64(o.Bytes), nqn, id, name)
		}
		if o.Commands == 0 {
			continue // an operation's histogram appears once it has run
		}
		buckets := make(map[float64]uint64, len(latencyBounds))
		var cum uint64
		for i, le := range latencyBounds {
			cum += o.Latency[i]
			buckets[le] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.nsLatency, o.Commands, o.LatencySum.Seconds(), buckets, nqn, id, name)
	}
	ch <- prometheus.MustNewConstMetric(c.nsInFlight, prometheus.GaugeValue, float64(ns.InFlight()), nqn, id)
	ch <- prometheus.MustNewConstMetric(c.nsSize, prometheus.GaugeValue, float64(ns.Backend.Size()), nqn, id)
	ch <- prometheus.MustNewConstMetric(c.nsSendfile, prometheus.CounterValue, float64(st.BytesFromFile), nqn, id)
}

// collectControllers reports each controller's I/O queues and the
// commands outstanding on them; those of the hosts beyond the cap are
// summed under ctrl="other", so that the series stay bounded.
func (c *collector) collectControllers(ch chan<- prometheus.Metric, ss *target.Subsystem) {
	var otherQueues, otherDepth, others int
	for _, ctl := range ss.Controllers() {
		queues, depth := 0, 0
		for _, q := range ctl.Queues() {
			if q.QID == 0 || q.State != target.QueueEnabled {
				continue
			}
			queues++
			depth += max(q.Outstanding, 0)
		}
		host := ctl.HostLabel()
		if host == target.OtherHosts {
			otherQueues += queues
			otherDepth += depth
			others++
			continue
		}
		id := fmt.Sprint(ctl.ID())
		ch <- prometheus.MustNewConstMetric(c.ctrlQueues, prometheus.GaugeValue, float64(queues), ss.NQN(), host, id)
		ch <- prometheus.MustNewConstMetric(c.ctrlDepth, prometheus.GaugeValue, float64(depth), ss.NQN(), host, id)
	}
	if others > 0 {
		ch <- prometheus.MustNewConstMetric(c.ctrlQueues, prometheus.GaugeValue, float64(otherQueues), ss.NQN(), target.OtherHosts, target.OtherHosts)
		ch <- prometheus.MustNewConstMetric(c.ctrlDepth, prometheus.GaugeValue, float64(otherDepth), ss.NQN(), target.OtherHosts, target.OtherHosts)
	}
}
