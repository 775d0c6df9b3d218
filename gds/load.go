package gds

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/flashpath/flashpath/gds/safetensors"
)

// Tensor is a tensor of a loaded checkpoint, in GPU memory.
type Tensor struct {
	Name  string            `json:"name"`
	DType safetensors.DType `json:"dtype"`
	Shape []int64           `json:"shape"`
	Ptr   DevicePtr         `json:"ptr"`
	Size  int64             `json:"size"`
	Off   int64             `json:"file_offset"`
	GPU   int               `json:"gpu"`             // the device's ordinal
	Shard string            `json:"shard,omitempty"` // the shard it came from (sharded loads)
}

// Checkpoint is a safetensors file loaded into one device allocation.
type Checkpoint struct {
	Tensors  []Tensor
	Metadata map[string]string
	Buffer   *Buffer // all tensor data; Tensors point into it

	File     string
	Path     Path    // the path that ran
	Reason   string  // why
	Direct   bool    // page cache bypassed
	Reader   Reader  // bounce path: io_uring or pread; empty on cufile
	Cached   float64 // page cache residency at open
	Bytes    int64
	Setup    time.Duration // header, allocation, open (staging buffers, streams)
	Transfer time.Duration // the reads into GPU memory
	// Parts of Setup: reading the header, the one device allocation, and
	// opening the file for the path (cuFile probe or registration, pinned
	// staging buffers on a Device's first load, streams).
	SetupHeader, SetupAlloc, SetupOpen time.Duration
}

// GBps is the transfer rate in GB/s (10^9 bytes).
func (c *Checkpoint) GBps() float64 {
	if c.Transfer <= 0 {
		return 0
	}
	return float64(c.Bytes) / c.Transfer.Seconds() / 1e9
}

// Close frees the GPU memory.
func (c *Checkpoint) Close() error {
	if c.Buffer == nil {
		return nil
	}
	err := c.Buffer.Close()
	c.Buffer = nil
	return err
}

// LoadSafetensors reads a safetensors checkpoint into GPU memory through
// the path o selects: one allocation for all tensor data, read as one
// stream of chunks.
func (d *Device) LoadSafetensors(ctx context.Context, name string, o Options) (*Checkpoint, error) {
	t0 := time.Now()
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	h, err := safetensors.Read(f, st.Size())
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &Checkpoint{File: name, Metadata: h.Metadata, Bytes: h.DataSize}
	c.SetupHeader = time.Since(t0)
	if c.Buffer, err = d.Alloc(max(h.DataSize, 1)); err != nil {
		return nil, err
	}
	c.SetupAlloc = time.Since(t0) - c.SetupHeader
	for _, t := range h.Tensors {
		c.Tensors = append(c.Tensors, Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape,
			Ptr: c.Buffer.Ptr() + DevicePtr(t.Begin), Size: t.Size(), Off: h.DataOffset + t.Begin})
	}
	file, err := d.Open(name, o)
	if err != nil {
		c.Close()
		return nil, err
	}
	defer file.Close()
	c.Path, c.Reason, c.Direct, c.Cached, c.Reader = file.Path(), file.Reason(), file.DirectIO(), file.Cached(), file.Reader()
	if file.Path() == PathCuFile && file.DirectIO() {
		file.RegisterBuffer(c.Buffer) // best effort: unregistered buffers work too
	}
	c.Setup = time.Since(t0)
	c.SetupOpen = c.Setup - c.SetupHeader - c.SetupAlloc
	t1 := time.Now()
	if h.DataSize > 0 {
		err = file.Read(ctx, []Request{{Off: h.DataOffset, Len: h.DataSize, Dev: c.Buffer.Ptr()}})
	}
	c.Transfer = time.Since(t1)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("load %s via %s: %w", name, c.Path, err)
	}
	return c, nil
}

// TensorCheck is the result of verifying one tensor.
type TensorCheck struct {
	Name    string `json:"name"`
	FileCRC uint32 `json:"file_crc32"`
	GPUCRC  uint32 `json:"gpu_crc32"`
	OK      bool   `json:"ok"`
}

// Verify copies every tensor back from the GPU and compares its CRC-32C
// with that of its bytes in the file, naming any tensor that differs. It
// is off the timed path.
func (c *Checkpoint) Verify(workers int) ([]TensorCheck, error) {
	src, err := openSource(context.Background(), c.File, c.File, false, RemoteOptions{})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	tensors := make([]Tensor, len(c.Tensors))
	for i, t := range c.Tensors {
		t.Shard = c.File
		tensors[i] = t
	}
	ck := &Sharded{Tensors: tensors, Buffers: []*Buffer{c.Buffer}}
	return verifyShards(ck, []*source{src}, []ShardSource{{Name: c.File, Location: c.File}}, max(workers, 1))
}

// SaveTensor is a tensor in GPU memory to save.
type SaveTensor struct {
	Name  string
	DType safetensors.DType
	Shape []int64
	Ptr   DevicePtr
}

// SaveStats reports a save.
type SaveStats struct {
	Path    Path
	Reason  string
	Bytes   int64
	Elapsed time.Duration
}

// SaveSafetensors writes tensors from GPU memory to a safetensors file at
// name through the path o selects, data packed in order after a header
// padded to 4 KiB, and syncs it.
func (d *Device) SaveSafetensors(ctx context.Context, name string, tensors []SaveTensor, meta map[string]string, o Options) (*SaveStats, error) {
	t0 := time.Now()
	h := &safetensors.Header{Metadata: meta}
	for _, t := range tensors {
		h.Tensors = append(h.Tensors, safetensors.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape})
	}
	size, err := safetensors.Layout(h.Tensors, 1)
	if err != nil {
		return nil, err
	}
	hdr, err := h.Encode(4096)
	if err != nil {
		return nil, err
	}
	file, err := d.Create(name, o)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	// The header goes through a plain fd: the transfer's may be O_DIRECT.
	hf, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = hf.WriteAt(hdr, 0)
	if err == nil {
		err = hf.Truncate(int64(len(hdr)) + size)
	}
	if cerr := hf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write header of %s: %w", name, err)
	}
	reqs := make([]Request, 0, len(tensors))
	for i, t := range h.Tensors {
		if t.Size() > 0 {
			reqs = append(reqs, Request{Off: h.DataOffset + t.Begin, Len: t.Size(), Dev: tensors[i].Ptr, Tag: uint64(i)})
		}
	}
	if err := file.Write(ctx, reqs); err != nil {
		return nil, fmt.Errorf("save %s via %s: %w", name, file.Path(), err)
	}
	if err := file.f.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", name, err)
	}
	return &SaveStats{Path: file.Path(), Reason: file.Reason(), Bytes: size, Elapsed: time.Since(t0)}, nil
}
