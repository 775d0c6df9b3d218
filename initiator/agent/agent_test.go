package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/initiator/kernel/kerneltest"
	"github.com/flashpath/flashpath/nvmeof"
)

const (
	hostNQN = "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4697-8879-aabbccddee01"
	hostID  = "0f1e2d3c-4b5a-4697-8879-aabbccddee01"
)

// fakeDiscovery serves discovery logs by address and counts reads.
type fakeDiscovery struct {
	mu      sync.Mutex
	logs    map[string][]nvmeof.DiscoveryEntry
	fail    map[string]error
	reads   int
	host    string   // host NQN of the last read
	watched []string // addresses given persistent discovery connections
}

func (d *fakeDiscovery) discover(_ context.Context, addr string, o initiator.Options) (nvmeof.DiscoveryLog, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reads++
	d.host = o.HostNQN
	if err := d.fail[addr]; err != nil {
		return nvmeof.DiscoveryLog{}, err
	}
	es, ok := d.logs[addr]
	if !ok {
		return nvmeof.DiscoveryLog{}, fmt.Errorf("dial %s: %w", addr, syscall.ECONNREFUSED)
	}
	return nvmeof.DiscoveryLog{NumRec: uint64(len(es)), Entries: es}, nil
}

func entry(sub uint8, tr uint8, addr, port, nqn string) nvmeof.DiscoveryEntry {
	return nvmeof.DiscoveryEntry{TrType: tr, AdrFam: nvmeof.AdrFamIPv4, SubType: sub, TrAddr: addr, TrSvcID: port, SubNQN: nqn}
}

type fixture struct {
	fs   *kerneltest.Sysfs
	disc *fakeDiscovery
	a    *Agent
	logs *bytes.Buffer
}

func newFixture(t *testing.T, yaml string) *fixture {
	t.Helper()
	cfg, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{fs: kerneltest.New(t.TempDir()), logs: &bytes.Buffer{}, disc: &fakeDiscovery{
		logs: map[string][]nvmeof.DiscoveryEntry{
			"tcp://10.0.0.5:8009": {
				entry(nvmeof.SubTypeDiscovery, nvmeof.TrTypeTCP, "10.0.0.5", "8009", nvmeof.DiscoveryNQN),
				entry(nvmeof.SubTypeNVM, nvmeof.TrTypeTCP, "10.0.0.5", "4420", "nqn.a"),
				entry(nvmeof.SubTypeNVM, nvmeof.TrTypeRDMA, "10.0.1.5", "4420", "nqn.b"),
				entry(nvmeof.SubTypeReferral, nvmeof.TrTypeTCP, "10.0.0.6", "8009", nvmeof.DiscoveryNQN),
				entry(nvmeof.SubTypeNVM, nvmeof.TrTypeTCP, "10.0.0.5", "4420", "nqn.skipped"),
			},
		},
		fail: map[string]error{},
	}}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f.a = New(cfg, f.fs, f.disc.discover, log)
	// No persistent discovery connections: the addresses are not ours.
	f.a.SetWatch(func(ctx context.Context, addr string, _ initiator.Options, _ func()) {
		f.disc.mu.Lock()
		f.disc.watched = append(f.disc.watched, addr)
		f.disc.mu.Unlock()
		<-ctx.Done()
	})
	return f
}

const baseConfig = `
hostnqn: ` + hostNQN + `
hostid: ` + hostID + `
defaults: {nr_io_queues: 4, ctrl_loss_tmo: 600, reconnect_delay: 2}
discovery:
  - address: tcp://10.0.0.5
    subsystems: [nqn.a, nqn.b]
    ctrl_loss_tmo: -1
interval: 1h
connect:
  - {address: "tcp://10.0.0.7:4421", nqn: nqn.c, nr_io_queues: 2, hdr_digest: true}
`

// TestReconcile: the discovered subsystems (the filter applied, referrals
// and the discovery entry skipped) and the configured one are connected
// with the merged options and the host's identity; a second pass connects
// nothing; a controller the kernel gave up on is connected again, one
// reconnecting is left to the kernel.
func TestReconcile(t *testing.T) {
	f := newFixture(t, baseConfig)
	res := f.a.Reconcile(context.Background())
	if len(res.Errors) != 0 || res.Wanted != 3 || len(res.Connected) != 3 || res.Already != 0 {
		t.Fatalf("first pass: %+v", res)
	}
	if f.disc.host != hostNQN {
		t.Fatalf("discovery as %q, want %s", f.disc.host, hostNQN)
	}
	got := map[string]string{}
	for _, p := range f.fs.Params {
		o, err := p.Options()
		if err != nil {
			t.Fatal(err)
		}
		got[p.NQN] = o
	}
	id := ",hostnqn=" + hostNQN + ",hostid=" + hostID
	want := map[string]string{
		"nqn.c": "nqn=nqn.c,transport=tcp,traddr=10.0.0.7,trsvcid=4421" + id + ",nr_io_queues=2,reconnect_delay=2,ctrl_loss_tmo=600,hdr_digest",
		"nqn.a": "nqn=nqn.a,transport=tcp,traddr=10.0.0.5,trsvcid=4420" + id + ",nr_io_queues=4,reconnect_delay=2,ctrl_loss_tmo=-1",
		"nqn.b": "nqn=nqn.b,transport=rdma,traddr=10.0.1.5,trsvcid=4420" + id + ",nr_io_queues=4,reconnect_delay=2,ctrl_loss_tmo=-1",
	}
	for nqn, w := range want {
		if got[nqn] != w {
			t.Errorf("%s connected with\n %s\nwant\n %s", nqn, got[nqn], w)
		}
	}
	if len(got) != 3 {
		t.Fatalf("connected %v", got)
	}

	res = f.a.Reconcile(context.Background())
	if len(res.Connected) != 0 || res.Already != 3 || len(f.fs.Params) != 3 {
		t.Fatalf("second pass connected again: %+v", res)
	}

	// nqn.a's controller is reconnecting (the kernel's job); nqn.c's was
	// deleted after ctrl_loss_tmo; nqn.b's is being deleted.
	ctrls, _ := f.fs.Controllers()
	byNQN := map[string]string{}
	for _, c := range ctrls {
		byNQN[c.SubNQN] = c.Name
	}
	must(t, f.fs.SetState(byNQN["nqn.a"], "connecting"))
	must(t, f.fs.Remove(byNQN["nqn.c"]))
	must(t, f.fs.SetState(byNQN["nqn.b"], "deleting"))
	res = f.a.Reconcile(context.Background())
	if res.Already != 1 || len(res.Connected) != 2 || len(f.fs.Params) != 5 {
		t.Fatalf("pass after losses: %+v (%d connects in all)", res, len(f.fs.Params))
	}
	if n := f.fs.Params[3].NQN + " " + f.fs.Params[4].NQN; n != "nqn.c nqn.b" {
		t.Fatalf("reconnected %s, want nqn.c nqn.b", n)
	}
}

// TestReconcileFailures: a discovery controller that cannot be reached
// and a refused connect are reported; the rest is connected; a connect
// failing pass after pass is logged once, and its recovery once.
func TestReconcileFailures(t *testing.T) {
	f := newFixture(t, baseConfig+`  - {address: "tcp://10.0.0.8", nqn: nqn.d}
`)
	f.disc.fail["tcp://10.0.0.5:8009"] = errors.New("connection refused")
	f.fs.Refuse["nqn.d"] = syscall.EIO
	for range 3 {
		res := f.a.Reconcile(context.Background())
		if res.Wanted != 2 || len(res.Errors) != 2 {
			t.Fatalf("pass: %+v", res)
		}
	}
	if c, _ := f.fs.Controllers(); len(c) != 1 || c[0].SubNQN != "nqn.c" {
		t.Fatalf("controllers %+v, want only nqn.c", c)
	}
	if n := strings.Count(f.logs.String(), "connect failed"); n != 1 {
		t.Fatalf("a connect failing 3 passes logged %d times at info level, want once:\n%s", n, f.logs)
	}
	// Passes made one by one (--once) are not retried: the log says so.
	if strings.Contains(f.logs.String(), "trying again") {
		t.Fatalf("a pass outside Run promises a retry:\n%s", f.logs)
	}
	if n := strings.Count(f.logs.String(), "discovery failed"); n != 3 {
		t.Fatalf("discovery failures logged %d times, want 3", n)
	}
	delete(f.fs.Refuse, "nqn.d")
	delete(f.disc.fail, "tcp://10.0.0.5:8009")
	res := f.a.Reconcile(context.Background())
	if len(res.Errors) != 0 || len(res.Connected) != 3 || res.Already != 1 {
		t.Fatalf("recovery pass: %+v", res)
	}
	if !strings.Contains(f.logs.String(), "connect works again") {
		t.Fatal("recovery not logged")
	}
	if got := f.a.connectErrors.Load(); got != 3 {
		t.Fatalf("connect errors %d, want 3", got)
	}
}

// TestStop: with disconnect_on_stop the managed subsystems are
// disconnected, a PCIe drive and a subsystem connected by hand are not;
// without it nothing is.
func TestStop(t *testing.T) {
	for _, disconnect := range []bool{false, true} {
		f := newFixture(t, baseConfig+fmt.Sprintf("disconnect_on_stop: %v\n", disconnect))
		must(t, f.fs.Add("nvme20", "pcie", "", "", "nqn.local", "live", 1))
		must(t, f.fs.Add("nvme21", "tcp", "10.0.0.9", "4420", "nqn.byhand", "live", 1))
		f.a.Reconcile(context.Background())
		if err := f.a.Stop(); err != nil {
			t.Fatal(err)
		}
		ctrls, _ := f.fs.Controllers()
		var left []string
		for _, c := range ctrls {
			left = append(left, c.SubNQN)
		}
		want := "nqn.local nqn.byhand"
		if !disconnect {
			want = "nqn.local nqn.byhand nqn.c nqn.a nqn.b"
		}
		if strings.Join(left, " ") != want {
			t.Errorf("disconnect_on_stop %v: left %v, want %s", disconnect, left, want)
		}
	}
}

// TestRun: ready gets the first pass; each kick runs a pass (a second kick
// is taken only once the pass before it is done); a reload takes effect
// at the next pass; cancelling ends Run.
func TestRun(t *testing.T) {
	f := newFixture(t, baseConfig)
	ctx, cancel := context.WithCancel(context.Background())
	kick := make(chan struct{})
	first := make(chan Result, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.a.Run(ctx, kick, func(r Result) { first <- r })
	}()
	if r := <-first; len(r.Connected) != 3 {
		t.Fatalf("first pass %+v", r)
	}
	cfg, err := Parse([]byte(baseConfig + "  - {address: \"tcp://10.0.0.7:4421\", nqn: nqn.e}\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.a.SetConfig(cfg)
	kick <- struct{}{}
	kick <- struct{}{} // taken once the first kick's pass is done
	cancel()
	<-done
	if r := f.a.Last(); r.Wanted != 4 || r.Already != 4 {
		t.Fatalf("after reload: %+v, want nqn.e connected by the first kick's pass", r)
	}
	if p := f.a.passes.Load(); p != 3 {
		t.Fatalf("%d passes, want 3", p)
	}
	if w := strings.Join(f.disc.watched, " "); w != "10.0.0.5:8009" {
		t.Fatalf("persistent discovery connections to %q, want 10.0.0.5:8009 once", w)
	}
}

// gather collects a's metrics as name{labels} → value.
func gather(t *testing.T, a *Agent) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(a))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+labels(m)] = value(m)
		}
	}
	return got
}

// TestMetrics: controllers with their state and the namespaces' block
// counters, the pcie drive left out.
func TestMetrics(t *testing.T) {
	f := newFixture(t, baseConfig)
	must(t, f.fs.Add("nvme20", "pcie", "", "", "nqn.local", "live", 1))
	f.a.Reconcile(context.Background())
	must(t, f.fs.SetState("nvme22", "connecting")) // nqn.a, the second connected
	got := gather(t, f.a)
	for k, v := range map[string]float64{
		"flashpath_initiator_connects_total":                                3,
		"flashpath_initiator_subsystems_wanted":                             3,
		`flashpath_initiator_controller_live{ctrl="nvme21",subsys="nqn.c"}`: 1,
		`flashpath_initiator_controller_live{ctrl="nvme22",subsys="nqn.a"}`: 0,
		`flashpath_initiator_controller_info{ctrl="nvme22",state="connecting",subsys="nqn.a",traddr="10.0.0.5",transport="tcp",trsvcid="4420"}`: 1,
		`flashpath_initiator_namespace_bytes_total{device="nvme23n1",op="read",subsys="nqn.b"}`:                                                 8 * 512,
		`flashpath_initiator_namespace_ios_total{device="nvme23n1",op="write",subsys="nqn.b"}`:                                                  20,
		`flashpath_initiator_namespace_in_flight{device="nvme23n1",subsys="nqn.b"}`:                                                             1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if strings.Contains(k, "nqn.local") {
			t.Errorf("a PCIe controller in the metrics: %s", k)
		}
	}
}

func labels(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	var b []string
	for _, l := range m.GetLabel() {
		b = append(b, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	return "{" + strings.Join(b, ",") + "}"
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunNotPersistent: persistent: false keeps no discovery connection.
func TestRunNotPersistent(t *testing.T) {
	f := newFixture(t, strings.Replace(baseConfig, "ctrl_loss_tmo: -1", "ctrl_loss_tmo: -1\n    persistent: false", 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run makes its first pass and returns
	f.a.Run(ctx, nil, nil)
	if len(f.disc.watched) != 0 {
		t.Fatalf("persistent discovery connections to %v with persistent: false", f.disc.watched)
	}
}

// TestPathState: each wanted subsystem's path is connected, connecting or
// failed, as its kernel controller is live, reconnecting or gone; the
// metrics say so with one series per state.
func TestPathState(t *testing.T) {
	f := newFixture(t, baseConfig)
	f.a.Reconcile(context.Background())
	ctrls, err := f.fs.Controllers()
	if err != nil {
		t.Fatal(err)
	}
	var nameA, nameB string
	for _, c := range ctrls {
		switch c.SubNQN {
		case "nqn.a":
			nameA = c.Name
		case "nqn.b":
			nameB = c.Name
		}
	}
	must(t, f.fs.SetState(nameA, "connecting"))
	must(t, f.fs.SetState(nameB, "dead"))
	got := gather(t, f.a)
	series := func(nqn, tr, addr, port, state string) string {
		return fmt.Sprintf(`flashpath_initiator_path_state{state=%q,subsys=%q,traddr=%q,transport=%q,trsvcid=%q}`, state, nqn, addr, tr, port)
	}
	for _, p := range []struct{ nqn, tr, addr, port, state string }{
		{"nqn.a", "tcp", "10.0.0.5", "4420", PathConnecting},
		{"nqn.b", "rdma", "10.0.1.5", "4420", PathFailed},
		{"nqn.c", "tcp", "10.0.0.7", "4421", PathConnected},
	} {
		for _, st := range []string{PathConnected, PathConnecting, PathFailed} {
			want := 0.0
			if st == p.state {
				want = 1
			}
			k := series(p.nqn, p.tr, p.addr, p.port, st)
			if v, ok := got[k]; !ok || v != want {
				t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
			}
		}
	}
}
