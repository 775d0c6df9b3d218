//go:build !linux

package bench

func mapAnon(size int) ([]byte, error) {
	b := make([]byte, size+pageSize)
	off := 0
	if r := int(uintptr(unsafePointer(b)) % pageSize); r != 0 {
		off = pageSize - r
	}
	return b[off : off+size : off+size], nil
}

func unmapAnon([]byte) error { return nil }
