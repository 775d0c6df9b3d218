// Package kernel drives the Linux kernel's NVMe-oF host (nvme-tcp,
// nvme-rdma), as nvme-cli does: connect by writing an options string to
// /dev/nvme-fabrics, list controllers and their namespaces from sysfs
// (/sys/class/nvme, /sys/class/nvme-subsystem), disconnect through
// delete_controller, and read the namespaces' block device statistics.
//
// A namespace connected this way is a block device (/dev/nvmeXnY) that
// every process can use: cuFile (GPUDirect Storage) reads files on it
// straight into GPU memory, which flashpath's user-space host cannot offer
// another process.
package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/flashpath/flashpath/internal/platform"
	"github.com/flashpath/flashpath/internal/sysfs"
)

// ErrNotSupported wraps the error of a machine without the kernel host
// (platform.ErrNotSupported).
var ErrNotSupported = platform.ErrNotSupported

// Host is the kernel host seen through its device and sysfs files; the
// paths are fields so that tests can point them at a fake tree.
type Host struct {
	// Fabrics is the fabrics control device (default /dev/nvme-fabrics).
	Fabrics string
	// Sys is where sysfs is mounted (default /sys).
	Sys string
}

// Default is the machine's kernel host.
var Default = &Host{Fabrics: "/dev/nvme-fabrics", Sys: "/sys"}

// Params are one connection's options, named as nvme-cli names them (the
// kernel's fabrics.c option tokens). Zero values leave the kernel's
// defaults.
type Params struct {
	Transport string // "tcp" or "rdma"
	TrAddr    string // target address
	TrSvcID   string // port
	NQN       string // subsystem NQN
	HostNQN   string
	HostID    string // UUID text
	// NrIOQueues, QueueSize: I/O queues and their depth; NrPollQueues
	// adds queues that complete polled I/O (io_uring IOPOLL, fio's hipri).
	NrIOQueues   int
	QueueSize    int
	NrPollQueues int
	// KeepAliveTmo, ReconnectDelay, CtrlLossTmo in seconds; CtrlLossTmo
	// -1 reconnects forever.
	KeepAliveTmo   int
	ReconnectDelay int
	CtrlLossTmo    int
	HdrDigest      bool
	DataDigest     bool
}

// Options is the string written to /dev/nvme-fabrics.
func (p Params) Options() (string, error) {
	for _, f := range []struct{ name, v string }{
		{"transport", p.Transport}, {"traddr", p.TrAddr}, {"trsvcid", p.TrSvcID},
		{"nqn", p.NQN}, {"hostnqn", p.HostNQN}, {"hostid", p.HostID},
	} {
		if strings.ContainsAny(f.v, ",\n") {
			return "", fmt.Errorf("%s %q: commas and newlines are not allowed", f.name, f.v)
		}
	}
	if p.Transport == "" || p.TrAddr == "" || p.NQN == "" {
		return "", errors.New("transport, traddr and nqn are required")
	}
	var b strings.Builder
	add := func(k, v string) {
		if v != "" {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(k)
			if k != v {
				b.WriteString("=" + v)
			}
		}
	}
	num := func(k string, v int, set bool) {
		if set {
			add(k, strconv.Itoa(v))
		}
	}
	add("nqn", p.NQN)
	add("transport", p.Transport)
	add("traddr", p.TrAddr)
	add("trsvcid", p.TrSvcID)
	add("hostnqn", p.HostNQN)
	add("hostid", p.HostID)
	num("nr_io_queues", p.NrIOQueues, p.NrIOQueues > 0)
	num("queue_size", p.QueueSize, p.QueueSize > 0)
	num("nr_poll_queues", p.NrPollQueues, p.NrPollQueues > 0)
	num("keep_alive_tmo", p.KeepAliveTmo, p.KeepAliveTmo > 0)
	num("reconnect_delay", p.ReconnectDelay, p.ReconnectDelay > 0)
	num("ctrl_loss_tmo", p.CtrlLossTmo, p.CtrlLossTmo != 0)
	if p.HdrDigest {
		add("hdr_digest", "hdr_digest")
	}
	if p.DataDigest {
		add("data_digest", "data_digest")
	}
	return b.String(), nil
}

// parseReply reads the fabrics device's answer to a connect:
// "instance=N,cntlid=M".
func parseReply(s string) (instance, cntlid int, err error) {
	instance, cntlid = -1, -1
	for _, kv := range strings.Split(strings.TrimSpace(s), ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, perr := strconv.Atoi(v)
		switch {
		case perr != nil:
		case k == "instance":
			instance = n
		case k == "cntlid":
			cntlid = n
		}
	}
	if instance < 0 {
		return 0, 0, fmt.Errorf("unexpected reply %q from the fabrics device", s)
	}
	return instance, cntlid, nil
}

// Connect asks the kernel to connect a controller and returns its name
// ("nvme3"). The kernel refuses a second connection to the same
// subsystem, address and host (EALREADY).
func (h *Host) Connect(p Params) (string, error) {
	opts, err := p.Options()
	if err != nil {
		return "", fmt.Errorf("connect %s: %w", p.NQN, err)
	}
	f, err := os.OpenFile(h.Fabrics, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("connect %s: %s missing: kernel NVMe-oF host unavailable (modprobe nvme-%s): %w", p.NQN, h.Fabrics, p.Transport, ErrNotSupported)
		}
		return "", fmt.Errorf("connect %s: %w", p.NQN, err)
	}
	defer f.Close()
	if _, err := f.Write([]byte(opts)); err != nil {
		return "", fmt.Errorf("connect %s at %s %s:%s: %w%s", p.NQN, p.Transport, p.TrAddr, p.TrSvcID, err, connectHint(err))
	}
	buf := make([]byte, 256)
	n, err := f.Read(buf)
	if err != nil {
		return "", fmt.Errorf("connect %s: read the fabrics device: %w", p.NQN, err)
	}
	inst, _, err := parseReply(string(buf[:n]))
	if err != nil {
		return "", fmt.Errorf("connect %s: %w", p.NQN, err)
	}
	return "nvme" + strconv.Itoa(inst), nil
}

// connectHint says what a connect error from the kernel usually means.
func connectHint(err error) string {
	switch {
	case errors.Is(err, syscall.EALREADY):
		return " (already connected)"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ETIMEDOUT):
		return " (is the target listening there?)"
	case errors.Is(err, syscall.EINVAL):
		return " (the target refused the connect or an option: see dmesg)"
	case errors.Is(err, syscall.EIO):
		return " (the target refused the connect: is this host allowed? see dmesg)"
	}
	return ""
}

// Disconnect deletes a controller (nvme disconnect -d).
func (h *Host) Disconnect(name string) error {
	if !sysfs.IsNVMeController(name) {
		return fmt.Errorf("disconnect %q: not a controller name", name)
	}
	p := filepath.Join(h.Sys, "class/nvme", name, "delete_controller")
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		return fmt.Errorf("disconnect %s: %w", name, err)
	}
	return nil
}

// Controller is one NVMe controller as sysfs shows it.
type Controller = sysfs.NVMeController

// Controllers lists the controllers, sorted by name; none (and no error)
// where the nvme driver is absent.
func (h *Host) Controllers() ([]Controller, error) { return sysfs.NVMeControllers(h.Sys) }

// ParseAddress reads a controller's sysfs "address":
// "traddr=10.0.0.1,trsvcid=4420[,src_addr=...]".
func ParseAddress(a string) (traddr, trsvcid string) { return sysfs.ParseNVMeAddress(a) }

// BlockStat is a block device's I/O counters (/sys/block/DEV/stat).
type BlockStat struct {
	ReadIOs, ReadBytes   uint64
	WriteIOs, WriteBytes uint64
	InFlight             uint64
	// ReadTicks, WriteTicks: milliseconds spent on reads and writes.
	ReadTicks, WriteTicks uint64
}

// Stat reads a namespace's I/O counters: those of its block device
// (nvmeSnI), or, where that counts nothing because the kernel counts I/O
// only on the paths under a native multipath head (Linux before 6.3),
// the sum over its paths (nvmeScCnI, one per controller).
func (h *Host) Stat(dev string) (BlockStat, error) {
	if !sysfs.IsNVMeNamespace(dev) {
		return BlockStat{}, fmt.Errorf("stat %q: not a namespace block device", dev)
	}
	st, err := readStat(filepath.Join(h.Sys, "block", dev, "stat"))
	if err != nil || st.ReadIOs != 0 || st.WriteIOs != 0 {
		return st, err
	}
	st = BlockStat{}
	i := strings.LastIndexByte(dev, 'n')
	paths, _ := filepath.Glob(filepath.Join(h.Sys, "class/nvme", "nvme*", dev[:i]+"c*"+dev[i:], "stat"))
	for _, p := range paths {
		ps, err := readStat(p)
		if err != nil {
			continue // a path going away
		}
		st.ReadIOs += ps.ReadIOs
		st.ReadBytes += ps.ReadBytes
		st.ReadTicks += ps.ReadTicks
		st.WriteIOs += ps.WriteIOs
		st.WriteBytes += ps.WriteBytes
		st.WriteTicks += ps.WriteTicks
		st.InFlight += ps.InFlight
	}
	return st, nil
}

func readStat(path string) (BlockStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return BlockStat{}, fmt.Errorf("block stat: %w", err)
	}
	return parseStat(string(b))
}

// parseStat reads the kernel's block stat line (Documentation/block/stat.rst:
// read I/Os, merges, sectors, ticks; write I/Os, merges, sectors, ticks;
// in_flight; ...). Sectors are 512 bytes whatever the block size.
func parseStat(s string) (BlockStat, error) {
	f := strings.Fields(s)
	if len(f) < 9 {
		return BlockStat{}, fmt.Errorf("block stat %q: %d fields, want at least 9", s, len(f))
	}
	var v [9]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return BlockStat{}, fmt.Errorf("block stat field %d %q: %w", i, f[i], err)
		}
		v[i] = n
	}
	return BlockStat{ReadIOs: v[0], ReadBytes: v[2] * 512, ReadTicks: v[3],
		WriteIOs: v[4], WriteBytes: v[6] * 512, WriteTicks: v[7], InFlight: v[8]}, nil
}
