package spdk

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPTPLFileRPC: nvmf_subsystem_add_ns takes SPDK's ptpl_file and opens
// it (a file that is another namespace's is refused, and so is a missing
// directory), save_config writes it, and a target restored from that
// configuration opens it again.
func TestPTPLFileRPC(t *testing.T) {
	dir := t.TempDir()
	const uuid = "11111111-2222-4333-8444-555555555555"
	good, other := filepath.Join(dir, "m1.ptpl"), filepath.Join(dir, "other.ptpl")
	kept := `{"ptpl": true, "rtype": 1, "crkey": 10, "bdev_uuid": "` + uuid + `", "holder_uuid": "aaaaaaaa-0000-4000-8000-000000000001", "registrants": [{"rkey": 10, "host_uuid": "aaaaaaaa-0000-4000-8000-000000000001"}]}`
	if err := os.WriteFile(good, []byte(kept), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(strings.ReplaceAll(kept, uuid, "11111111-2222-4333-8444-000000000000")), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, rs := start(t, nil)
	c := dial(t, rs.Path())
	c.must("nvmf_create_subsystem", obj{"nqn": nqn1, "allow_any_host": true})
	c.must("bdev_malloc_create", obj{"name": "M1", "num_blocks": 256, "block_size": 512, "uuid": uuid})
	for _, bad := range []struct{ file, want string }{
		{other, "another namespace"},
		{filepath.Join(dir, "none", "m1.ptpl"), "does not exist"},
	} {
		_, e := c.call("nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "M1", "ptpl_file": bad.file}})
		if e == nil || !strings.Contains(e.Message, bad.want) {
			t.Errorf("ptpl_file %s: %v, want an error with %q", bad.file, e, bad.want)
		}
		if n := len(srv.Applied().Subsystems[0].Namespaces); n != 0 {
			t.Fatalf("%d namespaces after the refused add", n)
		}
	}
	c.must("nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "M1", "ptpl_file": good}})
	if ns := srv.Applied().Subsystems[0].Namespaces; len(ns) != 1 || ns[0].PTPLFile != good {
		t.Fatalf("namespaces %+v", ns)
	}
	c.must("bdev_malloc_create", obj{"name": "M2", "num_blocks": 256, "block_size": 512})
	if _, e := c.call("nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "M2", "ptpl_file": good}}); e == nil || !strings.Contains(e.Message, "also the file of") {
		t.Errorf("a second namespace with the same ptpl_file: %v", e)
	}
	saved := saveConfig(t, rs.Path())
	doc := mustJSON(t, saved)
	if !strings.Contains(doc, `"ptpl_file":"`+good+`"`) {
		t.Errorf("save_config lacks the ptpl_file:\n%s", doc)
	}
	rs.Close()
	srv.Shutdown(context.Background())
	srv2, _, err := startSaved(t, saved)
	if err != nil {
		t.Fatal(err)
	}
	if ns := srv2.Applied().Subsystems[0].Namespaces; len(ns) != 1 || ns[0].PTPLFile != good {
		t.Fatalf("restored namespaces %+v", ns)
	}
}
