package gds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// Remote is block storage reached through a fabric and opened by URL: the
// source of a load or the destination of a save wherever a local file is
// accepted. gds/nvmf opens NVMe-oF namespace URLs
// (tcp://HOST:PORT/NQN/NSID, rdma://...) through flashpath's user-space
// host and registers itself for them when imported; gds itself knows no
// fabric.
type Remote interface {
	// ReadAt and WriteAt move whole blocks: off and len(p) are multiples
	// of BlockSize, within Size. They return len(p) or an error.
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Size() int64
	BlockSize() int
	// Flush makes every completed write durable (NVMe Flush).
	Flush() error
	Close() error
	Info() RemoteInfo
}

// DeviceRemote is a Remote that can also read straight into GPU memory:
// over NVMe/RDMA the target's RDMA WRITEs land the data in memory the NIC
// reaches (a dma-buf of the GPU's, or its address through nvidia-peermem),
// with no host buffer in between. gds/nvmf's namespaces implement it;
// LoadShards takes that path (PathRDMA) where GPUDirect says it can.
type DeviceRemote interface {
	Remote
	// GPUDirect returns nil where ReadToGPU can work (the transport
	// reaches device memory), else an error saying why not ("NVMe/TCP
	// moves data through host memory").
	GPUDirect() error
	// RegisterGPU makes m reachable by the remote's transport; Close
	// releases it after the last ReadToGPU into it. Remotes sharing a
	// transport share one registration of the same memory.
	RegisterGPU(m GPUMemory) (io.Closer, error)
	// ReadToGPU reads n bytes at off into registered GPU memory at dst;
	// off and n are multiples of BlockSize, within Size.
	ReadToGPU(dst DevicePtr, n, off int64) error
}

// HostRegistrar is a Remote whose transport reaches host memory directly
// once it is registered (NVMe/RDMA: the target RDMA-WRITEs read data into
// it and RDMA-READs write data from it). The staging pipelines register
// their pinned buffers with it, so the data crosses no bounce buffer of
// the transport's. Remotes sharing a transport share one registration of
// the same memory; over NVMe/TCP registering does nothing.
type HostRegistrar interface {
	RegisterHost(mem []byte) (io.Closer, error)
}

// GPUMemory is GPU memory as a plain value, for a DeviceRemote to register
// with its fabric: gds never hands a remote anything of CUDA's.
type GPUMemory struct {
	Ptr  DevicePtr
	Size int64
	// DMABufFD exports [Ptr, Ptr+Size) as a dma-buf, Ptr at offset 0
	// (Buffer.ExportDMABuf); -1 when there is none and the memory is
	// registered by address (nvidia-peermem). The remote keeps what it
	// needs: the caller closes the fd once RegisterGPU returns.
	DMABufFD int
}

// RemoteInfo says where a Remote is, for reports.
type RemoteInfo struct {
	URL       string `json:"url"`
	Transport string `json:"transport"` // tcp or rdma
	Target    string `json:"target"`    // host:port
	Queues    int    `json:"queues"`    // I/O queues to the target (over NVMe/TCP: connections)
	// NIC is the net device traffic to the target leaves through and,
	// over NVMe/RDMA, the RDMA device on it ("mlx5_0 on ens1f0np0"); ""
	// where unknown.
	NIC string `json:"nic,omitempty"`
}

// RemoteOptions tune how remotes are reached; zero values take defaults.
type RemoteOptions struct {
	// Queues is the I/O queues per target controller (default
	// DefaultRemoteQueues); over NVMe/TCP each is its own connection,
	// which carries a few GB/s at most: a load spreads over all of them.
	Queues int
	// QueueDepth is the commands in flight per queue (default: the
	// host's, 128).
	QueueDepth int
	// HostNQN is the host NQN to connect with (default: nvme-cli's).
	HostNQN string
	// ConnectTimeout bounds connecting to each target (default: the
	// host's, 10 s).
	ConnectTimeout time.Duration
	// ReconnectFor is how long I/O waits for a target whose connection
	// failed to come back before the load or save fails (default 10 s;
	// negative: fail at once).
	ReconnectFor time.Duration
}

// DefaultRemoteQueues is the I/O queues per target of a remote load or
// save: measured on a 16-core H200 host, one NVMe/TCP connection moves
// 2.7 GB/s of 128 KiB reads and 16 move 17.6 GB/s.
const DefaultRemoteQueues = 8

// DefaultRemoteWorkers is the reader threads of a load with remote shards:
// each waits on a chunk's NVMe/TCP reads most of the time, so more than
// the CPUs pay (on a 16-core H200 host 16 beat 12 by 7%), up to 16.
func DefaultRemoteWorkers() int { return min(max(runtime.NumCPU(), 4), 16) }

// RemoteOpener opens the remote at url (its scheme is the one it was
// registered for); write asks for a destination of a save.
type RemoteOpener func(ctx context.Context, url string, write bool, o RemoteOptions) (Remote, error)

var (
	remotesMu sync.Mutex
	remotes   = map[string]RemoteOpener{} // guarded by remotesMu
)

// RegisterRemote makes open the opener of URLs with scheme (gds/nvmf
// registers "tcp" and "rdma" when imported).
func RegisterRemote(scheme string, open RemoteOpener) {
	remotesMu.Lock()
	defer remotesMu.Unlock()
	remotes[scheme] = open
}

// IsURL reports whether name is spelled SCHEME://..., a remote rather than a
// file name.
func IsURL(name string) bool {
	scheme, _, ok := strings.Cut(name, "://")
	if !ok || scheme == "" {
		return false
	}
	for _, r := range scheme {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

// OpenRemote opens the remote at url with the opener registered for its
// scheme.
func OpenRemote(ctx context.Context, url string, write bool, o RemoteOptions) (Remote, error) {
	scheme, _, _ := strings.Cut(url, "://")
	remotesMu.Lock()
	open := remotes[scheme]
	var have []string
	for s := range remotes {
		have = append(have, s)
	}
	remotesMu.Unlock()
	if open == nil {
		sort.Strings(have)
		return nil, fmt.Errorf("%s: no opener for %s:// URLs in this program (have: %s): import github.com/flashpath/flashpath/gds/nvmf",
			url, scheme, strings.Join(have, ", "))
	}
	return open(ctx, url, write, o)
}

// source is one safetensors file of a load or save: a local file or a
// remote. Its ReadAt reads whole requests: past the end of the data it
// returns zeros, as a namespace does past the end of the file it exports.
type source struct {
	name     string // the shard's name (its file name in the index)
	location string // its path or URL
	size     int64
	f        *os.File // a local file, or
	r        Remote   // a remote
	bs       int64    // the remote's block size
}

func (s *source) where() string {
	if s.name == s.location || s.name == "" {
		return s.location
	}
	return s.name + " at " + s.location
}

// openSource opens a shard for reading (or, with write, creates it).
func openSource(ctx context.Context, name, location string, write bool, ro RemoteOptions) (*source, error) {
	s := &source{name: name, location: location}
	if IsURL(location) {
		r, err := OpenRemote(ctx, location, write, ro)
		if err != nil {
			return nil, err
		}
		s.r, s.size, s.bs = r, r.Size(), int64(r.BlockSize())
		return s, nil
	}
	var f *os.File
	var err error
	if write {
		f, err = os.OpenFile(location, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	} else {
		f, err = os.Open(location)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s.f, s.size = f, st.Size()
	return s, nil
}

func (s *source) Close() error {
	if s.r != nil {
		return s.r.Close()
	}
	return s.f.Close()
}

// ReadAt fills p from off: a file's bytes past its end and a remote's
// past its size are zeros. p and off are multiples of 4096 on a remote.
func (s *source) ReadAt(p []byte, off int64) (int, error) {
	n := len(p)
	if s.r != nil {
		end := min(off+int64(len(p)), s.size)
		if end > off {
			m := (end - off + s.bs - 1) / s.bs * s.bs
			if _, err := s.r.ReadAt(p[:m], off); err != nil {
				return 0, err
			}
			p = p[m:]
		}
		clear(p)
		return n, nil
	}
	for len(p) > 0 {
		k, err := fdIO(s.f.Fd()).ReadAt(p, off)
		if err != nil {
			return 0, err
		}
		if k == 0 {
			clear(p)
			break
		}
		p, off = p[k:], off+int64(k)
	}
	return n, nil
}

// WriteAt writes p at off; on a remote, whole blocks (the caller pads).
func (s *source) WriteAt(p []byte, off int64) (int, error) {
	if s.r != nil {
		return s.r.WriteAt(p, off)
	}
	return fdIO(s.f.Fd()).WriteAt(p, off)
}

// sync makes what was written durable: NVMe Flush, or fdatasync.
func (s *source) sync() error {
	if s.r != nil {
		return s.r.Flush()
	}
	if err := fdatasync(int(s.f.Fd())); err != nil {
		return os.NewSyscallError("fdatasync", err)
	}
	return nil
}

// info describes the source for a report.
func (s *source) info() (Path, RemoteInfo) {
	if s.r != nil {
		return PathStaging, s.r.Info()
	}
	return PathBounce, RemoteInfo{}
}

// report fills r's path and where the source is.
func (s *source) report(r *ShardReport) {
	var ri RemoteInfo
	r.Path, ri = s.info()
	r.Transport, r.Target, r.Queues, r.NIC = ri.Transport, ri.Target, ri.Queues, ri.NIC
}

// registerHost registers bufs with the transport of every remote among
// srcs that can reach host memory directly, so that its I/O lands in them
// and leaves from them with no copy through the transport's own buffers.
// It returns what releases the registrations (after the last I/O into
// bufs) and, where a registration failed, why: that I/O then still works,
// through the transport's bounce buffers.
func registerHost(srcs []*source, bufs []*HostBuffer) (release func(), why string) {
	var regs []io.Closer
	release = func() {
		for _, r := range regs {
			r.Close()
		}
	}
	for _, s := range srcs {
		hr, ok := s.r.(HostRegistrar)
		if !ok {
			continue
		}
		for _, b := range bufs {
			if b == nil {
				continue
			}
			reg, err := hr.RegisterHost(b.b)
			if err != nil {
				release()
				regs = nil
				return release, fmt.Sprintf("registering %d bytes of staging buffers with %s failed (%v)", int64(len(bufs))*int64(len(b.b)), s.location, err)
			}
			regs = append(regs, reg)
		}
	}
	return release, ""
}

// headerReader reads a shard's first bytes for safetensors.Read, which
// asks for the 8-byte length and then the header at offset 0: a file as
// it is, a remote in whole blocks (readSpan).
type headerReader struct{ s *source }

func (h headerReader) ReadAt(p []byte, off int64) (int, error) {
	if h.s.r == nil {
		return h.s.f.ReadAt(p, off)
	}
	if off+int64(len(p)) > h.s.size {
		return 0, io.ErrUnexpectedEOF
	}
	b, err := readSpan(h.s, make([]byte, len(p)+8192), off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	return copy(p, b), nil
}

// errIncomplete marks a checkpoint whose save did not finish.
var errIncomplete = errors.New("checkpoint incomplete")
