//go:build cgo

package nvmlgpus

import (
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/flashpath/flashpath/gds/topo"
)

// List lists GPUs through NVML (go-nvml dlopens libnvidia-ml.so.1).
func List() (out []topo.GPUInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("NVML: %v", r)
		}
	}()
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlInit: %v", nvml.ErrorString(ret))
	}
	defer nvml.Shutdown()
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvmlDeviceGetCount: %v", nvml.ErrorString(ret))
	}
	for i := 0; i < n; i++ {
		d, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			continue
		}
		g := topo.GPUInfo{Index: i}
		g.Name, _ = d.GetName()
		if pci, ret := d.GetPciInfo(); ret == nvml.SUCCESS {
			g.PCIAddr = pciBusID(pci.BusId[:])
		}
		if m, ret := d.GetMemoryInfo(); ret == nvml.SUCCESS {
			g.MemoryBytes = m.Total
		}
		out = append(out, g)
	}
	return out, nil
}

// pciBusID turns NVML's "00000000:3B:00.0" into sysfs's "0000:3b:00.0".
func pciBusID(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	s := strings.ToLower(sb.String())
	if i := strings.IndexByte(s, ':'); i > 4 {
		s = s[i-4:]
	}
	return s
}
