package spdk

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/flashpath/flashpath/target/server"
)

// startVolumes runs an empty target whose JSON-RPC makes volumes in a
// temporary folder, served over HTTP with token.
func startVolumes(t *testing.T, dir, token string) (*server.Server, *Server) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(&server.Config{RPCSocket: filepath.Join(t.TempDir(), "spdk.sock")}, server.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	rs := New(srv, Options{Logger: log, VolumeDir: dir})
	if err := rs.ListenHTTP("127.0.0.1:0", token, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return srv, rs
}

// post sends one JSON-RPC request over HTTP; it returns the HTTP status
// and the decoded response.
func post(t *testing.T, addr, token, method string, params any) (int, reply) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, r
}

// TestHTTPToken: the JSON-RPC over HTTP answers only with the token.
func TestHTTPToken(t *testing.T) {
	const token = "a-token-of-some-length"
	_, rs := startVolumes(t, t.TempDir(), token)
	for _, bad := range []string{"", "a-token-of-some-lengtX", token + "x"} {
		if code, _ := post(t, rs.HTTPAddr(), bad, "spdk_get_version", nil); code != http.StatusUnauthorized {
			t.Errorf("token %q: HTTP %d, want 401", bad, code)
		}
	}
	code, r := post(t, rs.HTTPAddr(), token, "spdk_get_version", nil)
	if code != http.StatusOK || r.Error != nil || !bytes.Contains(r.Result, []byte("SPDK")) {
		t.Fatalf("with the token: HTTP %d, %s %v", code, r.Result, r.Error)
	}
	_, other := start(t, nil)
	if err := other.ListenHTTP("127.0.0.1:0", "short", nil); err == nil {
		t.Error("a 5-character token was taken")
	}
}

// TestVolumes: a volume is a sparse file in the volume folder that
// becomes a namespace like any bdev; creating it again is the same
// volume; after a restart of the RPC (what a target restart leaves: the
// file) it is taken again; free space counts what the sparse files may
// still take; deleting it removes the file.
func TestVolumes(t *testing.T) {
	const token = "a-token-of-some-length"
	dir := t.TempDir()
	srv, rs := startVolumes(t, dir, token)
	call := func(method string, params any) reply {
		t.Helper()
		_, r := post(t, rs.HTTPAddr(), token, method, params)
		return r
	}
	type vols struct {
		Free    int64 `json:"free_bytes"`
		Volumes []struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
			Bdev string `json:"bdev"`
		} `json:"volumes"`
	}
	list := func() vols {
		t.Helper()
		r := call("flashpath_get_volumes", nil)
		var v vols
		if r.Error != nil || json.Unmarshal(r.Result, &v) != nil {
			t.Fatalf("flashpath_get_volumes: %s %v", r.Result, r.Error)
		}
		return v
	}
	before := list()
	const size = 64 << 20
	if r := call("flashpath_volume_create", map[string]any{"name": "v1", "size": size}); r.Error != nil || string(r.Result) != `"v1"` {
		t.Fatalf("create: %s %v", r.Result, r.Error)
	}
	fi, err := os.Stat(filepath.Join(dir, "v1.img"))
	if err != nil || fi.Size() != size {
		t.Fatalf("volume file: %v %v", fi, err)
	}
	after := list()
	if len(after.Volumes) != 1 || after.Volumes[0].Name != "v1" || after.Volumes[0].Size != size || after.Volumes[0].Bdev != "v1" {
		t.Fatalf("volumes: %+v", after.Volumes)
	}
	// The sparse volume's bytes are counted against the file system's
	// free space. Other tests write and delete files on the same file
	// system meanwhile: read its free space (statfs) around each list,
	// and try again where it moved too much in between.
	fsFree := func() int64 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		return int64(uint64(st.Bavail) * uint64(st.Bsize))
	}
	counted := false
	var lo, hi int64
	for range 20 {
		s1 := fsFree()
		l := list()
		s2 := fsFree()
		lo, hi = min(s1, s2)-l.Free, max(s1, s2)-l.Free // what the list holds back
		if lo-(1<<20) <= size && size <= hi+(1<<20) {
			counted = true
			break
		}
	}
	if !counted {
		t.Errorf("free space is the file system's less %d to %d bytes (before the volume: %d free, after: %d): the sparse volume's %d bytes are not counted", lo, hi, before.Free, after.Free, size)
	}
	if r := call("flashpath_volume_create", map[string]any{"name": "v1", "size": size}); r.Error != nil {
		t.Fatalf("create again: %v", r.Error)
	}
	if r := call("flashpath_volume_create", map[string]any{"name": "v1", "size": 2 * size}); r.Error == nil || r.Error.Code != CodeExists {
		t.Fatalf("create with another size: %v, want File exists", r.Error)
	}
	for _, bad := range []string{"../x", ".hidden", "a/b", ""} {
		if r := call("flashpath_volume_create", map[string]any{"name": bad, "size": size}); r.Error == nil || r.Error.Code != CodeInvalidParams {
			t.Errorf("volume name %q: %v, want invalid parameters", bad, r.Error)
		}
	}
	if r := call("nvmf_create_subsystem", map[string]any{"nqn": "nqn.2026-12.io.test:v1"}); r.Error != nil {
		t.Fatal(r.Error)
	}
	if r := call("nvmf_subsystem_add_ns", map[string]any{"nqn": "nqn.2026-12.io.test:v1", "namespace": map[string]any{"bdev_name": "v1"}}); r.Error != nil {
		t.Fatal(r.Error)
	}
	if ns := srv.Target.Subsystem("nqn.2026-12.io.test:v1").Namespace(1); ns == nil || ns.Backend.Size() != size {
		t.Fatalf("namespace 1 of the volume's subsystem: %v", ns)
	}

	// A restarted RPC (no bdevs) takes the file again; the namespace
	// stays where it was.
	rs.Close()
	rs2 := New(srv, Options{Logger: rs.log, VolumeDir: dir})
	if err := rs2.ListenHTTP("127.0.0.1:0", token, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs2.Close() })
	rs = rs2
	if v := list(); len(v.Volumes) != 1 || v.Volumes[0].Bdev != "" {
		t.Fatalf("after the restart: %+v, want v1 without a bdev", v.Volumes)
	}
	if r := call("flashpath_volume_create", map[string]any{"name": "v1", "size": size}); r.Error != nil {
		t.Fatalf("take the file again: %v", r.Error)
	}
	if r := call("flashpath_volume_delete", map[string]any{"name": "v1"}); r.Error != nil {
		t.Fatalf("delete: %v", r.Error)
	}
	if _, err := os.Stat(filepath.Join(dir, "v1.img")); !os.IsNotExist(err) {
		t.Fatalf("the file is still there: %v", err)
	}
	if r := call("flashpath_volume_delete", map[string]any{"name": "v1"}); r.Error == nil || r.Error.Code != CodeNoDevice {
		t.Fatalf("delete again: %v, want No such device", r.Error)
	}
}

// TestVolumesNeedDir: without a volume folder the methods say how to get
// one.
func TestVolumesNeedDir(t *testing.T) {
	_, rs := start(t, nil)
	c := dial(t, rs.Path())
	if _, e := c.call("flashpath_volume_create", map[string]any{"name": "v1", "size": 1 << 20}); e == nil || e.Code != CodeNotSupported {
		t.Fatalf("%v, want Operation not supported", e)
	}
}
