//go:build linux && cgo

package rdma

// The active side: Dial resolves, connects and waits for the answer.

/*
#include "verbs.h"
*/
import "C"

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Dial resolves addr's address and route (each step bounded by ctx's
// deadline, or 2 s), creates the queue pair, runs setup, connects and waits
// for the peer's answer (bounded by ctx, or 60 s).
func (p *verbs) Dial(ctx context.Context, addr netip.AddrPort, cfg ConnConfig, priv []byte, setup func(Conn) error) (Conn, error) {
	if len(priv) > maxPrivate {
		return nil, fmt.Errorf("rdma: dial %v: %d bytes of private data, at most %d", addr, len(priv), maxPrivate)
	}
	ev, err := newEventChannel()
	if err != nil {
		if isNoDevice(err) {
			return nil, fmt.Errorf("rdma: dial %v: %w: no RDMA device (%v); %s", addr, errUnavailable, err, noDeviceFix)
		}
		return nil, fmt.Errorf("rdma: dial %v: %w", addr, err)
	}
	var id *C.struct_rdma_cm_id
	if rc := C.fp_create_id(ev.ch, &id); rc != 0 {
		ev.destroy()
		return nil, fmt.Errorf("rdma: dial %v: %w", addr, errnoErr("rdma_create_id", rc))
	}
	var c *conn
	fail := func(err error) (Conn, error) {
		if c != nil {
			c.Close()
		} else {
			C.fp_destroy_id(id)
			ev.destroy()
		}
		return nil, fmt.Errorf("rdma: dial %v: %w", addr, err)
	}
	// The end of ctx wakes the event waits (await checks ctx after setting
	// its deadline, so none is lost) until disarmed: then the connection's
	// event goroutine owns the channel.
	var wakeMu sync.Mutex
	armed := true
	stopWake := context.AfterFunc(ctx, func() {
		wakeMu.Lock()
		defer wakeMu.Unlock()
		if armed {
			ev.f.SetReadDeadline(time.Unix(1, 0))
		}
	})
	disarm := func() {
		stopWake()
		wakeMu.Lock()
		armed = false
		wakeMu.Unlock()
	}
	defer disarm()
	step := func(d time.Duration) time.Time {
		if dl, ok := ctx.Deadline(); ok {
			return dl
		}
		return time.Now().Add(d)
	}
	ms := func(dl time.Time) C.int {
		return C.int(max(1, min(time.Until(dl).Milliseconds(), 1<<30)))
	}

	var cev C.struct_fp_cm_event
	dl := step(resolveStep)
	dst := toFPAddr(addr)
	if rc := C.fp_resolve_addr(id, &dst, ms(dl)); rc != 0 {
		return fail(noDeviceHint(errnoErr("rdma_resolve_addr", rc)))
	}
	if err := ev.await(ctx, dl, C.RDMA_CM_EVENT_ADDR_RESOLVED, &cev); err != nil {
		return fail(noDeviceHint(err))
	}
	dl = step(resolveStep)
	if rc := C.fp_resolve_route(id, ms(dl)); rc != 0 {
		return fail(noDeviceHint(errnoErr("rdma_resolve_route", rc)))
	}
	if err := ev.await(ctx, dl, C.RDMA_CM_EVENT_ROUTE_RESOLVED, &cev); err != nil {
		return fail(noDeviceHint(err))
	}
	dev, err := p.device(C.fp_id_verbs(id))
	if err != nil {
		return fail(err)
	}
	if c, err = newConn(p, dev, id, ev, cfg); err != nil {
		return fail(err)
	}
	if setup != nil {
		if err := setup(c); err != nil {
			return fail(err)
		}
	}
	resp := min(dev.maxRdAtom, 255)
	init := min(dev.maxInitRdAtom, 255)
	if cfg.ReadDepth > 0 {
		init = min(init, cfg.ReadDepth)
	}
	if rc := C.fp_connect(id, bytesPtr(priv), C.uint8_t(len(priv)), C.uint8_t(resp), C.uint8_t(init)); rc != 0 {
		return fail(errnoErr("rdma_connect", rc))
	}
	if err := ev.await(ctx, step(connectStep), C.RDMA_CM_EVENT_ESTABLISHED, &cev); err != nil {
		return fail(err)
	}
	c.peerPriv = privateData(&cev)
	c.local, c.remote = idAddrs(id)
	disarm()
	ev.f.SetReadDeadline(time.Time{})
	c.startEvents()
	return c, nil
}
