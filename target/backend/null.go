package backend

import "fmt"

// Null is a backend that stores nothing: reads return zeros and writes are
// dropped. It measures the target's own overhead, like the kernel's
// null_blk. Any size is accepted; no memory is used.
type Null struct {
	size int64
	bs   int
}

var _ Backend = (*Null)(nil)

// NewNull returns a Null backend of size bytes with logical block size
// blockSize (512 or 4096; 0 means 512). size must be a positive multiple of
// the block size.
func NewNull(size int64, blockSize int) (*Null, error) {
	bs, err := checkGeometry("null", size, blockSize)
	if err != nil {
		return nil, err
	}
	return &Null{size: size, bs: bs}, nil
}

// checkGeometry validates a size and block size for a new backend and
// returns the block size to use (0 becomes 512).
func checkGeometry(kind string, size int64, blockSize int) (int, error) {
	if blockSize == 0 {
		blockSize = 512
	}
	if !validBlockSize(blockSize) {
		return 0, fmt.Errorf("%s: block size %d: use 512 or 4096", kind, blockSize)
	}
	if size <= 0 {
		return 0, fmt.Errorf("%s: size %d: give a positive size, e.g. %s:1GiB", kind, size, kind)
	}
	if size%int64(blockSize) != 0 {
		return 0, fmt.Errorf("%s: size %d is not a multiple of the block size %d: round it, e.g. to %d",
			kind, size, blockSize, size/int64(blockSize)*int64(blockSize))
	}
	return blockSize, nil
}

// Size returns the capacity in bytes.
func (n *Null) Size() int64 { return n.size }

// BlockSize returns the logical block size in bytes.
func (n *Null) BlockSize() int { return n.bs }

// ReadAt fills p with zeros.
func (n *Null) ReadAt(p []byte, off int64) error {
	if err := checkIO(off, int64(len(p)), n.size, n.bs); err != nil {
		return err
	}
	clear(p)
	return nil
}

// WriteAt checks the range and drops the data.
func (n *Null) WriteAt(p []byte, off int64, fua bool) error {
	return checkIO(off, int64(len(p)), n.size, n.bs)
}

// Flush does nothing.
func (n *Null) Flush() error { return nil }

// WriteZeroes checks the range; reads return zeros anyway.
func (n *Null) WriteZeroes(off, length int64) error { return checkIO(off, length, n.size, n.bs) }

// Discard checks the range; reads return zeros anyway.
func (n *Null) Discard(off, length int64) error { return checkIO(off, length, n.size, n.bs) }

// VolatileWriteCache returns false: nothing is ever lost, as nothing is kept.
func (n *Null) VolatileWriteCache() bool { return false }

// Kind returns "null".
func (n *Null) Kind() string { return KindNull }

// Close does nothing.
func (n *Null) Close() error { return nil }
