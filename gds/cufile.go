package gds

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/flashpath/flashpath/gds/internal/cuda"
	"golang.org/x/sys/unix"
)

// CuFileStatus says whether cuFile (GPUDirect Storage) is usable here and
// whether it is true GDS (nvidia-fs, DMA from the drive into GPU memory) or
// compat mode (cuFile reads through its own host bounce buffers).
type CuFileStatus struct {
	Available   bool   `json:"available"` // the library loads and its driver opens
	Usable      bool   `json:"usable"`    // it will take files: true GDS, or compat mode allowed
	TrueGDS     bool   `json:"true_gds"`
	NVFSLoaded  bool   `json:"nvidia_fs_loaded"` // /proc/driver/nvidia-fs exists
	NVFSVersion string `json:"nvidia_fs_version,omitempty"`
	CompatMode  bool   `json:"compat_mode"`
	// CompatAllowed is the driver's CU_FILE_ALLOW_COMPAT_MODE control flag
	// ("allow_compat_mode" in cufile.json's properties).
	CompatAllowed bool `json:"compat_allowed"`
	// ConfigCompat is "allow_compat_mode" as the config file sets it: true,
	// false, unset, or why the file could not be read.
	ConfigCompat string            `json:"config_allow_compat_mode"`
	Library      string            `json:"library"`
	Config       string            `json:"config"` // $CUFILE_ENV_PATH_JSON or /etc/cufile.json
	BatchIO      bool              `json:"batch_io"`
	Reason       string            `json:"reason"`
	Hint         string            `json:"hint,omitempty"` // what to change to make cuFile usable
	Props        *cuda.DriverProps `json:"props,omitempty"`
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

var (
	probeMu    sync.Mutex
	probeCache map[[2]string]CuFileStatus // by library and config path; guarded by probeMu
)

// resetProbe forgets cached probes (tests change the fake's behaviour).
func resetProbe() {
	probeMu.Lock()
	probeCache = nil
	probeMu.Unlock()
}

// ProbeCuFile opens the cuFile driver, reads its properties and closes it.
// Opening the driver costs a few hundred milliseconds, so the result is
// kept per library and config file for the life of the process. cuFile
// honours the user's CUFILE_ENV_PATH_JSON; flashpath does not touch it.
func ProbeCuFile() CuFileStatus {
	key := [2]string{cuda.LibCuFilePath(), cuFileConfig()}
	probeMu.Lock()
	defer probeMu.Unlock()
	if st, ok := probeCache[key]; ok {
		return st
	}
	st := probeCuFile(key[0], key[1])
	if probeCache == nil {
		probeCache = map[[2]string]CuFileStatus{}
	}
	probeCache[key] = st
	return st
}

func cuFileConfig() string {
	if p := cuda.Getenv("CUFILE_ENV_PATH_JSON"); p != "" {
		return p
	}
	return "/etc/cufile.json"
}

func probeCuFile(lib, config string) CuFileStatus {
	st := CuFileStatus{Library: lib, Config: config, ConfigCompat: configAllowCompat(config)}
	if _, err := os.Stat(nvfsProc); err == nil {
		st.NVFSLoaded = true
		if b, err := os.ReadFile(nvfsProc + "/version"); err == nil {
			st.NVFSVersion = strings.TrimSpace(string(b))
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
		st.CompatMode, st.Usable = true, true
		return st
	}
	st.Props = &p
	// cuFile reports the nvidia-fs version only when it talks to the module.
	st.TrueGDS = p.NVFSMajor > 0
	st.CompatMode = !st.TrueGDS
	st.CompatAllowed = p.ControlFlags&cuda.ControlAllowCompatMode != 0
	st.Usable = st.TrueGDS || st.CompatAllowed
	switch {
	case st.TrueGDS:
		st.Reason = fmt.Sprintf("true GDS: nvidia-fs %d.%d, DMA from the drive into GPU memory", p.NVFSMajor, p.NVFSMinor)
	case !st.CompatAllowed:
		st.Reason = "unusable: nvidia-fs is not loaded and compat mode is off (allow_compat_mode " + st.ConfigCompat + " in " + config + ")"
		st.Hint = compatHint(config)
	case !st.NVFSLoaded:
		st.Reason = "compat mode: nvidia-fs is not loaded (no " + nvfsProc + "), cuFile reads through host bounce buffers"
	default:
		st.Reason = "compat mode: cuFile reports no nvidia-fs version"
	}
	return st
}

func compatHint(config string) string {
	return `set "allow_compat_mode": true under "properties" in ` + config +
		` (or point CUFILE_ENV_PATH_JSON at a copy that does), or load nvidia-fs (modprobe nvidia-fs) for true GDS`
}

// configAllowCompat reads properties.allow_compat_mode from a cufile.json,
// which may carry // comments.
func configAllowCompat(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "unset (no config file)"
		}
		return "unreadable (" + err.Error() + ")"
	}
	var cfg struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(stripJSONComments(b), &cfg); err != nil {
		return "unreadable (" + err.Error() + ")"
	}
	v, ok := cfg.Properties["allow_compat_mode"]
	if !ok {
		return "unset"
	}
	return string(v)
}

// stripJSONComments blanks // and /* */ comments outside strings.
func stripJSONComments(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			out = append(out, c)
			if esc {
				esc = false
			} else if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
			out = append(out, c)
		case c == '/' && i+1 < len(b) && b[i+1] == '/':
			for i < len(b) && b[i] != '\n' {
				i++
			}
			out = append(out, '\n')
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			i += 2
			for i+1 < len(b) && !(b[i] == '*' && b[i+1] == '/') {
				i++
			}
			i++
			out = append(out, ' ')
		default:
			out = append(out, c)
		}
	}
	return out
}

// refusalHint says what to change when cuFile refuses a file.
func refusalHint(err error, fd int) string {
	var fe *cuda.FileError
	if !errors.As(err, &fe) {
		return ""
	}
	st := ProbeCuFile()
	var hints []string
	if !st.Usable && st.Available {
		hints = append(hints, "nvidia-fs is not loaded and compat mode is off: "+compatHint(st.Config))
	}
	switch fe.Code {
	case cuda.FileDIONotSet, cuda.FileInvalidFileOpenFlag:
		hints = append(hints, "cuFile needs the file open with O_DIRECT, which its filesystem ("+fsType(fd)+") refused")
	case cuda.FileIONotSupported, cuda.FileInvalidFileType, cuda.FileIODisabled, cuda.FileHandleNotRegistered:
		if st.TrueGDS || st.Usable {
			hints = append(hints, "GPUDirect Storage does not take files on "+fsType(fd)+
				" here (it supports ext4 and xfs on local NVMe or NVMe-oF, and some parallel filesystems)")
		}
	}
	hints = append(hints, "--gpu-path bounce reads it without cuFile")
	return " (" + strings.Join(hints, "; ") + ")"
}

// fsType names the filesystem of fd from its statfs magic.
func fsType(fd int) string {
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil {
		return "an unknown filesystem"
	}
	names := map[int64]string{
		0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs", 0x794c7630: "overlayfs",
		0x6969: "nfs", 0x65735546: "fuse", 0x0BD00BD0: "lustre", 0x47504653: "gpfs", 0x19830326: "beegfs",
	}
	if n, ok := names[int64(s.Type)]; ok {
		return n
	}
	return fmt.Sprintf("filesystem 0x%x", s.Type)
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
		hint := refusalHint(err, fd)
		closeCuFile()
		return nil, fmt.Errorf("register file with cuFile: %w%s", err, hint)
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
