// Package nvmf opens NVMe-oF namespace URLs for gds: importing it lets
// every load and save that takes a file take
// tcp://HOST:PORT/NQN/NSID or rdma://HOST:PORT/NQN/NSID too, read and
// written through flashpath's user-space host (package initiator), with
// no kernel NVMe host, filesystem or nvidia-fs on the GPU node.
//
// Namespaces of one subsystem on one target share one controller and its
// queues, opened on first use and closed with the last namespace.
//
// Over NVMe/RDMA a namespace is a gds.DeviceRemote: GPU memory registered
// with the host's transport (once per transport and range, shared by every
// namespace and controller on it) is read into directly.
package nvmf

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/flashpath/flashpath/gds"
	"github.com/flashpath/flashpath/gds/topo"
	"github.com/flashpath/flashpath/initiator"
	_ "github.com/flashpath/flashpath/initiator/rdma" // rdma:// URLs
	_ "github.com/flashpath/flashpath/initiator/tcp"  // tcp:// URLs
)

func init() {
	gds.RegisterRemote("tcp", Open)
	gds.RegisterRemote("rdma", Open)
}

// ctrlKey identifies a shared controller.
type ctrlKey struct {
	transport, addr, nqn, hostNQN string
}

type sharedCtrl struct {
	ready chan struct{} // closed once c or err is set
	c     *initiator.Controller
	err   error
	refs  int // guarded by mu
}

// regKey identifies a registration of memory (GPU memory, or host memory
// at a host address) with a transport.
type regKey struct {
	tr   initiator.Transport
	host bool
	ptr  uint64
	size int64
}

type sharedReg struct {
	reg  initiator.Registration
	refs int // guarded by mu
}

var (
	mu    sync.Mutex
	ctrls = map[ctrlKey]*sharedCtrl{} // guarded by mu
	regs  = map[regKey]*sharedReg{}   // guarded by mu
)

// Namespace is an open namespace URL: a gds.Remote.
type Namespace struct {
	*initiator.Namespace
	registrar
	key  ctrlKey
	info gds.RemoteInfo
	once sync.Once
}

// MultiNamespace is an open namespace URL with several paths
// (tcp://HOST1:PORT,HOST2:PORT/NQN/NSID): a gds.Remote over
// initiator.Multipath, whose I/O fails over between the paths. It has
// controllers of its own, shared with no other namespace.
type MultiNamespace struct {
	*initiator.Multipath
	registrar
	info gds.RemoteInfo
}

// registrar registers memory with the transport of a namespace's
// controller (of its first path: every path runs on the same transport).
type registrar struct {
	c   *initiator.Controller
	url initiator.NamespaceURL
}

var (
	_ gds.DeviceRemote  = (*Namespace)(nil)
	_ gds.HostRegistrar = (*Namespace)(nil)
	_ gds.DeviceRemote  = (*MultiNamespace)(nil)
	_ gds.HostRegistrar = (*MultiNamespace)(nil)
)

// Open connects to the namespace at url (reusing the controller of its
// subsystem when one is open) and returns it as a gds.Remote. A
// read-only namespace opened for writing is refused here rather than at
// the first write.
func Open(ctx context.Context, url string, write bool, o gds.RemoteOptions) (gds.Remote, error) {
	u, err := initiator.ParseURL(url, "")
	if err != nil {
		return nil, err
	}
	if o.Queues <= 0 {
		o.Queues = gds.DefaultRemoteQueues
	}
	lossTmo := o.ReconnectFor
	switch {
	case lossTmo == 0:
		lossTmo = 10 * time.Second
	case lossTmo < 0:
		lossTmo = -1
	}
	config := func(addr string) initiator.Config {
		return initiator.Config{
			Addr: u.Transport + "://" + addr, SubNQN: u.NQN, IOQueues: o.Queues, QueueDepth: o.QueueDepth,
			CtrlLossTimeout: lossTmo, ReconnectDelay: min(time.Second, max(lossTmo/4, 100*time.Millisecond)),
			Options: initiator.Options{HostNQN: o.HostNQN, ConnectTimeout: o.ConnectTimeout},
		}
	}
	if addrs := u.Addrs(); len(addrs) > 1 {
		var cfgs []initiator.Config
		for _, a := range addrs {
			cfgs = append(cfgs, config(a))
		}
		m, err := initiator.ConnectMultipath(ctx, cfgs, u.NSID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", url, err)
		}
		c := m.Paths()[0].Controller()
		return &MultiNamespace{Multipath: m, registrar: registrar{c, u},
			info: gds.RemoteInfo{URL: u.String(), Transport: u.Transport, Target: u.Addr, Queues: len(c.Queues()),
				NIC: topo.NICFor(u.Transport, addrs[0])}}, nil
	}
	key := ctrlKey{u.Transport, u.Addr, u.NQN, o.HostNQN}
	c, err := acquire(ctx, key, config(u.Addr))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	ns, err := c.Namespace(ctx, u.NSID)
	if err != nil {
		release(key)
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	n := &Namespace{Namespace: ns, registrar: registrar{c, u}, key: key,
		info: gds.RemoteInfo{URL: u.String(), Transport: u.Transport, Target: u.Addr, Queues: len(c.Queues()),
			NIC: topo.NICFor(u.Transport, u.Addr)}}
	return n, nil
}

// acquire returns the shared controller for key, connecting it with cfg
// on first use; opens of other targets go on meanwhile.
func acquire(ctx context.Context, key ctrlKey, cfg initiator.Config) (*initiator.Controller, error) {
	mu.Lock()
	s, ok := ctrls[key]
	if ok {
		s.refs++
		mu.Unlock()
		<-s.ready
		if s.err != nil {
			return nil, s.err
		}
		return s.c, nil
	}
	s = &sharedCtrl{ready: make(chan struct{}), refs: 1}
	ctrls[key] = s
	mu.Unlock()
	s.c, s.err = initiator.Connect(ctx, cfg)
	if s.err != nil {
		mu.Lock()
		delete(ctrls, key)
		mu.Unlock()
	}
	close(s.ready)
	return s.c, s.err
}

func release(key ctrlKey) {
	mu.Lock()
	s := ctrls[key]
	s.refs--
	if s.refs > 0 {
		mu.Unlock()
		return
	}
	delete(ctrls, key)
	mu.Unlock()
	s.c.Close()
}

// Info says where the namespace is.
func (n *Namespace) Info() gds.RemoteInfo { return n.info }

// Close releases the namespace and, with the last one of its subsystem,
// the controller.
func (n *Namespace) Close() error {
	n.once.Do(func() { release(n.key) })
	return nil
}

// GPUDirect returns nil when the namespace's transport reaches device
// memory (NVMe/RDMA), else why not.
func (n registrar) GPUDirect() error {
	if _, ok := n.c.Transport().(initiator.DeviceRegistrar); !ok {
		return fmt.Errorf("NVMe/%s moves data through host memory", strings.ToUpper(n.url.Transport))
	}
	return nil
}

// RegisterGPU registers m with the namespace's transport, or takes another
// reference to the registration of the same memory that a namespace on
// the same transport made (a provider refuses overlapping registrations).
func (n registrar) RegisterGPU(m gds.GPUMemory) (io.Closer, error) {
	return n.share(regKey{n.c.Transport(), false, uint64(m.Ptr), m.Size}, func() (initiator.Registration, error) {
		return n.c.RegisterDevice(initiator.DeviceMemory{Addr: uint64(m.Ptr), Len: m.Size, DMABufFD: m.DMABufFD})
	})
}

// RegisterHost registers host memory (pinned staging buffers) with the
// namespace's transport, shared the same way: over NVMe/RDMA the target's
// RDMA WRITEs and READs then reach it with no bounce buffer in between.
func (n registrar) RegisterHost(mem []byte) (io.Closer, error) {
	if len(mem) == 0 {
		return &regRef{}, nil
	}
	key := regKey{n.c.Transport(), true, uint64(uintptr(unsafe.Pointer(&mem[0]))), int64(len(mem))}
	return n.share(key, func() (initiator.Registration, error) { return n.c.Register(mem) })
}

// share takes a reference to the registration under key, making it with
// reg when there is none.
func (n registrar) share(key regKey, reg func() (initiator.Registration, error)) (io.Closer, error) {
	mu.Lock()
	defer mu.Unlock()
	if r := regs[key]; r != nil {
		r.refs++
		return &regRef{key: &key}, nil
	}
	r, err := reg()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.url, err)
	}
	regs[key] = &sharedReg{reg: r, refs: 1}
	return &regRef{key: &key}, nil
}

// regRef is one reference to a shared registration (key nil: of nothing).
type regRef struct {
	key  *regKey
	once sync.Once
}

func (g *regRef) Close() error {
	var err error
	g.once.Do(func() {
		if g.key == nil {
			return
		}
		mu.Lock()
		r := regs[*g.key]
		r.refs--
		if r.refs > 0 {
			mu.Unlock()
			return
		}
		delete(regs, *g.key)
		mu.Unlock()
		err = r.reg.Close()
	})
	return err
}

// ReadToGPU reads n bytes at off into registered GPU memory at dst: the
// controller writes them there, no host buffer in between.
func (n *Namespace) ReadToGPU(dst gds.DevicePtr, length, off int64) error {
	return n.ReadDevice(uint64(dst), int(length), off)
}

// Info says where the namespace is: every path's address in Target.
func (n *MultiNamespace) Info() gds.RemoteInfo { return n.info }

// ReadToGPU reads like Namespace.ReadToGPU, on whichever path is best.
func (n *MultiNamespace) ReadToGPU(dst gds.DevicePtr, length, off int64) error {
	return n.ReadDevice(uint64(dst), int(length), off)
}
