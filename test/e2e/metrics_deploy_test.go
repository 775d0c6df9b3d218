package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/initiator/agent"
	"github.com/flashpath/flashpath/initiator/kernel/kerneltest"
	"github.com/flashpath/flashpath/target/server"
)

// The operators' files: the Grafana dashboard and the Prometheus rules
// and their tests (README.md, Metrics).
const (
	dashboardFile = "../../deploy/grafana/flashpath.json"
	rulesFile     = "../../deploy/prometheus/flashpath-rules.yml"
	rulesTestFile = "../../deploy/prometheus/flashpath-rules.test.yml"
	promConfig    = "../../deploy/prometheus/prometheus.yml"
)

// needPromtool returns promtool's path, or skips: Debian's prometheus
// package has it (make deps installs it).
func needPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install Debian's prometheus package (apt-get install prometheus; make deps does) to check the rules")
	}
	return p
}

func promtool(t *testing.T, bin string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestPrometheusRules: the rules and the example configuration pass
// promtool's checks, the rules' unit tests pass, and they test every
// alert.
func TestPrometheusRules(t *testing.T) {
	bin := needPromtool(t)
	promtool(t, bin, "check", "rules", rulesFile)
	promtool(t, bin, "test", "rules", rulesTestFile)
	promtool(t, bin, "check", "config", promConfig)
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllSubmatch(rules, -1)
	if len(alerts) == 0 {
		t.Fatal("no alerts in the rules")
	}
	for _, a := range alerts {
		// An alert whose test expects it to fire: exp_alerts with labels.
		re := regexp.MustCompile(`alertname: ` + string(a[1]) + `\n\s*eval_time: \S+\n\s*exp_alerts:\n\s*- exp_labels`)
		if !re.Match(tests) {
			t.Errorf("alert %s: no test expects it to fire", a[1])
		}
	}
}

// dashboardExprs returns the PromQL of every panel target and template
// variable of the dashboard.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Type       string
				Definition string
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("panel %q: a target without a query", p.Title)
			}
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			// label_values(METRIC, label): the metric's selector.
			out = append(out, strings.TrimPrefix(strings.SplitN(v.Definition, ", ", 2)[0], "label_values("))
		}
	}
	return out
}

// TestDashboardQueriesParse: the dashboard's queries are valid PromQL
// (promtool checks them as recording rules, Grafana's variables replaced).
func TestDashboardQueriesParse(t *testing.T) {
	bin := needPromtool(t)
	vars := regexp.MustCompile(`\$\{?\w+\}?`)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range dashboardExprs(t) {
		e = strings.ReplaceAll(e, "$__rate_interval", "5m")
		e = vars.ReplaceAllString(e, ".*")
		js, _ := json.Marshal(e) // a JSON string is a YAML string
		b.WriteString("      - record: dashboard:q" + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "\n        expr: " + string(js) + "\n")
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, bin, "check", "rules", f)
}

// TestDashboardAndRulesMetricsExist: every flashpath metric the dashboard
// and the rules query is one the daemons export (a target that ran every
// operation, an initiator with a path), and every recorded series the
// dashboard reads is recorded by the rules: a renamed metric fails here,
// not on an operator's blank panel.
func TestDashboardAndRulesMetricsExist(t *testing.T) {
	exported := targetMetricNames(t)
	for _, n := range initiatorMetricNames(t) {
		exported[n] = true
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, m := range regexp.MustCompile(`record: (\S+)`).FindAllSubmatch(rules, -1) {
		recorded[string(m[1])] = true
	}
	names := regexp.MustCompile(`\bflashpath[_:][a-zA-Z0-9_:]+`)
	check := func(where, expr string) {
		for _, n := range names.FindAllString(expr, -1) {
			if strings.Contains(n, ":") {
				if !recorded[n] {
					t.Errorf("%s: %s is recorded by no rule", where, n)
				}
				continue
			}
			base := n
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(n, s); ok && exported[b] {
					base = b
				}
			}
			if !exported[base] {
				t.Errorf("%s: %s is not exported", where, n)
			}
		}
	}
	for _, e := range dashboardExprs(t) {
		check("dashboard", e)
	}
	for _, m := range regexp.MustCompile(`(?s)expr: (\|\n.*?\n\s*(?:for|labels|- record|- alert):|.*?\n)`).FindAllSubmatch(rules, -1) {
		check("rules", string(m[1]))
	}
}

// targetMetricNames runs a target with metrics, every I/O operation on
// it from flashpath's host over 127.0.0.1, and returns the metric names
// it serves.
func targetMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	const nqn = "nqn.2026-11.io.flashpath:dashboard"
	srv, err := server.Start(&server.Config{
		Listeners:  []string{"tcp://127.0.0.1:0"},
		Metrics:    "127.0.0.1:0",
		Subsystems: []server.SubsystemConfig{{NQN: nqn, Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "mem:16MiB"}}}},
	}, server.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ctx := context.Background()
	c, err := initiator.Connect(ctx, initiator.Config{Addr: srv.Listeners[0].Addr().String(), SubNQN: nqn, IOQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns, err := c.Namespace(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := ns.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(ns.Compare(buf, 0), ns.Flush(), ns.WriteZeroes(8192, 4096), ns.Deallocate(16384, 4096)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + srv.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
		}
	}
	if !names["flashpath_target_namespace_latency_seconds"] || !names["flashpath_build_info"] {
		t.Fatalf("the scrape lacks the latency histogram or build info: %v", slices.Sorted(func(yield func(string) bool) {
			for n := range names {
				if !yield(n) {
					return
				}
			}
		}))
	}
	return names
}

// initiatorMetricNames returns the names the initiator's collector
// exports for an agent (over a fake sysfs) with a connected subsystem.
func initiatorMetricNames(t *testing.T) []string {
	t.Helper()
	cfg, err := agent.Parse([]byte("hostnqn: " + agentHostNQN + "\nhostid: " + agentHostID + "\ninterval: 1h\nconnect: [{address: tcp://10.0.0.5:4420, nqn: nqn.x}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := agent.New(cfg, kerneltest.New(t.TempDir()), nil, slog.New(slog.DiscardHandler))
	a.Reconcile(context.Background())
	reg := prometheus.NewRegistry()
	reg.MustRegister(agent.NewCollector(a))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		out = append(out, mf.GetName())
	}
	if !slices.Contains(out, "flashpath_initiator_path_state") {
		t.Fatalf("the initiator exports no path state: %v", out)
	}
	return out
}
