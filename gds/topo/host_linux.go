package topo

import (
	"fmt"
	"net"
	"strings"

	"github.com/Mellanox/rdmamap"
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/vishvananda/netlink"
)

// nvmlGPUs lists GPUs through NVML (go-nvml dlopens libnvidia-ml.so.1).
func nvmlGPUs() (out []GPUInfo, err error) {
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
		g := GPUInfo{Index: i}
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

func rdmaDevices() []string { return rdmamap.GetRdmaDeviceList() }

// netDevsOf finds the net devices whose RDMA device is dev.
func netDevsOf(dev string) []NetDev {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var out []NetDev
	for _, l := range links {
		a := l.Attrs()
		if r, err := rdmamap.GetRdmaDeviceForNetdevice(a.Name); err != nil || r != dev {
			continue
		}
		out = append(out, NetDev{Name: a.Name, State: a.OperState.String(), MTU: a.MTU, MAC: a.HardwareAddr.String()})
	}
	return out
}

// routeDev names the net device the kernel routes ip through.
func routeDev(ip string) (string, error) {
	a := net.ParseIP(ip)
	if a == nil {
		return "", fmt.Errorf("%q is not an IP address", ip)
	}
	routes, err := netlink.RouteGet(a)
	if err != nil || len(routes) == 0 {
		return "", fmt.Errorf("route to %s: %v", ip, err)
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return l.Attrs().Name, nil
}
