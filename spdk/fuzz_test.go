package spdk

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/flashpath/flashpath/target/server"
)

// FuzzDecodeRequest feeds arbitrary bytes to the request decoder: an error
// or a request that encodes and decodes back to itself, never a panic; and
// Handle answers everything with one JSON object (or nothing, for a
// notification) on a server without a target behind it.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","method":"spdk_get_version","id":1}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"bdev_malloc_create","params":{"num_blocks":8,"block_size":512},"id":"x"}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"framework_wait_init"}`))
	f.Add([]byte(`[{"jsonrpc":"2.0","method":"spdk_get_version","id":1}]`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"x","params":null,"id":null}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"x","params":7,"id":{}}`))
	f.Add([]byte(`{"jsonrpc": oops`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, rerr := DecodeRequest(data)
		if rerr != nil {
			if rerr.Code != CodeParseError && rerr.Code != CodeInvalidRequest {
				t.Fatalf("decode error code %d", rerr.Code)
			}
			return
		}
		enc := req.Encode()
		again, rerr := DecodeRequest(enc)
		if rerr != nil {
			t.Fatalf("%s: re-encoded as %s, which does not decode: %v", data, enc, rerr)
		}
		if again.Method != req.Method || !bytes.Equal(again.Params, req.Params) || !bytes.Equal(again.ID, req.ID) {
			t.Fatalf("round trip: %+v != %+v", again, req)
		}
		// Methods that need no target: the answer is one JSON object.
		if _, ok := methods[req.Method]; ok && req.Method != "spdk_get_version" && req.Method != "rpc_get_methods" && req.Method != "framework_wait_init" {
			return
		}
		s := &Server{log: slog.New(slog.DiscardHandler)}
		if resp := s.Handle(data); resp != nil {
			var r map[string]json.RawMessage
			if err := json.Unmarshal(resp, &r); err != nil || (r["result"] == nil) == (r["error"] == nil) {
				t.Fatalf("response %s: %v", resp, err)
			}
		}
	})
}

// FuzzParseConfig feeds arbitrary bytes to the SPDK JSON config parser
// (what flashpath target --config and load_config read): an error, or a
// configuration that encodes and parses back to the same requests; never
// a panic, in PrepareConfig either.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(spdkSaved))
	f.Add([]byte(`{"subsystems": [{"subsystem": "bdev", "config": [[{"method": "bdev_malloc_create", "params": {"name": "M", "num_blocks": 8, "block_size": 512}}]]}]}`))
	f.Add([]byte(`{"subsystems": [{"subsystem": "nvmf", "config": null}]}`))
	f.Add([]byte(`{"subsystems": [{"subsystem": "nvmf", "config": [{"method": "nvmf_set_config", "params": {"dhchap_digests": ["sha512"]}}]}]}`))
	f.Add([]byte(`{"subsystems": [{"subsystem": "x", "config": [{"method": ""}]}]}`))
	f.Add([]byte(`{"listeners": ["tcp://127.0.0.1:4420"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		var cfg server.Config
		PrepareConfig(c, &cfg)
		var reqs []configEntry
		c.each(func(_ string, e configEntry) error { reqs = append(reqs, e); return nil })
		enc, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		again, err := ParseConfig(enc)
		if err != nil {
			t.Fatalf("%s: re-encoded as %s, which does not parse: %v", data, enc, err)
		}
		n := 0
		again.each(func(_ string, e configEntry) error {
			if n >= len(reqs) || e.Method != reqs[n].Method {
				t.Fatalf("round trip: request %d is %s", n, e.Method)
			}
			n++
			return nil
		})
		if n != len(reqs) {
			t.Fatalf("round trip: %d requests, want %d", n, len(reqs))
		}
	})
}
