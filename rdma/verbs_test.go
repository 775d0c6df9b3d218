//go:build linux && cgo

package rdma

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
)

// verbsOrSkip returns the provider, skipping where rdma-core is missing.
func verbsOrSkip(t *testing.T) *verbs {
	t.Helper()
	p, err := Verbs()
	if errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p.(*verbs)
}

// mmapT maps n anonymous bytes, unmapped at the end of the test.
func mmapT(t testing.TB, n int) []byte {
	t.Helper()
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(b) })
	return b
}

func TestVerbsLoads(t *testing.T) {
	p := verbsOrSkip(t)
	q, err := Verbs()
	if err != nil || q != Provider(p) {
		t.Fatalf("second Verbs() = %v, %v: want the same provider", q, err)
	}
}

func TestVerbsMissingLibrary(t *testing.T) {
	check := func(ibverbs, rdmacm, missing string) {
		t.Helper()
		err := loadLibs(ibverbs, rdmacm)
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("loadLibs(%q, %q) = %v: want ErrNotSupported", ibverbs, rdmacm, err)
		}
		msg := err.Error()
		for _, want := range []string{"RDMA unavailable: " + missing, "cannot open shared object file", "install rdma-core: apt-get install ibverbs-providers librdmacm1"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q lacks %q", msg, want)
			}
		}
	}
	check("/nonexistent/libibverbs.so.1", librdmacmName, "/nonexistent/libibverbs.so.1")
	verbsOrSkip(t) // from here on libibverbs loads
	check(libibverbsName, "/nonexistent/librdmacm.so.1", "/nonexistent/librdmacm.so.1")
	// A failed load changes nothing.
	if err := loadLibs(libibverbsName, librdmacmName); err != nil {
		t.Fatalf("loading the real libraries again: %v", err)
	}
}

func TestNoDevice(t *testing.T) {
	p := verbsOrSkip(t)
	if n := p.deviceCount(); n > 0 {
		t.Skipf("this machine has %d RDMA devices", n)
	}
	addr := netip.MustParseAddrPort("127.0.0.1:0")
	l, err := p.Listen(addr)
	if err == nil {
		l.Close()
		t.Fatal("Listen succeeded without an RDMA device")
	}
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("Listen: %v: want ErrNotSupported", err)
	}
	for _, want := range []string{"127.0.0.1", "rdma link add rxe0 type rxe netdev", "RDMA NIC"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Listen error %q lacks %q", err, want)
		}
	}
	t.Log(err)

	c, err := p.Dial(context.Background(), netip.MustParseAddrPort("127.0.0.1:4420"), ConnConfig{}, nil, nil)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded without an RDMA device")
	}
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "rdma link add") {
		t.Errorf("Dial: %v: want ErrNotSupported and what to do", err)
	}
}

func TestRegisterWithoutDevices(t *testing.T) {
	p := verbsOrSkip(t)
	if n := p.deviceCount(); n > 0 {
		t.Skipf("this machine has %d RDMA devices", n)
	}
	mem := mmapT(t, 1<<20)
	r, err := p.Register(mem)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Register(mem[4096:8192]); err == nil {
		t.Error("registering an overlapping range succeeded")
	}
	if _, err := p.Register(nil); err == nil {
		t.Error("registering nothing succeeded")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	r2, err := p.Register(mem[4096:8192])
	if err != nil {
		t.Fatalf("registering again after Close: %v", err)
	}
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	n := len(p.regions)
	p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d regions left after Close", n)
	}
}

// fakeDevice is a device with two registrations and no verbs context: it
// is enough for the lookups and translations, which do not call C.
func fakeDevice(t testing.TB) (*device, []byte) {
	mem := mmapT(t, 3*4096)
	d := &device{name: "fake0"}
	base := bufAddr(mem)
	d.insert(mrRange{start: base + 2*4096, end: base + 3*4096, lkey: 0x22, rkey: 0x2200})
	d.insert(mrRange{start: base, end: base + 4096, lkey: 0x11, rkey: 0x1100})
	return d, mem
}

func TestLookup(t *testing.T) {
	d, mem := fakeDevice(t)
	for _, tc := range []struct {
		name string
		b    []byte
		lkey uint32
		ok   bool
	}{
		{"first page", mem[:4096], 0x11, true},
		{"inside first", mem[100:200], 0x11, true},
		{"last byte of first", mem[4095:4096], 0x11, true},
		{"across the gap", mem[4000:4200], 0, false},
		{"in the gap", mem[4096:4200], 0, false},
		{"a few bytes well inside the gap", mem[5000:5010], 0, false}, // r.end-addr would wrap
		{"third page", mem[2*4096:], 0x22, true},
		{"tail of third", mem[3*4096-1:], 0x22, true},
	} {
		d.mu.RLock()
		r, ok := d.lookup(bufAddr(tc.b), len(tc.b))
		d.mu.RUnlock()
		if ok != tc.ok || r.lkey != tc.lkey {
			t.Errorf("%s: lookup = %#x, %v; want %#x, %v", tc.name, r.lkey, ok, tc.lkey, tc.ok)
		}
	}
	if _, ok := d.lookup(bufAddr(mem)+5*4096, 10); ok {
		t.Error("lookup past every region succeeded")
	}
	before := bufAddr(mem) - 4096
	if _, ok := d.lookup(before, 10); ok {
		t.Error("lookup below every region succeeded")
	}
	d.remove(bufAddr(mem))
	if _, ok := d.lookup(bufAddr(mem), 10); ok {
		t.Error("lookup in a removed region succeeded")
	}
}

func TestFill(t *testing.T) {
	d, mem := fakeDevice(t)
	c := &conn{dev: d}
	wrs := []WR{
		{ID: 1, Op: OpSend, Local: mem[8:72], Signaled: true},
		{ID: 2, Op: OpSendInv, RKey: 0xabcd},
		{ID: 3, Op: OpRead, Local: mem[2*4096 : 2*4096+512], RemoteAddr: 0x1000, RKey: 77},
		{ID: 4, Op: OpWrite, Local: mem[:4096], RemoteAddr: 0x2000, RKey: 78},
	}
	if err := c.fill(wrs); err != nil {
		t.Fatal(err)
	}
	base := uint64(bufAddr(mem))
	// Opcodes are enum ibv_wr_opcode (a stable ABI): RDMA_WRITE 0, SEND 2,
	// RDMA_READ 4, SEND_WITH_INV 9.
	want := []postWR{
		{id: 1, opcode: 2, addr: base + 8, len: 64, lkey: 0x11, signaled: 1},
		{id: 2, opcode: 9, rkey: 0xabcd},
		{id: 3, opcode: 4, addr: base + 2*4096, len: 512, lkey: 0x22, remoteAddr: 0x1000, rkey: 77},
		{id: 4, opcode: 0, addr: base, len: 4096, lkey: 0x11, remoteAddr: 0x2000, rkey: 78},
	}
	for i := range want {
		if c.wrs[i] != want[i] {
			t.Errorf("wr %d = %+v, want %+v", i, c.wrs[i], want[i])
		}
	}
	if err := c.fill([]WR{{ID: 5, Op: OpSend, Local: mem[4000:4200]}}); err == nil || !strings.Contains(err.Error(), "not inside one registered region") {
		t.Errorf("fill outside the regions: %v", err)
	}
	if err := c.fill([]WR{{ID: 6, Op: OpRecv}}); err == nil {
		t.Error("fill of OpRecv succeeded")
	}
	if allocs := testing.AllocsPerRun(100, func() { c.fill(wrs) }); allocs != 0 {
		t.Errorf("fill allocates %v times per call", allocs)
	}
}

func TestOpRing(t *testing.T) {
	r := newOpRing(4)
	r.push(1, OpWrite) // unsignaled
	r.push(2, OpSend)
	r.push(3, OpRead)
	if r.free() != 1 {
		t.Fatalf("free = %d, want 1", r.free())
	}
	if op := r.retire(2); op != OpSend {
		t.Errorf("retire(2) = %v, want send", op)
	}
	r.push(4, OpSendInv)
	r.push(5, OpWrite)
	r.unpush(1)
	if op := r.retire(3); op != OpRead {
		t.Errorf("retire(3) = %v", op)
	}
	if op := r.retire(4); op != OpSendInv {
		t.Errorf("retire(4) = %v", op)
	}
	if r.n != 0 {
		t.Errorf("%d left, want 0", r.n)
	}
	if op := r.retire(5); op != 0 {
		t.Errorf("retire of an unposted id = %v, want 0", op)
	}
}

func TestComplete(t *testing.T) {
	verbsOrSkip(t) // status names come from libibverbs
	c := &conn{sent: newOpRing(8)}
	c.sent.push(10, OpWrite) // unsignaled: retired by 11
	c.sent.push(11, OpSendInv)
	c.sent.push(12, OpRead)
	c.sent.push(13, OpSend)
	wcs := []pollWC{
		{id: 100, recv: 1, status: wcSuccess, byteLen: 64, withInv: 1, invRkey: 0x1234},
		{id: 11, status: wcSuccess, opcode: 0 /* IBV_WC_SEND */},
		{id: 12, status: wcFlushErr, opcode: 0 /* undefined on error */},
		{id: 101, recv: 1, status: wcFlushErr, byteLen: 99},
		{id: 13, status: 4 /* IBV_WC_LOC_PROT_ERR */},
	}
	out := make([]Completion, len(wcs))
	c.complete(wcs, out)
	want := []Completion{
		{ID: 100, Op: OpRecv, Len: 64, Invalidated: true, InvKey: 0x1234},
		{ID: 11, Op: OpSendInv},
		{ID: 12, Op: OpRead, Err: ErrFlushed},
		{ID: 101, Op: OpRecv, Err: ErrFlushed},
		{ID: 13, Op: OpSend},
	}
	for i := range want {
		g, w := out[i], want[i]
		ge, we := g.Err, w.Err
		g.Err, w.Err = nil, nil
		if g != w || (we != nil && ge != we) {
			t.Errorf("completion %d = %+v (err %v), want %+v (err %v)", i, g, ge, w, we)
		}
	}
	if err := out[4].Err; err == nil || !strings.Contains(err.Error(), "local protection error") || !strings.Contains(err.Error(), "send") {
		t.Errorf("protection error completion: %v", err)
	}
	if c.sent.n != 0 {
		t.Errorf("%d send requests not retired", c.sent.n)
	}

	flushed := []pollWC{{id: 1, recv: 1, status: wcFlushErr}, {id: 2, recv: 1, status: wcSuccess, byteLen: 8}}
	if allocs := testing.AllocsPerRun(100, func() { c.complete(flushed, out) }); allocs != 0 {
		t.Errorf("complete allocates %v times per call", allocs)
	}
}

func TestAddrRoundTrip(t *testing.T) {
	for _, s := range []string{"169.254.42.1:4420", "[fe80::1%7]:4420", "[2001:db8::1]:1", "0.0.0.0:0", "[::ffff:10.0.0.1]:5"} {
		ap := netip.MustParseAddrPort(s)
		a := toFPAddr(ap)
		got := fromFPAddr(&a)
		want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if got != want {
			t.Errorf("%s: round trip gives %v", s, got)
		}
	}
}

// TestRegisterDeviceMemory registers memory that is no Go slice, by
// dma-buf and by address (with no RDMA device here, nothing reaches
// ibv_reg_*_mr: the checks, the overlaps and the fd's lifetime are what
// run), and the error where libibverbs lacks ibv_reg_dmabuf_mr.
func TestRegisterDeviceMemory(t *testing.T) {
	p := verbsOrSkip(t)
	if n := p.deviceCount(); n > 0 {
		t.Skipf("this machine has %d RDMA devices", n)
	}
	mem := mmapT(t, 1<<20)
	base := bufAddr(mem)
	f, err := os.CreateTemp(t.TempDir(), "dmabuf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if !haveDMABuf() {
		t.Skip("libibverbs here lacks ibv_reg_dmabuf_mr (rdma-core < 34)")
	}
	r, err := p.RegisterDMABuf(int(f.Fd()), 4096, 1<<19, uint64(base))
	if err != nil {
		t.Fatal(err)
	}
	dup := r.(*region).dmabuf
	if dup < 0 || dup == int(f.Fd()) {
		t.Fatalf("region keeps fd %d: want its own duplicate of %d", dup, f.Fd())
	}
	if _, err := p.RegisterAddr(base+4096, 4096); err == nil {
		t.Error("RegisterAddr inside the dma-buf region's iova range succeeded")
	}
	a, err := p.RegisterAddr(base+1<<19, 1<<19)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func() (Region, error){
		func() (Region, error) { return p.RegisterAddr(0, 4096) },
		func() (Region, error) { return p.RegisterAddr(base, 0) },
		func() (Region, error) { return p.RegisterDMABuf(-1, 0, 4096, 1<<40) },
		func() (Region, error) { return p.RegisterDMABuf(int(f.Fd()), 0, 4096, 0) },
	} {
		if r, err := bad(); err == nil {
			r.Close()
			t.Error("registering without an address, length or fd succeeded")
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(dup), syscall.F_GETFD, 0); e != syscall.EBADF {
		t.Errorf("the region's fd %d after Close: fcntl F_GETFD: %v, want EBADF (closed)", dup, e)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	defer func(h func() bool) { haveDMABuf = h }(haveDMABuf)
	haveDMABuf = func() bool { return false }
	_, err = p.RegisterDMABuf(int(f.Fd()), 0, 4096, uint64(base))
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "ibv_reg_dmabuf_mr missing: rdma-core >= 34 needed") {
		t.Errorf("RegisterDMABuf without ibv_reg_dmabuf_mr: %v: want ErrNotSupported saying rdma-core >= 34 is needed", err)
	}
}
