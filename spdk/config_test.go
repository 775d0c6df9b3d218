package spdk

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/target/server"
)

// saveConfig is rpc.py save_config over the socket.
func saveConfig(t testing.TB, sock string) *Config {
	t.Helper()
	c, err := SaveConfig(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startSaved starts a target from SPDK's JSON config, as
// `flashpath target --config saved.json` does.
func startSaved(t testing.TB, c *Config) (*server.Server, *Server, error) {
	t.Helper()
	cfg := &server.Config{SPDKConfig: "saved.json"}
	if err := PrepareConfig(c, cfg); err != nil {
		return nil, nil, err
	}
	sock := filepath.Join(t.TempDir(), "spdk.sock")
	cfg.RPCSocket = sock
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(cfg, server.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	rs := New(srv, Options{Logger: log})
	t.Cleanup(func() { rs.Close() })
	if err := rs.LoadConfig(c); err != nil {
		return srv, rs, err
	}
	if err := rs.Serve(sock); err != nil {
		t.Fatal(err)
	}
	return srv, rs, nil
}

// TestSaveConfigRoundTrip: save_config of a target made from a
// configuration file and RPC changes, loaded into a fresh target, serves
// the same subsystems, namespaces (same UUIDs), hosts and listeners, and
// its save_config is the same document.
func TestSaveConfigRoundTrip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ns.img")
	if err := os.WriteFile(file, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	p1, p2, p3 := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	host := "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"
	cfg := &server.Config{Listeners: []string{"tcp://127.0.0.1:" + p1},
		Subsystems: []server.SubsystemConfig{{NQN: nqn1, Serial: "FP0001", AllowedHosts: []server.HostConfig{{NQN: host}},
			Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "mem:1MiB"}, {NSID: 3, Backend: "file:" + file + "?bs=4096&ro"}}}}}
	srv, rs := start(t, cfg)
	c := dial(t, rs.Path())
	c.must("bdev_null_create", obj{"name": "Null0", "num_blocks": 2048, "block_size": 512})
	c.must("bdev_malloc_create", obj{"name": "Malloc9", "num_blocks": 256, "block_size": 4096})
	c.must("nvmf_create_subsystem", obj{"nqn": "nqn.2016-06.io.spdk:cnode2", "allow_any_host": true, "max_namespaces": 4, "model_number": "flash"})
	c.must("nvmf_subsystem_add_ns", obj{"nqn": "nqn.2016-06.io.spdk:cnode2", "namespace": obj{"bdev_name": "Null0", "nsid": 2}})
	c.must("nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "Malloc9"}})
	c.must("nvmf_subsystem_add_listener", obj{"nqn": "nqn.2016-06.io.spdk:cnode2", "listen_address": obj{"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": p2}})
	c.must("nvmf_subsystem_add_listener", obj{"nqn": "discovery", "listen_address": obj{"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": p3}})

	saved := saveConfig(t, rs.Path())
	var names []string
	for _, sub := range saved.Subsystems {
		names = append(names, sub.Subsystem)
	}
	if !reflect.DeepEqual(names, []string{"keyring", "bdev", "nvmf"}) {
		t.Fatalf("subsystems %v", names)
	}
	b, _ := json.MarshalIndent(saved, "", "  ")
	t.Logf("saved:\n%s", b)
	for _, want := range []string{`"bdev_aio_create"`, `"readonly": true`, `"block_size": 4096`, `"bdev_malloc_create"`, `"name": "nqn.2016-06.io.spdk:cnode1n1"`, `"nvmf_subsystem_add_host"`, `"max_namespaces": 4`, `"serial_number": "FP0001"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("save_config lacks %s", want)
		}
	}
	uuids := map[string][16]byte{}
	for _, ss := range srv.Target.Subsystems() {
		for _, ns := range ss.Namespaces() {
			uuids[ss.NQN()+"/"+string(rune('0'+ns.ID))] = ns.UUID
		}
	}
	rs.Close()
	srv.Shutdown(context.Background()) // frees the ports for the second target

	srv2, rs2, err := startSaved(t, saved)
	if err != nil {
		t.Fatal(err)
	}
	again := saveConfig(t, rs2.Path())
	b2, _ := json.MarshalIndent(again, "", "  ")
	if string(b) != string(b2) {
		t.Errorf("save_config after loading it differs:\n%s", b2)
	}
	got := map[string][16]byte{}
	for _, ss := range srv2.Target.Subsystems() {
		for _, ns := range ss.Namespaces() {
			got[ss.NQN()+"/"+string(rune('0'+ns.ID))] = ns.UUID
		}
	}
	if !reflect.DeepEqual(got, uuids) {
		t.Errorf("namespaces and UUIDs after the load: %v, want %v", got, uuids)
	}
	ss := srv2.Target.Subsystem(nqn1)
	if ro, ok := ss.Namespace(3).Backend.(interface{ ReadOnly() bool }); ss.Config().Serial != "FP0001" || !ok || !ro.ReadOnly() {
		t.Errorf("%s after the load: %+v", nqn1, ss)
	}
	for _, p := range []string{p1, p2, p3} {
		found := false
		for _, port := range srv2.Ports() {
			found = found || strings.HasSuffix(port.Addr, ":"+p)
		}
		if !found {
			t.Errorf("port %s not served after the load: %+v", p, srv2.Ports())
		}
	}
}

// An SPDK-written configuration: what nvmf_tgt's save_config writes for a
// malloc, a null and an AIO bdev exported with a host, a subsystem
// listener and a discovery listener, SPDK's tuning methods included.
const spdkSaved = `{
  "subsystems": [
    {"subsystem": "scheduler", "config": [{"method": "framework_set_scheduler", "params": {"name": "static"}}]},
    {"subsystem": "vmd", "config": []},
    {"subsystem": "sock", "config": [
      {"method": "sock_set_default_impl", "params": {"impl_name": "posix"}},
      {"method": "sock_impl_set_options", "params": {"impl_name": "posix", "recv_buf_size": 2097152, "send_buf_size": 2097152, "enable_recv_pipe": true, "enable_quickack": false, "enable_placement_id": 0, "enable_zerocopy_send_server": true, "enable_zerocopy_send_client": false, "zerocopy_threshold": 0, "tls_version": 0, "enable_ktls": false}}]},
    {"subsystem": "iobuf", "config": [{"method": "iobuf_set_options", "params": {"small_pool_count": 8192, "large_pool_count": 1024, "small_bufsize": 8192, "large_bufsize": 135168, "enable_numa": false}}]},
    {"subsystem": "keyring", "config": []},
    {"subsystem": "accel", "config": [{"method": "accel_set_options", "params": {"small_cache_size": 128, "large_cache_size": 16, "task_count": 2048, "sequence_count": 2048, "buf_count": 2048}}]},
    {"subsystem": "bdev", "config": [
      {"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65535, "bdev_io_cache_size": 256, "bdev_auto_examine": true, "iobuf_small_cache_size": 128, "iobuf_large_cache_size": 16}},
      {"method": "bdev_raid_set_options", "params": {"process_window_size_kb": 1024, "process_max_bandwidth_mb_sec": 0}},
      {"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 2048, "block_size": 512, "physical_block_size": 512, "uuid": "7faaede9-0a69-4e96-a65d-115dedab1cee", "optimal_io_boundary": 0, "md_size": 0, "dif_type": 0, "dif_is_head_of_md": false, "dif_pi_format": 0, "numa_id": -1}},
      {"method": "bdev_null_create", "params": {"name": "Null0", "num_blocks": 256, "block_size": 4096, "physical_block_size": 4096, "md_size": 0, "dif_type": 0, "dif_is_head_of_md": false, "dif_pi_format": 0, "uuid": "d294059c-1a76-427e-b821-b6bda93f3972", "preferred_write_granularity": 0, "preferred_write_alignment": 0, "optimal_write_size": 0, "preferred_unmap_granularity": 0, "preferred_unmap_alignment": 0}},
      {"method": "bdev_nvme_set_options", "params": {"action_on_timeout": "none", "timeout_us": 0, "keep_alive_timeout_ms": 10000, "transport_retry_count": 4, "bdev_retry_count": 3, "dhchap_digests": ["sha256", "sha384", "sha512"]}},
      {"method": "bdev_nvme_set_hotplug", "params": {"period_us": 100000, "enable": false}},
      {"method": "bdev_aio_create", "params": {"name": "Aio0", "block_size": 4096, "filename": "@FILE@", "readonly": false, "fallocate": false, "uuid": "26715931-0667-407d-8752-2e850e131c2c", "nowait": false}},
      {"method": "bdev_wait_for_examine"}]},
    {"subsystem": "nvmf", "config": [
      {"method": "nvmf_set_config", "params": {"discovery_filter": "match_any", "admin_cmd_passthru": {"identify_ctrlr": false}, "dhchap_digests": ["sha256", "sha384", "sha512"], "dhchap_dhgroups": ["null", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"], "dup_host_policy": "allow"}},
      {"method": "nvmf_set_max_subsystems", "params": {"max_subsystems": 1024}},
      {"method": "nvmf_set_crdt", "params": {"crdt1": 0, "crdt2": 0, "crdt3": 0}},
      {"method": "nvmf_create_transport", "params": {"trtype": "TCP", "max_queue_depth": 128, "max_io_qpairs_per_ctrlr": 127, "in_capsule_data_size": 4096, "max_io_size": 131072, "c2h_success": true, "kas": 100, "min_kato": 10000}},
      {"method": "nvmf_create_subsystem", "params": {"nqn": "nqn.2016-06.io.spdk:m", "allow_any_host": false, "serial_number": "SPDK00000000000001", "model_number": "m", "max_namespaces": 8, "min_cntlid": 1, "max_cntlid": 65519, "ana_reporting": false, "dmrsl": 2097152, "wzsl": 12, "passthrough": false, "enable_nssr": false}},
      {"method": "nvmf_subsystem_add_host", "params": {"nqn": "nqn.2016-06.io.spdk:m", "host": "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"}},
      {"method": "nvmf_subsystem_add_ns", "params": {"nqn": "nqn.2016-06.io.spdk:m", "namespace": {"nsid": 1, "bdev_name": "Malloc0", "nguid": "7FAAEDE90A694E96A65D115DEDAB1CEE", "uuid": "7faaede9-0a69-4e96-a65d-115dedab1cee", "no_auto_visible": false}}},
      {"method": "nvmf_subsystem_add_ns", "params": {"nqn": "nqn.2016-06.io.spdk:m", "namespace": {"nsid": 5, "bdev_name": "Aio0", "nguid": "267159310667407D87522E850E131C2C", "uuid": "26715931-0667-407d-8752-2e850e131c2c", "no_auto_visible": false}}},
      {"method": "nvmf_subsystem_add_listener", "params": {"nqn": "nqn.2014-08.org.nvmexpress.discovery", "listen_address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "@DISC@"}, "secure_channel": false}},
      {"method": "nvmf_subsystem_add_listener", "params": {"nqn": "nqn.2016-06.io.spdk:m", "listen_address": {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "@PORT@"}, "secure_channel": false}}]},
    {"subsystem": "nbd", "config": []}
  ]
}`

// TestLoadSPDKConfig: a configuration SPDK's nvmf_tgt saved starts a
// flashpath target with its bdevs as namespaces, UUIDs, host and
// listeners; SPDK's tuning methods load and change nothing.
func TestLoadSPDKConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.img")
	if err := os.WriteFile(file, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	port, disc := testutil.FreePort(t), testutil.FreePort(t)
	doc := strings.NewReplacer("@FILE@", file, "@PORT@", port, "@DISC@", disc).Replace(spdkSaved)
	if !server.IsSPDKJSON([]byte(doc)) {
		t.Fatal("server.IsSPDKJSON: false for SPDK's config")
	}
	c, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	srv, _, err := startSaved(t, c)
	if err != nil {
		t.Fatal(err)
	}
	ss := srv.Target.Subsystem("nqn.2016-06.io.spdk:m")
	if ss == nil {
		t.Fatal("subsystem not created")
	}
	if got := ss.Config(); got.Serial != "SPDK00000000000001" || got.Model != "m" {
		t.Errorf("serial %q model %q", got.Serial, got.Model)
	}
	n1, n5 := ss.Namespace(1), ss.Namespace(5)
	if n1 == nil || n5 == nil || len(ss.Namespaces()) != 2 {
		t.Fatalf("namespaces %v", ss.Namespaces())
	}
	if formatUUID(n5.UUID) != "26715931-0667-407d-8752-2e850e131c2c" || n5.Backend.BlockSize() != 4096 || n5.Backend.Size() != 4<<20 {
		t.Errorf("namespace 5: uuid %s block %d size %d", formatUUID(n5.UUID), n5.Backend.BlockSize(), n5.Backend.Size())
	}
	if n1.Backend.Size() != 2048*512 {
		t.Errorf("namespace 1: %d bytes", n1.Backend.Size())
	}
	cfg := srv.Applied()
	if len(cfg.Listeners) != 1 || len(cfg.DiscoveryListeners) != 1 || len(cfg.Subsystems[0].AllowedHosts) != 1 || anyHost(&cfg.Subsystems[0]) {
		t.Errorf("running %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.DHCHAPHashes, []string{"sha256", "sha384", "sha512"}) {
		t.Errorf("dhchap hashes %v", cfg.DHCHAPHashes)
	}
}

// TestLoadConfigErrors: what cannot be loaded is named by its place in
// the file and its method.
func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown method", `{"subsystems": [{"subsystem": "bdev", "config": [{"method": "bdev_frobnicate", "params": {}}]}]}`,
			"subsystems[0] (bdev).config[0] bdev_frobnicate: Method not found"},
		{"refused method", `{"subsystems": [{"subsystem": "bdev", "config": [{"method": "bdev_malloc_create", "params": {"name": "M", "num_blocks": 8, "block_size": 512}}]}, {"subsystem": "nvmf", "config": [{"method": "nvmf_ns_add_host", "params": {}}]}]}`,
			"subsystems[1] (nvmf).config[0] nvmf_ns_add_host: Operation not supported"},
		{"bad params", `{"subsystems": [{"subsystem": "nvmf", "config": [{"method": "nvmf_create_subsystem", "params": {"nqn": "nqn.2016-06.io.spdk:x", "passthrough": true}}]}]}`,
			"subsystems[0] (nvmf).config[0] nvmf_create_subsystem: Invalid parameters: max_discard_size_kib, max_write_zeroes_size_kib, passthrough"},
		{"passthru", `{"subsystems": [{"subsystem": "nvmf", "config": [{"method": "nvmf_set_config", "params": {"admin_cmd_passthru": {"identify_ctrlr": true}}}]}]}`,
			"subsystems[0] (nvmf).config[0] nvmf_set_config: Invalid parameters: admin_cmd_passthru.identify_ctrlr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = startSaved(t, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	for _, bad := range []string{`{}`, `{"subsystems": [{"config": []}]}`, `{"subsystems": [], "extra": 1}`,
		`{"subsystems": [{"subsystem": "bdev", "config": [{"params": {}}]}]}`, `{"subsystems": [{"subsystem": "bdev", "config": [{"method": "x", "id": 1}]}]}`, `[1]`} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("ParseConfig(%s): no error", bad)
		}
	}
}

// TestSaveConfigRefuses: what SPDK's JSON config cannot express is an
// error naming it, not a file that would serve something else.
func TestSaveConfigRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ns.img")
	os.WriteFile(file, make([]byte, 1<<20), 0o600)
	for _, tc := range []struct {
		name string
		cfg  *server.Config
		want string
	}{
		{"buffered", &server.Config{Listeners: []string{"tcp://127.0.0.1:" + testutil.FreePort(t)},
			Subsystems: []server.SubsystemConfig{{NQN: nqn1, Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "file:" + file + "?buffered"}}}}}, "?buffered"},
		{"tls optional", &server.Config{Listeners: []string{"tcp://127.0.0.1:" + testutil.FreePort(t) + "?tls=optional"},
			Subsystems: []server.SubsystemConfig{{NQN: nqn1, Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "mem:1MiB"}}}}}, "TLS or plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rs := start(t, tc.cfg)
			_, err := SaveConfig(context.Background(), rs.Path())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSaveConfigKeyFiles: the key files of the configuration file's hosts
// are saved as keyring keys named after the files (one key for a file two
// hosts share), the hosts name them, and the restored target saves the
// same document; a key written inline in the file cannot be saved.
func TestSaveConfigKeyFiles(t *testing.T) {
	dir := t.TempDir()
	hostKey, ctrlKey := filepath.Join(dir, "host1.key"), filepath.Join(dir, "ctrl.key")
	os.WriteFile(hostKey, []byte("DHHC-1:01:BcautGd9r2iaGqzu1T1ehL59fsKwCkEKUgrdAdaN+h1Upyk4:\n"), 0o600)
	os.WriteFile(ctrlKey, []byte("DHHC-1:02:3uOKo/I0tVtsogqSUSjYY7zJWcY8EvJazejOI8HKP3mRAm8Z:\n"), 0o600)
	host := "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"
	cfg := &server.Config{Listeners: []string{"tcp://127.0.0.1:" + testutil.FreePort(t)}, Subsystems: []server.SubsystemConfig{
		{NQN: nqn1, AllowedHosts: []server.HostConfig{{NQN: host, DHCHAPKeyFile: hostKey, DHCHAPCtrlKeyFile: ctrlKey}},
			Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "mem:1MiB"}}},
		{NQN: "nqn.2016-06.io.spdk:cnode2", AllowedHosts: []server.HostConfig{{NQN: host, DHCHAPKeyFile: hostKey}},
			Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "null:1MiB"}}},
	}}
	srv, rs := start(t, cfg)
	saved := saveConfig(t, rs.Path())
	b := mustJSON(t, saved)
	for _, want := range []string{
		`{"method":"keyring_file_add_key","params":{"name":"ctrl.key","path":"` + ctrlKey + `"}},{"method":"keyring_file_add_key","params":{"name":"host1.key","path":"` + hostKey + `"}}]`,
		`"host":"` + host + `","dhchap_key":"host1.key","dhchap_ctrlr_key":"ctrl.key"}`,
		`"nqn":"nqn.2016-06.io.spdk:cnode2","host":"` + host + `","dhchap_key":"host1.key"}`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("save_config lacks %s:\n%s", want, b)
		}
	}
	rs.Close()
	srv.Shutdown(context.Background())
	_, rs2, err := startSaved(t, saved)
	if err != nil {
		t.Fatal(err)
	}
	if again := mustJSON(t, saveConfig(t, rs2.Path())); again != b {
		t.Errorf("save_config after loading it differs:\n%s\nwant\n%s", again, b)
	}

	inline := &server.Config{Listeners: []string{"tcp://127.0.0.1:" + testutil.FreePort(t)}, Subsystems: []server.SubsystemConfig{
		{NQN: nqn1, AllowedHosts: []server.HostConfig{{NQN: host, DHCHAPKey: "DHHC-1:01:BcautGd9r2iaGqzu1T1ehL59fsKwCkEKUgrdAdaN+h1Upyk4:"}},
			Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "mem:1MiB"}}}}}
	_, rs3 := start(t, inline)
	if _, err := SaveConfig(context.Background(), rs3.Path()); err == nil || !strings.Contains(err.Error(), "inline") {
		t.Errorf("save_config with an inline key: %v", err)
	}
}

// TestKeyring: keyring_file_add_key applies SPDK's rules to the file, and
// nvmf_subsystem_add_host refuses names the keyring lacks.
func TestKeyring(t *testing.T) {
	_, rs := start(t, nil)
	c := dial(t, rs.Path())
	dir := t.TempDir()
	good, open := filepath.Join(dir, "good.key"), filepath.Join(dir, "open.key")
	os.WriteFile(good, []byte("DHHC-1:01:BcautGd9r2iaGqzu1T1ehL59fsKwCkEKUgrdAdaN+h1Upyk4:\n"), 0o600)
	os.WriteFile(open, []byte("DHHC-1:01:BcautGd9r2iaGqzu1T1ehL59fsKwCkEKUgrdAdaN+h1Upyk4:\n"), 0o644)
	os.Chmod(open, 0o644)
	host := "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"
	for i, st := range []struct {
		method string
		params any
		code   int
	}{
		{"keyring_file_add_key", obj{"name": "k", "path": good}, 0},
		{"keyring_file_add_key", obj{"name": "k", "path": good}, CodeExists},
		{"keyring_file_add_key", obj{"name": "o", "path": open}, codeNotPermitted},
		{"keyring_file_add_key", obj{"name": "r", "path": "good.key"}, codeNotPermitted},
		{"keyring_file_add_key", obj{"name": "m", "path": filepath.Join(dir, "missing")}, -2},
		{"keyring_file_add_key", obj{"path": good}, CodeInvalidParams},
		{"nvmf_create_subsystem", obj{"nqn": nqn1}, 0},
		{"nvmf_subsystem_add_host", obj{"nqn": nqn1, "host": host, "dhchap_key": "nope"}, CodeInvalidParams},
		{"nvmf_subsystem_add_host", obj{"nqn": nqn1, "host": host, "dhchap_ctrlr_key": "k"}, CodeInvalidParams},
		{"nvmf_subsystem_add_host", obj{"nqn": nqn1, "host": host, "dhchap_key": "k"}, 0},
		{"keyring_file_remove_key", obj{"name": "k"}, CodeInvalidParams},
		{"nvmf_subsystem_set_keys", obj{"nqn": nqn1, "host": "nqn.2014-08.org.nvmexpress:uuid:2"}, CodeInvalidParams},
		{"nvmf_subsystem_set_keys", obj{"nqn": nqn1, "host": host}, 0},
		{"keyring_file_remove_key", obj{"name": "k"}, 0},
		{"keyring_file_remove_key", obj{"name": "k"}, codeNoKey},
	} {
		_, e := c.call(st.method, st.params)
		switch {
		case st.code == 0 && e != nil:
			t.Errorf("step %d %s %v: %v", i, st.method, st.params, e)
		case st.code != 0 && (e == nil || e.Code != st.code):
			t.Errorf("step %d %s %v: got %v, want code %d", i, st.method, st.params, e, st.code)
		}
	}
	if got := string(c.must("keyring_get_keys", nil)); got != "[]" {
		t.Errorf("keyring_get_keys at the end: %s", got)
	}
}
