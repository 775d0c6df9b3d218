package nvmeof

import (
	"fmt"
	"strings"
)

// CQESize is the size of a completion queue entry (NVMe Base 2.0 §4.6).
const CQESize = 16

// CQE is a completion queue entry.
type CQE [CQESize]byte

// CQEView returns the CQE stored at the start of b without copying, or nil
// when b is too short.
func CQEView(b []byte) *CQE {
	if len(b) < CQESize {
		return nil
	}
	return (*CQE)(b[:CQESize])
}

// DW0 is the command specific dword 0.
func (c *CQE) DW0() uint32 { return le.Uint32(c[0:]) }

// SetDW0 sets dword 0.
func (c *CQE) SetDW0(v uint32) { le.PutUint32(c[0:], v) }

// DW1 is the command specific dword 1.
func (c *CQE) DW1() uint32 { return le.Uint32(c[4:]) }

// SetDW1 sets dword 1.
func (c *CQE) SetDW1(v uint32) { le.PutUint32(c[4:], v) }

// SQHD is the submission queue head pointer.
func (c *CQE) SQHD() uint16 { return le.Uint16(c[8:]) }

// SetSQHD sets the submission queue head pointer.
func (c *CQE) SetSQHD(v uint16) { le.PutUint16(c[8:], v) }

// SQID is the submission queue identifier.
func (c *CQE) SQID() uint16 { return le.Uint16(c[10:]) }

// SetSQID sets the submission queue identifier.
func (c *CQE) SetSQID(v uint16) { le.PutUint16(c[10:], v) }

// CID is the identifier of the command this completes.
func (c *CQE) CID() uint16 { return le.Uint16(c[12:]) }

// SetCID sets the command identifier.
func (c *CQE) SetCID(v uint16) { le.PutUint16(c[12:], v) }

// Status is the completion status (without the phase tag).
func (c *CQE) Status() Status { return Status(le.Uint16(c[14:]) >> 1) }

// SetStatus sets the status and clears the phase tag (fabrics do not use it).
func (c *CQE) SetStatus(s Status) { le.PutUint16(c[14:], uint16(s)<<1) }

// Reset zeroes the entry.
func (c *CQE) Reset() { *c = CQE{} }

// Status is an NVMe completion status field (NVMe Base 2.0 §4.6.1, Figure 93)
// without the phase tag: SC in bits 7:0, SCT in bits 10:8, CRD in 12:11,
// More in bit 13 and Do Not Retry in bit 14. It is a value: producing one
// never allocates.
type Status uint16

// Status code types.
const (
	SCTGeneric         = 0x0
	SCTCommandSpecific = 0x1
	SCTMedia           = 0x2
	SCTPath            = 0x3
)

// StatusDNR is the Do Not Retry bit.
const StatusDNR Status = 1 << 14

// StatusMore is the More bit: the Error Information log has more.
const StatusMore Status = 1 << 13

// MakeStatus builds a status from a type and code.
func MakeStatus(sct, sc uint8) Status { return Status(uint16(sct&7)<<8 | uint16(sc)) }

// SCT is the status code type.
func (s Status) SCT() uint8 { return uint8(s>>8) & 7 }

// SC is the status code.
func (s Status) SC() uint8 { return uint8(s) }

// DNR reports the Do Not Retry bit.
func (s Status) DNR() bool { return s&StatusDNR != 0 }

// Code strips CRD, More and DNR: the type and code alone, for comparisons.
func (s Status) Code() Status { return s & 0x7FF }

// OK reports success.
func (s Status) OK() bool { return s.Code() == 0 }

// Generic command status (SCT 0, NVMe Base 2.0 Figure 94).
const (
	StatusSuccess              Status = 0x00
	StatusInvalidOpcode        Status = 0x01
	StatusInvalidField         Status = 0x02
	StatusCIDConflict          Status = 0x03
	StatusDataTransferError    Status = 0x04
	StatusAbortedPowerLoss     Status = 0x05
	StatusInternalError        Status = 0x06
	StatusAbortRequested       Status = 0x07
	StatusAbortedSQDeletion    Status = 0x08
	StatusInvalidNamespace     Status = 0x0B
	StatusCommandSequenceError Status = 0x0C
	StatusInvalidSGLDescriptor Status = 0x0D
	StatusInvalidSGLCount      Status = 0x0E
	StatusDataSGLLengthInvalid Status = 0x0F
	StatusSGLTypeInvalid       Status = 0x11
	StatusSGLOffsetInvalid     Status = 0x16
	StatusHostIDInconsistent   Status = 0x18
	StatusKeepAliveExpired     Status = 0x19
	StatusKeepAliveInvalid     Status = 0x1A
	StatusLBAOutOfRange        Status = 0x80
	StatusCapacityExceeded     Status = 0x81
	StatusNamespaceNotReady    Status = 0x82
	StatusReservationConflict  Status = 0x83
)

// Command specific status (SCT 1).
const (
	StatusInvalidQueueSize     Status = 0x1<<8 | 0x02
	StatusAERLimitExceeded     Status = 0x1<<8 | 0x05
	StatusInvalidLogPage       Status = 0x1<<8 | 0x09
	StatusFeatureNotSaveable   Status = 0x1<<8 | 0x0D
	StatusFeatureNotChangeable Status = 0x1<<8 | 0x0E
	StatusConnectIncompatible  Status = 0x1<<8 | 0x80 // NVMe-oF 1.1 Figure 22
	StatusConnectCtrlBusy      Status = 0x1<<8 | 0x81
	StatusConnectInvalidParam  Status = 0x1<<8 | 0x82
	StatusConnectRestartDisc   Status = 0x1<<8 | 0x83
	StatusConnectInvalidHost   Status = 0x1<<8 | 0x84
	StatusConflictingAttrs     Status = 0x1<<8 | 0x80 // NVM command set
	StatusWriteToReadOnly      Status = 0x1<<8 | 0x82
)

// Media and data integrity errors (SCT 2).
const (
	StatusWriteFault       Status = 0x2<<8 | 0x80
	StatusUnrecoveredRead  Status = 0x2<<8 | 0x81
	StatusCompareFailure   Status = 0x2<<8 | 0x85
	StatusAccessDenied     Status = 0x2<<8 | 0x86
	StatusDeallocatedBlock Status = 0x2<<8 | 0x87
)

var statusNames = map[Status]string{
	StatusSuccess:              "success",
	StatusInvalidOpcode:        "invalid opcode",
	StatusInvalidField:         "invalid field in command",
	StatusCIDConflict:          "command ID conflict",
	StatusDataTransferError:    "data transfer error",
	StatusAbortedPowerLoss:     "aborted due to power loss",
	StatusInternalError:        "internal error",
	StatusAbortRequested:       "abort requested",
	StatusAbortedSQDeletion:    "aborted due to SQ deletion",
	StatusInvalidNamespace:     "invalid namespace or format",
	StatusCommandSequenceError: "command sequence error",
	StatusInvalidSGLDescriptor: "invalid SGL segment descriptor",
	StatusInvalidSGLCount:      "invalid number of SGL descriptors",
	StatusDataSGLLengthInvalid: "data SGL length invalid",
	StatusSGLTypeInvalid:       "SGL descriptor type invalid",
	StatusSGLOffsetInvalid:     "SGL offset invalid",
	StatusHostIDInconsistent:   "host identifier inconsistent format",
	StatusKeepAliveExpired:     "keep alive timer expired",
	StatusKeepAliveInvalid:     "keep alive timeout invalid",
	StatusLBAOutOfRange:        "LBA out of range",
	StatusCapacityExceeded:     "capacity exceeded",
	StatusNamespaceNotReady:    "namespace not ready",
	StatusReservationConflict:  "reservation conflict",
	StatusANAPersistentLoss:    "asymmetric access persistent loss",
	StatusANAInaccessible:      "asymmetric access inaccessible",
	StatusANATransition:        "asymmetric access transition",
	StatusInvalidQueueSize:     "invalid queue size",
	StatusAERLimitExceeded:     "asynchronous event request limit exceeded",
	StatusInvalidLogPage:       "invalid log page",
	StatusFeatureNotSaveable:   "feature identifier not saveable",
	StatusFeatureNotChangeable: "feature not changeable",
	StatusConnectIncompatible:  "connect: incompatible format / conflicting attributes",
	StatusConnectCtrlBusy:      "connect: controller busy",
	StatusConnectInvalidParam:  "connect: invalid parameters / write to read-only range",
	StatusConnectRestartDisc:   "connect: restart discovery",
	StatusConnectInvalidHost:   "connect: invalid host",
	StatusAuthRequired:         "authentication required (DH-HMAC-CHAP)",
	StatusWriteFault:           "write fault",
	StatusUnrecoveredRead:      "unrecovered read error",
	StatusCompareFailure:       "compare failure",
	StatusAccessDenied:         "access denied",
	StatusDeallocatedBlock:     "deallocated or unwritten logical block",
}

// String names the status like nvme-cli does, with its type and code.
func (s Status) String() string {
	name, ok := statusNames[s.Code()]
	if !ok {
		name = "unknown status"
	}
	str := fmt.Sprintf("%s (sct %#x sc %#x)", name, s.SCT(), s.SC())
	if s.DNR() {
		str += " dnr"
	}
	return str
}

// StatusError is a non-success status returned as a Go error by hosts.
type StatusError struct {
	Op     string
	Status Status
}

func (e *StatusError) Error() string {
	st := e.Status.String()
	if strings.HasPrefix(st, e.Op+": ") { // "connect: invalid host": the status names the command
		return st
	}
	return e.Op + ": " + st
}

// Is matches another *StatusError with the same code, ignoring DNR/More/CRD.
func (e *StatusError) Is(target error) bool {
	t, ok := target.(*StatusError)
	return ok && (t.Op == "" || t.Op == e.Op) && t.Status.Code() == e.Status.Code()
}
