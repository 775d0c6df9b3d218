package csi

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig feeds arbitrary bytes to the CSI controller's config file
// loader (YAML or JSON) and the strings it and the CO hand the driver
// (addresses, volume IDs): an error or a result, never a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte("targets:\n  - name: t1\n    rpc: unix:///run/flashpath/spdk.sock\n    addresses: [tcp://10.0.0.5:4420]\n    topology: {topology.flashpath.io/rack: rack1}\n"))
	f.Add([]byte(`{"targets":[{"name":"a","rpc":"https://h:1","token_file":"/t","ca_file":"/c","addresses":["rdma://[fe80::1]"]}]}`))
	f.Add([]byte("targets: 7\n"))
	f.Add([]byte("t1/csi-0123456789abcdef0123456789abcdef"))
	// One file, rewritten in place: os.WriteFile truncates it to 0 first,
	// about 1 ms a run on ext4 (auto_da_alloc flushes a file truncated to
	// 0 when it is closed), 10 times the rest of a run.
	name := filepath.Join(f.TempDir(), "csi.yaml")
	file, err := os.Create(name)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { file.Close() })
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := file.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
		if err := file.Truncate(int64(len(b))); err != nil {
			t.Fatal(err)
		}
		if c, err := LoadConfig(name); err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("loaded a config that does not validate: %v", err)
			}
		}
		s := string(b)
		if tr, h, p, err := ParseAddress(s); err == nil && (tr == "" || h == "" || p == "") {
			t.Fatalf("ParseAddress(%q) = %q %q %q", s, tr, h, p)
		}
		if tn, h, ok := parseVolumeID(s); ok && volumeID(tn, h) != s {
			t.Fatalf("parseVolumeID(%q) = %q %q", s, tn, h)
		}
	})
}
