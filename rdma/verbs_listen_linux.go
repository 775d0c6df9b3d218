//go:build linux && cgo

package rdma

// The passive side: a listening connection manager id and the connection
// requests it hands to Accept.

/*
#include "verbs.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

type listener struct {
	p      *verbs
	id     *C.struct_rdma_cm_id
	ev     *eventChannel
	addr   netip.AddrPort
	reqs   chan *connReq // closed when run returns
	runErr error         // why run returned; written before reqs is closed
	done   chan struct{} // closed by Close
	once   sync.Once
}

// Listen binds a connection manager id to addr and listens. The address
// must be on an RDMA device (or unspecified: all of them); port 0 picks a
// free port, which Addr reports.
func (p *verbs) Listen(addr netip.AddrPort) (Listener, error) {
	ev, err := newEventChannel()
	if err != nil {
		if isNoDevice(err) {
			return nil, noDevice("listen", addr, err)
		}
		return nil, fmt.Errorf("rdma: listen %v: %w", addr, err)
	}
	l := &listener{p: p, ev: ev, reqs: make(chan *connReq, 16), done: make(chan struct{})}
	if rc := C.fp_create_id(ev.ch, &l.id); rc != 0 {
		ev.destroy()
		return nil, fmt.Errorf("rdma: listen %v: %w", addr, errnoErr("rdma_create_id", rc))
	}
	fail := func(err error) (Listener, error) {
		C.fp_destroy_id(l.id)
		ev.destroy()
		return nil, err
	}
	a := toFPAddr(addr)
	if rc := C.fp_bind_addr(l.id, &a); rc != 0 {
		err := errnoErr("rdma_bind_addr", rc)
		if isNoDevice(err) {
			return fail(noDevice("listen", addr, err))
		}
		return fail(fmt.Errorf("rdma: listen %v: %w", addr, err))
	}
	if addr.Addr().IsUnspecified() {
		if p.deviceCount() == 0 {
			return fail(noDevice("listen", addr, errors.New("no RDMA devices")))
		}
	} else {
		ctx := C.fp_id_verbs(l.id)
		if ctx == nil {
			return fail(noDevice("listen", addr, nil))
		}
		if _, err := p.device(ctx); err != nil {
			return fail(fmt.Errorf("rdma: listen %v: %w", addr, err))
		}
	}
	if rc := C.fp_listen(l.id, listenBacklog); rc != 0 {
		return fail(fmt.Errorf("rdma: listen %v: %w", addr, errnoErr("rdma_listen", rc)))
	}
	l.addr, _ = idAddrs(l.id)
	go l.run()
	return l, nil
}

// run reads the listener's events: each connection request is migrated to
// an event channel of its own and queued for Accept.
func (l *listener) run() {
	defer close(l.reqs)
	var ev C.struct_fp_cm_event
	for {
		if err := l.ev.next(&ev); err != nil {
			l.runErr = err
			return
		}
		if ev.event != C.RDMA_CM_EVENT_CONNECT_REQUEST {
			continue // the listening id's own events (address change, device removal)
		}
		r, err := l.newRequest(&ev)
		if err != nil {
			C.fp_reject(ev.id, nil, 0)
			C.fp_destroy_id(ev.id)
			continue
		}
		select {
		case l.reqs <- r:
		case <-l.done:
			r.Reject(nil)
		}
	}
}

func (l *listener) newRequest(ev *C.struct_fp_cm_event) (*connReq, error) {
	ch, err := newEventChannel()
	if err != nil {
		return nil, err
	}
	if rc := C.fp_migrate_id(ev.id, ch.ch); rc != 0 {
		ch.destroy()
		return nil, errnoErr("rdma_migrate_id", rc)
	}
	r := &connReq{
		p:                  l.p,
		id:                 ev.id,
		ev:                 ch,
		priv:               privateData(ev),
		initiatorDepth:     int(ev.initiator_depth),
		responderResources: int(ev.responder_resources),
	}
	r.local, r.remote = idAddrs(ev.id)
	return r, nil
}

func (l *listener) Accept() (ConnRequest, error) {
	select {
	case <-l.done:
		return nil, ErrClosed
	default:
	}
	select {
	case r, ok := <-l.reqs:
		if ok {
			return r, nil
		}
		select {
		case <-l.done:
		default:
			return nil, fmt.Errorf("rdma: listener %v: %w", l.addr, l.runErr)
		}
	case <-l.done:
	}
	return nil, ErrClosed
}

func (l *listener) Addr() netip.AddrPort { return l.addr }

// Close stops listening and rejects the requests not yet accepted.
// Connections accepted from l are not affected.
func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.ev.stop()
		for r := range l.reqs { // until run returns
			r.Reject(nil)
		}
		C.fp_destroy_id(l.id)
		l.ev.destroy()
	})
	return nil
}

// connReq owns a requested id, already on an event channel of its own,
// until Accept hands both to a connection or Reject destroys them.
type connReq struct {
	p                                  *verbs
	id                                 *C.struct_rdma_cm_id
	ev                                 *eventChannel
	priv                               []byte
	initiatorDepth, responderResources int
	local, remote                      netip.AddrPort

	mu       sync.Mutex
	answered bool // guarded by mu
}

func (r *connReq) PrivateData() []byte    { return r.priv }
func (r *connReq) Local() netip.AddrPort  { return r.local }
func (r *connReq) Remote() netip.AddrPort { return r.remote }

func (r *connReq) answer() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.answered {
		return errors.New("rdma: connection request already answered")
	}
	r.answered = true
	return nil
}

// drop refuses the request with priv and destroys the id and its channel.
func (r *connReq) drop(priv []byte) error {
	var err error
	if rc := C.fp_reject(r.id, bytesPtr(priv), C.uint8_t(len(priv))); rc != 0 {
		err = fmt.Errorf("rdma: reject %v: %w", r.remote, errnoErr("rdma_reject", rc))
	}
	C.fp_destroy_id(r.id)
	r.ev.destroy()
	return err
}

func (r *connReq) Reject(priv []byte) error {
	if len(priv) > maxPrivate {
		return fmt.Errorf("rdma: reject: %d bytes of private data, at most %d", len(priv), maxPrivate)
	}
	if err := r.answer(); err != nil {
		return err
	}
	return r.drop(priv)
}

// Accept creates the queue pair, runs setup and accepts. Responder
// resources are what the device and the peer's initiator depth allow;
// initiator depth what the device, the peer's responder resources and
// cfg.ReadDepth allow.
func (r *connReq) Accept(cfg ConnConfig, priv []byte, setup func(Conn) error) (Conn, error) {
	if len(priv) > maxPrivate {
		return nil, fmt.Errorf("rdma: accept: %d bytes of private data, at most %d", len(priv), maxPrivate)
	}
	if err := r.answer(); err != nil {
		return nil, err
	}
	dev, err := r.p.device(C.fp_id_verbs(r.id))
	if err != nil {
		r.drop(nil)
		return nil, err
	}
	c, err := newConn(r.p, dev, r.id, r.ev, cfg)
	if err != nil {
		r.drop(nil)
		return nil, err
	}
	c.local, c.remote, c.peerPriv = r.local, r.remote, r.priv
	fail := func(err error) (Conn, error) {
		if !c.closing.Load() { // setup may have closed c, and the id with it
			C.fp_reject(r.id, nil, 0)
		}
		c.Close()
		return nil, err
	}
	if setup != nil {
		if err := setup(c); err != nil {
			return fail(err)
		}
	}
	// The connection manager reports the request's values from this side's
	// point of view (the IB CM swaps them: the event's initiator_depth is
	// the peer's responder resources), so they bound ours directly, as
	// nvmet-rdma uses them. The Linux host asks for no RDMA READs
	// (initiator depth 0): swapping them here leaves a target unable to
	// READ its data.
	resp := min(dev.maxRdAtom, r.responderResources, 255)
	init := min(dev.maxInitRdAtom, r.initiatorDepth, 255)
	if cfg.ReadDepth > 0 {
		init = min(init, cfg.ReadDepth)
	}
	if rc := C.fp_accept(r.id, bytesPtr(priv), C.uint8_t(len(priv)), C.uint8_t(resp), C.uint8_t(init)); rc != 0 {
		return fail(fmt.Errorf("rdma: accept %v: %w", r.remote, errnoErr("rdma_accept", rc)))
	}
	c.startEvents()
	return c, nil
}
