//go:build !linux

package backend

import "fmt"

// FileOptions configures OpenFile. File backends exist on Linux only.
type FileOptions struct {
	Size      int64 // capacity in bytes; 0: the current size
	BlockSize int   // 512 or 4096; 0: the default
	Buffered  bool  // no O_DIRECT
	ReadOnly  bool  // writes fail with ErrReadOnly
	SyncIO    bool  // no io_uring
}

// Mem is the anonymous-memory backend; on this platform it cannot be made.
type Mem struct{ unsupported }

// File is the file and block device backend; on this platform it cannot be made.
type File struct{ unsupported }

// NewMem returns an error wrapping ErrNotSupported: the mem backend needs Linux.
func NewMem(size int64, blockSize int) (*Mem, error) {
	return nil, fmt.Errorf("mem: needs Linux (mmap with MAP_NORESERVE, madvise): %w", ErrNotSupported)
}

// OpenFile returns an error wrapping ErrNotSupported: the file backend needs Linux.
func OpenFile(path string, opts FileOptions) (*File, error) {
	return nil, fmt.Errorf("file %s: needs Linux (O_DIRECT, pwritev2, fallocate): %w", path, ErrNotSupported)
}

// Bytes returns nil.
func (m *Mem) Bytes() []byte { return nil }

// Direct returns false.
func (f *File) Direct() bool { return false }

// ReadOnly returns false.
func (f *File) ReadOnly() bool { return false }

// Path returns "".
func (f *File) Path() string { return "" }

// unsupported implements Backend with methods that fail.
type unsupported struct{}

func (unsupported) Size() int64                       { return 0 }
func (unsupported) BlockSize() int                    { return 512 }
func (unsupported) ReadAt(p []byte, off int64) error  { return ErrNotSupported }
func (unsupported) WriteAt([]byte, int64, bool) error { return ErrNotSupported }
func (unsupported) Flush() error                      { return ErrNotSupported }
func (unsupported) WriteZeroes(off, n int64) error    { return ErrNotSupported }
func (unsupported) Discard(off, n int64) error        { return ErrNotSupported }
func (unsupported) VolatileWriteCache() bool          { return false }
func (unsupported) Kind() string                      { return "" }
func (unsupported) Close() error                      { return ErrNotSupported }

// AsyncIO reports false: there is no io_uring here.
func (f *File) AsyncIO() bool { return false }
