package gds

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flashpath/flashpath/gds/safetensors"
)

// ShardSource is one safetensors file of a checkpoint to load.
type ShardSource struct {
	Name     string // the shard's file name in the index
	Location string // a local path or a namespace URL (tcp://HOST:PORT/NQN/NSID)
	// Expect is each tensor's CRC-32C where the index records it (a
	// checkpoint flashpath saved); Verify compares against it.
	Expect map[string]uint32
}

// LoadPlan is a load of one or more shards into one or more GPUs.
type LoadPlan struct {
	Shards  []ShardSource
	Devices []*Device // at least one
	// Place maps a tensor (of Shards[shard]) to its device, an index
	// into Devices (nil: Devices[0] for all).
	Place   func(shard int, tensor string) int
	Options Options // Workers, Depth and Chunk of the staging pipeline
	Remote  RemoteOptions
	// Verify checks every tensor in GPU memory after the load (off the
	// timed path): against the index's CRC-32C where it has one, else
	// against the shard's bytes read again.
	Verify bool
}

// ShardReport is what one shard's move did: machine-readable, one per
// file or namespace.
type ShardReport struct {
	Name      string  `json:"name"`
	Location  string  `json:"location"`
	Path      Path    `json:"path"` // staging (NVMe-oF into pinned buffers), bounce (a local file)
	Transport string  `json:"transport,omitempty"`
	Target    string  `json:"target,omitempty"`
	Queues    int     `json:"queues,omitempty"`
	GPUs      []int   `json:"gpus"`
	Tensors   int     `json:"tensors"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"` // from the start of the transfer to this shard's last byte
	GBps      float64 `json:"gbps"`
	Reason    string  `json:"reason"`
}

// Sharded is a checkpoint of one or more shards loaded into GPU memory.
type Sharded struct {
	Tensors  []Tensor
	Metadata map[string]string // the first shard's __metadata__
	Buffers  []*Buffer         // one allocation per device; Tensors point into them
	Shards   []ShardReport
	Bytes    int64
	Setup    time.Duration // connect, headers, allocation, staging
	Transfer time.Duration
	Verified time.Duration // the verification, when asked for
	CPU      time.Duration // user+system CPU of the process during setup and transfer
	Checks   []TensorCheck // the verification's results
	Workers  int           // reader threads per GPU
	Chunk    int64         // bytes per read and copy
}

// GBps is the transfer rate in GB/s.
func (s *Sharded) GBps() float64 {
	if s.Transfer <= 0 {
		return 0
	}
	return float64(s.Bytes) / s.Transfer.Seconds() / 1e9
}

// CPUPerGB is CPU-seconds per GB moved.
func (s *Sharded) CPUPerGB() float64 {
	if s.Bytes == 0 {
		return 0
	}
	return s.CPU.Seconds() / (float64(s.Bytes) / 1e9)
}

// Close frees the GPU memory.
func (s *Sharded) Close() error {
	var err error
	for _, b := range s.Buffers {
		err = cmp.Or(err, b.Close())
	}
	s.Buffers = nil
	return err
}

// shardShift places each shard of a load at its own 16 TiB of the
// pipeline's address space: offset>>shardShift is the shard.
const shardShift = 44

// shardSet is the shards of a load as one fileIO for the bounce pipeline.
type shardSet []*source

func (m shardSet) Align() int64 { return 4096 }

func (m shardSet) ReadAt(p []byte, off int64) (int, error) {
	s := m[off>>shardShift]
	n, err := s.ReadAt(p, off&(1<<shardShift-1))
	if err != nil {
		return 0, fmt.Errorf("shard %s: %w", s.where(), err)
	}
	return n, nil
}

func (m shardSet) WriteAt(p []byte, off int64) (int, error) {
	return 0, errors.New("shard set: read only")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// placed is a tensor of a load with where it goes.
type placed struct {
	shard int
	t     safetensors.Tensor
	off   int64 // file offset
	dev   int
	bufAt int64 // offset in its device's buffer
}

// LoadShards loads every shard of plan into GPU memory at once: each
// shard is opened (a remote over its own queues), every tensor placed on
// its device (one allocation per device, tensors 256-byte aligned), and
// the shards' data read through one staging pipeline per device, their
// chunks interleaved so that every shard and target is in flight
// together. A failure anywhere fails the load and frees everything: no
// tensor is reported loaded.
func LoadShards(ctx context.Context, plan LoadPlan) (*Sharded, error) {
	if len(plan.Devices) == 0 {
		return nil, errors.New("load: no GPU given")
	}
	if len(plan.Shards) == 0 {
		return nil, errors.New("load: no shard given")
	}
	t0, cpu0 := time.Now(), cpuTime()
	o := plan.Options
	if o.Workers <= 0 && slices.ContainsFunc(plan.Shards, func(s ShardSource) bool { return IsURL(s.Location) }) {
		o.Workers = DefaultRemoteWorkers()
	}
	o = o.withDefaults()
	srcs := make([]*source, len(plan.Shards))
	hdrs := make([]*safetensors.Header, len(plan.Shards))
	defer func() {
		for _, s := range srcs {
			if s != nil {
				s.Close()
			}
		}
	}()
	err := forEach(len(plan.Shards), func(i int) error {
		sh := plan.Shards[i]
		s, err := openSource(ctx, sh.Name, sh.Location, false, plan.Remote)
		if err != nil {
			return fmt.Errorf("shard %s: %w", cmp.Or(sh.Name, sh.Location), err)
		}
		srcs[i] = s
		h, err := safetensors.Read(headerReader{s}, s.size)
		if err != nil {
			return fmt.Errorf("shard %s: %w", s.where(), err)
		}
		hdrs[i] = h
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Place the tensors: per device, packed in shard and file order.
	var all []placed
	sizes := make([]int64, len(plan.Devices))
	for i, h := range hdrs {
		for _, t := range h.Tensors {
			d := 0
			if plan.Place != nil {
				d = plan.Place(i, t.Name)
			}
			if d < 0 || d >= len(plan.Devices) {
				return nil, fmt.Errorf("load: tensor %q placed on device %d of %d", t.Name, d, len(plan.Devices))
			}
			at := (sizes[d] + 255) &^ 255
			sizes[d] = at + t.Size()
			all = append(all, placed{shard: i, t: t, off: h.DataOffset + t.Begin, dev: d, bufAt: at})
		}
	}
	ck := &Sharded{Metadata: hdrs[0].Metadata, Workers: o.Workers, Chunk: o.Chunk}
	fail := func(err error) (*Sharded, error) {
		ck.Close()
		return nil, err
	}
	bufs := make([]*Buffer, len(plan.Devices)) // by device index
	for d, n := range sizes {
		if n == 0 {
			continue
		}
		if bufs[d], err = plan.Devices[d].Alloc(n); err != nil {
			return fail(err)
		}
		ck.Buffers = append(ck.Buffers, bufs[d])
	}
	bufOf := func(d int) *Buffer { return bufs[d] }
	for _, p := range all {
		ck.Tensors = append(ck.Tensors, Tensor{Name: p.t.Name, DType: p.t.DType, Shape: p.t.Shape,
			Ptr: bufOf(p.dev).Ptr() + DevicePtr(p.bufAt), Size: p.t.Size(), Off: p.off,
			GPU: plan.Devices[p.dev].Info.Index, Shard: plan.Shards[p.shard].Name})
		ck.Bytes += p.t.Size()
	}
	// The requests of each device: runs of tensors adjacent in the file
	// and in the buffer, cut at chunk boundaries of the file, interleaved
	// across shards.
	perShard := make([][][]Request, len(plan.Devices)) // [device][shard] requests
	for d := range perShard {
		perShard[d] = make([][]Request, len(srcs))
	}
	remaining := make([]atomic.Int64, len(srcs))
	for i := 0; i < len(all); {
		p := all[i]
		start, end, at := p.off, p.off+p.t.Size(), p.bufAt
		j := i + 1
		for ; j < len(all); j++ {
			q := all[j]
			if q.shard != p.shard || q.dev != p.dev || q.off != end || q.bufAt != at+(end-start) {
				break
			}
			end += q.t.Size()
		}
		base := int64(p.shard) << shardShift
		dev := bufOf(p.dev).Ptr() + DevicePtr(at)
		for cur := start; cur < end; {
			next := min((cur/o.Chunk+1)*o.Chunk, end)
			perShard[p.dev][p.shard] = append(perShard[p.dev][p.shard],
				Request{Op: OpRead, Off: base + cur, Len: next - cur, Dev: dev + DevicePtr(cur-start), Tag: uint64(p.shard)})
			remaining[p.shard].Add(1)
			cur = next
		}
		i = j
	}
	done := make([]time.Duration, len(srcs))
	var t1 time.Time
	// One staging pipeline per device, all running at once.
	trs := make([]*bounce, len(plan.Devices))
	defer func() {
		for _, b := range trs {
			if b != nil {
				b.Close()
			}
		}
	}()
	for d, dev := range plan.Devices {
		if sizes[d] == 0 {
			continue
		}
		if trs[d], err = newBounce(dev, shardSet(srcs), false, ReaderPread, o.Workers, o.Depth, o.Chunk); err != nil {
			return fail(err)
		}
	}
	ck.Setup = time.Since(t0)
	t1 = time.Now()
	err = forEach(len(plan.Devices), func(d int) error {
		if trs[d] == nil {
			return nil
		}
		reqs := interleave(perShard[d])
		return runTracked(ctx, trs[d], reqs, func(c Completion) {
			if remaining[c.Tag].Add(-1) == 0 {
				done[c.Tag] = time.Since(t1)
			}
		})
	})
	ck.Transfer = time.Since(t1)
	ck.CPU = cpuTime() - cpu0
	if err != nil {
		return fail(fmt.Errorf("load: %w", err))
	}
	for i, s := range srcs {
		r := ShardReport{Name: plan.Shards[i].Name, Location: s.location, Seconds: done[i].Seconds()}
		r.Path, r.Transport, r.Target, r.Queues = s.info()
		gpus := map[int]bool{}
		for _, p := range all {
			if p.shard == i {
				r.Tensors++
				r.Bytes += p.t.Size()
				gpus[plan.Devices[p.dev].Info.Index] = true
			}
		}
		for g := range gpus {
			r.GPUs = append(r.GPUs, g)
		}
		slices.Sort(r.GPUs)
		if done[i] > 0 {
			r.GBps = float64(r.Bytes) / done[i].Seconds() / 1e9
		}
		if r.Path == PathStaging {
			r.Reason = fmt.Sprintf("NVMe/%s through flashpath's host: %d queues to %s, data received into pinned staging buffers, copied to the GPU on %d streams while the next reads run",
				strings.ToUpper(r.Transport), r.Queues, r.Target, o.Workers)
		} else {
			r.Reason = "local file: pread into pinned staging buffers, copied to the GPU while the next reads run"
		}
		ck.Shards = append(ck.Shards, r)
	}
	if plan.Verify {
		tv := time.Now()
		ck.Checks, err = verifyShards(ck, srcs, plan.Shards, max(o.Workers, 4))
		ck.Verified = time.Since(tv)
		if err != nil {
			return fail(err)
		}
	}
	return ck, nil
}

// interleave takes one request from each shard in turn.
func interleave(per [][]Request) []Request {
	var out []Request
	for k := 0; ; k++ {
		added := false
		for _, rs := range per {
			if k < len(rs) {
				out = append(out, rs[k])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

// runTracked is Run with a callback for each successful completion.
func runTracked(ctx context.Context, t Transfer, reqs []Request, each func(Completion)) error {
	depth := t.QueueDepth()
	comps := make([]Completion, depth)
	var first error
	inflight := 0
	for len(reqs) > 0 || inflight > 0 {
		if n := min(len(reqs), depth-inflight); n > 0 && first == nil {
			if err := t.Submit(reqs[:n]); err != nil {
				return err
			}
			reqs, inflight = reqs[n:], inflight+n
		}
		if first != nil {
			reqs = nil // stop submitting; reap what is in flight
		}
		if inflight == 0 {
			break
		}
		got, err := t.Reap(ctx, 1, comps[:inflight])
		for _, c := range comps[:got] {
			if c.Err != nil {
				first = cmp.Or(first, c.Err)
				continue
			}
			each(c)
		}
		inflight -= got
		if err != nil {
			return err
		}
	}
	return first
}

// forEach runs f(0..n-1) in parallel and returns the first error.
func forEach(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(slices.DeleteFunc(errs, func(e error) bool { return e == nil })...)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// verifyShards checks every tensor in GPU memory: its CRC-32C against the
// index's, or against the source's bytes read again.
func verifyShards(ck *Sharded, srcs []*source, shards []ShardSource, workers int) ([]TensorCheck, error) {
	out := make([]TensorCheck, len(ck.Tensors))
	idx := map[string]int{}
	for i, sh := range shards {
		idx[sh.Name] = i
	}
	errs := make([]error, len(ck.Tensors))
	next := make(chan int)
	var wg sync.WaitGroup
	const piece = 16 << 20
	for range workers {
		wg.Go(func() {
			gbuf := make([]byte, piece)
			fbuf := make([]byte, piece+2*4096)
			for i := range next {
				t := &ck.Tensors[i]
				si := idx[t.Shard]
				want, known := shards[si].Expect[t.Name]
				var gcrc, fcrc uint32
				for off := int64(0); off < t.Size; off += piece {
					n := min(piece, t.Size-off)
					b := ck.bufferOf(t)
					if err := b.CopyToHost(gbuf[:n], int64(t.Ptr-b.Ptr())+off); err != nil {
						errs[i] = fmt.Errorf("copy %s back: %w", t.Name, err)
						break
					}
					gcrc = crc32.Update(gcrc, castagnoli, gbuf[:n])
					if !known {
						p, err := readSpan(srcs[si], fbuf, t.Off+off, n)
						if err != nil {
							errs[i] = fmt.Errorf("verify %s: read shard %s again: %w", t.Name, srcs[si].where(), err)
							break
						}
						fcrc = crc32.Update(fcrc, castagnoli, p)
					}
				}
				if known {
					fcrc = want
				}
				out[i] = TensorCheck{Name: t.Name, FileCRC: fcrc, GPUCRC: gcrc, OK: errs[i] == nil && fcrc == gcrc}
			}
		})
	}
	for i := range ck.Tensors {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	var bad []string
	for i, c := range out {
		if !c.OK {
			t := &ck.Tensors[i]
			what := "its bytes in the shard"
			if _, known := shards[idx[t.Shard]].Expect[t.Name]; known {
				what = "the CRC-32C the index recorded at save"
			}
			bad = append(bad, fmt.Sprintf("tensor %q of shard %s differs from %s (CRC-32C %08x, want %08x)",
				t.Name, srcs[idx[t.Shard]].where(), what, c.GPUCRC, c.FileCRC))
		}
	}
	if len(bad) > 0 {
		if len(bad) > 5 {
			bad = append(bad[:5], fmt.Sprintf("and %d more", len(bad)-5))
		}
		return out, fmt.Errorf("verify: %d of %d tensors corrupted: %s", len(bad), len(out), strings.Join(bad, "; "))
	}
	return out, nil
}

func (s *Sharded) bufferOf(t *Tensor) *Buffer {
	for _, b := range s.Buffers {
		if t.Ptr >= b.Ptr() && t.Ptr < b.Ptr()+DevicePtr(b.Size()) {
			return b
		}
	}
	return nil
}

// readSpan reads n bytes at off from s through buf (n + 8 KiB at least),
// in whole 4 KiB blocks.
func readSpan(s *source, buf []byte, off, n int64) ([]byte, error) {
	start := off &^ 4095
	end := (off + n + 4095) &^ 4095
	if _, err := s.ReadAt(buf[:end-start], start); err != nil {
		return nil, err
	}
	return buf[off-start : off-start+n], nil
}

// OpenIndex reads a sharded checkpoint's index and says where each shard
// lives: locations (shard name → path or URL) first, then the index's
// flashpath record, then the weight map's name as a URL or as a file
// beside the index. An index that a save left incomplete, or that is
// missing while a save's ".partial" record is there, is refused.
func OpenIndex(path string, locations map[string]string) (*safetensors.Index, []ShardSource, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, perr := os.Stat(path + ".partial"); perr == nil {
			return nil, nil, fmt.Errorf("%s: %w: a save was interrupted before it wrote the index (%s.partial is its record); save again", path, errIncomplete, path)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	idx, err := safetensors.ParseIndex(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if idx.Flashpath != nil && !idx.Flashpath.Complete {
		return nil, nil, fmt.Errorf("%s: %w: its save did not finish", path, errIncomplete)
	}
	dir := filepath.Dir(path)
	var out []ShardSource
	for _, name := range idx.Shards() {
		s := ShardSource{Name: name}
		var rec safetensors.ShardEntry
		if idx.Flashpath != nil {
			rec = idx.Flashpath.Shards[name]
			s.Expect = rec.CRC32C
		}
		switch loc := locations[name]; {
		case loc != "":
			s.Location = loc
		case rec.Location != "":
			s.Location = rec.Location
		default:
			s.Location = name
		}
		if !IsURL(s.Location) && !filepath.IsAbs(s.Location) {
			s.Location = filepath.Join(dir, s.Location)
		}
		out = append(out, s)
	}
	for name := range locations {
		if !slices.ContainsFunc(out, func(s ShardSource) bool { return s.Name == name }) {
			return nil, nil, fmt.Errorf("%s: a location was given for shard %q, which the index does not name (it names %s)", path, name, strings.Join(idx.Shards(), ", "))
		}
	}
	return idx, out, nil
}

// IsIncomplete reports whether err says a checkpoint's save did not finish.
func IsIncomplete(err error) bool { return errors.Is(err, errIncomplete) }
