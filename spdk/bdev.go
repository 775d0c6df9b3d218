package spdk

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/server"
)

// bdev is a block device created over RPC: a backend specification of the
// configuration (server.NamespaceConfig.Backend) under SPDK's name. It
// becomes a namespace when nvmf_subsystem_add_ns attaches it.
type bdev struct {
	name      string
	module    string // malloc, null, aio, uring
	spec      string // "mem:1048576?bs=512", "file:/srv/x.img", "/dev/sdb?bs=4096"
	filename  string // aio, uring
	blockSize int
	numBlocks uint64
	uuid      string
	// nqn and nsid are where nvmf_subsystem_add_ns attached it; it is
	// attached while the running configuration has that namespace with
	// spec (a reload may have removed it).
	nqn  string
	nsid uint32
}

// product is SPDK's product_name for the bdev's module.
func (b *bdev) product() string {
	switch b.module {
	case "malloc":
		return "Malloc disk"
	case "null":
		return "Null disk"
	case "aio":
		return "AIO disk"
	case "uring":
		return "URING bdev"
	}
	return "flashpath " + b.module
}

// attachedTo returns the subsystem and NSID where cfg runs b, or "", 0.
func (b *bdev) attachedTo(cfg *server.Config) (string, uint32) {
	if b.nqn == "" {
		return "", 0
	}
	for _, sc := range cfg.Subsystems {
		for _, nc := range sc.Namespaces {
			if sc.NQN == b.nqn && nc.NSID == b.nsid && nc.Backend == b.spec {
				return sc.NQN, nc.NSID
			}
		}
	}
	return "", 0
}

// probe opens b's backend to check it, records its geometry and closes it
// again: the namespace opens it for good.
func (b *bdev) probe() *Error {
	be, err := backend.Parse(b.spec)
	if err != nil {
		return errorf(CodeInvalidParams, "Invalid parameters: bdev %s: %v", b.name, err)
	}
	defer be.Close()
	b.blockSize = be.BlockSize()
	b.numBlocks = uint64(be.Size()) / uint64(b.blockSize)
	return nil
}

// newUUID returns a random (version 4) UUID in SPDK's text form.
func newUUID() string { return uuid.NewString() }

// checkUUID validates a UUID given as a parameter.
func checkUUID(param, u string) *Error {
	h := strings.ReplaceAll(u, "-", "")
	if len(h) != 32 || strings.Trim(strings.ToLower(h), "0123456789abcdef") != "" {
		return errorf(CodeInvalidParams, "Invalid parameters: %s %q: want a UUID such as 8a8b6f1c-5f3a-4b5e-9c1d-2e3f4a5b6c7d", param, u)
	}
	return nil
}

type memBdevParams struct {
	Name      string `json:"name"`
	NumBlocks uint64 `json:"num_blocks"`
	BlockSize int    `json:"block_size"`
	UUID      string `json:"uuid"`
	// Accepted at SPDK's defaults only.
	OptimalIOBoundary int  `json:"optimal_io_boundary"`
	MDSize            int  `json:"md_size"`
	MDInterleave      bool `json:"md_interleave"`
	DIFType           int  `json:"dif_type"`
	DIFIsHeadOfMD     bool `json:"dif_is_head_of_md"`
	PhysicalBlockSize int  `json:"physical_block_size"`
	DIFPIFormat       int  `json:"dif_pi_format"`
	NUMAId            *int `json:"numa_id"`
	// bdev_null_create's hints (Identify Namespace NPWG, NPWA, NOWS,
	// NPDG, NPDA), which save_config writes: accepted at 0, none reported.
	PreferredWriteGranularity int `json:"preferred_write_granularity"`
	PreferredWriteAlignment   int `json:"preferred_write_alignment"`
	OptimalWriteSize          int `json:"optimal_write_size"`
	PreferredUnmapGranularity int `json:"preferred_unmap_granularity"`
	PreferredUnmapAlignment   int `json:"preferred_unmap_alignment"`
}

// bdev_malloc_create and bdev_null_create.
func (s *Server) createMemBdev(module string, params json.RawMessage) (any, *Error) {
	var p memBdevParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if (p.PreferredWriteGranularity | p.PreferredWriteAlignment | p.OptimalWriteSize | p.PreferredUnmapGranularity | p.PreferredUnmapAlignment) != 0 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: preferred_write_granularity, preferred_write_alignment, optimal_write_size, preferred_unmap_granularity, preferred_unmap_alignment: flashpath reports no such hints: leave them 0")
	}
	if p.MDSize != 0 || p.DIFType != 0 || p.MDInterleave || p.DIFIsHeadOfMD || p.DIFPIFormat != 0 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: md_size, md_interleave, dif_type: flashpath's namespaces have no metadata or protection information: leave them out")
	}
	if p.NumBlocks == 0 || p.BlockSize == 0 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: num_blocks and block_size are required, e.g. -b Malloc0 64 512 (64 MiB in 512-byte blocks)")
	}
	if p.BlockSize != 512 && p.BlockSize != 4096 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: block_size %d: flashpath serves 512 or 4096", p.BlockSize)
	}
	if p.PhysicalBlockSize != 0 && p.PhysicalBlockSize != p.BlockSize {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: physical_block_size %d: flashpath's physical block is the logical one (%d): leave it out", p.PhysicalBlockSize, p.BlockSize)
	}
	if p.NumBlocks > 1<<62/uint64(p.BlockSize) {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: num_blocks %d too large", p.NumBlocks)
	}
	if p.Name == "" {
		if module != "malloc" {
			return nil, errorf(CodeInvalidParams, "Invalid parameters: name is required")
		}
		for s.bdevs["Malloc"+strconv.Itoa(s.nextMalloc)] != nil {
			s.nextMalloc++
		}
		p.Name = "Malloc" + strconv.Itoa(s.nextMalloc)
		s.nextMalloc++
	}
	kind := backend.KindMem
	if module == "null" {
		kind = backend.KindNull
	}
	b := &bdev{name: p.Name, module: module, spec: fmt.Sprintf("%s:%d?bs=%d", kind, p.NumBlocks*uint64(p.BlockSize), p.BlockSize), uuid: p.UUID}
	return s.addBdev(b)
}

type fileBdevParams struct {
	Name      string `json:"name"`
	Filename  string `json:"filename"`
	BlockSize int    `json:"block_size"`
	UUID      string `json:"uuid"`
	ReadOnly  bool   `json:"readonly"`
	Fallocate bool   `json:"fallocate"`
	NoWait    bool   `json:"nowait"`
}

// bdev_aio_create and bdev_uring_create: a file or block device, served
// with io_uring either way.
func (s *Server) createFileBdev(module string, params json.RawMessage) (any, *Error) {
	var p fileBdevParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if p.Name == "" || p.Filename == "" {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: name and filename are required, e.g. /dev/nvme0n1 Nvme0 4096")
	}
	if !strings.HasPrefix(p.Filename, "/") {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: filename %q: give an absolute path", p.Filename)
	}
	if strings.ContainsAny(p.Filename, "?") {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: filename %q: '?' is not allowed in a path flashpath exports", p.Filename)
	}
	if p.BlockSize != 0 && p.BlockSize != 512 && p.BlockSize != 4096 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: block_size %d: flashpath serves 512 or 4096 (or leave it out for the device's)", p.BlockSize)
	}
	spec := p.Filename
	if !strings.HasPrefix(p.Filename, "/dev/") {
		spec = "file:" + p.Filename
	}
	var opts []string
	if p.BlockSize != 0 {
		opts = append(opts, "bs="+strconv.Itoa(p.BlockSize))
	}
	if p.ReadOnly {
		opts = append(opts, "ro")
	}
	if len(opts) > 0 {
		spec += "?" + strings.Join(opts, "&")
	}
	b := &bdev{name: p.Name, module: module, spec: spec, filename: p.Filename, uuid: p.UUID}
	return s.addBdev(b)
}

// addBdev checks b and adds it to the table; the result is its name.
func (s *Server) addBdev(b *bdev) (any, *Error) {
	if s.bdevs[b.name] != nil || s.configBdev(b.name) {
		return nil, errorf(CodeExists, "File exists: bdev %s exists: choose another name or delete it first", b.name)
	}
	if b.uuid == "" {
		b.uuid = newUUID()
	} else if e := checkUUID("uuid", b.uuid); e != nil {
		return nil, e
	}
	for _, o := range s.bdevs {
		if strings.EqualFold(o.uuid, b.uuid) {
			return nil, errorf(CodeExists, "File exists: uuid %s is bdev %s's", b.uuid, o.name)
		}
	}
	if e := b.probe(); e != nil {
		return nil, e
	}
	s.bdevs[b.name] = b
	s.log.Info("rpc: bdev created", "bdev", b.name, "module", b.module, "backend", b.spec, "block_size", b.blockSize, "num_blocks", b.numBlocks)
	return b.name, nil
}

// deleteBdev is bdev_*_delete: a bdev that is a namespace is removed from
// its subsystem first, as SPDK's hot remove does.
func (s *Server) deleteBdev(module string, params json.RawMessage) (any, *Error) {
	var p struct {
		Name string `json:"name"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	b := s.bdevs[p.Name]
	if b == nil || b.module != module {
		if s.configBdev(p.Name) {
			return nil, errorf(CodeInvalidParams, "Invalid parameters: bdev %s is a namespace of the configuration file: remove it with nvmf_subsystem_remove_ns", p.Name)
		}
		return nil, errorf(CodeNoDevice, "No such device: no %s bdev %s (bdev_get_bdevs lists them)", module, p.Name)
	}
	if nqn, nsid := b.attachedTo(s.srv.Applied()); nqn != "" {
		err := s.srv.Update(func(cfg *server.Config) error {
			sc := findSubsys(cfg, nqn)
			sc.Namespaces = removeNS(sc.Namespaces, nsid)
			return nil
		})
		if err != nil {
			return nil, errorf(CodeInternalError, "remove namespace %d of %s for bdev %s: %v", nsid, nqn, b.name, err)
		}
	}
	delete(s.bdevs, p.Name)
	s.log.Info("rpc: bdev deleted", "bdev", p.Name)
	return true, nil
}

// configBdev reports whether name is the bdev name of a namespace that
// came from the configuration (configBdevName).
func (s *Server) configBdev(name string) bool {
	cfg := s.srv.Applied()
	for _, sc := range cfg.Subsystems {
		for _, nc := range sc.Namespaces {
			if s.bdevOf(sc.NQN, nc) == nil && configBdevName(sc.NQN, nc.NSID) == name {
				return true
			}
		}
	}
	return false
}

// configBdevName names a namespace of the configuration file, which has
// no bdev of its own, for nvmf_get_subsystems and bdev_get_bdevs.
func configBdevName(nqn string, nsid uint32) string { return fmt.Sprintf("%sn%d", nqn, nsid) }

// bdevOf returns the RPC bdev that namespace nc of subsystem nqn runs, or nil.
func (s *Server) bdevOf(nqn string, nc server.NamespaceConfig) *bdev {
	for _, b := range s.bdevs {
		if b.nqn == nqn && b.nsid == nc.NSID && nc.Backend == b.spec {
			return b
		}
	}
	return nil
}

// bdevInfo is one entry of bdev_get_bdevs.
type bdevInfo struct {
	Name             string          `json:"name"`
	Aliases          []string        `json:"aliases"`
	ProductName      string          `json:"product_name"`
	BlockSize        int             `json:"block_size"`
	NumBlocks        uint64          `json:"num_blocks"`
	UUID             string          `json:"uuid,omitempty"`
	Claimed          bool            `json:"claimed"`
	ClaimType        string          `json:"claim_type,omitempty"`
	Zoned            bool            `json:"zoned"`
	SupportedIOTypes map[string]bool `json:"supported_io_types"`
	DriverSpecific   map[string]any  `json:"driver_specific"`
}

func ioTypes() map[string]bool {
	return map[string]bool{"read": true, "write": true, "flush": true, "unmap": true, "write_zeroes": true,
		"reset": false, "compare": false, "compare_and_write": false, "abort": false, "nvme_admin": false, "nvme_io": false}
}

// bdev_get_bdevs: the RPC's bdevs and the configuration's namespaces.
func (s *Server) getBdevs(params json.RawMessage) (any, *Error) {
	var p struct {
		Name    string `json:"name"`
		Timeout int    `json:"timeout"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	cfg := s.srv.Applied()
	out := []bdevInfo{}
	for _, name := range sortedKeys(s.bdevs) {
		b := s.bdevs[name]
		nqn, _ := b.attachedTo(cfg)
		info := bdevInfo{Name: b.name, Aliases: []string{}, ProductName: b.product(), BlockSize: b.blockSize, NumBlocks: b.numBlocks,
			UUID: b.uuid, Claimed: nqn != "", SupportedIOTypes: ioTypes(), DriverSpecific: map[string]any{}}
		if info.Claimed {
			info.ClaimType = "exclusive_write"
		}
		if b.filename != "" {
			info.DriverSpecific[b.module] = map[string]any{"filename": b.filename}
		}
		out = append(out, info)
	}
	for _, sc := range cfg.Subsystems {
		ss := s.srv.Target.Subsystem(sc.NQN)
		for _, nc := range sc.Namespaces {
			if s.bdevOf(sc.NQN, nc) != nil || ss == nil {
				continue
			}
			ns := ss.Namespace(nc.NSID)
			if ns == nil {
				continue
			}
			be := ns.Backend
			out = append(out, bdevInfo{Name: configBdevName(sc.NQN, nc.NSID), Aliases: []string{nc.Backend}, ProductName: "flashpath " + be.Kind(),
				BlockSize: be.BlockSize(), NumBlocks: uint64(be.Size()) / uint64(be.BlockSize()), UUID: formatUUID(ns.UUID), Claimed: true, ClaimType: "exclusive_write",
				SupportedIOTypes: ioTypes(), DriverSpecific: map[string]any{"flashpath": map[string]any{"backend": nc.Backend, "subsystem": sc.NQN, "nsid": nc.NSID}}})
		}
	}
	if p.Name != "" {
		for _, b := range out {
			if b.Name == p.Name || (len(b.Aliases) > 0 && b.Aliases[0] == p.Name) {
				return []bdevInfo{b}, nil
			}
		}
		return nil, errorf(CodeNoDevice, "No such device: bdev %s", p.Name)
	}
	return out, nil
}

func formatUUID(u [16]byte) string { return uuid.UUID(u).String() }

// bdev_get_iostat: the namespaces' counters under their bdev names. A bdev
// that is not a namespace has none (zeros); flashpath counts no latency
// (the *_latency_ticks are 0), and counters start again when a bdev is
// attached again.
func (s *Server) getIOStat(params json.RawMessage) (any, *Error) {
	var p struct {
		Name       string `json:"name"`
		PerChannel bool   `json:"per_channel"`
		ResetMode  string `json:"reset_mode"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if p.PerChannel {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: per_channel: flashpath keeps one counter set per namespace: leave it out")
	}
	if p.ResetMode != "" && p.ResetMode != "none" {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: reset_mode %q: flashpath's counters only go up (rate them, as Prometheus does)", p.ResetMode)
	}
	type stat struct {
		Name           string         `json:"name"`
		BytesRead      uint64         `json:"bytes_read"`
		NumReadOps     uint64         `json:"num_read_ops"`
		BytesWritten   uint64         `json:"bytes_written"`
		NumWriteOps    uint64         `json:"num_write_ops"`
		BytesUnmapped  uint64         `json:"bytes_unmapped"`
		NumUnmapOps    uint64         `json:"num_unmap_ops"`
		ReadLatency    uint64         `json:"read_latency_ticks"`
		WriteLatency   uint64         `json:"write_latency_ticks"`
		UnmapLatency   uint64         `json:"unmap_latency_ticks"`
		IOErrors       map[string]any `json:"io_error"`
		NumErrorsTotal uint64         `json:"num_io_errors"`
	}
	cfg := s.srv.Applied()
	statOf := func(name, nqn string, nsid uint32) stat {
		st := stat{Name: name, IOErrors: map[string]any{}}
		if ss := s.srv.Target.Subsystem(nqn); ss != nil && nqn != "" {
			if ns := ss.Namespace(nsid); ns != nil {
				n := ns.Stats()
				st.BytesRead, st.NumReadOps, st.BytesWritten, st.NumWriteOps, st.NumErrorsTotal = n.BytesRead, n.Reads, n.BytesWritten, n.Writes, n.Errors
			}
		}
		return st
	}
	out := []stat{}
	for _, name := range sortedKeys(s.bdevs) {
		nqn, nsid := s.bdevs[name].attachedTo(cfg)
		out = append(out, statOf(name, nqn, nsid))
	}
	for _, sc := range cfg.Subsystems {
		for _, nc := range sc.Namespaces {
			if s.bdevOf(sc.NQN, nc) == nil {
				out = append(out, statOf(configBdevName(sc.NQN, nc.NSID), sc.NQN, nc.NSID))
			}
		}
	}
	if p.Name != "" {
		i := slices.IndexFunc(out, func(st stat) bool { return st.Name == p.Name })
		if i < 0 {
			return nil, errorf(CodeNoDevice, "No such device: bdev %s", p.Name)
		}
		out = out[i : i+1]
	}
	return map[string]any{"tick_rate": uint64(time.Second), "ticks": uint64(time.Since(s.started)), "bdevs": out}, nil
}
