package spdk

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Volumes are files the target creates and removes in Options.VolumeDir
// for a provisioner that runs elsewhere (flashpath csi's controller),
// which cannot create files on the target's machine. A volume is an aio
// bdev named like its file (NAME.img) that nvmf_subsystem_add_ns attaches
// as any other; the file outlives the target, and creating a volume whose
// file is there with the same size takes that file again (after a
// restart). These methods are flashpath's own: SPDK has no such call.
//
//	flashpath_volume_create {"name": "v1", "size": 1073741824, "block_size": 4096} → "v1"
//	flashpath_volume_delete {"name": "v1"}                                         → true
//	flashpath_get_volumes   {}  → {"dir", "total_bytes", "free_bytes", "volumes": [{"name", "size", "allocated", "bdev"}]}
func init() {
	methods["flashpath_volume_create"] = (*Server).createVolume
	methods["flashpath_volume_delete"] = (*Server).deleteVolume
	methods["flashpath_get_volumes"] = (*Server).getVolumes
}

var volumeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$`)

const volumeSuffix = ".img"

func (s *Server) volumePath(name string) (string, *Error) {
	if s.opts.VolumeDir == "" {
		return "", errorf(CodeNotSupported, "Operation not supported: this target has no volume directory: start it with --volume-dir DIR")
	}
	if !volumeName.MatchString(name) {
		return "", errorf(CodeInvalidParams, "Invalid parameters: volume name %q: want 1 to 96 letters, digits, '_', '.', '-', starting with a letter or digit", name)
	}
	return filepath.Join(s.opts.VolumeDir, name+volumeSuffix), nil
}

func (s *Server) createVolume(params json.RawMessage) (any, *Error) {
	var p struct {
		Name      string `json:"name"`
		Size      int64  `json:"size"`
		BlockSize int    `json:"block_size"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	path, e := s.volumePath(p.Name)
	if e != nil {
		return nil, e
	}
	if p.BlockSize == 0 {
		p.BlockSize = 4096
	}
	if p.BlockSize != 512 && p.BlockSize != 4096 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: block_size %d: flashpath serves 512 or 4096", p.BlockSize)
	}
	if p.Size <= 0 || p.Size%int64(p.BlockSize) != 0 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: size %d: want a positive multiple of block_size %d", p.Size, p.BlockSize)
	}
	spec := "file:" + path + "?bs=" + strconv.Itoa(p.BlockSize)
	if b := s.bdevs[p.Name]; b != nil {
		if b.spec == spec && int64(b.numBlocks)*int64(b.blockSize) == p.Size {
			return b.name, nil // created before: the same volume
		}
		return nil, errorf(CodeExists, "File exists: bdev %s exists with another size or file", p.Name)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, errorf(CodeInternalError, "volume %s: %v", p.Name, err)
	}
	fi, err := f.Stat()
	created := err == nil && fi.Size() == 0
	switch {
	case err != nil:
	case created:
		err = f.Truncate(p.Size) // sparse: flashpath_get_volumes counts what it may still take
	case fi.Size() != p.Size:
		f.Close()
		return nil, errorf(CodeExists, "File exists: volume %s's file %s has %d bytes, not %d", p.Name, path, fi.Size(), p.Size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if created {
			os.Remove(path)
		}
		return nil, errorf(CodeInternalError, "volume %s: %v", p.Name, err)
	}
	b := &bdev{name: p.Name, module: "aio", spec: spec, filename: path}
	res, e := s.addBdev(b)
	if e != nil && created {
		os.Remove(path)
	}
	return res, e
}

func (s *Server) deleteVolume(params json.RawMessage) (any, *Error) {
	var p struct {
		Name string `json:"name"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	path, e := s.volumePath(p.Name)
	if e != nil {
		return nil, e
	}
	if b := s.bdevs[p.Name]; b != nil {
		if b.filename != path {
			return nil, errorf(CodeInvalidParams, "Invalid parameters: bdev %s is not a volume (it is %s)", p.Name, b.spec)
		}
		q, _ := json.Marshal(map[string]string{"name": p.Name})
		if _, e := s.deleteBdev("aio", q); e != nil {
			return nil, e
		}
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errorf(CodeNoDevice, "No such device: no volume %s", p.Name)
		}
		return nil, errorf(CodeInternalError, "volume %s: %v", p.Name, err)
	}
	s.log.Info("rpc: volume deleted", "volume", p.Name, "file", path)
	return true, nil
}

type volumeInfo struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	Allocated int64  `json:"allocated"`
	Bdev      string `json:"bdev,omitempty"`
}

// getVolumes lists the volume files. free_bytes is what the file system
// has left less what the (sparse) volumes may still take, so a
// provisioner never promises the same space twice.
func (s *Server) getVolumes(params json.RawMessage) (any, *Error) {
	if e := noParams(params); e != nil {
		return nil, e
	}
	if s.opts.VolumeDir == "" {
		return nil, errorf(CodeNotSupported, "Operation not supported: this target has no volume directory: start it with --volume-dir DIR")
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.opts.VolumeDir, &st); err != nil {
		return nil, errorf(CodeInternalError, "volume directory %s: %v", s.opts.VolumeDir, err)
	}
	ents, err := os.ReadDir(s.opts.VolumeDir)
	if err != nil {
		return nil, errorf(CodeInternalError, "volume directory %s: %v", s.opts.VolumeDir, err)
	}
	vols := []volumeInfo{}
	var owed int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), volumeSuffix)
		if !ok || !volumeName.MatchString(name) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		v := volumeInfo{Name: name, Size: fi.Size()}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			v.Allocated = int64(sys.Blocks) * 512
		}
		if b := s.bdevs[name]; b != nil && b.filename == filepath.Join(s.opts.VolumeDir, e.Name()) {
			v.Bdev = b.name
		}
		owed += max(v.Size-v.Allocated, 0)
		vols = append(vols, v)
	}
	sort.Slice(vols, func(i, j int) bool { return vols[i].Name < vols[j].Name })
	total := int64(uint64(st.Blocks) * uint64(st.Bsize))
	free := max(int64(uint64(st.Bavail)*uint64(st.Bsize))-owed, 0)
	return map[string]any{"dir": s.opts.VolumeDir, "total_bytes": total, "free_bytes": free, "volumes": vols}, nil
}
