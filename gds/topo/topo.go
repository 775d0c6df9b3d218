// Package topo finds the GPUs, RDMA NICs and NVMe drives of a machine and,
// for each GPU, the NIC and drive closest to it on PCIe, from the device
// paths in sysfs. It reports what it found, also when it found nothing.
//
// Distances, best first (nvidia-smi topo calls them PIX/PXB, PHB, NODE, SYS):
//
//	same switch        the devices share a PCIe bridge below the root port
//	same root complex  they share only the host bridge (pciDDDD:BB)
//	same NUMA node     different host bridges of one socket
//	across sockets     peer-to-peer DMA crosses the inter-socket link:
//	                   GPUDirect RDMA and Storage lose bandwidth there
package topo

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/flashpath/flashpath/internal/sysfs"
)

// Distance is the PCIe distance between two devices.
type Distance int

const (
	SameSwitch Distance = iota
	SameRootComplex
	SameNUMA
	CrossSocket
	Unknown
)

func (d Distance) String() string {
	switch d {
	case SameSwitch:
		return "same PCIe switch"
	case SameRootComplex:
		return "same root complex"
	case SameNUMA:
		return "same NUMA node"
	case CrossSocket:
		return "across sockets"
	}
	return "unknown"
}

// MarshalText makes Distance a string in JSON.
func (d Distance) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Link names the closest device of a kind and how far it is.
type Link struct {
	Name     string   `json:"name"`
	PCIAddr  string   `json:"pci_addr"`
	Distance Distance `json:"distance"`
	// Via is the net device an NVMe-oF controller is reached through
	// (its PCIe place stands for the drive's).
	Via string `json:"via,omitempty"`
}

// GPU is one NVIDIA GPU.
type GPU struct {
	Index       int      `json:"index"`
	Name        string   `json:"name"`
	PCIAddr     string   `json:"pci_addr"`
	NUMANode    int      `json:"numa_node"`
	MemoryBytes uint64   `json:"memory_bytes"`
	ClosestNIC  *Link    `json:"closest_nic,omitempty"`
	ClosestNVMe *Link    `json:"closest_nvme,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
	sysPath     string
}

// NetDev is a network interface of an RDMA device.
type NetDev struct {
	Name  string `json:"name"`
	State string `json:"state,omitempty"`
	MTU   int    `json:"mtu,omitempty"`
	MAC   string `json:"mac,omitempty"`
}

// NIC is an RDMA device (/sys/class/infiniband).
type NIC struct {
	Name     string   `json:"name"`
	PCIAddr  string   `json:"pci_addr"`
	NUMANode int      `json:"numa_node"`
	NetDevs  []NetDev `json:"netdevs"`
	sysPath  string
}

// NVMe is an NVMe controller (/sys/class/nvme).
type NVMe struct {
	Name      string `json:"name"`
	Transport string `json:"transport"` // pcie, tcp, rdma, fc, loop
	Model     string `json:"model,omitempty"`
	Serial    string `json:"serial,omitempty"`
	PCIAddr   string `json:"pci_addr,omitempty"` // pcie only
	Address   string `json:"address,omitempty"`  // fabrics: traddr=...
	// NetDev is the net device a fabrics controller is reached through (the
	// route to its traddr) and NetPCIAddr that device's PCIe address;
	// GPU-direct transfers from the drive go through it.
	NetDev     string   `json:"netdev,omitempty"`
	NetPCIAddr string   `json:"netdev_pci_addr,omitempty"`
	NUMANode   int      `json:"numa_node"`
	Namespaces []string `json:"namespaces"`
	sysPath    string
}

// Report is what Discover found.
type Report struct {
	GPUs  []GPU    `json:"gpus"`
	NICs  []NIC    `json:"rdma_devices"`
	NVMe  []NVMe   `json:"nvme"`
	Notes []string `json:"notes,omitempty"`
}

// GPUInfo is what a GPU lister returns.
type GPUInfo struct {
	Index       int
	Name        string
	PCIAddr     string
	MemoryBytes uint64
}

// Config says where to look.
type Config struct {
	// SysRoot is the sysfs mount ("/sys"); tests use a fake tree.
	SysRoot string
	// ListGPUs lists GPUs (default: NVML where set, then a sysfs scan
	// for NVIDIA display controllers).
	ListGPUs func() ([]GPUInfo, error)
	// NVML lists GPUs through NVML (nvmlgpus.List), tried first on the
	// real /sys; without it, or where it fails, the sysfs scan.
	NVML func() ([]GPUInfo, error)
	// NetDevs lists the net devices of an RDMA device (default: rdmamap and
	// netlink on the real /sys, the device's net/ directory otherwise).
	NetDevs func(rdmaDev string) []NetDev
	// RouteDev names the net device the route to ip leaves through
	// (default: a netlink route lookup on the real /sys, none otherwise).
	RouteDev func(ip string) (string, error)
}

// Discover builds the report.
func Discover(c Config) (*Report, error) {
	if c.SysRoot == "" {
		c.SysRoot = "/sys"
	}
	r := &Report{}
	gpus, err := c.gpus(r)
	if err != nil {
		r.Notes = append(r.Notes, "GPUs: "+err.Error())
	}
	for _, g := range gpus {
		gpu := GPU{Index: g.Index, Name: g.Name, PCIAddr: strings.ToLower(g.PCIAddr), MemoryBytes: g.MemoryBytes}
		gpu.sysPath, gpu.NUMANode = c.pciDev(gpu.PCIAddr)
		r.GPUs = append(r.GPUs, gpu)
	}
	r.NICs = c.nics()
	r.NVMe = c.nvmes()
	if len(r.GPUs) == 0 {
		r.Notes = append(r.Notes, "no NVIDIA GPU found")
	}
	if len(r.NICs) == 0 {
		r.Notes = append(r.Notes, "no RDMA device found (/sys/class/infiniband)")
	}
	if len(r.NVMe) == 0 {
		r.Notes = append(r.Notes, "no NVMe controller found (/sys/class/nvme)")
	}
	for i := range r.GPUs {
		g := &r.GPUs[i]
		if g.sysPath == "" {
			g.Warnings = append(g.Warnings, "PCIe path of "+g.PCIAddr+" not found in sysfs: distances unknown")
			continue
		}
		for _, n := range r.NICs {
			d := c.distance(g.sysPath, n.sysPath, g.NUMANode, n.NUMANode)
			if g.ClosestNIC == nil || d < g.ClosestNIC.Distance {
				g.ClosestNIC = &Link{Name: n.Name, PCIAddr: n.PCIAddr, Distance: d}
			}
		}
		for _, n := range r.NVMe {
			if n.sysPath == "" {
				continue // fabrics over a virtual device (lo, rxe on a dummy): no PCIe place
			}
			d := c.distance(g.sysPath, n.sysPath, g.NUMANode, n.NUMANode)
			if g.ClosestNVMe == nil || d < g.ClosestNVMe.Distance {
				pci := n.PCIAddr
				if pci == "" {
					pci = n.NetPCIAddr
				}
				g.ClosestNVMe = &Link{Name: n.Name, PCIAddr: pci, Distance: d, Via: n.NetDev}
			}
		}
		for _, l := range []*Link{g.ClosestNIC, g.ClosestNVMe} {
			if l != nil && l.Distance == CrossSocket {
				through := ""
				if l.Via != "" {
					through = " through " + l.Via
				}
				g.Warnings = append(g.Warnings, fmt.Sprintf("GPU %d and %s (%s%s) sit on different sockets: GPU-direct transfers cross the inter-socket link", g.Index, l.Name, l.PCIAddr, through))
			}
		}
	}
	return r, nil
}

func (c *Config) gpus(r *Report) ([]GPUInfo, error) {
	if c.ListGPUs != nil {
		return c.ListGPUs()
	}
	if c.SysRoot == "/sys" && c.NVML != nil {
		g, err := c.NVML()
		if err == nil {
			return g, nil
		}
		r.Notes = append(r.Notes, "NVML: "+err.Error()+"; scanning sysfs for NVIDIA devices")
	}
	return c.sysfsGPUs()
}

// sysfsGPUs finds NVIDIA (vendor 0x10de) display and 3D controllers.
func (c *Config) sysfsGPUs() ([]GPUInfo, error) {
	dir := filepath.Join(c.SysRoot, "bus", "pci", "devices")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []GPUInfo
	for _, e := range ents {
		dev := filepath.Join(dir, e.Name())
		if sysfs.Attr(dev, "vendor") != "0x10de" || !strings.HasPrefix(sysfs.Attr(dev, "class"), "0x03") {
			continue
		}
		out = append(out, GPUInfo{Index: len(out), Name: "NVIDIA device " + sysfs.Attr(dev, "device"), PCIAddr: e.Name()})
	}
	return out, nil
}

// pciDev resolves a PCI address to its sysfs device path and NUMA node.
func (c *Config) pciDev(addr string) (string, int) {
	p, err := filepath.EvalSymlinks(filepath.Join(c.SysRoot, "bus", "pci", "devices", addr))
	if err != nil {
		return "", -1
	}
	return p, numa(p)
}

func numa(devPath string) int {
	n, err := strconv.Atoi(sysfs.Attr(devPath, "numa_node"))
	if err != nil {
		return -1
	}
	return n
}

// pciChain returns the PCI components of a sysfs device path:
// ["pci0000:00", "0000:00:01.0", "0000:01:00.0", ...].
func (c *Config) pciChain(p string) []string {
	root, _ := filepath.EvalSymlinks(filepath.Join(c.SysRoot, "devices"))
	if root == "" {
		root = filepath.Join(c.SysRoot, "devices")
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return nil
	}
	parts := strings.Split(rel, string(filepath.Separator))
	var out []string
	for _, s := range parts {
		if strings.HasPrefix(s, "pci") || isBDF(s) {
			out = append(out, s)
		} else {
			break
		}
	}
	return out
}

func isBDF(s string) bool {
	// dddd:bb:dd.f
	return len(s) == 12 && s[4] == ':' && s[7] == ':' && s[10] == '.'
}

// distance classifies two sysfs device paths.
func (c *Config) distance(a, b string, numaA, numaB int) Distance {
	ca, cb := c.pciChain(a), c.pciChain(b)
	if len(ca) == 0 || len(cb) == 0 {
		return Unknown
	}
	common := 0
	for common < len(ca) && common < len(cb) && ca[common] == cb[common] {
		common++
	}
	switch {
	case common >= 2:
		return SameSwitch
	case common == 1:
		return SameRootComplex
	case numaA == numaB:
		return SameNUMA // also when neither knows its node: one socket
	}
	return CrossSocket
}

func (c *Config) nics() []NIC {
	var names []string
	if c.SysRoot == "/sys" {
		names = rdmaDevices()
	} else {
		names = sysfs.Names(filepath.Join(c.SysRoot, "class", "infiniband"))
	}
	sort.Strings(names)
	var out []NIC
	for _, n := range names {
		nic := NIC{Name: n, NUMANode: -1}
		if p, err := filepath.EvalSymlinks(filepath.Join(c.SysRoot, "class", "infiniband", n, "device")); err == nil {
			nic.sysPath, nic.PCIAddr, nic.NUMANode = p, filepath.Base(p), numa(p)
		}
		if c.NetDevs != nil {
			nic.NetDevs = c.NetDevs(n)
		} else if c.SysRoot == "/sys" {
			nic.NetDevs = netDevsOf(n)
		} else {
			for _, name := range sysfs.Names(filepath.Join(c.SysRoot, "class", "infiniband", n, "device", "net")) {
				nic.NetDevs = append(nic.NetDevs, NetDev{Name: name})
			}
		}
		out = append(out, nic)
	}
	return out
}

func (c *Config) nvmes() []NVMe {
	ctrls, err := sysfs.NVMeControllers(c.SysRoot)
	if err != nil {
		return nil
	}
	var out []NVMe
	for _, k := range ctrls {
		n := NVMe{Name: k.Name, NUMANode: -1, Transport: k.Transport, Model: k.Model, Serial: k.Serial, Namespaces: k.Namespaces}
		if k.Transport == "pcie" {
			if p, err := filepath.EvalSymlinks(filepath.Join(c.SysRoot, "class", "nvme", k.Name, "device")); err == nil {
				n.sysPath, n.PCIAddr, n.NUMANode = p, filepath.Base(p), numa(p)
			}
		} else {
			n.Address = k.Address
			c.fabricsPath(&n)
		}
		out = append(out, n)
	}
	return out
}

// fabricsPath finds the net device an NVMe-oF controller is reached
// through (the route to its traddr) and that device's PCIe place, which
// stands for the drive's in distances.
func (c *Config) fabricsPath(n *NVMe) {
	traddr, _ := sysfs.ParseNVMeAddress(n.Address)
	route := c.RouteDev
	if route == nil && c.SysRoot == "/sys" {
		route = routeDev
	}
	if traddr == "" || route == nil {
		return
	}
	dev, err := route(traddr)
	if err != nil || dev == "" {
		return
	}
	n.NetDev = dev
	if p, err := filepath.EvalSymlinks(filepath.Join(c.SysRoot, "class", "net", dev, "device")); err == nil && isBDF(filepath.Base(p)) {
		n.sysPath, n.NetPCIAddr, n.NUMANode = p, filepath.Base(p), numa(p)
	}
}
