package spdk

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	_ "github.com/flashpath/flashpath/initiator/tcp" // tcp:// addresses
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/server"
)

const statsHost = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000aa"

var quiet = slog.New(slog.DiscardHandler)

// statsTarget starts a target listening on 127.0.0.1 with subsystem nqn1
// (a 1 MiB namespace) and connects flashpath's host to it with two I/O
// queues.
func statsTarget(t *testing.T) (*server.Server, *Server, string, *initiator.Controller) {
	t.Helper()
	port := testutil.FreePort(t)
	cfg := &server.Config{Listeners: []string{"tcp://127.0.0.1:" + port},
		Subsystems: []server.SubsystemConfig{{NQN: nqn1, Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "mem:1MiB"}}}}}
	srv, rs := start(t, cfg)
	ctrl, err := initiator.Connect(context.Background(), initiator.Config{
		Addr: "tcp://127.0.0.1:" + port, SubNQN: nqn1, IOQueues: 2, QueueDepth: 8, CtrlLossTimeout: -1,
		Options: initiator.Options{HostNQN: statsHost, Logger: quiet},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrl.Close() }) // before the target stops; may fail once its subsystem is gone
	if n := len(ctrl.Queues()); n != 2 {
		t.Fatalf("the host has %d I/O queues, want 2", n)
	}
	return srv, rs, port, ctrl
}

// doIO writes and reads n 4 KiB blocks of ns, one command each.
func doIO(t *testing.T, ns *initiator.Namespace, n int) {
	t.Helper()
	buf := make([]byte, 4096)
	for i := range n {
		off := int64(i%64) * 4096
		if _, err := ns.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if _, err := ns.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
}

// stats decodes nvmf_get_stats.
func stats(t *testing.T, c *client) statsResult {
	t.Helper()
	var st statsResult
	if err := json.Unmarshal(c.must("nvmf_get_stats", nil), &st); err != nil {
		t.Fatal(err)
	}
	if st.TickRate == 0 || len(st.PollGroups) != 1 || st.PollGroups[0].Name != pollGroupName {
		t.Fatalf("nvmf_get_stats: %+v", st)
	}
	return st
}

// TestQpairsAndStats: with flashpath's host connected over 127.0.0.1,
// nvmf_subsystem_get_qpairs lists its admin queue and two I/O queues with
// their addresses, and nvmf_get_stats counts them and the I/O it did.
func TestQpairsAndStats(t *testing.T) {
	srv, rs, port, ctrl := statsTarget(t)
	c := dial(t, rs.Path())
	ns, err := ctrl.Namespace(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	before := stats(t, c).PollGroups[0]
	const n = 20
	doIO(t, ns, n)

	var qps []qpairInfo
	if err := json.Unmarshal(c.must("nvmf_subsystem_get_qpairs", obj{"nqn": nqn1}), &qps); err != nil {
		t.Fatal(err)
	}
	if len(qps) != 3 {
		t.Fatalf("%d qpairs, want 3: %+v", len(qps), qps)
	}
	peerPorts := map[string]bool{}
	for i, q := range qps {
		la := listenAddress{Trtype: "TCP", Adrfam: "IPv4", Traddr: "127.0.0.1", Trsvcid: port}
		if q.CntlID != ctrl.CntlID() || q.QID != uint16(i) || q.State != "enabled" || q.Thread != pollGroupName || q.HostNQN != statsHost ||
			q.ListenAddress == nil || *q.ListenAddress != la || q.Auth != nil {
			t.Errorf("qpair %d: %+v listen %+v", i, q, q.ListenAddress)
		}
		if pa := q.PeerAddress; pa == nil || pa.Trtype != "TCP" || pa.Adrfam != "IPv4" || pa.Traddr != "127.0.0.1" || pa.Trsvcid == "" || pa.Trsvcid == port {
			t.Errorf("qpair %d: peer_address %+v", i, pa)
		} else {
			peerPorts[pa.Trsvcid] = true
		}
	}
	if len(peerPorts) != 3 {
		t.Errorf("the queues' peer ports %v: want one connection each", peerPorts)
	}
	if ids := []uint16{ctrl.Queues()[0].ID(), ctrl.Queues()[1].ID()}; ids[0] != 1 || ids[1] != 2 {
		t.Errorf("the host's I/O queues are %v", ids)
	}

	after := stats(t, c).PollGroups[0]
	if after.AdminQpairs != 1 || after.IOQpairs != 2 || after.CurrentAdminQpairs != 1 || after.CurrentIOQpairs != 2 {
		t.Errorf("qpair counts: %+v", after)
	}
	if got := after.CompletedNVMeIO - before.CompletedNVMeIO; got != 2*n || after.CompletedNVMeIO < 2*n {
		t.Errorf("completed_nvme_io %d after %d before, want %d more", after.CompletedNVMeIO, before.CompletedNVMeIO, 2*n)
	}
	if after.PendingBdevIO != 0 {
		t.Errorf("pending_bdev_io %d with no I/O in flight", after.PendingBdevIO)
	}
	if len(after.Transports) != 1 {
		t.Fatalf("transports %+v", after.Transports)
	}
	tr := after.Transports[0]
	// The host's three connections, no more: nothing else connects.
	if tr.Trtype != "TCP" || tr.Listeners != 1 || tr.ConnectionsAccepted != 3 || tr.ConnectionsRejected != 0 || tr.ProtocolErrors != 0 ||
		tr.TLSHandshakes == nil || *tr.TLSHandshakes != 0 {
		t.Errorf("TCP transport %+v", tr)
	}

	// A discovery controller: its admin queue shows on the discovery
	// subsystem (and rpc.py's "discovery" names it) and in the counts.
	disc, err := initiator.ConnectDiscovery(context.Background(), initiator.Config{
		Addr: "tcp://127.0.0.1:" + port, CtrlLossTimeout: -1, Options: initiator.Options{HostNQN: statsHost, Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	defer disc.Close()
	for _, name := range []string{"discovery", nvmeof.DiscoveryNQN} {
		if err := json.Unmarshal(c.must("nvmf_subsystem_get_qpairs", obj{"nqn": name}), &qps); err != nil || len(qps) != 1 ||
			qps[0].QID != 0 || qps[0].CntlID != disc.CntlID() || qps[0].PeerAddress == nil || peerPorts[qps[0].PeerAddress.Trsvcid] {
			t.Errorf("qpairs of %s: %+v %v", name, qps, err)
		}
	}
	if st := stats(t, c).PollGroups[0]; st.AdminQpairs != 2 || st.CurrentAdminQpairs != 2 || st.IOQpairs != 2 || st.CurrentIOQpairs != 2 {
		t.Errorf("with a discovery controller: %+v", st)
	}

	// The subsystem goes, and its controller with it: the queues are no
	// longer counted as connected; they were connected.
	c.must("nvmf_delete_subsystem", obj{"nqn": nqn1})
	if st := stats(t, c).PollGroups[0]; st.AdminQpairs != 2 || st.IOQpairs != 2 || st.CurrentAdminQpairs != 1 || st.CurrentIOQpairs != 0 {
		t.Errorf("after the subsystem went: %+v", st)
	}
	if n := srv.Target.Controllers(); n != 1 {
		t.Errorf("%d controllers, want the discovery one", n)
	}
}

// TestQpairsAndStatsErrors: the two methods' parameters.
func TestQpairsAndStatsErrors(t *testing.T) {
	_, rs := start(t, &server.Config{Subsystems: []server.SubsystemConfig{{NQN: nqn1}}})
	c := dial(t, rs.Path())
	for _, tc := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"nvmf_subsystem_get_qpairs", nil, CodeInvalidParams, "nqn is required"},
		{"nvmf_subsystem_get_qpairs", obj{"nqn": "nqn.2016-06.io.spdk:none"}, CodeInvalidParams, "Unable to find subsystem"},
		{"nvmf_subsystem_get_qpairs", obj{"nqn": nqn1, "tgt_name": "t2"}, CodeInvalidParams, "tgt_name"},
		{"nvmf_subsystem_get_qpairs", obj{"nqn": nqn1, "x": 1}, CodeInvalidParams, `"x" is not a parameter`},
		{"nvmf_subsystem_get_qpairs", []any{nqn1}, CodeInvalidParams, "takes an object"},
		{"nvmf_get_stats", obj{"tgt_name": "t2"}, CodeInvalidParams, "tgt_name"},
		{"nvmf_get_stats", obj{"x": 1}, CodeInvalidParams, `"x" is not a parameter`},
	} {
		_, e := c.call(tc.method, tc.params)
		if e == nil || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s %v: %v, want %d %q", tc.method, tc.params, e, tc.code, tc.msg)
		}
	}
	// No host: no qpairs; nothing counted.
	if got := string(c.must("nvmf_subsystem_get_qpairs", obj{"nqn": nqn1, "tgt_name": ""})); got != "[]" {
		t.Errorf("qpairs of an idle subsystem: %s", got)
	}
	st := stats(t, c)
	pg := st.PollGroups[0]
	if pg.AdminQpairs != 0 || pg.IOQpairs != 0 || pg.CurrentAdminQpairs != 0 || pg.CurrentIOQpairs != 0 || pg.CompletedNVMeIO != 0 || pg.PendingBdevIO != 0 || len(pg.Transports) != 0 {
		t.Errorf("an idle target's stats: %+v", st)
	}
	// A transport created over RPC shows, with nothing counted.
	c.must("nvmf_create_transport", obj{"trtype": "RDMA"})
	if pg := stats(t, c).PollGroups[0]; len(pg.Transports) != 1 || pg.Transports[0].Trtype != "RDMA" || pg.Transports[0].Listeners != 0 || pg.Transports[0].TLSHandshakes != nil {
		t.Errorf("transports %+v", pg.Transports)
	}
}

// TestQpairsAndStatsRPCPy: SPDK's rpc.py prints the two methods' results
// (SPDK_DIR=/path/to/spdk).
func TestQpairsAndStatsRPCPy(t *testing.T) {
	py := needRPCPy(t)
	_, rs, port, _ := statsTarget(t)
	rpc := func(args ...string) []byte { t.Helper(); return []byte(py.must(rs.Path(), args...)) }
	var qps []qpairInfo
	if err := json.Unmarshal(rpc("nvmf_subsystem_get_qpairs", nqn1), &qps); err != nil || len(qps) != 3 || qps[2].ListenAddress == nil || qps[2].ListenAddress.Trsvcid != port {
		t.Errorf("nvmf_subsystem_get_qpairs: %+v %v", qps, err)
	}
	var st statsResult
	if err := json.Unmarshal(rpc("nvmf_get_stats"), &st); err != nil || len(st.PollGroups) != 1 || st.PollGroups[0].CurrentIOQpairs != 2 {
		t.Errorf("nvmf_get_stats: %+v %v", st, err)
	}
}
