package e2e

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/flashpath/flashpath/initiator"
	hostrdma "github.com/flashpath/flashpath/initiator/rdma"
	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/rdma/rdmatest"
)

// GPU memory over NVMe/RDMA, with the fake provider standing in for the
// NIC and host memory standing in for the GPU's (as in the fake libcuda, a
// device address is where the bytes lie in this process): the host
// registers the "device" allocation with Controller.RegisterDevice, and
// Namespace.ReadDevice/WriteDevice name it in keyed SGLs that flashpath's
// target reads and writes with RDMA READ and WRITE.

const devSize = 4 << 20

// deviceRig is a target over the fake fabric, a host connected to it with
// its transport at hand (for StagedBytes), and "device memory".
type deviceRig struct {
	fab *rdmatest.Fabric
	tr  *hostrdma.Transport
	c   *initiator.Controller
	ns  *initiator.Namespace
	dev []byte // the device memory's bytes; the next megabyte is mapped, not registered
}

func (r *deviceRig) addr() uint64 { return uint64(uintptr(unsafe.Pointer(&r.dev[0]))) }

func newDeviceRig(t *testing.T) *deviceRig {
	t.Helper()
	if os.Getenv("FP_RDMA_ADDR") != "" {
		t.Skip("device memory needs a GPU: over real verbs there is none to register (the fake provider plays both)")
	}
	addr, prov, _ := rdmaTarget(t)
	fab := prov.(*rdmatest.Fabric)
	tr := hostrdma.New(fab)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := initiator.Connect(ctx, initiator.Config{Addr: addr, SubNQN: realNQN, Transport: tr, IOQueues: 2, QueueDepth: 16,
		CtrlLossTimeout: -1, Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ns, err := c.Namespace(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A megabyte more than is registered: addresses past the registration
	// that no other region (the target's, say) covers.
	mem, err := bufpool.Map(devSize + 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bufpool.Unmap(mem) })
	return &deviceRig{fab: fab, tr: tr, c: c, ns: ns, dev: mem[:devSize]}
}

// roundTrip writes the first half of device memory to the namespace
// (more than MaxTransfer, so split, and one 4 KiB write that fits in a
// capsule) and reads it back into the second half, checking the bytes, that
// nothing was staged through bounce buffers and that the target's RDMA
// READs and WRITEs named the device region.
func (r *deviceRig) roundTrip(t *testing.T) {
	t.Helper()
	const half = devSize / 2
	if r.ns.MaxTransfer() >= half {
		t.Fatalf("MaxTransfer %d: the test wants a device I/O split in several commands", r.ns.MaxTransfer())
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range r.dev[:half] {
		r.dev[i] = byte(rng.Uint32())
	}
	clear(r.dev[half:])
	before, staged := r.fab.Stats(), r.tr.StagedBytes() // Connect and Identify bounced theirs
	const off = 8 << 20
	if err := r.ns.WriteDevice(r.addr(), half, off); err != nil {
		t.Fatal(err)
	}
	// Small enough for the capsule: device memory still goes by RDMA READ.
	if err := r.ns.WriteDevice(r.addr(), 4096, 16<<20); err != nil {
		t.Fatal(err)
	}
	if err := r.ns.ReadDevice(r.addr()+half, half, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.dev[half:], r.dev[:half]) {
		t.Fatal("ReadDevice read back other bytes than WriteDevice wrote")
	}
	if n := r.tr.StagedBytes() - staged; n != 0 {
		t.Fatalf("%d bytes staged through bounce buffers on the direct path, want 0", n)
	}
	st := r.fab.Stats()
	if got := st.DeviceReadBytes - before.DeviceReadBytes; got != half+4096 {
		t.Errorf("the target RDMA-READ %d bytes of device memory, want %d (every write's data)", got, half+4096)
	}
	if got := st.DeviceWriteBytes - before.DeviceWriteBytes; got != half {
		t.Errorf("the target RDMA-WROTE %d bytes into device memory, want %d (the read's data)", got, half)
	}
	// The namespace holds what device memory held: read through host memory.
	host := make([]byte, half)
	if _, err := r.ns.ReadAt(host, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(host, r.dev[:half]) {
		t.Fatal("the namespace holds other bytes than WriteDevice wrote")
	}
	if n := r.tr.StagedBytes() - staged; n != half {
		t.Fatalf("StagedBytes grew by %d over a %d-byte bounced read: the counter does not count", n, half)
	}
}

// TestRDMADeviceDMABuf: device memory registered by its dma-buf
// (ibv_reg_dmabuf_mr) is read and written directly.
func TestRDMADeviceDMABuf(t *testing.T) {
	r := newDeviceRig(t)
	// The dma-buf: any fd of the right size does for the fake; the device
	// memory lies at a page offset in it.
	f, err := os.CreateTemp(t.TempDir(), "dmabuf")
	if err != nil {
		t.Fatal(err)
	}
	const offset = 64 << 10
	if err := f.Truncate(offset + devSize); err != nil {
		t.Fatal(err)
	}
	reg, err := r.c.RegisterDevice(initiator.DeviceMemory{Addr: r.addr(), Len: devSize, DMABufFD: int(f.Fd()), Offset: offset})
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // the registration does not need the caller's fd
	if st := r.fab.Stats(); st.DMABufRegistrations != 1 || st.AddrRegistrations != 0 {
		t.Fatalf("registrations: %d dma-buf, %d by address; want the dma-buf path only", st.DMABufRegistrations, st.AddrRegistrations)
	}
	r.roundTrip(t)

	// Outside the registration, and after it is closed: refused, naming
	// what to do.
	for _, a := range []uint64{r.addr() + devSize, r.addr() + devSize - 4096} {
		err := r.ns.ReadDevice(a, 8192, 0)
		if err == nil || !strings.Contains(err.Error(), "is not registered: Controller.RegisterDevice") {
			t.Errorf("ReadDevice at %#x, partly or wholly outside the registration: %v", a, err)
		}
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.ns.ReadDevice(r.addr(), 4096, 0); err == nil || !strings.Contains(err.Error(), "is not registered") {
		t.Errorf("ReadDevice after the registration closed: %v", err)
	}
}

// TestRDMADevicePeerMem: device memory without a dma-buf is registered by
// address (ibv_reg_mr, which nvidia-peermem makes work for GPU memory).
func TestRDMADevicePeerMem(t *testing.T) {
	r := newDeviceRig(t)
	reg, err := r.c.RegisterDevice(initiator.DeviceMemory{Addr: r.addr(), Len: devSize, DMABufFD: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if st := r.fab.Stats(); st.AddrRegistrations != 1 || st.DMABufRegistrations != 0 {
		t.Fatalf("registrations: %d dma-buf, %d by address; want the address path only", st.DMABufRegistrations, st.AddrRegistrations)
	}
	r.roundTrip(t)
}

// TestTCPDeviceRefused: over NVMe/TCP, registering device memory and
// reading into it fail with ErrNoDeviceMemory, saying to stage.
func TestTCPDeviceRefused(t *testing.T) {
	c := connect(t, startTarget(t, 1<<20, 0), func(cfg *initiator.Config) { cfg.SubNQN = realNQN; cfg.IOQueues = 1 })
	ns := openNS(t, c, 1)
	_, err := c.RegisterDevice(initiator.DeviceMemory{Addr: 0x7f0000000000, Len: 1 << 20, DMABufFD: -1})
	if !errors.Is(err, initiator.ErrNoDeviceMemory) || !strings.Contains(err.Error(), "use the staging path") {
		t.Errorf("RegisterDevice over tcp: %v", err)
	}
	err = ns.ReadDevice(0x7f0000000000, 4096, 0)
	if !errors.Is(err, initiator.ErrNoDeviceMemory) || !strings.Contains(err.Error(), "use the staging path") {
		t.Errorf("ReadDevice over tcp: %v", err)
	}
}
