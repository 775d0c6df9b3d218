// Package daemon holds what flashpath's daemons (the target and the
// initiator) share: systemd readiness (sd_notify) and the Prometheus
// metrics endpoint.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Notify sends a state line to systemd when NOTIFY_SOCKET is set (sd_notify
// protocol); it does nothing otherwise.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// Metrics is a running /metrics endpoint.
type Metrics struct {
	ln  net.Listener
	srv *http.Server
}

// ServeMetrics serves Prometheus metrics from the collectors (with Go's
// runtime and process collectors) at http://addr/metrics, and Go's
// /debug/pprof/ profiles when profiles is set.
func ServeMetrics(addr string, profiles bool, log *slog.Logger, cs ...prometheus.Collector) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	reg.MustRegister(cs...)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if profiles {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	m := &Metrics{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go m.srv.Serve(ln)
	log.Info("metrics endpoint", "addr", "http://"+ln.Addr().String()+"/metrics")
	return m, nil
}

// Addr is the endpoint's address.
func (m *Metrics) Addr() net.Addr { return m.ln.Addr() }

// Shutdown stops the endpoint.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.srv.Shutdown(ctx) }
