//go:build linux && cgo

package rdma

// The connection manager's plumbing shared by Listen and Dial: event
// channels on the netpoller, addresses to and from C, and the errors that
// mean no RDMA device serves an address.

/*
#include <errno.h>
#include "verbs.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ------------------------------------------------------------ event channels

// pollable makes fd non-blocking and returns a close-on-exec duplicate of
// it in an os.File, which the netpoller watches. Closing the file wakes its
// waiters and leaves fd, which the library owns, open.
func pollable(fd C.int, name string) (*os.File, syscall.RawConn, error) {
	if err := unix.SetNonblock(int(fd), true); err != nil {
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(nfd), name)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, raw, nil
}

// eventChannel is a connection manager event channel. One goroutine at a
// time reads it.
type eventChannel struct {
	ch       *C.struct_rdma_event_channel
	f        *os.File
	raw      syscall.RawConn
	stopOnce sync.Once
}

func newEventChannel() (*eventChannel, error) {
	e := &eventChannel{}
	if rc := C.fp_create_event_channel(&e.ch); rc != 0 {
		return nil, errnoErr("rdma_create_event_channel", rc)
	}
	var err error
	if e.f, e.raw, err = pollable(C.fp_event_channel_fd(e.ch), "rdma_cm"); err != nil {
		C.fp_destroy_event_channel(e.ch)
		return nil, err
	}
	return e, nil
}

// next waits for the next event (until the read deadline of e.f) and
// stores it in ev, acknowledged.
func (e *eventChannel) next(ev *C.struct_fp_cm_event) error {
	var rc C.int
	err := e.raw.Read(func(uintptr) bool {
		rc = C.fp_get_cm_event(e.ch, ev)
		return rc != -C.EAGAIN
	})
	if err != nil {
		return err
	}
	if rc != 0 {
		return errnoErr("rdma_get_cm_event", rc)
	}
	return nil
}

// await waits for an event of type want until deadline or ctx ends. A
// rejection is a *RejectError; error events are errors.
func (e *eventChannel) await(ctx context.Context, deadline time.Time, want C.int, ev *C.struct_fp_cm_event) error {
	e.f.SetReadDeadline(deadline)
	defer e.f.SetReadDeadline(time.Time{})
	if err := ctx.Err(); err != nil { // after SetReadDeadline: see Dial's AfterFunc
		return err
	}
	for {
		if err := e.next(ev); err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("no %s event in time: %w", eventName(want), context.DeadlineExceeded)
			}
			return err
		}
		switch ev.event {
		case want:
			return nil
		case C.RDMA_CM_EVENT_REJECTED:
			return &RejectError{Reason: int(ev.status), PrivateData: privateData(ev)}
		case C.RDMA_CM_EVENT_ADDR_ERROR, C.RDMA_CM_EVENT_ROUTE_ERROR, C.RDMA_CM_EVENT_UNREACHABLE,
			C.RDMA_CM_EVENT_CONNECT_ERROR, C.RDMA_CM_EVENT_DEVICE_REMOVAL:
			err := fmt.Errorf("%s (status %d)", eventName(ev.event), int(ev.status))
			if ev.status < 0 {
				err = fmt.Errorf("%s: %w", eventName(ev.event), syscall.Errno(-ev.status))
			}
			return err
		}
		// Anything else (an address change) is not an answer: wait on.
	}
}

// stop wakes and ends next; the channel stays usable for librdmacm calls.
func (e *eventChannel) stop() {
	e.stopOnce.Do(func() { e.f.Close() })
}

// destroy stops e and destroys the channel; its ids must be gone.
func (e *eventChannel) destroy() {
	e.stop()
	C.fp_destroy_event_channel(e.ch)
}

func eventName(ev C.int) string { return C.GoString(C.fp_event_str(ev)) }

func privateData(ev *C.struct_fp_cm_event) []byte {
	if ev.priv_len == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(&ev.priv[0]), C.int(ev.priv_len))
}

// ------------------------------------------------------------ addresses

func toFPAddr(ap netip.AddrPort) C.struct_fp_addr {
	var a C.struct_fp_addr
	ip := ap.Addr().Unmap()
	a.port = C.uint16_t(ap.Port())
	if ip.Is4() {
		a.family = C.AF_INET
		b := ip.As4()
		for i := range b {
			a.ip[i] = C.uint8_t(b[i])
		}
		return a
	}
	a.family = C.AF_INET6
	b := ip.As16()
	for i := range b {
		a.ip[i] = C.uint8_t(b[i])
	}
	if z := ip.Zone(); z != "" {
		if n, err := strconv.Atoi(z); err == nil {
			a.scope_id = C.uint32_t(n)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			a.scope_id = C.uint32_t(ifi.Index)
		}
	}
	return a
}

func fromFPAddr(a *C.struct_fp_addr) netip.AddrPort {
	var ip netip.Addr
	switch a.family {
	case C.AF_INET:
		ip = netip.AddrFrom4(*(*[4]byte)(unsafe.Pointer(&a.ip[0])))
	case C.AF_INET6:
		ip = netip.AddrFrom16(*(*[16]byte)(unsafe.Pointer(&a.ip[0])))
		if a.scope_id != 0 {
			ip = ip.WithZone(strconv.Itoa(int(a.scope_id)))
		}
	default:
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip, uint16(a.port))
}

func idAddrs(id *C.struct_rdma_cm_id) (local, remote netip.AddrPort) {
	var l, r C.struct_fp_addr
	C.fp_id_addrs(id, &l, &r)
	return fromFPAddr(&l), fromFPAddr(&r)
}

// deviceCount is the number of RDMA devices the connection manager sees.
func (p *verbs) deviceCount() int { return max(0, int(C.fp_rdma_device_count())) }

// ------------------------------------------------------------ no device

// noDevice is the error for an address no RDMA device serves.
func noDevice(op string, addr netip.AddrPort, cause error) error {
	if cause != nil {
		return fmt.Errorf("rdma: %s %v: %w: no RDMA device has address %v (%v); %s",
			op, addr, errUnavailable, addr.Addr(), cause, noDeviceFix)
	}
	return fmt.Errorf("rdma: %s %v: %w: no RDMA device has address %v; %s",
		op, addr, errUnavailable, addr.Addr(), noDeviceFix)
}

// isNoDevice reports whether a connection manager call failed because
// there is no RDMA device (for the address).
func isNoDevice(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.ENXIO)
}

// noDeviceHint adds what to do to an error that means no RDMA device
// serves the address.
func noDeviceHint(err error) error {
	if isNoDevice(err) {
		return fmt.Errorf("%w: %w; %s", errUnavailable, err, noDeviceFix)
	}
	return err
}

// ------------------------------------------------------------ private data

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}
