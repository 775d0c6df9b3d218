package gds

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
	// Tensors are the tensors the index puts in this shard: a header that
	// lacks one fails the load (a location that names the wrong shard).
	Tensors []string
}

// LoadPlan is a load of one or more shards into one or more GPUs.
type LoadPlan struct {
	Shards  []ShardSource
	Devices []*Device // at least one
	// Place maps a tensor (of Shards[shard]) to its device, an index
	// into Devices (nil: shard i on Devices[i mod n], a checkpoint's
	// shards being about equal in size).
	Place   func(shard int, tensor string) int
	Options Options // Workers, Depth and Chunk of the staging pipeline
	Remote  RemoteOptions
	// PeerMem reports whether nvidia-peermem is loaded, which lets a GPU
	// without dma-buf support take gpu path rdma (nil: whether
	// /sys/module/nvidia_peermem exists; tests pretend).
	PeerMem func() bool
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
	Path      Path    `json:"path"` // rdma (NVMe/RDMA into GPU memory), staging (NVMe-oF into pinned buffers), bounce (a local file)
	Transport string  `json:"transport,omitempty"`
	Target    string  `json:"target,omitempty"`
	Queues    int     `json:"queues,omitempty"`
	NIC       string  `json:"nic,omitempty"` // the net device (and RDMA device) traffic to the target leaves through
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

func (m shardSet) registerHost(bufs []*HostBuffer) (func(), string) { return registerHost(m, bufs) }

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
	bufAt int64 // offset in its device's buffer (direct: its direct allocation)
	// direct: the shard goes straight into GPU memory over NVMe/RDMA.
	direct bool
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
			if sh.Name == "" || sh.Name == sh.Location {
				return err // names the URL or path already
			}
			return fmt.Errorf("shard %s: %w", sh.Name, err)
		}
		srcs[i] = s
		h, err := safetensors.Read(headerReader{s}, s.size)
		if err != nil {
			return fmt.Errorf("shard %s: %w", s.where(), err)
		}
		hdrs[i] = h
		for _, name := range sh.Tensors {
			if h.Tensor(name) == nil {
				return fmt.Errorf("shard %s: the index puts tensor %q in it, but its header does not list it: is the location right?", s.where(), name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Which device each tensor goes to, and so each shard's devices.
	devOf := make([][]int, len(hdrs))
	shardGPUs := make([]map[int]bool, len(hdrs))
	for i, h := range hdrs {
		shardGPUs[i] = map[int]bool{}
		for _, t := range h.Tensors {
			d := i % len(plan.Devices)
			if plan.Place != nil {
				d = plan.Place(i, t.Name)
			}
			if d < 0 || d >= len(plan.Devices) {
				return nil, fmt.Errorf("load: tensor %q placed on device %d of %d", t.Name, d, len(plan.Devices))
			}
			devOf[i] = append(devOf[i], d)
			shardGPUs[i][d] = true
		}
	}
	// Each shard's way into GPU memory (see decideDirect).
	modes := make([]directMode, len(srcs))
	why := make([]string, len(srcs))
	ins := make([]directInput, len(srcs))
	type support struct {
		asked bool
		ok    bool
		err   error
	}
	dmabuf := make([]support, len(plan.Devices))
	peerMem := plan.PeerMem
	if peerMem == nil {
		peerMem = peerMemLoaded
	}
	peermem := sync.OnceValue(peerMem)
	for i, s := range srcs {
		in := directInput{want: o.Path, remote: s.r != nil, gpus: len(shardGPUs[i]), gpuDirect: errNoDeviceRemote}
		if dr, ok := s.r.(DeviceRemote); ok {
			in.gpuDirect = dr.GPUDirect()
		}
		if in.remote && in.gpuDirect == nil && in.gpus == 1 && (o.Path == PathAuto || o.Path == PathRDMA) {
			d := devOf[i][0]
			if !dmabuf[d].asked {
				dmabuf[d].ok, dmabuf[d].err = plan.Devices[d].DMABufSupported()
				dmabuf[d].asked = true
			}
			in.dmabuf, in.dmabufErr = dmabuf[d].ok, dmabuf[d].err
			if !in.dmabuf {
				in.peermem = peermem()
			}
		}
		ins[i] = in
		modes[i], why[i] = decideDirect(in)
		if modes[i] == viaStaging && o.Path == PathRDMA {
			return nil, fmt.Errorf("load shard %s with gpu path rdma: %s: %s", s.where(), why[i], directFix(in))
		}
	}
	// Place the tensors: per device, those that stage packed in shard and
	// file order (256-byte aligned) in one allocation; each direct shard's
	// region in another mirrors the shard from its first tensor's block
	// to its last's, so that aligned reads land every tensor in place.
	var all []placed
	sizes := make([]int64, len(plan.Devices))
	dsizes := make([]int64, len(plan.Devices))
	type region struct {
		at, start, end int64 // in the direct allocation; the file's range
	}
	regions := make([]region, len(srcs))
	for i, h := range hdrs {
		if modes[i] != viaStaging {
			al := max(4096, srcs[i].bs)
			first, last := int64(-1), int64(0)
			for _, t := range h.Tensors {
				off := h.DataOffset + t.Begin
				if first < 0 || off < first {
					first = off
				}
				last = max(last, off+t.Size())
			}
			d := devOf[i][0]
			r := region{at: dsizes[d], start: first / al * al, end: (last + al - 1) / al * al}
			regions[i] = r
			dsizes[d] += r.end - r.start
			for _, t := range h.Tensors {
				off := h.DataOffset + t.Begin
				all = append(all, placed{shard: i, t: t, off: off, dev: d, bufAt: r.at + off - r.start, direct: true})
			}
			continue
		}
		for k, t := range h.Tensors {
			d := devOf[i][k]
			at := (sizes[d] + 255) &^ 255
			sizes[d] = at + t.Size()
			all = append(all, placed{shard: i, t: t, off: h.DataOffset + t.Begin, dev: d, bufAt: at})
		}
	}
	ck := &Sharded{Metadata: hdrs[0].Metadata, Workers: o.Workers, Chunk: o.Chunk}
	var regs []io.Closer // the direct shards' registrations
	closeRegs := func() {
		for _, r := range regs {
			r.Close()
		}
		regs = nil
	}
	defer closeRegs()
	fail := func(err error) (*Sharded, error) {
		closeRegs()
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
	// The direct allocation of each device: a page more than its regions,
	// whose page-aligned start is what a dma-buf export and an RDMA
	// registration want.
	dbase := make([]DevicePtr, len(plan.Devices))
	for d, n := range dsizes {
		if n == 0 {
			continue
		}
		b, err := plan.Devices[d].Alloc(n + 4096)
		if err != nil {
			return fail(err)
		}
		ck.Buffers = append(ck.Buffers, b)
		dbase[d] = (b.Ptr() + 4095) &^ 4095
	}
	// Register each device's direct memory with the direct shards'
	// transports; a shard whose memory cannot be registered stages (into
	// its region) under gpu path auto, and fails the load under rdma.
	fallBack := func(i int, reason string) error {
		if o.Path == PathRDMA {
			return fmt.Errorf("load shard %s with gpu path rdma: %s: %s", srcs[i].where(), reason, directFix(ins[i]))
		}
		modes[i], why[i] = viaStaging, reason
		return nil
	}
	for d, n := range dsizes {
		if n == 0 {
			continue
		}
		fd := -1
		for i := range srcs {
			if modes[i] != viaDMABuf || devOf[i][0] != d || fd >= 0 {
				continue
			}
			var err error
			if fd, err = plan.Devices[d].Wrap(dbase[d], n).ExportDMABuf(); err != nil {
				fd = -1
				for j := range srcs {
					if modes[j] != viaDMABuf || devOf[j][0] != d {
						continue
					}
					if peermem() {
						modes[j], why[j] = viaAddr, fmt.Sprintf("GPU memory registered with the NIC by address through nvidia-peermem (its dma-buf export failed: %v)", err)
					} else if err := fallBack(j, fmt.Sprintf("exporting GPU memory as a dma-buf failed (%v) and nvidia-peermem is not loaded", err)); err != nil {
						return fail(err)
					}
				}
			}
		}
		for i, s := range srcs {
			if modes[i] == viaStaging || devOf[i][0] != d {
				continue
			}
			m := GPUMemory{Ptr: dbase[d], Size: n, DMABufFD: -1}
			if modes[i] == viaDMABuf {
				m.DMABufFD = fd
			}
			r, err := s.r.(DeviceRemote).RegisterGPU(m)
			if err != nil {
				if err := fallBack(i, fmt.Sprintf("registering GPU memory with the NIC failed: %v", err)); err != nil {
					if fd >= 0 {
						syscall.Close(fd)
					}
					return fail(err)
				}
				continue
			}
			regs = append(regs, r)
		}
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
	ptrOf := func(p placed) DevicePtr {
		if p.direct {
			return dbase[p.dev] + DevicePtr(p.bufAt)
		}
		return bufs[p.dev].Ptr() + DevicePtr(p.bufAt)
	}
	for _, p := range all {
		ck.Tensors = append(ck.Tensors, Tensor{Name: p.t.Name, DType: p.t.DType, Shape: p.t.Shape,
			Ptr: ptrOf(p), Size: p.t.Size(), Off: p.off,
			GPU: plan.Devices[p.dev].Info.Index, Shard: plan.Shards[p.shard].Name})
		ck.Bytes += p.t.Size()
	}
	// The staging requests of each device: runs of tensors adjacent in the
	// file and in the buffer, cut at chunk boundaries of the file,
	// interleaved across shards.
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
		i = j
		if modes[p.shard] != viaStaging {
			continue
		}
		base := int64(p.shard) << shardShift
		dev := ptrOf(p)
		for cur := start; cur < end; {
			next := min((cur/o.Chunk+1)*o.Chunk, end)
			perShard[p.dev][p.shard] = append(perShard[p.dev][p.shard],
				Request{Op: OpRead, Off: base + cur, Len: next - cur, Dev: dev + DevicePtr(cur-start), Tag: uint64(p.shard)})
			remaining[p.shard].Add(1)
			cur = next
		}
	}
	// The direct shards' reads: each region in aligned pieces of about a
	// chunk, interleaved across shards.
	var perDirect [][]directRead
	for i, s := range srcs {
		if modes[i] == viaStaging {
			continue
		}
		r := regions[i]
		al := max(4096, s.bs)
		chunk := (o.Chunk + al - 1) / al * al
		end := min(r.end, s.size)
		var rs []directRead
		for cur := r.start; cur < end; {
			next := min((cur/chunk+1)*chunk, end)
			rs = append(rs, directRead{shard: i, dst: dbase[devOf[i][0]] + DevicePtr(r.at+cur-r.start), off: cur, n: next - cur})
			remaining[i].Add(1)
			cur = next
		}
		perDirect = append(perDirect, rs)
	}
	direct := interleave(perDirect)
	done := make([]time.Duration, len(srcs))
	var t1 time.Time
	// One staging pipeline per device that has shards to stage, all
	// running at once with the direct reads.
	trs := make([]*bounce, len(plan.Devices))
	defer func() {
		for _, b := range trs {
			if b != nil {
				b.Close()
			}
		}
	}()
	for d, dev := range plan.Devices {
		if !slices.ContainsFunc(perShard[d], func(rs []Request) bool { return len(rs) > 0 }) {
			continue
		}
		if trs[d], err = newBounce(dev, shardSet(srcs), false, ReaderPread, o.Workers, o.Depth, o.Chunk); err != nil {
			return fail(err)
		}
	}
	ck.Setup = time.Since(t0)
	t1 = time.Now()
	finished := func(shard int) {
		if remaining[shard].Add(-1) == 0 {
			done[shard] = time.Since(t1)
		}
	}
	err = forEach(len(plan.Devices)+1, func(d int) error {
		if d == len(plan.Devices) {
			return readDirect(ctx, srcs, direct, o.Workers, finished)
		}
		if trs[d] == nil {
			return nil
		}
		reqs := interleave(perShard[d])
		return RunEach(ctx, trs[d], reqs, func(c Completion) { finished(int(c.Tag)) })
	})
	ck.Transfer = time.Since(t1)
	ck.CPU = cpuTime() - cpu0
	if err != nil {
		return fail(fmt.Errorf("load: %w", err))
	}
	closeRegs()
	for i, s := range srcs {
		r := ShardReport{Name: plan.Shards[i].Name, Location: s.location, Seconds: done[i].Seconds()}
		s.report(&r)
		r.Tensors = len(hdrs[i].Tensors)
		for k := range hdrs[i].Tensors {
			r.Bytes += hdrs[i].Tensors[k].Size()
		}
		for d := range shardGPUs[i] {
			r.GPUs = append(r.GPUs, plan.Devices[d].Info.Index)
		}
		slices.Sort(r.GPUs)
		r.GPUs = slices.Compact(r.GPUs) // one GPU opened as two devices
		if done[i] > 0 {
			r.GBps = float64(r.Bytes) / done[i].Seconds() / 1e9
		}
		switch {
		case modes[i] != viaStaging:
			r.Path = PathRDMA
			r.Reason = fmt.Sprintf("NVMe/%s straight into GPU memory: %s; %d queues to %s, the target's RDMA WRITEs land every tensor in place, no host copy",
				strings.ToUpper(r.Transport), why[i], r.Queues, r.Target)
		case r.Path == PathStaging:
			r.Reason = fmt.Sprintf("%s, on %d streams (not straight into GPU memory: %s)",
				stagingHow(r.Transport, r.Queues, r.Target, trs[devOf[i][0]].regWhy), o.Workers, why[i])
		default:
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

// directRead is one read of a direct shard into GPU memory.
type directRead struct {
	shard  int
	dst    DevicePtr
	off, n int64
}

// readDirect runs the direct reads on workers threads, calling finished
// after each; the first error stops them.
func readDirect(ctx context.Context, srcs []*source, reads []directRead, workers int, finished func(shard int)) error {
	var next atomic.Int64
	var failed atomic.Bool
	return forEach(min(workers, len(reads)), func(int) error {
		for !failed.Load() {
			k := next.Add(1) - 1
			if k >= int64(len(reads)) {
				return nil
			}
			if err := ctx.Err(); err != nil {
				failed.Store(true)
				return err
			}
			rd := reads[k]
			s := srcs[rd.shard]
			if err := s.r.(DeviceRemote).ReadToGPU(rd.dst, rd.n, rd.off); err != nil {
				failed.Store(true)
				return fmt.Errorf("shard %s: read %d bytes at %d into GPU memory: %w", s.where(), rd.n, rd.off, err)
			}
			finished(rd.shard)
		}
		return nil
	})
}

// stagingHow says how a remote's data reaches the GPU on the staging
// path; unregistered says why the staging buffers are not registered with
// the transport, if they are not.
func stagingHow(transport string, queues int, target, unregistered string) string {
	how := "data received straight into pinned staging buffers"
	if transport == "rdma" {
		how = "the target's RDMA WRITEs land in pinned staging buffers registered with the NIC"
		if unregistered != "" {
			how = "the target's RDMA WRITEs land in the host's bounce buffers, copied into pinned staging buffers: " + unregistered
		}
	}
	return fmt.Sprintf("NVMe/%s through flashpath's host: %d queues to %s, %s, copied to the GPU while the next reads run",
		strings.ToUpper(transport), queues, target, how)
}

// interleave takes one element from each shard's list in turn.
func interleave[T any](per [][]T) []T {
	var out []T
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
					b := ck.BufferOf(t)
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

// BufferOf returns the allocation that holds t (nil if none does).
func (s *Sharded) BufferOf(t *Tensor) *Buffer {
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
		for t, sh := range idx.WeightMap {
			if sh == name {
				s.Tensors = append(s.Tensors, t)
			}
		}
		slices.Sort(s.Tensors)
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

// IsSharded reports whether name is loaded with LoadShards rather than
// as one file: a namespace URL or a sharded checkpoint's index (*.json).
func IsSharded(name string) bool { return IsURL(name) || strings.HasSuffix(name, ".json") }

// OpenShards returns the shards of name: a namespace URL is one shard; an
// index has its shards, located as OpenIndex says.
func OpenShards(name string, locations map[string]string) ([]ShardSource, error) {
	if !IsURL(name) {
		_, shards, err := OpenIndex(name, locations)
		return shards, err
	}
	if len(locations) > 0 {
		return nil, fmt.Errorf("shard locations apply to an index, not to the namespace URL %s", name)
	}
	return []ShardSource{{Name: name, Location: name}}, nil
}

// IsIncomplete reports whether err says a checkpoint's save did not finish.
func IsIncomplete(err error) bool { return errors.Is(err, errIncomplete) }
