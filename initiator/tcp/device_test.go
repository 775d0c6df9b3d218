package tcp

import (
	"errors"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator"
)

// TestDeviceMemoryRefused: NVMe/TCP refuses to register device memory and
// to send a command naming it, saying to stage through host memory.
func TestDeviceMemoryRefused(t *testing.T) {
	_, err := Transport{}.RegisterDevice(initiator.DeviceMemory{Addr: 0x7f0000000000, Len: 4096, DMABufFD: 3})
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, initiator.ErrNoDeviceMemory) || !strings.Contains(err.Error(), "NVMe/TCP moves data through host memory: use the staging path") {
			t.Errorf("%s: %v: want ErrNoDeviceMemory saying to use the staging path", what, err)
		}
	}
	check("RegisterDevice", err)
	var l link
	check("Prepare", l.Prepare(0, &initiator.Command{Dev: 0x7f0000000000, DevLen: 4096}))
}
