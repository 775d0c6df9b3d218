package spdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/target/server"
)

// start runs a target with no listeners or subsystems and its RPC socket.
func start(t testing.TB, cfg *server.Config) (*server.Server, *Server) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "spdk.sock")
	if cfg == nil {
		cfg = &server.Config{}
	}
	cfg.RPCSocket = sock
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(cfg, server.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	rs, err := Listen(srv, sock, Options{Logger: log, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return srv, rs
}

// client is a JSON-RPC client that speaks as rpc.py does.
type client struct {
	t  testing.TB
	c  net.Conn
	d  *json.Decoder
	id int
}

func dial(t testing.TB, path string) *client {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, d: json.NewDecoder(c)}
}

type reply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *Error          `json:"error"`
}

// call sends one request and returns the result or the error.
func (c *client) call(method string, params any) (json.RawMessage, *Error) {
	c.t.Helper()
	c.id++
	req := map[string]any{"jsonrpc": "2.0", "method": method, "id": c.id}
	if params != nil {
		req["params"] = params
	}
	b, _ := json.MarshalIndent(req, "", "  ") // rpc.py indents
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	var r reply
	if err := c.d.Decode(&r); err != nil {
		c.t.Fatalf("%s: reading the response: %v", method, err)
	}
	if r.JSONRPC != "2.0" || string(r.ID) != fmt.Sprint(c.id) {
		c.t.Fatalf("%s: response jsonrpc %q id %s, want 2.0 and %d", method, r.JSONRPC, r.ID, c.id)
	}
	return r.Result, r.Error
}

// must calls and fails the test on an error.
func (c *client) must(method string, params any) json.RawMessage {
	c.t.Helper()
	res, e := c.call(method, params)
	if e != nil {
		c.t.Fatalf("%s %v: %v", method, params, e)
	}
	return res
}

type obj = map[string]any

const nqn1 = "nqn.2016-06.io.spdk:cnode1"

// TestMethods runs each method's success and errors in an operator's order.
func TestMethods(t *testing.T) {
	srv, rs := start(t, nil)
	c := dial(t, rs.Path())
	file := filepath.Join(t.TempDir(), "aio.img")
	if err := os.WriteFile(file, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	la := obj{"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": port}
	steps := []struct {
		method string
		params any
		want   string // the result's JSON, "" for any
		code   int    // the error's code, 0 for success
	}{
		{"framework_wait_init", nil, "true", 0},
		{"framework_wait_init", obj{"x": 1}, "", CodeInvalidParams},
		{"no_such_method", nil, "", CodeMethodNotFound},
		{"framework_get_config", nil, "", CodeInvalidParams},
		{"framework_get_config", obj{"name": "vhost"}, "", CodeInvalidParams},
		{"framework_get_config", obj{"name": "bdev"}, "[]", 0},
		{"framework_get_subsystems", nil, `[{"subsystem":"keyring","depends_on":[]},{"subsystem":"bdev","depends_on":[]},{"subsystem":"nvmf","depends_on":["bdev","keyring"]}]`, 0},
		{"nvmf_set_crdt", obj{"crdt1": 5}, "", CodeInvalidParams},
		{"nvmf_set_config", obj{"dhchap_digests": []string{"sha512", "sha256", "sha384"}}, "true", 0},
		{"nvmf_set_config", obj{"dhchap_digests": []string{"sha512"}}, "", CodeInvalidParams},
		{"nvmf_set_config", obj{"discovery_filter": "transport"}, "", CodeInvalidParams},
		{"sock_impl_set_options", obj{"impl_name": "posix", "recv_buf_size": 1}, "true", 0},
		{"framework_start_init", nil, "", CodeNotSupported},
		{"bdev_malloc_create", obj{"num_blocks": 2048, "block_size": 512}, `"Malloc0"`, 0},
		{"bdev_malloc_create", obj{"name": "Malloc0", "num_blocks": 2048, "block_size": 512}, "", CodeExists},
		{"bdev_malloc_create", obj{"num_blocks": 2048, "block_size": 520}, "", CodeInvalidParams},
		{"bdev_malloc_create", obj{"num_blocks": "x", "block_size": 512}, "", CodeInvalidParams},
		{"bdev_malloc_create", obj{"num_blocks": 8, "block_size": 512, "bogus": 1}, "", CodeInvalidParams},
		{"bdev_null_create", obj{"name": "Null0", "num_blocks": 1 << 20, "block_size": 4096}, `"Null0"`, 0},
		{"bdev_null_create", obj{"num_blocks": 8, "block_size": 4096}, "", CodeInvalidParams},
		{"bdev_aio_create", obj{"name": "AIO0", "filename": file, "block_size": 512}, `"AIO0"`, 0},
		{"bdev_uring_create", obj{"name": "U0", "filename": filepath.Join(t.TempDir(), "missing", "x")}, "", CodeInvalidParams},
		{"bdev_aio_create", obj{"name": "A1", "filename": "relative.img"}, "", CodeInvalidParams},
		{"bdev_null_delete", obj{"name": "Null0"}, "true", 0},
		{"bdev_null_delete", obj{"name": "Null0"}, "", CodeNoDevice},
		{"bdev_malloc_delete", obj{"name": "AIO0"}, "", CodeNoDevice},
		{"nvmf_create_transport", obj{"trtype": "TCP", "max_queue_depth": 128, "io_unit_size": 8192}, "true", 0},
		{"nvmf_create_transport", obj{"trtype": "tcp"}, "", CodeInternalError},
		{"nvmf_create_transport", obj{"trtype": "PCIE"}, "", CodeInvalidParams},
		{"nvmf_get_transports", nil, `[{"io_unit_size":8192,"max_queue_depth":128,"trtype":"TCP"}]`, 0},
		{"nvmf_create_subsystem", obj{"nqn": nqn1, "serial_number": "SPDK00000000000001", "model_number": "SPDK bdev Controller", "max_namespaces": 8}, "true", 0},
		{"nvmf_create_subsystem", obj{"nqn": nqn1}, "", CodeInternalError},
		{"nvmf_create_subsystem", obj{"nqn": "bad"}, "", CodeInvalidParams},
		{"nvmf_create_subsystem", obj{"nqn": "nqn.2016-06.io.spdk:cnode9", "serial_number": strings.Repeat("1", 21)}, "", CodeInvalidParams},
		{"nvmf_create_subsystem", obj{"nqn": "nqn.2016-06.io.spdk:cnode9", "tgt_name": "other"}, "", CodeInvalidParams},
		{"nvmf_create_transport", obj{"trtype": "rdma", "tgt_name": "other"}, "", CodeInvalidParams},
		{"nvmf_get_transports", obj{"tgt_name": "other"}, "", CodeInvalidParams},
		{"nvmf_get_subsystems", obj{"tgt_name": "other"}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_host", obj{"nqn": nqn1, "host": "nqn.2014-08.org.nvmexpress:uuid:1", "tgt_name": "other"}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "Malloc0"}}, "1", 0},
		{"nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "Malloc0"}}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "Nope"}}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "AIO0", "nsid": 1}}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "AIO0", "nsid": 9}}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_ns", obj{"nqn": "nqn.2016-06.io.spdk:none", "namespace": obj{"bdev_name": "AIO0"}}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "AIO0", "nsid": 5, "uuid": "8a8b6f1c-5f3a-4b5e-9c1d-2e3f4a5b6c7d"}}, "5", 0},
		{"nvmf_subsystem_add_listener", obj{"nqn": nqn1, "listen_address": obj{"trtype": "RDMA", "traddr": "127.0.0.1", "trsvcid": port}}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_listener", obj{"nqn": nqn1, "listen_address": la}, "true", 0},
		{"nvmf_subsystem_add_listener", obj{"nqn": nqn1, "listen_address": la}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_listener", obj{"nqn": nqn1, "listen_address": obj{"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": "99999"}}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_host", obj{"nqn": nqn1, "host": "nqn.2014-08.org.nvmexpress:uuid:1"}, "true", 0},
		{"nvmf_subsystem_add_host", obj{"nqn": nqn1, "host": "nqn.2014-08.org.nvmexpress:uuid:2", "dhchap_key": "key0"}, "", CodeInvalidParams},
		{"nvmf_subsystem_add_host", obj{"nqn": nqn1, "host": "not-an-nqn"}, "", CodeInvalidParams},
		{"nvmf_subsystem_allow_any_host", obj{"nqn": nqn1, "allow_any_host": true}, "", CodeInvalidParams},
		{"nvmf_subsystem_get_listeners", obj{"nqn": nqn1}, `[{"address":{"trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"` + port + `"},"ana_states":[{"ana_group":1,"ana_state":"optimized"}]}]`, 0},
		{"nvmf_subsystem_remove_ns", obj{"nqn": nqn1, "nsid": 5}, "true", 0},
		{"nvmf_subsystem_remove_ns", obj{"nqn": nqn1, "nsid": 5}, "", CodeInvalidParams},
		{"nvmf_subsystem_remove_host", obj{"nqn": nqn1, "host": "nqn.2014-08.org.nvmexpress:uuid:9"}, "", CodeInvalidParams},
		{"spdk_get_version", nil, "", 0},
		{"bdev_get_iostat", obj{"name": "AIO0"}, "", 0},
		{"bdev_get_iostat", obj{"name": "Nope"}, "", CodeNoDevice},
		{"nvmf_subsystem_get_controllers", obj{"nqn": nqn1}, "[]", 0},
		{"nvmf_subsystem_get_controllers", obj{"nqn": "nqn.2016-06.io.spdk:none"}, "", CodeInvalidParams},
		{"bdev_get_iostat", obj{"per_channel": true}, "", CodeInvalidParams},
		{"rpc_get_methods", obj{"current": true}, "", 0},
	}
	for i, st := range steps {
		res, e := c.call(st.method, st.params)
		switch {
		case st.code != 0 && (e == nil || e.Code != st.code):
			t.Errorf("step %d %s %v: got %s %v, want error code %d", i, st.method, st.params, res, e, st.code)
		case st.code == 0 && e != nil:
			t.Errorf("step %d %s %v: %v", i, st.method, st.params, e)
		case st.code == 0 && st.want != "" && string(res) != st.want:
			t.Errorf("step %d %s: result %s, want %s", i, st.method, res, st.want)
		case e != nil && (e.Message == "" || (e.Code == CodeInvalidParams && !strings.HasPrefix(e.Message, "Invalid") && !strings.HasPrefix(e.Message, "Unable") && !strings.HasPrefix(e.Message, "Subsystem "))):
			t.Errorf("step %d %s: message %q", i, st.method, e.Message)
		}
	}

	// What runs: the subsystem with Malloc0 as namespace 1, the host, the listener.
	var subs []subsystemInfo
	if err := json.Unmarshal(c.must("nvmf_get_subsystems", nil), &subs); err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 || subs[0].Subtype != "Discovery" || subs[1].NQN != nqn1 {
		t.Fatalf("nvmf_get_subsystems: %+v", subs)
	}
	s := subs[1]
	if s.AllowAnyHost || len(s.Hosts) != 1 || s.SerialNumber != "SPDK00000000000001" || s.ModelNumber != "SPDK bdev Controller" ||
		len(s.Namespaces) != 1 || s.Namespaces[0].BdevName != "Malloc0" || s.Namespaces[0].NSID != 1 || s.MaxNamespaces != 8 ||
		len(s.ListenAddresses) != 1 || s.ListenAddresses[0].Trsvcid != port {
		t.Errorf("subsystem: %+v", s)
	}
	var bdevs []bdevInfo
	json.Unmarshal(c.must("bdev_get_bdevs", nil), &bdevs)
	if len(bdevs) != 2 || bdevs[0].Name != "AIO0" || bdevs[0].Claimed || bdevs[0].NumBlocks != 2048 || bdevs[1].Name != "Malloc0" || !bdevs[1].Claimed || bdevs[1].UUID != s.Namespaces[0].UUID {
		t.Errorf("bdev_get_bdevs: %+v", bdevs)
	}
	if _, e := c.call("bdev_get_bdevs", obj{"name": "Nope"}); e == nil || e.Code != CodeNoDevice {
		t.Errorf("bdev_get_bdevs of a missing bdev: %v", e)
	}
	cfg := srv.Applied()
	if len(cfg.Listeners) != 1 || len(cfg.Subsystems) != 1 || len(cfg.Subsystems[0].Namespaces) != 1 {
		t.Errorf("applied configuration: %+v", cfg)
	}
	if addr := srv.ListenerAddr(cfg.Listeners[0]); addr != "tcp://127.0.0.1:"+port {
		t.Errorf("listener runs on %q", addr)
	}

	// Deleting the attached bdev removes the namespace; the listener goes
	// with the subsystem.
	c.must("bdev_malloc_delete", obj{"name": "Malloc0"})
	if ns := srv.Target.Subsystem(nqn1).Namespaces(); len(ns) != 0 {
		t.Errorf("namespaces after bdev_malloc_delete: %d", len(ns))
	}
	c.must("nvmf_subsystem_remove_listener", obj{"nqn": nqn1, "listen_address": la})
	if _, e := c.call("nvmf_subsystem_remove_listener", obj{"nqn": nqn1, "listen_address": la}); e == nil {
		t.Error("second remove_listener succeeded")
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
		c.Close()
		t.Error("removed listener still accepts")
	}
	c.must("nvmf_delete_subsystem", obj{"nqn": nqn1})
	if _, e := c.call("nvmf_delete_subsystem", obj{"nqn": nqn1}); e == nil || e.Code != CodeInvalidParams {
		t.Errorf("delete of a missing subsystem: %v", e)
	}
	if len(srv.Target.Subsystems()) != 0 {
		t.Error("subsystem still runs")
	}
}

// TestFailureChangesNothing: a namespace whose backend fails to open
// leaves the configuration and the listeners as they were.
func TestFailureChangesNothing(t *testing.T) {
	srv, rs := start(t, nil)
	c := dial(t, rs.Path())
	file := filepath.Join(t.TempDir(), "x.img")
	os.WriteFile(file, make([]byte, 1<<20), 0o600)
	c.must("bdev_aio_create", obj{"name": "A", "filename": file})
	c.must("nvmf_create_subsystem", obj{"nqn": nqn1, "allow_any_host": true})
	os.Remove(file) // the namespace cannot open now
	before := srv.Applied()
	if _, e := c.call("nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "A"}}); e == nil || e.Code != CodeInternalError {
		t.Fatalf("add_ns of a vanished file: %v", e)
	}
	if after := srv.Applied(); len(after.Subsystems[0].Namespaces) != len(before.Subsystems[0].Namespaces) {
		t.Errorf("failed add_ns changed the configuration: %+v", after)
	}
	if _, e := c.call("nvmf_subsystem_get_listeners", obj{"nqn": nqn1}); e != nil {
		t.Error(e)
	}
}

// TestConnection: bad requests are answered on the same connection;
// bytes that are not JSON end only that connection.
func TestConnection(t *testing.T) {
	_, rs := start(t, nil)
	conn, err := net.Dial("unix", rs.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d := json.NewDecoder(bufio.NewReader(conn))
	for _, tc := range []struct {
		req  string
		code int
	}{
		{`{"jsonrpc":"2.0","method":"nope","id":1}`, CodeMethodNotFound},
		{`{"jsonrpc":"1.0","method":"spdk_get_version","id":2}`, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":3}`, CodeInvalidRequest},
		{`[{"jsonrpc":"2.0","method":"spdk_get_version","id":4}]`, CodeInvalidRequest},
		{`{"jsonrpc":"2.0","method":"bdev_get_bdevs","params":[1],"id":5}`, CodeInvalidParams},
		{`{"jsonrpc":"2.0","method":"spdk_get_version","id":"six"}`, 0},
		{`{"jsonrpc":"2.0","method":"spdk_get_version"}` + "\n" + `{"jsonrpc":"2.0","method":"spdk_get_version","id":7}`, 0}, // a notification gets no answer
	} {
		if _, err := conn.Write([]byte(tc.req)); err != nil {
			t.Fatal(err)
		}
		var r reply
		if err := d.Decode(&r); err != nil {
			t.Fatalf("%s: %v", tc.req, err)
		}
		if got := 0; r.Error != nil {
			got = r.Error.Code
			if got != tc.code {
				t.Errorf("%s: code %d (%s), want %d", tc.req, got, r.Error.Message, tc.code)
			}
		} else if tc.code != 0 {
			t.Errorf("%s: result %s, want code %d", tc.req, r.Result, tc.code)
		}
	}
	// Another client is unaffected by this one's garbage.
	other := dial(t, rs.Path())
	conn.Write([]byte(`{"jsonrpc": oops`))
	var r reply
	if err := d.Decode(&r); err != nil || r.Error == nil || r.Error.Code != CodeParseError {
		t.Fatalf("malformed JSON: %+v %v", r, err)
	}
	if err := d.Decode(&r); err == nil {
		t.Error("connection stays open after malformed JSON")
	}
	other.must("spdk_get_version", nil)
}

// TestConcurrentClients: several clients change the target at once.
func TestConcurrentClients(t *testing.T) {
	srv, rs := start(t, nil)
	const n = 6
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, rs.Path())
			nqn := fmt.Sprintf("nqn.2016-06.io.spdk:c%d", i)
			bd := fmt.Sprintf("M%d", i)
			for _, st := range []struct {
				m string
				p obj
			}{
				{"bdev_malloc_create", obj{"name": bd, "num_blocks": 256, "block_size": 512}},
				{"nvmf_create_subsystem", obj{"nqn": nqn, "allow_any_host": true}},
				{"nvmf_subsystem_add_ns", obj{"nqn": nqn, "namespace": obj{"bdev_name": bd}}},
				{"nvmf_get_subsystems", nil},
				{"nvmf_subsystem_remove_ns", obj{"nqn": nqn, "nsid": 1}},
				{"nvmf_subsystem_add_ns", obj{"nqn": nqn, "namespace": obj{"bdev_name": bd, "nsid": 3}}},
				{"bdev_get_bdevs", nil},
			} {
				if _, e := c.call(st.m, st.p); e != nil {
					t.Errorf("client %d %s: %v", i, st.m, e)
					return
				}
			}
		}()
	}
	wg.Wait()
	cfg := srv.Applied()
	if len(cfg.Subsystems) != n {
		t.Fatalf("%d subsystems, want %d", len(cfg.Subsystems), n)
	}
	for _, sc := range cfg.Subsystems {
		if len(sc.Namespaces) != 1 || sc.Namespaces[0].NSID != 3 {
			t.Errorf("%s: namespaces %+v", sc.NQN, sc.Namespaces)
		}
	}
}

// TestSocket: mode 0600, a stale socket is replaced, a live one refused,
// and Close removes it.
func TestSocket(t *testing.T) {
	srv, rs := start(t, nil)
	fi, err := os.Stat(rs.Path())
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v", fi.Mode(), err)
	}
	if _, err := Listen(srv, rs.Path(), Options{}); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, _ := net.Listen("unix", stale)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	rs2, err := Listen(srv, stale, Options{})
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	rs2.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	plain := filepath.Join(t.TempDir(), "file")
	os.WriteFile(plain, nil, 0o600)
	if _, err := Listen(srv, plain, Options{}); err == nil {
		t.Error("Listen over a regular file succeeded")
	}
}

// TestConfigFile: namespaces and listeners of the configuration file show
// in nvmf_get_subsystems and bdev_get_bdevs, and RPC changes keep them.
func TestConfigFile(t *testing.T) {
	port := testutil.FreePort(t)
	cfg := &server.Config{Listeners: []string{"tcp://127.0.0.1:" + port},
		Subsystems: []server.SubsystemConfig{{NQN: nqn1, Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "mem:1MiB"}}}}}
	srv, rs := start(t, cfg)
	c := dial(t, rs.Path())
	var subs []subsystemInfo
	json.Unmarshal(c.must("nvmf_get_subsystems", obj{"nqn": nqn1}), &subs)
	if len(subs) != 1 || len(subs[0].Namespaces) != 1 || subs[0].Namespaces[0].BdevName != nqn1+"n1" || len(subs[0].ListenAddresses) != 1 || !subs[0].AllowAnyHost {
		t.Fatalf("config subsystem: %+v", subs)
	}
	// The TCP transport exists: the file has a tcp listener.
	if _, e := c.call("nvmf_create_transport", obj{"trtype": "TCP"}); e == nil {
		t.Error("TCP transport created twice")
	}
	c.must("bdev_null_create", obj{"name": "N", "num_blocks": 1024, "block_size": 512})
	if got := string(c.must("nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "N"}})); got != "2" {
		t.Errorf("nsid %s, want 2", got)
	}
	if _, e := c.call("nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": nqn1 + "n1"}}); e == nil {
		t.Error("the file's namespace attached twice")
	}
	if _, e := c.call("bdev_malloc_delete", obj{"name": nqn1 + "n1"}); e == nil {
		t.Error("the file's namespace deleted as a bdev")
	}
	if n := len(srv.Target.Subsystem(nqn1).Namespaces()); n != 2 {
		t.Errorf("%d namespaces, want 2", n)
	}
	// The file's listener is every subsystem's: adding it is a no-op,
	// removing it over RPC is refused; its subsystem allows any host.
	fileLA := obj{"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": port}
	c.must("nvmf_create_subsystem", obj{"nqn": "nqn.2016-06.io.spdk:cnode2", "allow_any_host": true})
	c.must("nvmf_subsystem_add_listener", obj{"nqn": "nqn.2016-06.io.spdk:cnode2", "listen_address": fileLA})
	if _, e := c.call("nvmf_subsystem_remove_listener", obj{"nqn": nqn1, "listen_address": fileLA}); e == nil || !strings.Contains(e.Message, "configuration file") {
		t.Errorf("removing the file's listener: %v", e)
	}
	json.Unmarshal(c.must("nvmf_get_subsystems", obj{"nqn": "nqn.2016-06.io.spdk:cnode2"}), &subs)
	if len(subs) != 1 || len(subs[0].ListenAddresses) != 1 || subs[0].ListenAddresses[0].Trsvcid != port {
		t.Errorf("an RPC subsystem on the file's listener: %+v", subs)
	}
	if _, e := c.call("nvmf_subsystem_add_host", obj{"nqn": nqn1, "host": "nqn.2014-08.org.nvmexpress:uuid:1"}); e == nil || !strings.Contains(e.Message, "allows any host") {
		t.Errorf("add_host on a file subsystem open to any host: %v", e)
	}
	if len(srv.Applied().Listeners) != 1 {
		t.Errorf("listeners %v", srv.Applied().Listeners)
	}

	// A reload of the unchanged file keeps the RPC's namespace; one that
	// gives NSID 2 a namespace of its own takes it over, and the bdev is
	// free again.
	var bdevs []bdevInfo
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(c.must("bdev_get_bdevs", obj{"name": "N"}), &bdevs)
	if n := len(srv.Target.Subsystem(nqn1).Namespaces()); n != 2 || len(bdevs) != 1 || !bdevs[0].Claimed {
		t.Errorf("after a reload of the same file: %d namespaces, bdev %+v; want 2, claimed", n, bdevs)
	}
	cfg.Subsystems[0].Namespaces = append(cfg.Subsystems[0].Namespaces, server.NamespaceConfig{NSID: 2, Backend: "mem:1MiB"})
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(c.must("bdev_get_bdevs", obj{"name": "N"}), &bdevs)
	if len(bdevs) != 1 || bdevs[0].Claimed {
		t.Errorf("bdev after a reload that takes its NSID: %+v", bdevs)
	}
}

// rpcPy runs SPDK's own scripts/rpc.py (SPDK_DIR=/path/to/spdk); the
// test is skipped without SPDK_DIR or python3.
type rpcPy struct {
	t       *testing.T
	py, dir string
}

func needRPCPy(t *testing.T) *rpcPy {
	t.Helper()
	dir := os.Getenv("SPDK_DIR")
	if dir == "" {
		t.Skip("SPDK_DIR is not set: set it to an SPDK checkout to run its scripts/rpc.py")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	return &rpcPy{t, py, dir}
}

// run runs rpc.py -s sock args with stdin, and returns what it printed.
func (r *rpcPy) run(sock, stdin string, args ...string) (string, error) {
	cmd := exec.Command(r.py, append([]string{filepath.Join(r.dir, "scripts", "rpc.py"), "-s", sock}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(r.dir, "python"))
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	r.t.Logf("rpc.py %s: %v\n%s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	return string(out), err
}

// must runs rpc.py and fails the test if it fails.
func (r *rpcPy) must(sock string, args ...string) string {
	r.t.Helper()
	out, err := r.run(sock, "", args...)
	if err != nil {
		r.t.Fatalf("rpc.py %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// TestRPCPy runs SPDK's own rpc.py against the socket (SPDK_DIR=/path/to/spdk).
func TestRPCPy(t *testing.T) {
	py := needRPCPy(t)
	srv, rs := start(t, nil)
	port := testutil.FreePort(t)
	file := filepath.Join(t.TempDir(), "aio.img")
	os.WriteFile(file, make([]byte, 4<<20), 0o600)
	rpc := func(args ...string) string { t.Helper(); return py.must(rs.Path(), args...) }
	rpc("spdk_get_version")
	rpc("framework_wait_init")
	rpc("nvmf_create_transport", "-t", "TCP", "-u", "16384", "-m", "8", "-c", "8192")
	if out := rpc("bdev_malloc_create", "-b", "Malloc0", "64", "512"); !strings.Contains(out, "Malloc0") {
		t.Errorf("bdev_malloc_create printed %q", out)
	}
	rpc("bdev_null_create", "Null0", "128", "4096")
	rpc("bdev_aio_create", file, "AIO0", "512")
	rpc("nvmf_create_subsystem", nqn1, "-a", "-s", "SPDK00000000000001", "-d", "SPDK_Controller1")
	rpc("nvmf_subsystem_add_ns", nqn1, "Malloc0")
	rpc("nvmf_subsystem_add_ns", "-n", "4", nqn1, "AIO0")
	rpc("nvmf_subsystem_add_listener", nqn1, "-t", "tcp", "-a", "127.0.0.1", "-s", port)
	rpc("nvmf_subsystem_listener_set_ana_state", nqn1, "-t", "tcp", "-a", "127.0.0.1", "-s", port, "-n", "non_optimized", "-g", "1")
	if out := rpc("nvmf_subsystem_get_listeners", nqn1); !strings.Contains(out, `"ana_state": "non_optimized"`) {
		t.Errorf("nvmf_subsystem_get_listeners after set_ana_state: %s", out)
	}
	rpc("nvmf_subsystem_allow_any_host", "--no-allow-any-host", nqn1)
	rpc("nvmf_subsystem_add_host", nqn1, "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001")
	out := rpc("nvmf_get_subsystems")
	var subs []subsystemInfo
	if err := json.Unmarshal([]byte(out), &subs); err != nil || len(subs) != 2 || len(subs[1].Namespaces) != 2 || len(subs[1].Hosts) != 1 {
		t.Errorf("nvmf_get_subsystems: %v %+v", err, subs)
	}
	rpc("bdev_get_bdevs")
	rpc("bdev_get_iostat")
	rpc("nvmf_subsystem_get_controllers", nqn1)
	rpc("nvmf_get_transports")
	// rpc.py save_config, then load_config into a second, empty target
	// (its listener moved to another port), whose save_config is the same.
	saved := rpc("save_config")
	port2 := testutil.FreePort(t)
	moved := strings.ReplaceAll(saved, `"trsvcid": "`+port+`"`, `"trsvcid": "`+port2+`"`)
	_, rs2 := start(t, nil)
	if out, err := py.run(rs2.Path(), moved, "load_config"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("rpc.py load_config: %v\n%s", err, out)
	}
	again, err := SaveConfig(context.Background(), rs2.Path())
	if err != nil {
		t.Fatal(err)
	}
	var want Config
	json.Unmarshal([]byte(moved), &want)
	if a, b := mustJSON(t, again), mustJSON(t, &want); a != b {
		t.Errorf("save_config after rpc.py load_config:\n%s\nwant\n%s", a, b)
	}
	rpc("nvmf_subsystem_remove_host", nqn1, "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001")
	rpc("nvmf_subsystem_remove_ns", nqn1, "4")
	rpc("bdev_aio_delete", "AIO0")
	rpc("nvmf_subsystem_remove_listener", nqn1, "-t", "tcp", "-a", "127.0.0.1", "-s", port)
	rpc("nvmf_delete_subsystem", nqn1)
	methods := rpc("rpc_get_methods")
	if !strings.Contains(methods, "nvmf_subsystem_add_ns") {
		t.Errorf("rpc_get_methods: %s", methods)
	}
	// An error reaches rpc.py as SPDK's would.
	eout, err := py.run(rs.Path(), "", "nvmf_delete_subsystem", nqn1)
	if err == nil || !strings.Contains(eout, "-32602") {
		t.Errorf("deleting a missing subsystem: %v %s", err, eout)
	}
	if len(srv.Target.Subsystems()) != 0 || !slices.Equal(srv.Applied().Listeners, []string{}) && len(srv.Applied().Listeners) != 0 {
		t.Errorf("after the teardown: %+v", srv.Applied())
	}
}

// mustJSON encodes v compactly, for comparing documents.
func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var c bytes.Buffer
	json.Compact(&c, b)
	return c.String()
}
