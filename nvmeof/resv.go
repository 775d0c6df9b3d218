package nvmeof

import "fmt"

// Reservation types (NVMe Base 2.0 §8.19, Figure 557: the Reservation
// Acquire command's RTYPE).
const (
	ResvWriteExclusive         = 1
	ResvExclusiveAccess        = 2
	ResvWriteExclusiveRegOnly  = 3
	ResvExclusiveAccessRegOnly = 4
	ResvWriteExclusiveAllRegs  = 5
	ResvExclusiveAccessAllRegs = 6
)

// ResvTypeName names a reservation type as nvme-cli does.
func ResvTypeName(t uint8) string {
	switch t {
	case 0:
		return "none"
	case ResvWriteExclusive:
		return "write exclusive"
	case ResvExclusiveAccess:
		return "exclusive access"
	case ResvWriteExclusiveRegOnly:
		return "write exclusive, registrants only"
	case ResvExclusiveAccessRegOnly:
		return "exclusive access, registrants only"
	case ResvWriteExclusiveAllRegs:
		return "write exclusive, all registrants"
	case ResvExclusiveAccessAllRegs:
		return "exclusive access, all registrants"
	}
	return fmt.Sprintf("reserved type %d", t)
}

// Identify Namespace RESCAP bits (NVM Command Set 1.0 Figure 97, byte 31).
const (
	RescapPTPL = 1 << 0 // persist through power loss
	// RescapTypes is every reservation type (bits 1 to 6).
	RescapTypes = 0x7E
	RescapIEKEY = 1 << 7 // Ignore Existing Key as in revision 1.3 and later
)

// Reservation command actions, CDW10 bits 2:0.
const (
	ResvRegister   = 0 // Reservation Register: RREGA
	ResvUnregister = 1
	ResvReplace    = 2

	ResvAcquire         = 0 // Reservation Acquire: RACQA
	ResvPreempt         = 1
	ResvPreemptAndAbort = 2

	ResvRelease = 0 // Reservation Release: RRELA
	ResvClear   = 1
)

// ResvIEKEY is CDW10's Ignore Existing Key bit (Register; in Acquire and
// Release it is reserved).
const ResvIEKEY = 1 << 3

// Sizes of the reservation commands' data: Register and Acquire carry two
// keys, Release one.
const (
	ResvKeysSize      = 16
	ResvReleaseSize   = 8
	ResvReportHdrSize = 64 // extended Reservation Status data structure
	ResvReportRegSize = 64 // its Registrant entry (extended)
)

// ResvKeys decodes a Register's or Acquire's data: the current key, and
// the new (Register) or preempt (Acquire) key; ok false when b is short.
func ResvKeys(b []byte) (cur, other uint64, ok bool) {
	if len(b) < ResvKeysSize {
		return 0, 0, false
	}
	return le.Uint64(b), le.Uint64(b[8:]), true
}

// PutResvKeys encodes a Register's or Acquire's data into b (16 bytes).
func PutResvKeys(b []byte, cur, other uint64) {
	le.PutUint64(b, cur)
	le.PutUint64(b[8:], other)
}

// ResvRegistrant is one registrant of a Reservation Report (extended data
// structure, NVMe Base 2.0 Figure 563).
type ResvRegistrant struct {
	CntlID uint16 // FFFFh: dynamic controller model
	Holds  bool   // RCSTS bit 0: the host holds the reservation
	Key    uint64
	HostID [16]byte
}

// ResvReport is a Reservation Report's extended Reservation Status data
// structure (NVMe Base 2.0 Figure 562).
type ResvReport struct {
	Gen   uint32
	Type  uint8  // 0: no reservation held
	Regs  uint16 // registrants in all, also those past the data's end
	PTPLS bool
	List  []ResvRegistrant // those the data holds
}

// Encode writes r into b, as much as b holds (the host's NUMD may cut it
// short), and returns the length written.
func (r *ResvReport) Encode(b []byte) int {
	var hdr [ResvReportHdrSize]byte
	le.PutUint32(hdr[0:], r.Gen)
	hdr[4] = r.Type
	le.PutUint16(hdr[5:], r.Regs)
	if r.PTPLS {
		hdr[9] = 1
	}
	n := copy(b, hdr[:])
	for _, g := range r.List {
		if n >= len(b) {
			break
		}
		var e [ResvReportRegSize]byte
		le.PutUint16(e[0:], g.CntlID)
		if g.Holds {
			e[2] = 1
		}
		le.PutUint64(e[8:], g.Key)
		copy(e[16:32], g.HostID[:])
		n += copy(b[n:], e[:])
	}
	return n
}

// DecodeResvReport parses the extended Reservation Status data structure
// the host asked for: the entries its data holds, up to Regs.
func DecodeResvReport(b []byte) (ResvReport, error) {
	var r ResvReport
	if len(b) < ResvReportHdrSize {
		return r, fmt.Errorf("reservation report: %d bytes, need %d", len(b), ResvReportHdrSize)
	}
	r.Gen = le.Uint32(b[0:])
	r.Type = b[4]
	r.Regs = le.Uint16(b[5:])
	r.PTPLS = b[9]&1 != 0
	for i := range int(r.Regs) {
		e := b[ResvReportHdrSize+i*ResvReportRegSize:]
		if len(e) < ResvReportRegSize {
			break
		}
		g := ResvRegistrant{CntlID: le.Uint16(e[0:]), Holds: e[2]&1 != 0, Key: le.Uint64(e[8:])}
		copy(g.HostID[:], e[16:32])
		r.List = append(r.List, g)
	}
	return r, nil
}

// The Reservation Notification log page (NVMe Base 2.0 §5.16.1.25).
const (
	LogResvNotification = 0x80
	ResvLogSize         = 64

	ResvLogEmpty           = 0
	ResvLogRegPreempted    = 1
	ResvLogResvReleased    = 2
	ResvLogResvPreempted   = 3
	AEIOCmdSpecific        = 0x6 // Asynchronous Event Type: I/O command specific status
	AEInfoResvLogAvailable = 0x0 // its information: Reservation Log Page Available
)

// ResvLog is one Reservation Notification log page.
type ResvLog struct {
	Count     uint64 // 0: empty; wraps from 2^64-1 to 1
	Type      uint8  // ResvLog*
	Available uint8  // further pages waiting
	NSID      uint32
}

// Encode writes the page into b (64 bytes).
func (l *ResvLog) Encode(b []byte) {
	clear(b[:ResvLogSize])
	le.PutUint64(b[0:], l.Count)
	b[8] = l.Type
	b[9] = l.Available
	le.PutUint32(b[12:], l.NSID)
}

// DecodeResvLog parses a Reservation Notification log page.
func DecodeResvLog(b []byte) (ResvLog, error) {
	if len(b) < ResvLogSize {
		return ResvLog{}, fmt.Errorf("reservation notification log: %d bytes, need %d", len(b), ResvLogSize)
	}
	return ResvLog{Count: le.Uint64(b[0:]), Type: b[8], Available: b[9], NSID: le.Uint32(b[12:])}, nil
}

// Reservation Notification Mask bits (Set Features 82h): each masks one
// log page type.
const (
	ResvMaskRegPreempted  = 1 << 1
	ResvMaskResvReleased  = 1 << 2
	ResvMaskResvPreempted = 1 << 3
	ResvMaskAll           = ResvMaskRegPreempted | ResvMaskResvReleased | ResvMaskResvPreempted
)
