package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// localFile is the target of the local engines: a regular file (created
// and laid out on demand, as fio does) or a block device.
type localFile struct {
	f     *os.File
	fd    int
	size  int64
	block bool // a block device: trim is BLKDISCARD
}

// openLocal opens cfg.Filename for the job: O_DIRECT with direct=1,
// writable when the job writes. A regular file shorter than offset+size is
// extended by writing it out, so that reads hit real blocks, not holes.
func openLocal(cfg *EngineConfig, name string) (*localFile, error) {
	j := cfg.Job
	need := j.CloneOffset(cfg.JobIndex) + j.RegionSize()
	st, err := os.Stat(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if j.RegionSize() == 0 {
			return nil, fmt.Errorf("%s does not exist and size= is not given", name)
		}
		if err := LayoutFile(name, 0, need); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case st.Mode().IsRegular() && st.Size() < need:
		if err := LayoutFile(name, st.Size(), need); err != nil {
			return nil, err
		}
	}

	flags := os.O_RDONLY
	if j.RW.Write || j.RW.Trim {
		flags = os.O_RDWR
	}
	if j.Direct {
		flags |= unix.O_DIRECT
	}
	switch j.Sync {
	case SyncFile:
		flags |= unix.O_SYNC
	case SyncData:
		flags |= unix.O_DSYNC
	}
	f, err := os.OpenFile(name, flags, 0)
	if err != nil {
		if j.Direct && errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("open %s with O_DIRECT: %w (the file system does not support direct I/O, e.g. tmpfs; use direct=0): %w", name, err, ErrNotSupported)
		}
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd) // also right for block devices
	if err != nil {
		f.Close()
		return nil, err
	}
	st2, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	block := st2.Mode()&os.ModeDevice != 0 && st2.Mode()&os.ModeCharDevice == 0
	if advice, ok := fadviseFlags[j.FadviseAdvice()]; ok {
		// As fio: readahead off for random reads, doubled for sequential.
		if err := unix.Fadvise(int(f.Fd()), 0, 0, advice); err != nil {
			f.Close()
			return nil, fmt.Errorf("option fadvise_hint: %w (fadvise_hint=0 skips it)", os.NewSyscallError("posix_fadvise", err))
		}
	}
	return &localFile{f: f, fd: int(f.Fd()), size: size, block: block}, nil
}

var fadviseFlags = map[Fadvise]int{
	FadviseSequential: unix.FADV_SEQUENTIAL,
	FadviseRandom:     unix.FADV_RANDOM,
	FadviseNoReuse:    unix.FADV_NOREUSE,
}

func (l *localFile) Close() error { return l.f.Close() }

// trim discards n bytes at off as fio does: BLKDISCARD on a block device,
// a punched hole in a regular file. It returns the bytes trimmed.
func (l *localFile) trim(off int64, n int) (int, error) {
	var err error
	if l.block {
		r := [2]uint64{uint64(off), uint64(n)}
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(l.fd), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r[0])))
		if e != 0 {
			err = os.NewSyscallError("ioctl BLKDISCARD", e)
		}
	} else if e := unix.Fallocate(l.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, int64(n)); e != nil {
		err = os.NewSyscallError("fallocate PUNCH_HOLE", e)
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Sync is fsync or fdatasync.
func (l *localFile) Sync(datasync bool) error {
	for {
		var err error
		if datasync {
			err = unix.Fdatasync(l.fd)
		} else {
			err = unix.Fsync(l.fd)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError(map[bool]string{true: "fdatasync", false: "fsync"}[datasync], err)
		}
		return nil
	}
}

// Invalidate drops the file's clean pages from the page cache.
func (l *localFile) Invalidate() error {
	if err := unix.Fadvise(l.fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return os.NewSyscallError("posix_fadvise DONTNEED", err)
	}
	return nil
}

// fileSet is the files of a clone: one, or nrfiles (IO.File picks one).
type fileSet []*localFile

// openFiles opens cfg.Filename, or every name of cfg.Filenames.
func openFiles(cfg *EngineConfig) (fileSet, error) {
	names := cfg.Filenames
	if len(names) == 0 {
		names = []string{cfg.Filename}
	}
	fs := make(fileSet, 0, len(names))
	for _, name := range names {
		f, err := openLocal(cfg, name)
		if err != nil {
			fs.Close()
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}

func (fs fileSet) Files() int { return len(fs) }

// size is the smallest file's size.
func (fs fileSet) size() int64 {
	s := fs[0].size
	for _, f := range fs[1:] {
		s = min(s, f.size)
	}
	return s
}

func (fs fileSet) Sync(datasync bool) error {
	for _, f := range fs {
		if err := f.Sync(datasync); err != nil {
			return err
		}
	}
	return nil
}

func (fs fileSet) Invalidate() error {
	for _, f := range fs {
		if err := f.Invalidate(); err != nil {
			return err
		}
	}
	return nil
}

func (fs fileSet) Close() error {
	var first error
	for _, f := range fs {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
