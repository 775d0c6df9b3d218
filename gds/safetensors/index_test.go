package safetensors

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestParseIndex(t *testing.T) {
	idx, err := ParseIndex([]byte(`{"metadata":{"total_size":12},"weight_map":{"a":"s2.safetensors","b":"s1.safetensors","c":"s2.safetensors"},
		"flashpath":{"version":1,"complete":true,"shards":{"s1.safetensors":{"location":"tcp://h:4420/nqn.a:b/1","size":4096,"crc32c":{"b":7}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := idx.Shards(); !reflect.DeepEqual(got, []string{"s1.safetensors", "s2.safetensors"}) {
		t.Errorf("Shards() = %v", got)
	}
	if e := idx.Flashpath.Shards["s1.safetensors"]; e.Location != "tcp://h:4420/nqn.a:b/1" || e.CRC32C["b"] != 7 || !idx.Flashpath.Complete {
		t.Errorf("flashpath record %+v", idx.Flashpath)
	}
	for _, bad := range []string{``, `[]`, `{"weight_map":{}}`, `{"weight_map":{"a":""}}`, `{"weight_map":{"a":1}}`} {
		if _, err := ParseIndex([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseIndex(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"metadata":{"total_size":8},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map":{"a":"s"},"flashpath":{"version":1,"complete":false,"shards":{"s":{"location":"rdma://10.0.0.1/nqn.x:y/3","size":1,"crc32c":{"a":4294967295}}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, err := ParseIndex(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		shards := idx.Shards()
		if len(shards) == 0 {
			t.Fatal("a valid index without shards")
		}
		// parse → encode → parse keeps the weight map and shards.
		enc, err := json.Marshal(idx)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseIndex(enc)
		if err != nil {
			t.Fatalf("re-encoded index refused: %v", err)
		}
		if !reflect.DeepEqual(again.WeightMap, idx.WeightMap) || !reflect.DeepEqual(again.Shards(), shards) {
			t.Fatal("round trip changed the index")
		}
	})
}
