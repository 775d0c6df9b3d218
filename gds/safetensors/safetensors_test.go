package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func file(js string, data int) []byte {
	b := make([]byte, 8, 8+len(js)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(js)))
	b = append(b, js...)
	return append(b, make([]byte, data)...)
}

func TestParseValid(t *testing.T) {
	b := file(`{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},`+
		`"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"s":{"dtype":"I64","shape":[],"data_offsets":[12,20]}}  `, 20)
	h, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Tensors) != 3 || h.Tensors[0].Name != "a" || h.Tensors[1].Name != "b" || h.Tensors[2].Name != "s" {
		t.Fatalf("tensors %+v", h.Tensors)
	}
	if h.Metadata["format"] != "pt" || h.DataSize != 20 || h.DataOffset != int64(len(b)-20) {
		t.Fatalf("header %+v", h)
	}
}

func TestParseRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"short":           {1, 2, 3},
		"length too big":  append(binary.LittleEndian.AppendUint64(nil, 1<<40), '{', '}'),
		"length past eof": append(binary.LittleEndian.AppendUint64(nil, 10), '{', '}'),
		"not json":        file(`{"a":`, 0),
		"array":           file(`[1,2]`, 0),
		"unknown dtype":   file(`{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}`, 1),
		"missing field":   file(`{"a":{"dtype":"U8","shape":[1]}}`, 1),
		"out of range":    file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 3),
		"reversed":        file(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, 4),
		"negative":        file(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, 4),
		"size mismatch":   file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 8),
		"overflow":        file(`{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,0]}}`, 8),
		"overlap": file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},`+
			`"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, 8),
		"three offsets": file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 2),
		"bad metadata":  file(`{"__metadata__":{"a":1}}`, 0),
		"trailing":      file(`{}x`, 0),
	} {
		_, err := Parse(b, int64(len(b)))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	h := &Header{Metadata: map[string]string{"k": "v"}, Tensors: []Tensor{
		{Name: "w", DType: "BF16", Shape: []int64{3, 5}},
		{Name: "b\"q", DType: "F32", Shape: []int64{7}},
		{Name: "x", DType: "U8", Shape: []int64{}},
	}}
	size, err := Layout(h.Tensors, 64)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Encode(4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc)%4096 != 0 || h.DataOffset != int64(len(enc)) {
		t.Fatalf("header is %d bytes, want a multiple of 4096", len(enc))
	}
	got, err := Parse(enc, int64(len(enc))+size)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Tensors, h.Tensors) || !reflect.DeepEqual(got.Metadata, h.Metadata) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got.Tensors, h.Tensors)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(file(`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, 4))
	f.Add(file(`{"__metadata__":{"format":"pt"}}`, 0))
	f.Add(file(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, 8))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b, int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// A valid result: tensors sorted, in range, not overlapping, sized.
		var end int64
		for _, tn := range h.Tensors {
			size, _ := tn.DType.Size()
			n, ok := numBytes(tn.Shape, size)
			if tn.Begin < end || tn.End > h.DataSize || !ok || int64(n) != tn.Size() {
				t.Fatalf("invalid tensor accepted: %+v (data %d)", tn, h.DataSize)
			}
			end = tn.End
		}
		// parse → encode → parse gives the same header.
		enc, err := h.Encode(8)
		if err != nil {
			return // reserved names cannot be re-encoded
		}
		h2, err := Parse(enc, int64(len(enc))+h.DataSize)
		if err != nil {
			t.Fatalf("re-parse of encoded header: %v", err)
		}
		if len(h2.Tensors) != len(h.Tensors) {
			t.Fatalf("round trip lost tensors: %d != %d", len(h2.Tensors), len(h.Tensors))
		}
		for i := range h.Tensors {
			a, b := h.Tensors[i], h2.Tensors[i]
			if a.Name != b.Name || a.DType != b.DType || a.Begin != b.Begin || a.End != b.End || !reflect.DeepEqual(a.Shape, b.Shape) {
				t.Fatalf("round trip: %+v != %+v", a, b)
			}
		}
	})
}
