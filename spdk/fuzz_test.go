package spdk

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
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
