package sysfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

var (
	nvmeCtrlName = regexp.MustCompile(`^nvme[0-9]+$`)
	nvmeNSName   = regexp.MustCompile(`^nvme[0-9]+n[0-9]+$`)
)

// IsNVMeController reports whether name is a controller's (nvme3).
func IsNVMeController(name string) bool { return nvmeCtrlName.MatchString(name) }

// IsNVMeNamespace reports whether name is a namespace block device's
// (nvme3n1).
func IsNVMeNamespace(name string) bool { return nvmeNSName.MatchString(name) }

// NVMeController is one NVMe controller as sysfs shows it.
type NVMeController struct {
	Name      string // nvme0
	Transport string // tcp, rdma, pcie, loop
	TrAddr    string
	TrSvcID   string
	SubNQN    string
	HostNQN   string
	State     string // live, connecting, resetting, deleting, dead, ...
	CntlID    int
	Model     string
	Serial    string
	// Address is sysfs's address as it is ("traddr=...,trsvcid=...";
	// empty for PCIe).
	Address string
	// Namespaces are the block devices of its subsystem (nvme0n1: the
	// multipath head where the kernel has native multipath).
	Namespaces []string
}

// Fabrics reports whether the controller is an NVMe-oF one.
func (c *NVMeController) Fabrics() bool { return c.Transport != "" && c.Transport != "pcie" }

// NVMeControllers lists the controllers under sys (the sysfs mount,
// /sys), sorted by name; none (and no error) where the nvme driver is
// absent.
func NVMeControllers(sys string) ([]NVMeController, error) {
	dir := filepath.Join(sys, "class/nvme")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list controllers: %w", err)
	}
	// With native multipath the block devices (the multipath heads) hang
	// off the subsystem, which links to its controllers.
	subsysOf := map[string]string{}
	subs, _ := filepath.Glob(filepath.Join(sys, "class/nvme-subsystem/nvme-subsys*"))
	for _, s := range subs {
		for _, l := range Names(s) {
			if IsNVMeController(l) {
				subsysOf[l] = s
			}
		}
	}
	var out []NVMeController
	for _, e := range ents {
		if !IsNVMeController(e.Name()) {
			continue
		}
		c, ok := nvmeController(filepath.Join(dir, e.Name()), subsysOf[e.Name()])
		if ok {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return natLess(out[i].Name, out[j].Name) })
	return out, nil
}

// nvmeController reads one controller's folder (and its subsystem's,
// where there is one); false when it vanished while read (a controller
// being deleted).
func nvmeController(dir, subsys string) (NVMeController, bool) {
	c := NVMeController{Name: filepath.Base(dir)}
	state, err := ReadAttr(dir, "state")
	if err != nil {
		return c, false
	}
	c.State = state
	c.Transport = Attr(dir, "transport")
	c.SubNQN = Attr(dir, "subsysnqn")
	c.HostNQN = Attr(dir, "hostnqn")
	if v, err := ReadAttr(dir, "cntlid"); err == nil {
		c.CntlID, _ = strconv.Atoi(v)
	}
	c.Model = Attr(dir, "model")
	c.Serial = Attr(dir, "serial")
	if a, err := ReadAttr(dir, "address"); err == nil {
		c.Address = a
		c.TrAddr, c.TrSvcID = ParseNVMeAddress(a)
	}
	seen := map[string]bool{}
	addNS := func(d string) {
		for _, name := range Names(d) {
			if IsNVMeNamespace(name) && !seen[name] {
				seen[name] = true
				c.Namespaces = append(c.Namespaces, name)
			}
		}
	}
	addNS(dir)
	if subsys != "" {
		addNS(subsys)
	}
	sort.Slice(c.Namespaces, func(i, j int) bool { return natLess(c.Namespaces[i], c.Namespaces[j]) })
	return c, true
}

// ParseNVMeAddress reads a controller's sysfs "address":
// "traddr=10.0.0.1,trsvcid=4420[,src_addr=...]".
func ParseNVMeAddress(a string) (traddr, trsvcid string) {
	for _, kv := range strings.Split(a, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "traddr":
			traddr = v
		case "trsvcid":
			trsvcid = v
		}
	}
	return traddr, trsvcid
}

// natLess orders nvme2 before nvme10.
func natLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
