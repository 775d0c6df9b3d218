// Package kerneltest builds fake kernel NVMe host sysfs trees for tests:
// controllers, subsystems and namespace block devices laid out as Linux
// 6.x lays them out with native multipath.
package kerneltest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/flashpath/flashpath/initiator/kernel"
)

// Sysfs is a fake /sys whose Connect makes controllers appear, as the
// kernel's fabrics device does.
type Sysfs struct {
	*kernel.Host
	mu         sync.Mutex
	next       int
	Params     []kernel.Params  // every Connect's parameters, in order
	Refuse     map[string]error // Connect of these NQNs fails
	Namespaces int              // namespaces per connected controller (default 1)
	// Connected, when set, receives the parameters of every Connect that
	// succeeded (after the controller appeared).
	Connected chan kernel.Params
}

// New returns an empty fake tree under dir.
func New(dir string) *Sysfs {
	return &Sysfs{Host: &kernel.Host{Fabrics: filepath.Join(dir, "dev/nvme-fabrics"), Sys: filepath.Join(dir, "sys")},
		Refuse: map[string]error{}}
}

// Connect records p and adds a live controller for it (nvmeN, N counting
// up from the highest present), with its subsystem and namespaces.
func (s *Sysfs) Connect(p kernel.Params) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Params = append(s.Params, p)
	if err := s.Refuse[p.NQN]; err != nil {
		return "", fmt.Errorf("connect %s: %w", p.NQN, err)
	}
	ns := s.Namespaces
	if ns == 0 {
		ns = 1
	}
	name := fmt.Sprintf("nvme%d", s.next)
	s.next++
	if err := s.Add(name, p.Transport, p.TrAddr, p.TrSvcID, p.NQN, "live", ns); err != nil {
		return "", err
	}
	if s.Connected != nil {
		s.Connected <- p
	}
	return name, nil
}

// Disconnect removes the controller, as the kernel does after
// delete_controller.
func (s *Sysfs) Disconnect(name string) error {
	if err := s.Host.Disconnect(name); err != nil {
		return err
	}
	return s.Remove(name)
}

// Add creates controller name (a fabrics one unless transport is "pcie")
// in state with namespaces block devices nvme<N>n1...
func (s *Sysfs) Add(name, transport, traddr, trsvcid, nqn, state string, namespaces int) error {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "nvme"))
	if err != nil {
		return err
	}
	if n >= s.next {
		s.next = n + 1
	}
	ctrl := filepath.Join(s.Sys, "class/nvme", name)
	subsys := filepath.Join(s.Sys, "class/nvme-subsystem", fmt.Sprintf("nvme-subsys%d", n))
	files := map[string]string{
		filepath.Join(ctrl, "state"):             state,
		filepath.Join(ctrl, "transport"):         transport,
		filepath.Join(ctrl, "subsysnqn"):         nqn,
		filepath.Join(ctrl, "cntlid"):            strconv.Itoa(n + 1),
		filepath.Join(ctrl, "delete_controller"): "",
		filepath.Join(subsys, "subsysnqn"):       nqn,
	}
	if transport != "pcie" {
		files[filepath.Join(ctrl, "address")] = fmt.Sprintf("traddr=%s,trsvcid=%s,src_addr=127.0.0.1", traddr, trsvcid)
	}
	// The subsystem links to its controller; the heads hang off it, and
	// each path device off the controller.
	if err := os.MkdirAll(filepath.Join(subsys, name), 0o755); err != nil {
		return err
	}
	for i := 1; i <= namespaces; i++ {
		head := fmt.Sprintf("nvme%dn%d", n, i)
		if err := os.MkdirAll(filepath.Join(subsys, head), 0o755); err != nil {
			return err
		}
		files[filepath.Join(s.Sys, "block", head, "stat")] = statLine(10*i, 8*i, 20*i, 16*i, i)
		// The path counts nothing: Linux 6.3+ counts on the head.
		files[filepath.Join(ctrl, fmt.Sprintf("nvme%dc%dn%d", n, n, i), "stat")] = statLine(0, 0, 0, 0, 0)
	}
	for p, v := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func statLine(rios, rsect, wios, wsect, inflight int) string {
	return fmt.Sprintf("%8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d %8d",
		rios, 0, rsect, 3, wios, 0, wsect, 5, inflight, 7, 8, 0, 0, 0, 0)
}

// CountOnPaths moves namespace dev's counters (nvmeNnI) from the head to
// its path (nvmeNcNnI), as Linux before 6.3 counts them.
func (s *Sysfs) CountOnPaths(dev string) error {
	head := filepath.Join(s.Sys, "block", dev, "stat")
	b, err := os.ReadFile(head)
	if err != nil {
		return err
	}
	i := strings.LastIndexByte(dev, 'n')
	n := dev[:i]
	path := filepath.Join(s.Sys, "class/nvme", n, n+"c"+strings.TrimPrefix(n, "nvme")+dev[i:], "stat")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(head, []byte(statLine(0, 0, 0, 0, 0)+"\n"), 0o644)
}

// SetState changes a controller's state ("connecting", "deleting").
func (s *Sysfs) SetState(name, state string) error {
	return os.WriteFile(filepath.Join(s.Sys, "class/nvme", name, "state"), []byte(state+"\n"), 0o644)
}

// Remove deletes a controller, its subsystem and block devices, as the
// kernel does when ctrl_loss_tmo expires.
func (s *Sysfs) Remove(name string) error {
	n := strings.TrimPrefix(name, "nvme")
	heads, _ := filepath.Glob(filepath.Join(s.Sys, "block", "nvme"+n+"n*"))
	for _, h := range heads {
		os.RemoveAll(h)
	}
	os.RemoveAll(filepath.Join(s.Sys, "class/nvme-subsystem", "nvme-subsys"+n))
	return os.RemoveAll(filepath.Join(s.Sys, "class/nvme", name))
}
