package gds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

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
	if fe.Code == cuda.FileHandleNotRegistered || fe.Code == cuda.FileInternalError {
		if h := udevHint(fd); h != "" {
			hints = append(hints, h)
		}
	}
	hints = append(hints, "--gpu-path bounce reads it without cuFile")
	return " (" + strings.Join(hints, "; ") + ")"
}

// udevDataDir is udev's device database.
var udevDataDir = "/run/udev/data"

// udevHint explains a refusal that comes from udev: cuFile (compat mode
// too) reads the filesystem's block device properties (ID_FS_USAGE) from
// udev's database, which containers and small VMs often lack.
func udevHint(fd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ""
	}
	id := fmt.Sprintf("b%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	db := filepath.Join(udevDataDir, id)
	b, err := os.ReadFile(db)
	if err == nil && (bytes.HasPrefix(b, []byte("E:ID_FS_USAGE=")) || bytes.Contains(b, []byte("\nE:ID_FS_USAGE="))) {
		return ""
	}
	return "cuFile looks the file's block device up in udev and " + db + " has no ID_FS_USAGE" +
		" (no udev database: a container or VM without udevd): give it the host's /run/udev (read-only bind mount)" +
		" or run udevd and 'udevadm trigger --subsystem-match=block'"
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

// CuFileIO is how the cufile path issues its I/O.
type CuFileIO string

const (
	// CuFileIOAuto uses the batch API with true GDS where libcufile has
	// it, cuFileRead/cuFileWrite threads otherwise.
	CuFileIOAuto CuFileIO = "auto"
	// CuFileIOBatch submits many chunks per cuFileBatchIOSubmit from a few
	// threads: the drive sees a deep queue without a thread per I/O.
	CuFileIOBatch CuFileIO = "batch"
	// CuFileIOSync calls cuFileRead/cuFileWrite from worker threads.
	CuFileIOSync CuFileIO = "sync"
)

// ParseCuFileIO validates a --cufile-io value ("" is auto).
func ParseCuFileIO(s string) (CuFileIO, error) {
	return parseChoice("cufile io", s, CuFileIOAuto, CuFileIOBatch, CuFileIOSync)
}

// Batch shape of the cufile path: a few threads, each with one cuFile
// batch of up to batchEntries chunks in flight.
const (
	batchWorkers = 4
	batchEntries = 32
	// batchStall is how long a batch may go without a completion before
	// its chunks fail.
	batchStall = 2 * time.Minute
)

// cufileT is the cuFile path: workers call cuFileRead/cuFileWrite on a
// registered handle, or submit chunks in batches (cuFileBatchIOSubmit),
// straight into GPU memory (or, in compat mode, through cuFile's own bounce
// buffers).
type cufileT struct {
	*engine
	dev     *Device
	handle  cuda.FileHandle
	batches []*cuda.Batch // one per worker in batch mode
	how     string        // how the I/O is issued, for File.Reason

	mu   sync.Mutex
	regs []*Buffer // registered with cuFileBufRegister; guarded by mu
}

var _ Transfer = (*cufileT)(nil)

func newCuFile(dev *Device, fd int, o Options) (*cufileT, error) {
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
	var st CuFileStatus
	dev.Do(func() error { st = ProbeCuFile(); return nil })
	mode := "compat mode"
	if st.TrueGDS {
		mode = "true GDS"
	}
	batches, why, err := setUpBatches(dev, o.CuFileIO, st)
	if err != nil {
		dev.Do(func() error { h.Deregister(); return nil })
		closeCuFile()
		return nil, err
	}
	var t *cufileT
	if batches != nil {
		n := len(batches) * batchEntries
		t = &cufileT{engine: newEngine(n, o.Chunk, 1, len(batches)), dev: dev, handle: h, batches: batches}
		t.chunks = make(chan chunk, n) // a worker gathers a whole batch at once
		t.how = fmt.Sprintf("cuFile %s, batch API, %d threads x %d entries", mode, len(batches), batches[0].Cap())
		t.start(len(batches), t.workBatch)
		return t, nil
	}
	t = &cufileT{engine: newEngine(o.Workers*8, o.Chunk, 1, o.Workers), dev: dev, handle: h}
	t.how = fmt.Sprintf("cuFile %s, cuFileRead/cuFileWrite from %d threads", mode, o.Workers)
	if why != "" {
		t.how += " (" + why + ")"
	}
	t.start(o.Workers, t.work)
	return t, nil
}

// setUpBatches returns one cuFile batch per batch worker when mode asks
// for them (or, with auto, when cuFile runs true GDS and has the batch
// API), else nil and why not where batches were an option.
func setUpBatches(dev *Device, mode CuFileIO, st CuFileStatus) ([]*cuda.Batch, string, error) {
	if mode == CuFileIOSync {
		return nil, "", nil
	}
	why := ""
	switch {
	case !cuda.HasBatchIO():
		why = "the batch API is missing in " + cuda.LibCuFilePath()
	case mode == CuFileIOAuto && !st.TrueGDS:
		why = "no batch API in compat mode: --cufile-io batch tries it"
	}
	if why != "" {
		if mode == CuFileIOBatch {
			return nil, "", fmt.Errorf("cuFile batch I/O: %s: %w (--cufile-io sync works without it)", why, ErrNotSupported)
		}
		return nil, why, nil
	}
	entries := batchEntries
	if st.Props != nil && st.Props.MaxBatchIOSize > 0 {
		entries = min(entries, int(st.Props.MaxBatchIOSize))
	}
	var bs []*cuda.Batch
	err := dev.Do(func() error {
		for range batchWorkers {
			b, err := cuda.NewBatch(entries)
			if err != nil {
				return err
			}
			bs = append(bs, b)
		}
		return nil
	})
	if err != nil {
		dev.Do(func() error {
			for _, b := range bs {
				b.Close()
			}
			return nil
		})
		if mode == CuFileIOBatch {
			return nil, "", fmt.Errorf("cuFile batch I/O: %w (--cufile-io sync works without it)", err)
		}
		return nil, "batch set-up failed: " + err.Error(), nil
	}
	return bs, "", nil
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

// bindOrFail binds the worker's thread to the device's context; if it
// cannot, every chunk fails with the reason and the worker must return.
func (t *cufileT) bindOrFail() bool {
	if err := t.dev.bind(); err != nil {
		for c := range t.chunks {
			t.finish(c, err)
		}
		return false
	}
	return true
}

func (t *cufileT) work(int) {
	if !t.bindOrFail() {
		return
	}
	defer runtime.UnlockOSThread()
	for c := range t.chunks {
		if c.n == 0 {
			t.finish(c, nil)
			continue
		}
		base, off := t.base(c.dev)
		t.finish(c, t.syncIO(c, base, off, 0))
	}
}

// syncIO moves chunk c's bytes from done on with cuFileRead/cuFileWrite;
// short transfers continue, a transfer of nothing is the file's end.
func (t *cufileT) syncIO(c chunk, base DevicePtr, off, done int64) error {
	off0 := c.fileOff + c.skip
	for done < c.n {
		var n int64
		var err error
		if c.op == OpRead {
			n, err = cuda.FileRead(t.handle, cuda.DevicePtr(base), c.n-done, off0+done, off+done)
		} else {
			n, err = cuda.FileWrite(t.handle, cuda.DevicePtr(base), c.n-done, off0+done, off+done)
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("cuFile at %d: file ends %d bytes short", off0+done, c.n-done)
		}
		done += n
	}
	return nil
}

// workBatch is a batch worker: it takes the chunks waiting (up to its
// batch's size) in one go, submits them with one call and reaps them all
// before the next batch. An entry that moved fewer bytes than asked
// finishes with synchronous calls.
func (t *cufileT) workBatch(w int) {
	if !t.bindOrFail() {
		return
	}
	defer runtime.UnlockOSThread()
	b := t.batches[w]
	entries := b.Cap()
	cs := make([]chunk, 0, entries)
	ios := make([]cuda.BatchIO, 0, entries)
	evs := make([]cuda.BatchEvent, 0, entries)
	inflight := make([]bool, entries)
	for {
		c, ok := <-t.chunks
		if !ok {
			return
		}
		cs = append(cs[:0], c)
	gather:
		for len(cs) < entries {
			select {
			case c, ok := <-t.chunks:
				if !ok {
					break gather
				}
				cs = append(cs, c)
			default:
				break gather
			}
		}
		ios = ios[:0]
		for i, c := range cs {
			if c.n == 0 {
				t.finish(c, nil)
				continue
			}
			op := cuda.BatchRead
			if c.op == OpWrite {
				op = cuda.BatchWrite
			}
			base, off := t.base(c.dev)
			ios = append(ios, cuda.BatchIO{Handle: t.handle, Opcode: op, Base: cuda.DevicePtr(base), DevOff: off,
				Off: c.fileOff + c.skip, Size: c.n, Cookie: uint64(i)})
		}
		if len(ios) == 0 {
			continue
		}
		if evs, ok = t.runBatch(b, cs, ios, evs, inflight); !ok {
			// Not reused, not destroyed (entries may still be in flight):
			// this worker goes on with synchronous calls.
			t.batches[w] = nil
			t.work(w)
			return
		}
	}
}

// runBatch submits ios (cookies index cs) and finishes every chunk. It
// reports false when the batch is beyond use: a failed status call, or no
// completion for batchStall (its entries cannot be told apart then).
func (t *cufileT) runBatch(b *cuda.Batch, cs []chunk, ios []cuda.BatchIO, evs []cuda.BatchEvent, inflight []bool) ([]cuda.BatchEvent, bool) {
	if err := b.Submit(ios); err != nil {
		for _, io := range ios {
			t.finish(cs[io.Cookie], err)
		}
		return evs, true
	}
	for _, io := range ios {
		inflight[io.Cookie] = true
	}
	left := len(ios)
	last := time.Now()
	for left > 0 {
		var err error
		evs, err = b.Status(left, time.Second, evs[:0])
		if err == nil && len(evs) == 0 && time.Since(last) > batchStall {
			err = fmt.Errorf("cuFile batch: no completion in %v with %d entries in flight", batchStall, left)
		}
		if err != nil {
			for i := range cs {
				if inflight[i] {
					inflight[i] = false
					t.finish(cs[i], err)
				}
			}
			return evs, false
		}
		if len(evs) > 0 {
			last = time.Now()
		}
		for _, e := range evs {
			if e.Cookie >= uint64(len(cs)) || !inflight[e.Cookie] {
				continue // not one of ours: cuFile gave back a cookie it was not given
			}
			inflight[e.Cookie] = false
			c := cs[e.Cookie]
			n, err := e.Result()
			if err == nil && n < c.n {
				base, off := t.base(c.dev)
				err = t.syncIO(c, base, off, n)
			}
			t.finish(c, err)
			left--
		}
	}
	return evs, true
}

func (t *cufileT) Close() error {
	t.stop()
	t.mu.Lock()
	regs := t.regs
	t.regs = nil
	t.mu.Unlock()
	t.dev.Do(func() error {
		for _, b := range t.batches {
			if b != nil {
				b.Close()
			}
		}
		for _, b := range regs {
			cuda.FileBufDeregister(cuda.DevicePtr(b.ptr))
		}
		t.handle.Deregister()
		return nil
	})
	closeCuFile()
	return nil
}
