//go:build linux && cgo

package rdma

// Tests against a real RDMA device: they run when FP_RDMA_ADDR names an
// address on one (test/lab/rdma-verbs.sh runs them in the lab VM on
// soft-RoCE: FP_RDMA_ADDR=169.254.42.1). Both ends of every connection are
// in this process.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// labWait bounds every wait: the lab runs under full emulation.
const labWait = 60 * time.Second

// labSetup returns the provider, the device's address and 1 MiB of
// registered memory.
func labSetup(t *testing.T) (*verbs, netip.Addr, []byte) {
	t.Helper()
	s := os.Getenv("FP_RDMA_ADDR")
	if s == "" {
		t.Skip("FP_RDMA_ADDR is not set: these tests need an RDMA device (test/lab/rdma-verbs.sh)")
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("FP_RDMA_ADDR: %v", err)
	}
	p, err := Verbs()
	if err != nil {
		t.Fatal(err)
	}
	mem := mmapT(t, 1<<20)
	r, err := p.Register(mem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("region close: %v", err)
		}
	})
	return p.(*verbs), ip, mem
}

// zeroPadded reports whether got is want followed by zeros (RoCE pads
// private data to the CM message's size).
func zeroPadded(got, want []byte) bool {
	return bytes.HasPrefix(got, want) && !bytes.ContainsFunc(got[len(want):], func(r rune) bool { return r != 0 })
}

type accepted struct {
	c    Conn
	priv []byte
	err  error
}

// labListen listens on an ephemeral port of ip and answers the first
// request with answer, in a goroutine; the result arrives on the channel.
func labListen(t *testing.T, p *verbs, ip netip.Addr, answer func(ConnRequest) (Conn, error)) (Listener, <-chan accepted) {
	t.Helper()
	l, err := p.Listen(netip.AddrPortFrom(ip, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if l.Addr().Addr() != ip || l.Addr().Port() == 0 {
		t.Fatalf("listener address %v: want %v and a port", l.Addr(), ip)
	}
	ch := make(chan accepted, 1)
	go func() {
		req, err := l.Accept()
		if err != nil {
			ch <- accepted{err: err}
			return
		}
		priv := req.PrivateData()
		c, err := answer(req)
		ch <- accepted{c, priv, err}
	}()
	return l, ch
}

// labPair connects a client to a server in this process, with private data
// both ways checked. setupClient and setupServer post receives.
func labPair(t *testing.T, p *verbs, ip netip.Addr, setupClient, setupServer func(Conn) error) (client, server Conn, l Listener) {
	t.Helper()
	cliPriv, srvPriv := []byte("flashpath client hello"), []byte("flashpath server hello, longer")
	l, ch := labListen(t, p, ip, func(req ConnRequest) (Conn, error) {
		return req.Accept(ConnConfig{}, srvPriv, setupServer)
	})
	ctx, cancel := context.WithTimeout(context.Background(), labWait)
	defer cancel()
	client, err := p.Dial(ctx, l.Addr(), ConnConfig{}, cliPriv, setupClient)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	var a accepted
	select {
	case a = <-ch:
	case <-time.After(labWait):
		t.Fatal("the listener did not accept")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() { a.c.Close() })
	if !zeroPadded(a.priv, cliPriv) {
		t.Errorf("request private data %q: want %q (zero padded)", a.priv, cliPriv)
	}
	if got := client.(interface{ PeerPrivateData() []byte }).PeerPrivateData(); !zeroPadded(got, srvPriv) {
		t.Errorf("accept private data %q: want %q (zero padded)", got, srvPriv)
	}
	if got := a.c.(interface{ PeerPrivateData() []byte }).PeerPrivateData(); !zeroPadded(got, cliPriv) {
		t.Errorf("server's PeerPrivateData %q: want %q", got, cliPriv)
	}
	if client.Remote() != l.Addr() || a.c.Local() != l.Addr() || a.c.Remote() != client.Local() || client.Local().Addr() != ip {
		t.Errorf("addresses: client %v -> %v, server %v -> %v, listener %v", client.Local(), client.Remote(), a.c.Local(), a.c.Remote(), l.Addr())
	}
	return client, a.c, l
}

// pollN polls c until it has n completions; after labWait it closes c and
// fails.
func pollN(t *testing.T, c Conn, n int) []Completion {
	t.Helper()
	type result struct {
		got []Completion
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var got []Completion
		buf := make([]Completion, 8)
		for len(got) < n {
			k, err := c.Poll(buf[:min(len(buf), n-len(got))])
			if err != nil {
				ch <- result{got, err}
				return
			}
			got = append(got, buf[:k]...)
		}
		ch <- result{got, nil}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("poll after %d of %d completions: %v", len(r.got), n, r.err)
		}
		return r.got
	case <-time.After(labWait):
		c.Close()
		r := <-ch
		t.Fatalf("%d of %d completions in %v", len(r.got), n, labWait)
	}
	return nil
}

func postRecvs(bufs ...[]byte) func(Conn) error {
	return func(c Conn) error {
		for i, b := range bufs {
			if err := c.PostRecv(uint64(i), b); err != nil {
				return err
			}
		}
		return nil
	}
}

func wantOK(t *testing.T, got []Completion, op Op, ids ...uint64) {
	t.Helper()
	for i, c := range got {
		if c.Err != nil || c.Op != op || c.ID != ids[i] {
			t.Errorf("completion %d: %+v, want %v of request %d, no error", i, c, op, ids[i])
		}
	}
}

func TestLabSendRecv(t *testing.T) {
	p, ip, mem := labSetup(t)
	cbuf, sbuf := mem[:64<<10], mem[64<<10:128<<10]
	client, server, _ := labPair(t, p, ip, postRecvs(cbuf[:4096]), postRecvs(sbuf[:4096]))

	msg := cbuf[8192 : 8192+64]
	rand.Read(msg)
	if err := client.Post(WR{ID: 7, Op: OpSend, Local: msg, Signaled: true}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, pollN(t, client, 1), OpSend, 7)
	got := pollN(t, server, 1)
	wantOK(t, got, OpRecv, 0)
	if got[0].Len != len(msg) || !bytes.Equal(sbuf[:len(msg)], msg) {
		t.Fatalf("server received %d bytes %x, want %x", got[0].Len, sbuf[:got[0].Len], msg)
	}

	reply := sbuf[8192 : 8192+100]
	rand.Read(reply)
	if err := server.Post(WR{ID: 8, Op: OpSend, Local: reply, Signaled: true}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, pollN(t, server, 1), OpSend, 8)
	got = pollN(t, client, 1)
	wantOK(t, got, OpRecv, 0)
	if got[0].Len != len(reply) || !bytes.Equal(cbuf[:len(reply)], reply) {
		t.Fatalf("client received %d bytes, want %x", got[0].Len, reply)
	}

	// 20 SENDs in one Post (two chains), only the last signaled: one
	// send completion, 20 receives in order.
	const n = 20
	wrs := make([]WR, n)
	ids := make([]uint64, n)
	for i := range wrs {
		if err := server.PostRecv(uint64(100+i), sbuf[16384+i*256:16384+(i+1)*256]); err != nil {
			t.Fatal(err)
		}
		b := cbuf[16384+i*256 : 16384+i*256+32+i]
		rand.Read(b)
		wrs[i] = WR{ID: uint64(100 + i), Op: OpSend, Local: b}
		ids[i] = uint64(100 + i)
	}
	wrs[n-1].Signaled = true
	if err := client.Post(wrs...); err != nil {
		t.Fatal(err)
	}
	wantOK(t, pollN(t, client, 1), OpSend, 100+n-1)
	got = pollN(t, server, n)
	wantOK(t, got, OpRecv, ids...)
	for i, c := range got {
		if c.Len != 32+i || !bytes.Equal(sbuf[16384+i*256:16384+i*256+c.Len], wrs[i].Local) {
			t.Errorf("receive %d: %d bytes, data differs or wrong length (want %d)", i, c.Len, 32+i)
		}
	}

	// A buffer outside the registered memory is refused before posting.
	if err := client.Post(WR{ID: 9, Op: OpSend, Local: make([]byte, 8), Signaled: true}); err == nil {
		t.Error("Post of unregistered memory succeeded")
	}
}

func TestLabReadWrite(t *testing.T) {
	p, ip, mem := labSetup(t)
	cbuf, sbuf := mem[:256<<10], mem[256<<10:512<<10]
	client, server, _ := labPair(t, p, ip, nil, nil)

	// WRITE 64 KiB into the server's memory.
	src, dst := cbuf[:64<<10], sbuf[:64<<10]
	rand.Read(src)
	raddr, rkey, err := server.RemoteKey(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Post(WR{ID: 1, Op: OpWrite, Local: src, RemoteAddr: raddr, RKey: rkey, Signaled: true}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, pollN(t, client, 1), OpWrite, 1)
	if !bytes.Equal(dst, src) {
		t.Fatal("RDMA WRITE: the server's memory differs from what was written")
	}

	// READ 64 KiB of the server's memory.
	remote, local := sbuf[128<<10:192<<10], cbuf[128<<10:192<<10]
	rand.Read(remote)
	raddr, rkey, err = server.RemoteKey(remote)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Post(WR{ID: 2, Op: OpRead, Local: local, RemoteAddr: raddr, RKey: rkey, Signaled: true}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, pollN(t, client, 1), OpRead, 2)
	if !bytes.Equal(local, remote) {
		t.Fatal("RDMA READ: what was read differs from the server's memory")
	}

	// An unsignaled WRITE then a signaled READ of the same bytes: the
	// READ sees the WRITE (RC ordering), one completion.
	rand.Read(src[:4096])
	raddr, rkey, _ = server.RemoteKey(dst[:4096])
	err = client.Post(
		WR{ID: 3, Op: OpWrite, Local: src[:4096], RemoteAddr: raddr, RKey: rkey},
		WR{ID: 4, Op: OpRead, Local: local[:4096], RemoteAddr: raddr, RKey: rkey, Signaled: true},
	)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, pollN(t, client, 1), OpRead, 4)
	if !bytes.Equal(local[:4096], src[:4096]) {
		t.Fatal("READ after WRITE: data differs")
	}

	// Post and Poll allocate nothing.
	timer := time.AfterFunc(labWait, func() { client.Close() })
	defer timer.Stop()
	wrs := []WR{{ID: 5, Op: OpWrite, Local: src[:512], RemoteAddr: raddr, RKey: rkey, Signaled: true}}
	out := make([]Completion, 4)
	var loopErr error
	allocs := testing.AllocsPerRun(50, func() {
		if err := client.Post(wrs...); err != nil {
			loopErr = err
			return
		}
		for {
			n, err := client.Poll(out)
			if err != nil {
				loopErr = err
				return
			}
			if n > 0 {
				if out[0].Err != nil {
					loopErr = out[0].Err
				}
				return
			}
		}
	})
	if loopErr != nil {
		t.Fatal(loopErr)
	}
	if allocs != 0 {
		t.Errorf("Post+Poll allocate %v times per WRITE", allocs)
	}
}

func TestLabReject(t *testing.T) {
	p, ip, _ := labSetup(t)
	why := []byte("flashpath says no")
	l, ch := labListen(t, p, ip, func(req ConnRequest) (Conn, error) { return nil, req.Reject(why) })
	ctx, cancel := context.WithTimeout(context.Background(), labWait)
	defer cancel()
	c, err := p.Dial(ctx, l.Addr(), ConnConfig{}, []byte("let me in"), nil)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded; the listener rejects")
	}
	var rej *RejectError
	if !errors.As(err, &rej) {
		t.Fatalf("Dial: %v: want a *RejectError", err)
	}
	if !zeroPadded(rej.PrivateData, why) {
		t.Errorf("rejection private data %q: want %q", rej.PrivateData, why)
	}
	t.Logf("rejected: %v (reason %d)", err, rej.Reason)
	select {
	case a := <-ch:
		if a.err != nil {
			t.Errorf("Reject: %v", a.err)
		}
	case <-time.After(labWait):
		t.Fatal("the listener did not answer")
	}

	// A request nobody answers: Dial gives up when its context ends.
	l2, err := p.Listen(netip.AddrPortFrom(ip, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	c, err = p.Dial(short, l2.Addr(), ConnConfig{}, nil, nil)
	if err == nil {
		c.Close()
		t.Fatal("Dial of a listener that does not accept succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial of a listener that does not accept: %v, want context.DeadlineExceeded", err)
	}
	l2.Close() // rejects the pending request

	// Nobody listens any more: the connection manager refuses.
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close: %v, want ErrClosed", err)
	}
	c, err = p.Dial(ctx, l.Addr(), ConnConfig{}, nil, nil)
	if err == nil {
		c.Close()
		t.Fatal("Dial of a closed listener succeeded")
	}
	t.Logf("dial of a closed listener: %v", err)
}

func TestLabDisconnectFlushes(t *testing.T) {
	p, ip, mem := labSetup(t)
	cb, sb := mem[:16<<10], mem[16<<10:32<<10]
	client, server, _ := labPair(t, p, ip,
		postRecvs(cb[:4096], cb[4096:8192], cb[8192:12288]),
		postRecvs(sb[:4096], sb[4096:8192], sb[8192:12288], sb[12288:16384]))
	if err := client.Disconnect(); err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		name string
		c    Conn
		n    int
	}{{"client", client, 3}, {"server", server, 4}} {
		got := pollN(t, side.c, side.n)
		for i, c := range got {
			if c.ID != uint64(i) || c.Op != OpRecv || !errors.Is(c.Err, ErrFlushed) {
				t.Errorf("%s completion %d: %+v, want receive %d flushed", side.name, i, c, i)
			}
		}
	}
}

func TestLabCloseWakesPoll(t *testing.T) {
	p, ip, mem := labSetup(t)
	client, server, _ := labPair(t, p, ip, postRecvs(mem[4096:8192]), nil)
	done := make(chan error, 1)
	go func() {
		_, err := server.Poll(make([]Completion, 4))
		done <- err
	}()
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Poll after Close: %v, want ErrClosed", err)
		}
	case <-time.After(labWait):
		t.Fatal("Close did not wake Poll")
	}
	if err := server.Post(WR{ID: 1, Op: OpSend, Local: mem[:8]}); !errors.Is(err, ErrClosed) {
		t.Errorf("Post after Close: %v", err)
	}
	if err := server.PostRecv(1, mem[:8]); !errors.Is(err, ErrClosed) {
		t.Errorf("PostRecv after Close: %v", err)
	}
	if _, err := server.Poll(make([]Completion, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Poll after Close: %v", err)
	}
	if err := server.Disconnect(); !errors.Is(err, ErrClosed) {
		t.Errorf("Disconnect after Close: %v", err)
	}
	if err := server.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The peer learns (Close disconnects): its outstanding receive flushes.
	if got := pollN(t, client, 1); got[0].ID != 0 || got[0].Op != OpRecv || !errors.Is(got[0].Err, ErrFlushed) {
		t.Errorf("client receive after the server closed: %+v, want flushed", got[0])
	}
}

func TestLabListenerCloseKeepsConns(t *testing.T) {
	p, ip, mem := labSetup(t)
	cb, sb := mem[:8192], mem[8192:16384]
	client, server, l := labPair(t, p, ip, nil, postRecvs(sb[:4096]))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, ErrClosed) {
		t.Errorf("Accept after Close: %v, want ErrClosed", err)
	}
	rand.Read(cb[:128])
	if err := client.Post(WR{ID: 1, Op: OpSend, Local: cb[:128], Signaled: true}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, pollN(t, client, 1), OpSend, 1)
	got := pollN(t, server, 1)
	wantOK(t, got, OpRecv, 0)
	if got[0].Len != 128 || !bytes.Equal(sb[:128], cb[:128]) {
		t.Error("data sent after the listener closed differs")
	}
}

// TestLabSendInv sends a SEND with invalidate of a key of the receiver's.
// Invalidation needs a key the receiver allows to be invalidated (a memory
// window or fast-registration MR); Register makes plain MRs, so a device
// may refuse: then the receiver's completion is an error other than a
// flush, which still shows the request went out as SEND_WITH_INV.
func TestLabSendInv(t *testing.T) {
	p, ip, mem := labSetup(t)
	cb, sb := mem[:8192], mem[8192:16384]
	client, server, _ := labPair(t, p, ip, postRecvs(cb[:4096]), nil)
	_, key, err := client.RemoteKey(cb[4096:8192])
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Post(WR{ID: 1, Op: OpSendInv, Local: sb[:16], RKey: key, Signaled: true}); err != nil {
		t.Fatal(err)
	}
	got := pollN(t, client, 1)[0]
	sent := pollN(t, server, 1)[0]
	t.Logf("receiver: %+v; sender: %+v", got, sent)
	switch {
	case got.Err == nil:
		if !got.Invalidated || got.InvKey != key {
			t.Fatalf("receive completion %+v: want Invalidated with key %#x", got, key)
		}
		if sent.Err != nil || sent.Op != OpSendInv {
			t.Fatalf("send completion %+v", sent)
		}
	case errors.Is(got.Err, ErrFlushed):
		t.Fatalf("the receive was flushed, not completed: %v", got.Err)
	default:
		t.Skipf("the device refuses to invalidate a plain MR's key (SEND_WITH_INV reached it): %v", got.Err)
	}
}

// TestLabNoDeviceAddr: with an RDMA device present, an address no RDMA
// device has (loopback, which RoCE cannot use) still gets the helpful error.
func TestLabNoDeviceAddr(t *testing.T) {
	p, _, _ := labSetup(t)
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	l, err := p.Listen(lo)
	if err == nil {
		l.Close()
		t.Fatal("Listen on 127.0.0.1 succeeded")
	}
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "rdma link add") {
		t.Errorf("Listen on 127.0.0.1: %v: want ErrNotSupported and what to do", err)
	}
	t.Log(err)
	ctx, cancel := context.WithTimeout(context.Background(), labWait)
	defer cancel()
	c, err := p.Dial(ctx, netip.MustParseAddrPort("127.0.0.1:4420"), ConnConfig{}, nil, nil)
	if err == nil {
		c.Close()
		t.Fatal("Dial of 127.0.0.1 succeeded")
	}
	t.Log(err)
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("Dial of 127.0.0.1: %v: want ErrNotSupported", err)
	}
}
