//go:build linux && cgo

package rdma

// The verbs provider: libibverbs and librdmacm through the C shim in
// verbs.c, which opens both with dlopen (nothing links against rdma-core).
//
// Every connection manager event channel and completion channel is made
// non-blocking and waited on through Go's netpoller (a dup of its fd in an
// os.File): no goroutine blocks in C. Each listener and each connection has
// its own event channel; an accepted id is migrated off the listener's
// channel as soon as its request is read, so a connection outlives its
// listener.
//
// A connection's queue pair has two completion queues, one per work queue,
// on one completion channel: a failed completion's opcode is undefined, so
// the queue it came from is what tells a flushed receive from a flushed
// send.
//
// This file loads the libraries and holds what the others share;
// verbs_mem_linux.go registers memory with every device,
// verbs_cm_linux.go has the connection manager's event channels and
// addresses, verbs_listen_linux.go and verbs_dial_linux.go its passive and
// active sides, and verbs_qp_linux.go the queue pairs and completions. The
// C functions are defined in verbs.c only; each file's preamble includes
// verbs.h for their declarations.

/*
#cgo LDFLAGS: -ldl
#include <errno.h>
#include <stdlib.h>
#include "verbs.h"
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// The libraries Verbs opens (variables for tests).
var (
	libibverbsName = "libibverbs.so.1"
	librdmacmName  = "librdmacm.so.1"
)

const (
	defaultDepth  = 128
	listenBacklog = 128
	// resolveStep bounds address and route resolution when the context
	// has no deadline; connectStep bounds the connection handshake.
	resolveStep = 2 * time.Second
	connectStep = 60 * time.Second
	maxPostWR   = C.FP_MAX_POST_WR
	maxPollWC   = C.FP_MAX_POLL_WC
	maxPrivate  = C.FP_MAX_PRIV
	noDeviceFix = "load soft-RoCE (rdma link add rxe0 type rxe netdev IFACE) or use an RDMA NIC's address"
)

// Completion statuses used by name (enum ibv_wc_status).
const (
	wcSuccess  = C.IBV_WC_SUCCESS
	wcFlushErr = C.IBV_WC_WR_FLUSH_ERR
)

var (
	verbsOnce sync.Once
	verbsProv *verbs
	verbsErr  error
)

// Verbs returns the process-wide provider backed by libibverbs and
// librdmacm, which it loads on the first call. Without rdma-core the error
// wraps errUnavailable and says what to install.
//
// Connections it makes also implement interface{ PeerPrivateData() []byte }:
// the private data of the peer's request (accepted connections) or of its
// accept reply (dialed ones). RoCE and InfiniBand pad private data with
// zeros to the connection manager message's fixed size, so it may be longer
// than what the peer sent; so may ConnRequest.PrivateData and
// RejectError.PrivateData.
func Verbs() (Provider, error) {
	verbsOnce.Do(func() {
		if err := loadLibs(libibverbsName, librdmacmName); err != nil {
			verbsErr = err
			return
		}
		verbsProv = &verbs{}
	})
	if verbsErr != nil {
		return nil, verbsErr
	}
	return verbsProv, nil
}

func loadLibs(ibverbs, rdmacm string) error {
	ci, cr := C.CString(ibverbs), C.CString(rdmacm)
	defer C.free(unsafe.Pointer(ci))
	defer C.free(unsafe.Pointer(cr))
	var buf [512]C.char
	if C.fp_verbs_load(ci, cr, &buf[0], C.size_t(len(buf))) != 0 {
		return fmt.Errorf("%w: %s (install rdma-core: apt-get install ibverbs-providers librdmacm1)",
			errUnavailable, C.GoString(&buf[0]))
	}
	return nil
}

// errnoErr turns a negative errno from the shim into an error naming op.
func errnoErr(op string, rc C.int) error {
	if rc >= 0 {
		rc = -C.EIO
	}
	return os.NewSyscallError(op, syscall.Errno(-rc))
}

// verbs is the provider. Devices appear as connection manager ids bind to
// them; each gets one protection domain for the life of the process, and
// every registered region is registered with every device's domain.
type verbs struct {
	mu      sync.Mutex
	devices []*device // guarded by mu; index is device.idx
	regions []*region // guarded by mu
}

var _ Provider = (*verbs)(nil)
