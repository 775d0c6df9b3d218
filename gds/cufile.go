package gds

import (
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/flashpath/flashpath/gds/internal/cuda"
)

// CuFileStatus says whether cuFile (GPUDirect Storage) is usable here and
// whether it is true GDS (nvidia-fs, DMA from the drive into GPU memory) or
// compat mode (cuFile reads through its own host bounce buffers).
type CuFileStatus struct {
	Available   bool              `json:"available"`
	TrueGDS     bool              `json:"true_gds"`
	NVFSLoaded  bool              `json:"nvidia_fs_loaded"` // /proc/driver/nvidia-fs exists
	NVFSVersion string            `json:"nvidia_fs_version,omitempty"`
	CompatMode  bool              `json:"compat_mode"`
	Library     string            `json:"library"`
	Config      string            `json:"config"` // $CUFILE_ENV_PATH_JSON or /etc/cufile.json
	BatchIO     bool              `json:"batch_io"`
	Reason      string            `json:"reason"`
	Props       *cuda.DriverProps `json:"props,omitempty"`
}

var (
	cufileMu   sync.Mutex
	cufileRefs int // open cuFile users; guarded by cufileMu
)

// openCuFile opens the cuFile driver (reference counted).
func openCuFile() error {
	cufileMu.Lock()
	defer cufileMu.Unlock()
	if cufileRefs == 0 {
		if err := cuda.FileDriverOpen(); err != nil {
			return fmt.Errorf("open cuFile driver: %w", err)
		}
	}
	cufileRefs++
	return nil
}

func closeCuFile() {
	cufileMu.Lock()
	defer cufileMu.Unlock()
	if cufileRefs--; cufileRefs == 0 {
		cuda.FileDriverClose()
	}
}

// nvfsProc is where nvidia-fs reports itself.
var nvfsProc = "/proc/driver/nvidia-fs"

// ProbeCuFile opens the cuFile driver, reads its properties and closes it.
// cuFile honours the user's CUFILE_ENV_PATH_JSON; flashpath does not touch it.
func ProbeCuFile() CuFileStatus {
	st := CuFileStatus{Library: cuda.LibCuFilePath(), Config: cuda.Getenv("CUFILE_ENV_PATH_JSON")}
	if st.Config == "" {
		st.Config = "/etc/cufile.json"
	}
	if _, err := os.Stat(nvfsProc); err == nil {
		st.NVFSLoaded = true
		if b, err := os.ReadFile(nvfsProc + "/version"); err == nil {
			st.NVFSVersion = trimSpace(string(b))
		}
	}
	if err := openCuFile(); err != nil {
		st.Reason = err.Error()
		return st
	}
	defer closeCuFile()
	st.Available = true
	st.BatchIO = cuda.HasBatchIO()
	p, err := cuda.FileDriverProperties()
	if err != nil {
		st.Reason = "cuFileDriverGetProperties: " + err.Error()
		st.CompatMode = true
		return st
	}
	st.Props = &p
	// cuFile reports the nvidia-fs version only when it talks to the module.
	st.TrueGDS = p.NVFSMajor > 0
	st.CompatMode = !st.TrueGDS
	switch {
	case st.TrueGDS:
		st.Reason = fmt.Sprintf("true GDS: nvidia-fs %d.%d, DMA from the drive into GPU memory", p.NVFSMajor, p.NVFSMinor)
	case !st.NVFSLoaded:
		st.Reason = "compat mode: nvidia-fs is not loaded (no " + nvfsProc + "), cuFile reads through host bounce buffers"
	default:
		st.Reason = "compat mode: cuFile reports no nvidia-fs version"
	}
	return st
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// cufileT is the cuFile path: workers call cuFileRead/cuFileWrite on a
// registered handle, straight into GPU memory (or, in compat mode, through
// cuFile's own bounce buffers).
type cufileT struct {
	*engine
	dev    *Device
	handle cuda.FileHandle

	mu   sync.Mutex
	regs []*Buffer // registered with cuFileBufRegister; guarded by mu
}

var _ Transfer = (*cufileT)(nil)

func newCuFile(dev *Device, fd int, workers int, chunkSize int64) (*cufileT, error) {
	if err := dev.Do(openCuFile); err != nil {
		return nil, err
	}
	var h cuda.FileHandle
	err := dev.Do(func() (err error) { h, err = cuda.FileHandleRegister(fd); return err })
	if err != nil {
		closeCuFile()
		return nil, fmt.Errorf("register file with cuFile: %w", err)
	}
	t := &cufileT{engine: newEngine(workers*8, chunkSize, 1, workers), dev: dev, handle: h}
	t.start(workers, t.work)
	return t, nil
}

// RegisterBuffer registers b with cuFileBufRegister so reads into it skip
// cuFile's internal bounce buffers; requests into b then pass its base and
// an offset. Deregistered on Close.
func (t *cufileT) RegisterBuffer(b *Buffer) error {
	if err := t.dev.Do(func() error { return cuda.FileBufRegister(cuda.DevicePtr(b.ptr), b.size) }); err != nil {
		return err
	}
	t.mu.Lock()
	t.regs = append(t.regs, b)
	t.mu.Unlock()
	return nil
}

func (t *cufileT) base(p DevicePtr) (DevicePtr, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range t.regs {
		if p >= b.ptr && p < b.ptr+DevicePtr(b.size) {
			return b.ptr, int64(p - b.ptr)
		}
	}
	return p, 0
}

func (t *cufileT) work(int) {
	if err := t.dev.bind(); err != nil {
		for c := range t.chunks {
			t.finish(c, err)
		}
		return
	}
	defer runtime.UnlockOSThread()
	for c := range t.chunks {
		if c.n == 0 {
			t.finish(c, nil)
			continue
		}
		base, off := t.base(c.dev)
		off0 := c.fileOff + c.skip
		var err error
		for done := int64(0); done < c.n; {
			var n int64
			if c.op == OpRead {
				n, err = cuda.FileRead(t.handle, cuda.DevicePtr(base), c.n-done, off0+done, off+done)
			} else {
				n, err = cuda.FileWrite(t.handle, cuda.DevicePtr(base), c.n-done, off0+done, off+done)
			}
			if err == nil && n == 0 {
				err = fmt.Errorf("cuFile at %d: file ends %d bytes short", off0+done, c.n-done)
			}
			if err != nil {
				break
			}
			done += n
		}
		t.finish(c, err)
	}
}

func (t *cufileT) Close() error {
	t.stop()
	t.mu.Lock()
	regs := t.regs
	t.regs = nil
	t.mu.Unlock()
	t.dev.Do(func() error {
		for _, b := range regs {
			cuda.FileBufDeregister(cuda.DevicePtr(b.ptr))
		}
		t.handle.Deregister()
		return nil
	})
	closeCuFile()
	return nil
}
