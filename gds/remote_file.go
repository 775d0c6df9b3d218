package gds

import (
	"context"
	"fmt"
)

// blockSource is a remote as the bounce pipeline's fileIO: chunk
// boundaries and lengths on its block grid.
type blockSource struct{ *source }

func (b blockSource) Align() int64 { return max(b.bs, 1) }

func (b blockSource) registerHost(bufs []*HostBuffer) (func(), string) {
	return registerHost([]*source{b.source}, bufs)
}

// OpenURL opens the namespace at url (tcp:// or rdma://, with gds/nvmf
// imported) for transfers to or from d's memory, as OpenFile does a file:
// the staging pipeline, whose reader threads receive NVMe-oF data straight
// into pinned staging buffers (and send writes from them), overlapped with
// the copies to and from the GPU. Requests must lie on the namespace's
// block grid. Sync sends an NVMe Flush.
func (d *Device) OpenURL(ctx context.Context, url string, write bool, o Options, ro RemoteOptions) (*File, error) {
	if o.Workers <= 0 {
		o.Workers = DefaultRemoteWorkers()
	}
	o = o.withDefaults()
	switch o.Path {
	case PathAuto, PathStaging, PathBounce:
	default:
		return nil, fmt.Errorf("%s: gpu path %s: a namespace URL runs the staging pipeline (auto or staging)", url, o.Path)
	}
	s, err := openSource(ctx, url, url, write, ro)
	if err != nil {
		return nil, err
	}
	t, err := newBounce(d, blockSource{s}, false, ReaderPread, o.Workers, o.Depth, o.Chunk)
	if err != nil {
		s.Close()
		return nil, err
	}
	_, ri := s.info()
	return &File{Transfer: t, src: s, size: s.size, path: PathStaging, reason: stagingHow(ri.Transport, ri.Queues, ri.Target, t.regWhy)}, nil
}
