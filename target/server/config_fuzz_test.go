package server

import "testing"

// FuzzParse feeds arbitrary bytes to the configuration parser: an error or
// a configuration that validates, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("listeners: [tcp://127.0.0.1:4420]\nsubsystems:\n  - nqn: nqn.2026-11.io.flashpath:a\n    namespaces: [{nsid: 1, backend: \"mem:1GiB\"}]\n"))
	f.Add([]byte(`{"listeners":["tcp://[::1]:4420"],"metrics":"127.0.0.1:9420","subsystems":[{"nqn":"nqn.a:b","allowed_hosts":["nqn.h:1"],"namespaces":[{"backend":"null:1TiB","uuid":"6b0f3a2e-5d1c-4e8f-9a7b-1c2d3e4f5a6b"}]}]}`))
	f.Add([]byte("listeners: [\"tcp://127.0.0.1:4420?tls=optional\", \"rdma://1.2.3.4?tls=off\"]\nsubsystems:\n  - nqn: nqn.a:b\n    allowed_hosts: [{nqn: nqn.h:1, tls_key: \"NVMeTLSkey-1:01:VRLbtnN9AQb2WXW3c9+wEf/DRLz0QuLdbYvEhwtdWwNf9LrZ:\"}]\n"))
	f.Add([]byte("listeners: 7\nsubsystems: {a: b}\n"))
	f.Add([]byte("- - - [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that does not validate: %v", err)
		}
	})
}
