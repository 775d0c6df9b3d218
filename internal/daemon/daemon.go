// Package daemon holds what flashpath's daemons (the target and the
// initiator) share: their signals (Run: SIGTERM and SIGINT stop, SIGHUP
// reloads), systemd readiness (sd_notify), the Prometheus metrics
// endpoint and strict YAML/JSON configuration files.
package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/flashpath/flashpath/internal/suggest"
	"github.com/flashpath/flashpath/internal/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/yaml"
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
// runtime and process collectors, and flashpath_build_info) at http://addr/metrics, and Go's
// /debug/pprof/ profiles when profiles is set.
func ServeMetrics(addr string, profiles bool, log *slog.Logger, cs ...prometheus.Collector) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo())
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
	// net/http's own complaints (a bad request, say) go to the log as
	// records too, not as plain lines on stderr.
	m := &Metrics{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}}
	go m.srv.Serve(ln)
	log.Info("metrics endpoint", "addr", "http://"+ln.Addr().String()+"/metrics")
	return m, nil
}

// Addr is the endpoint's address.
func (m *Metrics) Addr() net.Addr { return m.ln.Addr() }

// Shutdown stops the endpoint.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.srv.Shutdown(ctx) }

// LoadConfig reads a YAML or JSON configuration file into a new T with
// Decode and hands it to validate; errors name the file.
func LoadConfig[T any](path string, validate func(*T) error) (*T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(b, validate)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// unknownField is the key named by encoding/json's error for a field the
// target struct lacks.
func unknownField(err error) (string, bool) {
	rest, ok := strings.CutPrefix(err.Error(), `json: unknown field "`)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, `"`)
	return name, ok && name != ""
}

// keyLine is the 1-based line of the first YAML key name in b (block
// "name:" or flow "{name: ...}", quoted or not), 0 if none.
func keyLine(b []byte, name string) int {
	for i, line := range strings.Split(string(b), "\n") {
		for _, k := range []string{name, `"` + name + `"`, "'" + name + "'"} {
			for at := 0; ; {
				j := strings.Index(line[at:], k)
				if j < 0 {
					break
				}
				j += at
				before := strings.TrimRight(line[:j], " \t")
				after := strings.TrimLeft(line[j+len(k):], " \t")
				if strings.HasPrefix(after, ":") && (before == "" || strings.HasSuffix(before, "-") || strings.HasSuffix(before, "{") || strings.HasSuffix(before, ",")) {
					return i + 1
				}
				at = j + len(k)
			}
		}
	}
	return 0
}

// ParseConfig decodes YAML or JSON (JSON is YAML) into a new T, unknown
// fields being errors, and hands it to validate.
func ParseConfig[T any](b []byte, validate func(*T) error) (*T, error) {
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	cfg := new(T)
	if err := dec.Decode(cfg); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Type == reflect.TypeFor[units.Duration]() && te.Field != "" {
			// The path of JSON keys, less the embedded structs' Go
			// names the decoder puts in it (the keys are lower case).
			path := slices.DeleteFunc(strings.Split(te.Field, "."), func(k string) bool { return k != "" && unicode.IsUpper(rune(k[0])) })
			return nil, fmt.Errorf("%s: %s", strings.Join(path, "."), te.Value)
		}
		if name, ok := unknownField(err); ok {
			hint := ""
			// A third of the name may be wrong: "x" suggests nothing. The
			// name itself may be a key at another level: not a hint.
			keys := slices.DeleteFunc(configKeys(reflect.TypeFor[T]()), func(k string) bool { return k == name })
			if near := suggest.Closest(name, keys, max(1, len(name)/3)+1); near != "" {
				hint = "; did you mean " + near + "?"
			}
			// The JSON decoder knows no lines: find the key in the YAML.
			if n := keyLine(b, name); n > 0 {
				return nil, fmt.Errorf("line %d: unknown field %q%s", n, name, hint)
			}
			return nil, fmt.Errorf("unknown field %q%s", name, hint)
		}
		return nil, err
	}
	if err := validate(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// configKeys is every key a configuration of type t takes, at any depth
// (fields of structs in fields, slices and maps), each once, in field
// order: the JSON names of exported fields, and those of embedded structs
// without a name of their own.
func configKeys(t reflect.Type) []string {
	var keys []string
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
			return // a value of its own (a duration, a size), not a key's parent
		}
		seen[t] = true
		for f := range t.Fields() {
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-":
				continue
			case name == "" && f.Anonymous:
			case name == "":
				name = f.Name
				fallthrough
			default:
				if !slices.Contains(keys, name) {
					keys = append(keys, name)
				}
			}
			walk(f.Type)
		}
	}
	walk(t)
	return keys
}
