// Package safetensors parses and writes the header of a safetensors file.
// It does no I/O beyond reading the header through an io.ReaderAt: the tensor
// bytes are moved by the GPU data path.
//
// File layout (safetensors format, https://github.com/huggingface/safetensors):
//
//	+----------------+--------------------------+-------------------------+
//	| N (8 bytes LE) | JSON header (N bytes)    | data (rest of the file) |
//	+----------------+--------------------------+-------------------------+
//
// The JSON header maps each tensor name to {"dtype", "shape",
// "data_offsets": [begin, end]}, offsets relative to the start of the data;
// an optional "__metadata__" entry maps strings to strings.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"strconv"
)

// MaxHeaderSize bounds the JSON header, as the reference implementation does
// (100 MB): a larger length is a corrupt or hostile file.
const MaxHeaderSize = 100 << 20

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed safetensors header")

// DType is a safetensors element type name, e.g. "BF16".
type DType string

var dtypeSizes = map[DType]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8, "C64": 8,
}

// Size is the element size in bytes; ok is false for an unknown type.
func (d DType) Size() (size int, ok bool) {
	size, ok = dtypeSizes[d]
	return size, ok
}

// Tensor is one entry of the header.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
	Begin int64 // data_offsets[0], relative to the start of the data
	End   int64 // data_offsets[1]
}

// Size is End-Begin, the tensor's size in bytes.
func (t *Tensor) Size() int64 { return t.End - t.Begin }

// Header is a parsed safetensors header.
type Header struct {
	Tensors    []Tensor // sorted by Begin
	Metadata   map[string]string
	DataOffset int64 // 8 + N: the file offset where the data starts
	DataSize   int64 // the file size less DataOffset
}

// Tensor returns the named tensor, or nil.
func (h *Header) Tensor(name string) *Tensor {
	for i := range h.Tensors {
		if h.Tensors[i].Name == name {
			return &h.Tensors[i]
		}
	}
	return nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Read reads and parses the header of a file of the given size.
func Read(r io.ReaderAt, fileSize int64) (*Header, error) {
	var lenBuf [8]byte
	if fileSize < 8 {
		return nil, malformed("file of %d bytes is shorter than the 8-byte length", fileSize)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("read header length: %w", err)
	}
	n, err := headerLen(lenBuf[:], fileSize)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 8+n)
	if _, err := r.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	return Parse(buf, fileSize)
}

func headerLen(b []byte, fileSize int64) (int64, error) {
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderSize {
		return 0, malformed("header length %d exceeds %d", n, MaxHeaderSize)
	}
	if int64(n)+8 > fileSize {
		return 0, malformed("header length %d runs past the end of a %d-byte file", n, fileSize)
	}
	if n < 2 {
		return 0, malformed("header length %d is too short for a JSON object", n)
	}
	return int64(n), nil
}

type entry struct {
	DType       *DType   `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

// Parse parses b, the first 8+N bytes of a file of fileSize bytes. It checks
// the length, the JSON, every dtype, shape and offset pair, that each
// tensor's size is the product of its shape and its element size, that the
// tensors lie within the data and do not overlap.
func Parse(b []byte, fileSize int64) (*Header, error) {
	if len(b) < 8 {
		return nil, malformed("%d bytes is shorter than the 8-byte length", len(b))
	}
	n, err := headerLen(b, fileSize)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < 8+n {
		return nil, malformed("have %d header bytes, length says %d", len(b)-8, n)
	}
	js := b[8 : 8+n]
	if js[0] != '{' {
		return nil, malformed("header does not start with '{'")
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, malformed("JSON: %v", err)
	}
	// Anything but trailing padding spaces after the object is an error.
	if rest := bytes.TrimRight(js[dec.InputOffset():], " \t\r\n\x00"); len(rest) != 0 {
		return nil, malformed("trailing bytes after the JSON object")
	}
	h := &Header{DataOffset: 8 + n, DataSize: fileSize - 8 - n}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &h.Metadata); err != nil {
				return nil, malformed("__metadata__ is not a map of strings: %v", err)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, malformed("tensor %q: %v", name, err)
		}
		if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
			return nil, malformed("tensor %q: dtype, shape and data_offsets are required", name)
		}
		t := Tensor{Name: name, DType: *e.DType, Shape: *e.Shape}
		if err := t.check(*e.DataOffsets, h.DataSize); err != nil {
			return nil, err
		}
		h.Tensors = append(h.Tensors, t)
	}
	sort.Slice(h.Tensors, func(i, j int) bool {
		a, b := &h.Tensors[i], &h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Name < b.Name
	})
	for i := 1; i < len(h.Tensors); i++ {
		p, t := &h.Tensors[i-1], &h.Tensors[i]
		if t.Begin < p.End {
			return nil, malformed("tensors %q [%d,%d) and %q [%d,%d) overlap", p.Name, p.Begin, p.End, t.Name, t.Begin, t.End)
		}
	}
	return h, nil
}

func (t *Tensor) check(offs []int64, dataSize int64) error {
	size, ok := t.DType.Size()
	if !ok {
		return malformed("tensor %q: unknown dtype %q", t.Name, t.DType)
	}
	if len(offs) != 2 {
		return malformed("tensor %q: data_offsets has %d values, want 2", t.Name, len(offs))
	}
	t.Begin, t.End = offs[0], offs[1]
	if t.Begin < 0 || t.End < t.Begin {
		return malformed("tensor %q: bad data_offsets [%d, %d]", t.Name, t.Begin, t.End)
	}
	if t.End > dataSize {
		return malformed("tensor %q: data_offsets [%d, %d] run past the %d data bytes", t.Name, t.Begin, t.End, dataSize)
	}
	want, ok := numBytes(t.Shape, size)
	if !ok {
		return malformed("tensor %q: bad shape %v", t.Name, t.Shape)
	}
	if want != uint64(t.End-t.Begin) {
		return malformed("tensor %q: shape %v of %s is %d bytes, data_offsets span %d", t.Name, t.Shape, t.DType, want, t.End-t.Begin)
	}
	return nil
}

// numBytes is the product of shape and elem, with overflow checked.
func numBytes(shape []int64, elem int) (uint64, bool) {
	n := uint64(elem)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		n = lo
	}
	return n, true
}

// Layout assigns data offsets to tensors in order, each aligned to align
// bytes (1 packs them), and returns the data size. Names, dtypes and shapes
// must be set.
func Layout(tensors []Tensor, align int64) (int64, error) {
	if align < 1 {
		align = 1
	}
	var off int64
	for i := range tensors {
		t := &tensors[i]
		size, ok := t.DType.Size()
		if !ok {
			return 0, fmt.Errorf("tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		n, ok := numBytes(t.Shape, size)
		if !ok {
			return 0, fmt.Errorf("tensor %q: bad shape %v", t.Name, t.Shape)
		}
		off = (off + align - 1) / align * align
		t.Begin, t.End = off, off+int64(n)
		off = t.End
	}
	return off, nil
}

// Encode returns the first 8+N bytes of a file holding h: the length and the
// JSON header, padded with spaces so that the data starts 8-byte aligned (or
// at a multiple of align, when larger, so that O_DIRECT can write it). It
// sets h.DataOffset.
func (h *Header) Encode(align int64) ([]byte, error) {
	var js bytes.Buffer
	js.WriteByte('{')
	first := true
	if len(h.Metadata) > 0 {
		m, err := json.Marshal(h.Metadata)
		if err != nil {
			return nil, err
		}
		js.WriteString(`"__metadata__":`)
		js.Write(m)
		first = false
	}
	for i := range h.Tensors {
		t := &h.Tensors[i]
		if t.Name == "__metadata__" {
			return nil, fmt.Errorf("tensor name %q is reserved", t.Name)
		}
		if !first {
			js.WriteByte(',')
		}
		first = false
		name, _ := json.Marshal(t.Name)
		dt, _ := json.Marshal(string(t.DType))
		js.Write(name)
		js.WriteString(`:{"dtype":`)
		js.Write(dt)
		js.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				js.WriteByte(',')
			}
			js.WriteString(strconv.FormatInt(d, 10))
		}
		fmt.Fprintf(&js, `],"data_offsets":[%d,%d]}`, t.Begin, t.End)
	}
	js.WriteByte('}')
	if align < 8 {
		align = 8
	}
	total := int64(8 + js.Len())
	pad := (align - total%align) % align
	out := make([]byte, 8, total+pad)
	binary.LittleEndian.PutUint64(out, uint64(int64(js.Len())+pad))
	out = append(out, js.Bytes()...)
	out = append(out, bytes.Repeat([]byte{' '}, int(pad))...)
	h.DataOffset = int64(len(out))
	return out, nil
}
