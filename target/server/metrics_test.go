package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	_ "github.com/flashpath/flashpath/initiator/tcp"
	"github.com/flashpath/flashpath/nvmeof"
)

// scrape reads the metrics endpoint at addr: the value of each series, by
// its name and labels as the text format writes them
// (`name{a="1",b="2"}`, labels sorted).
func scrape(t *testing.T, addr net.Addr) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsEndToEnd: what a host does over a real connection on
// 127.0.0.1 shows in the scraped metrics: N writes, a flush, a read, a
// deallocate, each with its bytes and a latency histogram of as many
// commands; the host's bytes and connections under its NQN while a
// second host, beyond metrics_max_hosts, counts as host="other"; a
// controller shut down, a reconnect, a protocol error by kind; and
// flashpath_build_info.
func TestMetricsEndToEnd(t *testing.T) {
	const (
		nqn   = "nqn.2026-11.io.flashpath:metrics"
		hostA = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-0000-0000-00000000000a"
		hostB = "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-0000-0000-00000000000b"
		n     = 7
	)
	srv, err := Start(&Config{
		Listeners:       []string{"tcp://127.0.0.1:0"},
		Metrics:         "127.0.0.1:0",
		MetricsMaxHosts: 1,
		Subsystems:      []SubsystemConfig{{NQN: nqn, Namespaces: []NamespaceConfig{{NSID: 1, Backend: "mem:16MiB"}}}},
	}, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	addr := srv.Listeners[0].Addr().String()
	ctx := context.Background()
	connect := func(host string) *initiator.Controller {
		t.Helper()
		id := [16]byte{host[len(host)-1]} // each its own host ID (reservations)
		c, err := initiator.Connect(ctx, initiator.Config{Addr: addr, SubNQN: nqn, Options: initiator.Options{HostNQN: host, HostID: id}, IOQueues: 1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := connect(hostA)
	ns, err := a.Namespace(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for i := range n {
		if _, err := ns.WriteAt(buf, int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := ns.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := ns.Deallocate(1<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	b := connect(hostB)
	// A reserves the namespace; B's write is refused, then B preempts A.
	nsB, err := b.Namespace(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { return ns.ResvRegister(ctx, nvmeof.ResvRegister, false, 0, 0, 0xA) },
		func() error { return ns.ResvAcquire(ctx, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xA, 0) },
		func() error {
			if _, err := nsB.WriteAt(buf, 0); !strings.Contains(fmt.Sprint(err), "reservation conflict") {
				return fmt.Errorf("B's write: %v, want a reservation conflict", err)
			}
			return nil
		},
		func() error { return nsB.ResvRegister(ctx, nvmeof.ResvRegister, false, 0, 0, 0xB) },
		func() error { return nsB.ResvAcquire(ctx, nvmeof.ResvPreempt, nvmeof.ResvWriteExclusive, 0xB, 0xA) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}

	m := scrape(t, srv.MetricsAddr())
	ns1 := func(name, op string) string {
		return name + `{nsid="1",op="` + op + `",subsys="` + nqn + `"}`
	}
	hist := func(suffix, op, le string) string {
		return `flashpath_target_namespace_latency_seconds_` + suffix + `{nsid="1",op="` + op + `",subsys="` + nqn + `"` + le + `}`
	}
	want := map[string]float64{
		ns1("flashpath_target_namespace_commands_total", "write"):                                 n,
		ns1("flashpath_target_namespace_commands_total", "flush"):                                 1,
		ns1("flashpath_target_namespace_commands_total", "read"):                                  1,
		ns1("flashpath_target_namespace_commands_total", "deallocate"):                            1,
		ns1("flashpath_target_namespace_commands_total", "compare"):                               0,
		ns1("flashpath_target_namespace_bytes_total", "write"):                                    n * 4096,
		ns1("flashpath_target_namespace_bytes_total", "read"):                                     4096,
		ns1("flashpath_target_namespace_bytes_total", "deallocate"):                               1 << 20,
		ns1("flashpath_target_namespace_errors_total", "write"):                                   0,
		hist("count", "write", ""):                                                                n,
		hist("bucket", "write", `,le="+Inf"`):                                                     n,
		hist("count", "flush", ""):                                                                1,
		hist("count", "deallocate", ""):                                                           1,
		`flashpath_target_namespace_in_flight{nsid="1",subsys="` + nqn + `"}`:                     0,
		`flashpath_target_namespace_sendfile_bytes_total{nsid="1",subsys="` + nqn + `"}`:          0, // a mem namespace
		`flashpath_target_host_bytes_total{dir="write",host="` + hostA + `"}`:                     n * 4096,
		`flashpath_target_host_bytes_total{dir="read",host="` + hostA + `"}`:                      4096,
		`flashpath_target_host_controllers{host="` + hostA + `"}`:                                 1,
		`flashpath_target_host_connections{host="` + hostA + `"}`:                                 2,
		`flashpath_target_host_connections{host="other"}`:                                         2,
		`flashpath_target_controller_io_queues{ctrl="other",host="other",subsys="` + nqn + `"}`:   1,
		`flashpath_target_controller_queue_depth{ctrl="other",host="other",subsys="` + nqn + `"}`: 0,
		`flashpath_target_reservation_conflicts_total`:                                            1,
		`flashpath_target_reservation_preemptions_total`:                                          1,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("no series %s", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if _, ok := m[hist("count", "compare", "")]; ok {
		t.Error("a latency histogram for compare, which never ran")
	}
	// The write bucket counts are cumulative and end at n.
	var prev float64
	for _, k := range []string{"1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1", "1", "10", "+Inf"} {
		v := m[hist("bucket", "write", `,le="`+k+`"`)]
		if v < prev {
			t.Errorf("bucket le=%s holds %v, less than the one below it (%v)", k, v, prev)
		}
		prev = v
	}
	build := `flashpath_build_info{goversion="` + runtime.Version() + `",version="dev"}`
	if m[build] != 1 {
		t.Errorf("no %s", build)
	}
	ctrlA := a.CntlID()
	if m[`flashpath_target_controller_io_queues{ctrl="`+strconv.Itoa(int(ctrlA))+`",host="`+hostA+`",subsys="`+nqn+`"}`] != 1 {
		t.Errorf("host A's controller %d: no I/O queue reported", ctrlA)
	}

	// Host A shuts its controller down and connects again: a reconnect.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = connect(hostA)
	defer a.Close()
	defer b.Close()
	// A malformed PDU after the ICReq: the connection ends with a
	// protocol error.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pdu := make([]byte, nvmeof.ICReqSize+8)
	(&nvmeof.ICReq{}).Encode(pdu)
	copy(pdu[nvmeof.ICReqSize:], []byte{0x7F, 0, 8, 0, 8, 0, 0, 0}) // an unknown PDU type
	nc.Write(pdu)
	io.Copy(io.Discard, nc) // until the target closes it: the error is counted by then
	nc.Close()

	want = map[string]float64{
		`flashpath_target_controllers_deleted_total{reason="shutdown"}`:        1,
		`flashpath_target_controllers_deleted_total{reason="connection_lost"}`: 0,
		`flashpath_target_reconnects_total`:                                    1,
		`flashpath_target_host_reconnects_total{host="` + hostA + `"}`:         1,
		`flashpath_target_protocol_errors_total{kind="invalid_pdu"}`:           1,
		`flashpath_target_protocol_errors_total{kind="data_digest"}`:           0,
		`flashpath_target_host_controllers{host="` + hostA + `"}`:              1,
	}
	// Host A's first controller is deleted when the target reads the end
	// of its connection, after a.Close returned: scrape until the target
	// has (a bounded wait for that event, not a timing assertion).
	for i := 0; ; i++ {
		m = scrape(t, srv.MetricsAddr())
		var bad []string
		for k, v := range want {
			if got, ok := m[k]; !ok || got != v {
				bad = append(bad, fmt.Sprintf("%s = %v (present %v), want %v", k, got, ok, v))
			}
		}
		if len(bad) == 0 {
			break
		}
		if i == 500 {
			t.Fatal(strings.Join(bad, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
