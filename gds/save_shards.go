package gds

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/flashpath/flashpath/gds/internal/cuda"
	"github.com/flashpath/flashpath/gds/safetensors"
	"github.com/flashpath/flashpath/internal/durable"
)

// SaveShard is one shard of a save: its name in the index, where it goes
// (a path or a namespace URL) and its tensors, in GPU memory.
type SaveShard struct {
	Name     string
	Location string
	Tensors  []SaveTensor
}

// SavePlan is a sharded save from one GPU.
type SavePlan struct {
	// Index is the path of the index written last
	// (model.safetensors.index.json): the mark that the save completed.
	Index    string
	Shards   []SaveShard
	Metadata map[string]string // each shard's __metadata__ (e.g. format=pt)
	// Overwrite allows writing a shard where the index being replaced
	// says a shard of the previous checkpoint lives (which then no
	// longer loads if this save fails half way).
	Overwrite bool
	Workers   int   // writer threads (default DefaultWorkers())
	Chunk     int64 // bytes per write (default DefaultChunk)
	Remote    RemoteOptions
}

// SaveReport reports a sharded save.
type SaveReport struct {
	Index   string        `json:"index"`
	Shards  []ShardReport `json:"shards"`
	Bytes   int64         `json:"bytes"`
	Elapsed time.Duration `json:"-"`
	CPU     time.Duration `json:"-"`
}

// GBps is the save's rate in GB/s, flush and index included.
func (r *SaveReport) GBps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Elapsed.Seconds() / 1e9
}

// saveShard is a shard being written.
type saveShard struct {
	SaveShard
	src   *source
	hdr   []byte
	h     *safetensors.Header
	total int64 // header and data
	// pieces[t] are the CRC-32Cs of tensor t's pieces, by offset.
	mu     sync.Mutex
	pieces [][]crcPiece
	done   time.Duration
}

type crcPiece struct {
	off, n int64
	crc    uint32
}

// SaveShards writes every shard of plan at once from d's memory: each
// shard is laid out as a safetensors file (header padded to 4 KiB, data
// packed), its bytes copied from the GPU into pinned staging buffers a
// chunk at a time and written (to a file, or to a namespace over its own
// queues), the CRC-32C of each tensor taken on the way; then every shard
// is flushed (NVMe Flush, fdatasync) and only then the index written, by
// rename, with each shard's location, size and tensor CRCs. A save that
// fails or is killed half way leaves the previous index in place and a
// ".partial" record beside it: the new checkpoint never looks complete.
func (d *Device) SaveShards(ctx context.Context, plan SavePlan) (*SaveReport, error) {
	t0, cpu0 := time.Now(), cpuTime()
	if plan.Index == "" || len(plan.Shards) == 0 {
		return nil, errors.New("save: an index path and at least one shard are needed")
	}
	workers := cmp.Or(plan.Workers, DefaultWorkers())
	chunk := cmp.Or(plan.Chunk, DefaultChunk)
	chunk = (chunk + 4095) &^ 4095
	if err := checkOverwrite(plan); err != nil {
		return nil, err
	}
	ss := make([]*saveShard, len(plan.Shards))
	for i, sh := range plan.Shards {
		h := &safetensors.Header{Metadata: plan.Metadata}
		for _, t := range sh.Tensors {
			h.Tensors = append(h.Tensors, safetensors.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape})
		}
		size, err := safetensors.Layout(h.Tensors, 1)
		if err != nil {
			return nil, fmt.Errorf("save shard %s: %w", sh.Name, err)
		}
		hdr, err := h.Encode(4096)
		if err != nil {
			return nil, fmt.Errorf("save shard %s: %w", sh.Name, err)
		}
		h.DataOffset = int64(len(hdr))
		ss[i] = &saveShard{SaveShard: sh, hdr: hdr, h: h, total: int64(len(hdr)) + size, pieces: make([][]crcPiece, len(sh.Tensors))}
	}
	// The record of a save in progress, before anything is overwritten.
	if err := writeIndex(plan.Index+".partial", buildIndex(ss, false)); err != nil {
		return nil, fmt.Errorf("save: %w", err)
	}
	defer func() {
		for _, s := range ss {
			if s.src != nil {
				s.src.Close()
			}
		}
	}()
	err := forEach(len(ss), func(i int) error {
		s := ss[i]
		src, err := openSource(ctx, s.Name, s.Location, true, plan.Remote)
		if err != nil {
			return fmt.Errorf("save shard %s: %w", s.Name, err)
		}
		s.src = src
		if src.r != nil && src.size < s.total {
			return fmt.Errorf("save shard %s: namespace %s holds %d bytes, the shard needs %d: give a larger namespace", s.Name, s.Location, src.size, s.total)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	type job struct {
		s   *saveShard
		off int64
	}
	// Chunks of all shards interleaved: every shard and target busy at once.
	per := make([][]job, len(ss))
	for i, s := range ss {
		for off := int64(0); off < s.total; off += chunk {
			per[i] = append(per[i], job{s, off})
		}
	}
	jobs := interleave(per)
	staging, err := d.getStaging(workers, chunk)
	if err != nil {
		return nil, err
	}
	defer d.putStaging(staging)
	srcs := make([]*source, len(ss))
	for i, s := range ss {
		srcs[i] = s.src
	}
	unregister, regWhy := registerHost(srcs, staging)
	defer unregister() // before the buffers go back to the pool
	next := make(chan job)
	errs := make([]error, workers)
	var failed atomic.Bool
	var wg sync.WaitGroup
	tw := time.Now()
	for w := range workers {
		wg.Go(func() {
			if err := d.bind(); err != nil {
				errs[w] = err
				for range next {
				}
				return
			}
			defer runtime.UnlockOSThread()
			for j := range next {
				// After the first failure the save fails: skip the rest
				// rather than wait on a lost target chunk by chunk.
				if failed.Load() || ctx.Err() != nil {
					continue
				}
				if err := j.s.writeChunk(staging[w].b, j.off); err != nil {
					errs[w] = fmt.Errorf("save shard %s: %w", j.s.src.where(), err)
					failed.Store(true)
				}
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if err := cmp.Or(errors.Join(errs...), ctx.Err()); err != nil {
		return nil, err
	}
	// Durable before the index says so.
	err = forEach(len(ss), func(i int) error {
		if err := ss[i].src.sync(); err != nil {
			return fmt.Errorf("save shard %s: flush: %w", ss[i].src.where(), err)
		}
		ss[i].done = time.Since(tw)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := writeIndex(plan.Index, buildIndex(ss, true)); err != nil {
		return nil, fmt.Errorf("save: %w", err)
	}
	os.Remove(plan.Index + ".partial")
	rep := &SaveReport{Index: plan.Index}
	for _, s := range ss {
		r := ShardReport{Name: s.Name, Location: s.Location, GPUs: []int{d.Info.Index}, Tensors: len(s.Tensors), Bytes: s.total, Seconds: s.done.Seconds()}
		s.src.report(&r)
		if s.done > 0 {
			r.GBps = float64(s.total) / s.done.Seconds() / 1e9
		}
		r.Reason = "copied from the GPU into pinned staging buffers, written a chunk at a time, flushed before the index"
		if r.Transport == "rdma" {
			if regWhy == "" {
				r.Reason += "; the target RDMA-READs the staging buffers, registered with the NIC"
			} else {
				r.Reason += "; through the host's bounce buffers: " + regWhy
			}
		}
		rep.Shards = append(rep.Shards, r)
		rep.Bytes += s.total
	}
	rep.Elapsed, rep.CPU = time.Since(t0), cpuTime()-cpu0
	return rep, nil
}

// writeChunk fills buf with the shard's bytes [off, off+len(buf)) (header,
// tensor data copied from the GPU, zeros past the end), takes each tensor
// piece's CRC, and writes it: whole blocks to a remote, the exact bytes
// to a file.
func (s *saveShard) writeChunk(buf []byte, off int64) error {
	n := min(int64(len(buf)), s.total-off)
	p := buf[:n]
	if off < int64(len(s.hdr)) {
		copy(p, s.hdr[off:])
	}
	for i := range s.h.Tensors {
		t := &s.h.Tensors[i]
		lo, hi := max(s.h.DataOffset+t.Begin, off), min(s.h.DataOffset+t.End, off+n)
		if lo >= hi {
			continue
		}
		dst := p[lo-off : hi-off]
		src := s.Tensors[i].Ptr + DevicePtr(lo-s.h.DataOffset-t.Begin)
		if err := cuda.MemcpyDtoH(unsafe.Pointer(&dst[0]), cuda.DevicePtr(src), int64(len(dst))); err != nil {
			return fmt.Errorf("copy tensor %q from the GPU: %w", t.Name, err)
		}
		c := crc32.Update(0, castagnoli, dst)
		s.mu.Lock()
		s.pieces[i] = append(s.pieces[i], crcPiece{off: lo - s.h.DataOffset - t.Begin, n: int64(len(dst)), crc: c})
		s.mu.Unlock()
	}
	if s.src.r != nil {
		bs := s.src.bs
		m := (n + bs - 1) / bs * bs
		clear(buf[n:m])
		p = buf[:m]
	}
	_, err := s.src.WriteAt(p, off)
	return err
}

// crc is tensor i's CRC-32C, combined from its pieces.
func (s *saveShard) crc(i int) uint32 {
	ps := s.pieces[i]
	sort.Slice(ps, func(a, b int) bool { return ps[a].off < ps[b].off })
	var c uint32
	for _, p := range ps {
		c = crc32Combine(c, p.crc, p.n)
	}
	return c
}

func buildIndex(ss []*saveShard, complete bool) *safetensors.Index {
	idx := &safetensors.Index{WeightMap: map[string]string{},
		Flashpath: &safetensors.IndexExt{Version: 1, Complete: complete, Shards: map[string]safetensors.ShardEntry{}}}
	var total int64
	for _, s := range ss {
		e := safetensors.ShardEntry{Location: s.Location, Size: s.total}
		if complete {
			e.CRC32C = map[string]uint32{}
		}
		for i, t := range s.h.Tensors {
			idx.WeightMap[t.Name] = s.Name
			total += t.Size()
			if complete {
				e.CRC32C[t.Name] = s.crc(i)
			}
		}
		idx.Flashpath.Shards[s.Name] = e
	}
	idx.Metadata = map[string]any{"total_size": total}
	return idx
}

// writeIndex writes idx to path durably.
func writeIndex(path string, idx *safetensors.Index) error {
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	if err := durable.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write index %s: %w", path, err)
	}
	return nil
}

// checkOverwrite refuses a save into a location where the index it
// replaces keeps a shard, unless plan.Overwrite.
func checkOverwrite(plan SavePlan) error {
	if plan.Overwrite {
		return nil
	}
	b, err := os.ReadFile(plan.Index)
	if err != nil {
		return nil // no previous checkpoint here
	}
	old, err := safetensors.ParseIndex(b)
	if err != nil || old.Flashpath == nil {
		return nil
	}
	for _, sh := range plan.Shards {
		for name, e := range old.Flashpath.Shards {
			if e.Location == sh.Location {
				return fmt.Errorf("save shard %s to %s: the checkpoint %s describes keeps its shard %s there, which a failed save would destroy: save to other locations (or set Overwrite / --overwrite)",
					sh.Name, sh.Location, plan.Index, name)
			}
		}
	}
	return nil
}

// crc32Combine returns the CRC-32C of A‖B from crcA, crcB and len(B)
// (zlib's crc32_combine over the Castagnoli polynomial).
func crc32Combine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA
	}
	var even, odd [32]uint32
	odd[0] = 0x82F63B78 // reflected Castagnoli polynomial
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four
	for {
		gf2Square(&even, &odd)
		if lenB&1 != 0 {
			crcA = gf2Times(&even, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
		gf2Square(&odd, &even)
		if lenB&1 != 0 {
			crcA = gf2Times(&odd, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := range 32 {
		square[n] = gf2Times(mat, mat[n])
	}
}
