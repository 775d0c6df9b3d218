package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/flashpath/flashpath/initiator/kernel"
)

// HostOS is the machine's NodeOS: the kernel's NVMe-oF host
// (initiator/kernel), blkid and mkfs.ext4/mkfs.xfs, mount(2).
type HostOS struct {
	Kernel KernelHost
	Log    *slog.Logger
	// DeviceWait bounds how long Connect waits for the namespace's
	// block device (default 30s).
	DeviceWait time.Duration
	// CtrlLossTmo is each controller's ctrl_loss_tmo in seconds (0: the
	// kernel's 600; -1: reconnect forever).
	CtrlLossTmo int
}

var _ NodeOS = (*HostOS)(nil)

// KernelHost is the kernel's NVMe-oF host as HostOS uses it
// (*kernel.Host; kerneltest's fake sysfs in tests).
type KernelHost interface {
	Connect(kernel.Params) (string, error)
	Disconnect(name string) error
	Controllers() ([]kernel.Controller, error)
}

// NewHostOS returns the machine's NodeOS.
func NewHostOS(log *slog.Logger) *HostOS {
	return &HostOS{Kernel: kernel.Default, Log: log, DeviceWait: 30 * time.Second}
}

// controllers are the live-or-reconnecting controllers of nqn.
func (h *HostOS) controllers(nqn string) ([]kernel.Controller, error) {
	all, err := h.Kernel.Controllers()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(c kernel.Controller) bool { return c.SubNQN != nqn || c.State == "deleting" }), nil
}

func (h *HostOS) Connect(ctx context.Context, nqn string, addrs []string, hostNQN string) (string, error) {
	have, err := h.controllers(nqn)
	if err != nil {
		return "", err
	}
	var errs []error
	for _, a := range addrs {
		tr, host, port, err := ParseAddress(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if slices.ContainsFunc(have, func(c kernel.Controller) bool { return c.Transport == tr && c.TrAddr == host && c.TrSvcID == port }) {
			continue
		}
		name, err := h.Kernel.Connect(kernel.Params{Transport: tr, TrAddr: host, TrSvcID: port, NQN: nqn, HostNQN: hostNQN, CtrlLossTmo: h.CtrlLossTmo})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.Log.Info("connected", "subsys", nqn, "ctrl", name, "addr", a)
		have = append(have, kernel.Controller{Name: name, Transport: tr, TrAddr: host, TrSvcID: port})
	}
	if len(have) == 0 {
		return "", errors.Join(errs...)
	}
	if len(errs) > 0 {
		h.Log.Warn("some paths did not connect", "subsys", nqn, "err", errors.Join(errs...))
	}
	// The block device appears when the kernel has scanned the
	// namespaces, just after the connect.
	wait := h.DeviceWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		dev, err := h.Device(nqn)
		if err != nil || dev != "" {
			return dev, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s connected, but no namespace block device after %v", nqn, wait)
		case <-tick.C:
		}
	}
}

func (h *HostOS) Device(nqn string) (string, error) {
	cs, err := h.controllers(nqn)
	if err != nil {
		return "", err
	}
	for _, c := range cs {
		if len(c.Namespaces) > 0 {
			return "/dev/" + c.Namespaces[0], nil
		}
	}
	return "", nil
}

func (h *HostOS) Disconnect(nqn string) error {
	cs, err := h.controllers(nqn)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if err := h.Kernel.Disconnect(c.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		h.Log.Info("disconnected", "subsys", nqn, "ctrl", c.Name)
	}
	return errors.Join(errs...)
}

// Format runs mkfs on a device that blkid finds blank (exit status 2).
func (h *HostOS) Format(ctx context.Context, dev, fstype string) (string, error) {
	out, err := exec.CommandContext(ctx, "blkid", "-p", "-s", "TYPE", "-o", "value", dev).Output()
	var ee *exec.ExitError
	switch {
	case err == nil && strings.TrimSpace(string(out)) != "":
		return strings.TrimSpace(string(out)), nil
	case err == nil, errors.As(err, &ee) && ee.ExitCode() == 2:
	default:
		return "", fmt.Errorf("blkid %s: %w", dev, err)
	}
	var cmd *exec.Cmd
	switch fstype {
	case "ext4":
		cmd = exec.CommandContext(ctx, "mkfs.ext4", "-F", "-q", "-E", "lazy_itable_init=1,lazy_journal_init=1", dev)
	case "xfs":
		cmd = exec.CommandContext(ctx, "mkfs.xfs", "-q", dev)
	default:
		return "", fmt.Errorf("fs_type %q: want ext4 or xfs", fstype)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	h.Log.Info("formatted", "device", dev, "fstype", fstype)
	return fstype, nil
}
