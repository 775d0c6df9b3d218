package initiator

import (
	"errors"

	"github.com/flashpath/flashpath/nvmeof"
)

// Op is an NVM command set I/O command (NVM Command Set 1.0 §3).
type Op uint8

// I/O operations a Request can carry.
const (
	OpFlush       Op = nvmeof.NVMFlush
	OpWrite       Op = nvmeof.NVMWrite
	OpRead        Op = nvmeof.NVMRead
	OpCompare     Op = nvmeof.NVMCompare
	OpWriteZeroes Op = nvmeof.NVMWriteZeroes
	OpDSM         Op = nvmeof.NVMDSM
)

func (o Op) String() string {
	switch o {
	case OpFlush:
		return "flush"
	case OpWrite:
		return "write"
	case OpRead:
		return "read"
	case OpCompare:
		return "compare"
	case OpWriteZeroes:
		return "write zeroes"
	case OpDSM:
		return "dataset management"
	}
	return "unknown op"
}

// Request is one asynchronous I/O command. The caller owns it: fill the
// command fields, hand it to Queue.Submit, and do not touch it until it is
// delivered back through Done or OnDone. A Request may be reused as soon as
// it has been delivered. Submitting and completing a Request does not
// allocate.
type Request struct {
	// Command.
	Op   Op
	NSID uint32
	SLBA uint64
	// NLB is the number of logical blocks (1-based, at most 65536) for Read,
	// Write, Compare and Write Zeroes, and the number of 16-byte ranges in
	// Buf for OpDSM.
	NLB uint32
	// Buf is the data: NLB blocks for Read (filled in), Write and Compare;
	// the encoded ranges for OpDSM; nil otherwise.
	Buf []byte
	// Dev and DevLen name the data of a Read, Write or Compare in device
	// memory instead of Buf (which is then nil): DevLen bytes at device
	// address Dev, inside memory registered with
	// Controller.RegisterDevice. Transports that cannot reach device
	// memory (NVMe/TCP) refuse the request.
	Dev    uint64
	DevLen int
	// FUA is Force Unit Access on Read, Write, Compare and Write Zeroes.
	FUA bool
	// Deallocate sets DEAC on Write Zeroes and the AD attribute on DSM.
	Deallocate bool

	// Completion delivery: OnDone, when set, is called on the queue's
	// receive goroutine; it must not block, and may Submit again. Otherwise
	// the request is sent on Done, which must have room for every request
	// the caller has in flight (a blocked Done stalls the whole queue).
	Done   chan<- *Request
	OnDone func(*Request)
	// Tag is for the caller; the queue never reads or writes it.
	Tag uint64

	// Result, valid once delivered.
	Status nvmeof.Status // NVMe completion status
	DW0    uint32        // command specific dword 0 of the completion
	// Err is non-nil when the command did not complete because the
	// connection failed; Status is then meaningless.
	Err error

	// Admin and fabrics commands built by this package.
	sqe       nvmeof.SQE
	dw1       uint32
	raw       bool // sqe holds the command
	out       bool // data flows host to controller
	noTimeout bool // exempt from the I/O timeout (AER)
}

// DSMRangeSize is the size of one range in an OpDSM request's Buf.
const DSMRangeSize = nvmeof.DSMRangeSize

// PutDSMRange writes range i of an OpDSM request's Buf: nlb blocks from
// slba (NVM Command Set 1.0 §3.2.3).
func PutDSMRange(buf []byte, i int, slba uint64, nlb uint32) {
	nvmeof.EncodeDSMRange(buf, i, nvmeof.DSMRange{SLBA: slba, NLB: nlb})
}

// Error returns the outcome of a delivered request as a Go error: Err, a
// *nvmeof.StatusError for a non-success status, or nil.
func (r *Request) Error() error {
	if r.Err != nil {
		return r.Err
	}
	if !r.Status.OK() {
		return &nvmeof.StatusError{Op: r.Op.String(), Status: r.Status}
	}
	return nil
}

// Sentinel errors returned by Submit without allocating.
var (
	ErrBadRequest = errors.New("initiator: invalid request: NLB must be 1..65536 and Buf (or Dev and DevLen, not both) set for the op")
	ErrTooLarge   = errors.New("initiator: request larger than the controller's maximum transfer size")
	ErrClosed     = errors.New("initiator: controller closed")
	// ErrNoReconnect: the connection failed and Config.CtrlLossTimeout
	// is negative, so the controller does not reconnect.
	ErrNoReconnect = errors.New("initiator: connection lost and reconnecting is off (CtrlLossTimeout < 0)")
)

// prepare fills r.sqe for an I/O request and checks it.
func (q *Queue) prepare(r *Request) error {
	if r.raw {
		return nil
	}
	c := &r.sqe
	c.Reset()
	c.SetOpcode(uint8(r.Op))
	c.SetNSID(r.NSID)
	r.out = false
	if r.DevLen != 0 && r.Op != OpRead && r.Op != OpWrite && r.Op != OpCompare {
		return ErrBadRequest
	}
	switch r.Op {
	case OpRead, OpWrite, OpCompare:
		n := len(r.Buf)
		if r.DevLen != 0 {
			if n != 0 || r.DevLen < 0 {
				return ErrBadRequest
			}
			n = r.DevLen
		}
		if r.NLB == 0 || r.NLB > 1<<16 || n == 0 {
			return ErrBadRequest
		}
		if q.maxXfer > 0 && n > q.maxXfer {
			return ErrTooLarge
		}
		c.SetRW(r.SLBA, r.NLB)
		c.SetFUA(r.FUA)
		r.out = r.Op != OpRead
	case OpWriteZeroes:
		if r.NLB == 0 || r.NLB > 1<<16 || len(r.Buf) != 0 {
			return ErrBadRequest
		}
		c.SetRW(r.SLBA, r.NLB)
		c.SetFUA(r.FUA)
		if r.Deallocate {
			c.SetCDW(12, c.CDW(12)|nvmeof.CDW12Deac)
		}
	case OpDSM:
		if r.NLB == 0 || r.NLB > 256 || len(r.Buf) != int(r.NLB)*nvmeof.DSMRangeSize {
			return ErrBadRequest
		}
		c.SetCDW(10, r.NLB-1)
		if r.Deallocate {
			c.SetCDW(11, nvmeof.DSMAttrDeallocate)
		}
		r.out = true
	case OpFlush:
		if len(r.Buf) != 0 {
			return ErrBadRequest
		}
	default:
		return ErrBadRequest
	}
	return nil
}
