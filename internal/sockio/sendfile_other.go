//go:build !linux

package sockio

const haveSendfile = false

func (w *Writer) sendOnce(uintptr) bool { panic("sockio: no sendfile on this platform") }
