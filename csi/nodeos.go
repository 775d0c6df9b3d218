package csi

import "context"

// NodeOS is what the node service asks of the machine: the kernel's
// NVMe-oF host, mkfs and mount. HostOS is the real one (Linux); tests use
// a fake.
type NodeOS interface {
	// Connect connects the subsystem nqn at each address
	// (tcp://HOST:PORT) as host hostNQN, leaving connected addresses as
	// they are (several: the kernel's native multipath joins them), and
	// returns the namespace's block device (/dev/nvme3n1) once it is
	// there. It fails only when no address could be connected.
	Connect(ctx context.Context, nqn string, addrs []string, hostNQN string) (dev string, err error)
	// Device is the block device of subsystem nqn's namespace, or ""
	// when it is not connected.
	Device(nqn string) (string, error)
	// Disconnect deletes every controller of subsystem nqn; none is
	// no error.
	Disconnect(nqn string) error
	// Format makes a fstype file system on dev unless it has one; it
	// returns the type dev has now.
	Format(ctx context.Context, dev, fstype string) (string, error)
	// Mount mounts source at target: a file system of fstype, or with
	// fstype "" a bind mount (of a folder or a block device); readOnly
	// mounts it read-only.
	Mount(source, target, fstype string, readOnly bool, options []string) error
	// Unmount unmounts target; one not mounted is no error.
	Unmount(target string) error
	// Mounted reports whether target is a mount point.
	Mounted(target string) (bool, error)
}
