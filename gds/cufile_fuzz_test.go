package gds

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCuFileConfig reads arbitrary bytes as the user's cufile.json (JSON
// with // and /* */ comments): no panic, and comment stripping is
// idempotent and keeps strings intact.
func FuzzCuFileConfig(f *testing.F) {
	f.Add([]byte(`{ "properties": { "allow_compat_mode": true } }`))
	f.Add([]byte("// NVIDIA's sample\n{ \"logging\": { \"dir\": \"/var/log//cufile\" /* comment */ },\n \"properties\": { \"allow_compat_mode\": false, // off\n \"max_direct_io_size_kb\": 16384 } }"))
	f.Add([]byte(`{"properties": {"allow_compat_mode": "\"/*"}} /* unterminated`))
	f.Add([]byte(`{"a": "\\"} // escaped backslash ends the string`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		once := stripJSONComments(in)
		if twice := stripJSONComments(once); !bytes.Equal(once, twice) {
			t.Fatalf("stripping twice differs: %q -> %q -> %q", in, once, twice)
		}
		if len(once) > len(in) {
			t.Fatalf("stripping grew %d bytes to %d", len(in), len(once))
		}
		name := filepath.Join(dir, "cufile.json")
		if err := os.WriteFile(name, in, 0o644); err != nil {
			t.Fatal(err)
		}
		if got := configAllowCompat(name); got == "" {
			t.Fatal("no answer for allow_compat_mode")
		}
	})
}
