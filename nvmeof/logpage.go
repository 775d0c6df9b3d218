package nvmeof

import (
	"fmt"
	"net/netip"
	"strings"
)

// Log page identifiers (NVMe Base 2.0 §5.16.1, Figure 202; NVMe-oF 1.1 §5.3).
const (
	LogSupported      = 0x00
	LogError          = 0x01
	LogSMART          = 0x02
	LogFirmwareSlot   = 0x03
	LogChangedNSList  = 0x04
	LogCommandEffects = 0x05
	LogDiscovery      = 0x70
)

// GetLogPage field accessors (CDW10-14).

// LID is the log page identifier.
func (c *SQE) LID() uint8 { return c[40] }

// LSP is the log specific field.
func (c *SQE) LSP() uint8 { return c[41] & 0x7F }

// RAE is Retain Asynchronous Event.
func (c *SQE) RAE() bool { return c[41]&0x80 != 0 }

// LogNumDwords is the number of dwords to return (NUMDU:NUMDL + 1):
// NUMDL is CDW10 bits 31:16, NUMDU is CDW11 bits 15:0 (NVMe Base 2.0
// Figures 197-198). The largest NUMD, 0xFFFFFFFF, wraps to 0.
func (c *SQE) LogNumDwords() uint32 {
	return (uint32(le.Uint16(c[44:]))<<16 | uint32(le.Uint16(c[42:]))) + 1
}

// LogOffset is the log page offset in bytes.
func (c *SQE) LogOffset() uint64 { return le.Uint64(c[48:]) }

// SetGetLogPage fills a Get Log Page command for n bytes (a multiple of 4) at offset.
func (c *SQE) SetGetLogPage(lid uint8, nsid uint32, n uint32, offset uint64) {
	c.SetOpcode(AdminGetLogPage)
	c.SetNSID(nsid)
	numd := n/4 - 1
	c[40] = lid
	c[41] = 0
	le.PutUint16(c[42:], uint16(numd))     // NUMDL
	le.PutUint16(c[44:], uint16(numd>>16)) // NUMDU
	le.PutUint16(c[46:], 0)                // LSI
	le.PutUint64(c[48:], offset)
}

// ErrorLogEntrySize is the size of one Error Information log entry (Figure 205).
const ErrorLogEntrySize = 64

// ErrorLogEntry is one entry of the Error Information log page.
type ErrorLogEntry struct {
	ErrorCount uint64
	SQID       uint16
	CID        uint16
	Status     Status
	ParamLoc   uint16
	LBA        uint64
	NSID       uint32
	TrType     uint8
}

// Encode writes the entry into b (ErrorLogEntrySize bytes).
func (e *ErrorLogEntry) Encode(b []byte) {
	clear(b[:ErrorLogEntrySize])
	le.PutUint64(b[0:], e.ErrorCount)
	le.PutUint16(b[8:], e.SQID)
	le.PutUint16(b[10:], e.CID)
	le.PutUint16(b[12:], uint16(e.Status)<<1)
	le.PutUint16(b[14:], e.ParamLoc)
	le.PutUint64(b[16:], e.LBA)
	le.PutUint32(b[24:], e.NSID)
	b[29] = e.TrType
}

// DecodeErrorLogEntry parses one entry.
func DecodeErrorLogEntry(b []byte) (ErrorLogEntry, error) {
	if len(b) < ErrorLogEntrySize {
		return ErrorLogEntry{}, fmt.Errorf("error log entry: %d bytes, need %d", len(b), ErrorLogEntrySize)
	}
	return ErrorLogEntry{
		ErrorCount: le.Uint64(b[0:]), SQID: le.Uint16(b[8:]), CID: le.Uint16(b[10:]),
		Status: Status(le.Uint16(b[12:]) >> 1), ParamLoc: le.Uint16(b[14:]),
		LBA: le.Uint64(b[16:]), NSID: le.Uint32(b[24:]), TrType: b[29],
	}, nil
}

// SMARTLogSize is the size of the SMART / Health Information log (Figure 207).
const SMARTLogSize = 512

// SMARTLog holds the SMART / Health fields flashpath reports. Counters of
// data units count thousands of 512-byte units, rounded up (as the spec says).
type SMARTLog struct {
	CriticalWarning  uint8
	TemperatureK     uint16
	AvailableSpare   uint8
	SpareThreshold   uint8
	PercentUsed      uint8
	DataUnitsRead    uint64
	DataUnitsWritten uint64
	HostReads        uint64
	HostWrites       uint64
	PowerCycles      uint64
	PowerOnHours     uint64
	UnsafeShutdowns  uint64
	MediaErrors      uint64
	NumErrLogEntries uint64
}

// Encode writes the log into b (SMARTLogSize bytes). 128-bit counters carry
// their low 64 bits.
func (s *SMARTLog) Encode(b []byte) {
	clear(b[:SMARTLogSize])
	b[0] = s.CriticalWarning
	le.PutUint16(b[1:], s.TemperatureK)
	b[3] = s.AvailableSpare
	b[4] = s.SpareThreshold
	b[5] = s.PercentUsed
	le.PutUint64(b[32:], s.DataUnitsRead)
	le.PutUint64(b[48:], s.DataUnitsWritten)
	le.PutUint64(b[64:], s.HostReads)
	le.PutUint64(b[80:], s.HostWrites)
	le.PutUint64(b[112:], s.PowerCycles)
	le.PutUint64(b[128:], s.PowerOnHours)
	le.PutUint64(b[144:], s.UnsafeShutdowns)
	le.PutUint64(b[160:], s.MediaErrors)
	le.PutUint64(b[176:], s.NumErrLogEntries)
}

// DecodeSMARTLog parses the SMART / Health log.
func DecodeSMARTLog(b []byte) (SMARTLog, error) {
	if len(b) < SMARTLogSize {
		return SMARTLog{}, fmt.Errorf("smart log: %d bytes, need %d", len(b), SMARTLogSize)
	}
	return SMARTLog{
		CriticalWarning: b[0], TemperatureK: le.Uint16(b[1:]), AvailableSpare: b[3],
		SpareThreshold: b[4], PercentUsed: b[5],
		DataUnitsRead: le.Uint64(b[32:]), DataUnitsWritten: le.Uint64(b[48:]),
		HostReads: le.Uint64(b[64:]), HostWrites: le.Uint64(b[80:]),
		PowerCycles: le.Uint64(b[112:]), PowerOnHours: le.Uint64(b[128:]),
		UnsafeShutdowns: le.Uint64(b[144:]), MediaErrors: le.Uint64(b[160:]),
		NumErrLogEntries: le.Uint64(b[176:]),
	}, nil
}

// FirmwareSlotLogSize is the size of the Firmware Slot Information log (Figure 209).
const FirmwareSlotLogSize = 512

// EncodeFirmwareSlotLog writes a log with slot 1 active and holding rev.
func EncodeFirmwareSlotLog(b []byte, rev string) {
	clear(b[:FirmwareSlotLogSize])
	b[0] = 1 // AFI: slot 1 active
	putASCII(b[8:16], rev)
}

// DecodeFirmwareSlotLog returns the active slot and the revisions of slots 1-7.
func DecodeFirmwareSlotLog(b []byte) (active uint8, revs [7]string, err error) {
	if len(b) < FirmwareSlotLogSize {
		return 0, revs, fmt.Errorf("firmware slot log: %d bytes, need %d", len(b), FirmwareSlotLogSize)
	}
	for i := range revs {
		revs[i] = getASCII(b[8+8*i : 16+8*i])
	}
	return b[0] & 7, revs, nil
}

// ChangedNSListSize is the size of the Changed Namespace List log (Figure 210).
const ChangedNSListSize = 4096

// EncodeChangedNSList writes the changed NSIDs; more than 1024 is
// reported as a single 0xFFFFFFFF entry, as the spec says.
func EncodeChangedNSList(b []byte, nsids []uint32) {
	clear(b[:ChangedNSListSize])
	if len(nsids) > ChangedNSListSize/4 {
		le.PutUint32(b, 0xFFFFFFFF)
		return
	}
	for i, id := range nsids {
		le.PutUint32(b[4*i:], id)
	}
}

// CommandEffectsLogSize is the size of the Commands Supported and Effects log (Figure 210).
const CommandEffectsLogSize = 4096

// Command effects bits.
const (
	CSECSUPP = 1 << 0 // command supported
	CSELBCC  = 1 << 1 // logical block content change
	CSENCC   = 1 << 2 // namespace capability change
	CSENIC   = 1 << 3 // namespace inventory change
	CSECCC   = 1 << 4 // controller capability change
)

// EncodeCommandEffects writes the log from per-opcode effects.
func EncodeCommandEffects(b []byte, admin, io *[256]uint32) {
	clear(b[:CommandEffectsLogSize])
	for i := 0; i < 256; i++ {
		le.PutUint32(b[4*i:], admin[i])
		le.PutUint32(b[1024+4*i:], io[i])
	}
}

// DecodeCommandEffects parses the log.
func DecodeCommandEffects(b []byte) (admin, io [256]uint32, err error) {
	if len(b) < CommandEffectsLogSize {
		return admin, io, fmt.Errorf("command effects log: %d bytes, need %d", len(b), CommandEffectsLogSize)
	}
	for i := 0; i < 256; i++ {
		admin[i] = le.Uint32(b[4*i:])
		io[i] = le.Uint32(b[1024+4*i:])
	}
	return admin, io, nil
}

// Discovery log page (NVMe-oF 1.1 §5.3, Figures 31-32).
const (
	DiscoveryHeaderSize = 1024
	DiscoveryEntrySize  = 1024
)

// The discovery log entry's one-byte fields have types whose String is
// the name nvme-cli prints (nvme-print.c), "unrecognized" for values it
// does not name. The constants stay untyped, so they also fit the
// entry's plain uint8 fields.

// TrType is a transport type (TRTYPE).
type TrType uint8

// Transport types (TRTYPE).
const (
	TrTypeRDMA = 1
	TrTypeFC   = 2
	TrTypeTCP  = 3
	TrTypeLoop = 254
)

func (t TrType) String() string {
	switch t {
	case TrTypeRDMA:
		return "rdma"
	case TrTypeFC:
		return "fc"
	case TrTypeTCP:
		return "tcp"
	case TrTypeLoop:
		return "loop"
	}
	return "unrecognized"
}

// AdrFam is an address family (ADRFAM).
type AdrFam uint8

// Address families (ADRFAM).
const (
	AdrFamIPv4      = 1
	AdrFamIPv6      = 2
	AdrFamIB        = 3
	AdrFamFC        = 4
	AdrFamIntraHost = 254 // loop
)

func (a AdrFam) String() string {
	switch a {
	case AdrFamIPv4:
		return "ipv4"
	case AdrFamIPv6:
		return "ipv6"
	case AdrFamIB:
		return "infiniband"
	case AdrFamFC:
		return "fibre-channel"
	case AdrFamIntraHost:
		return "intra-host"
	}
	return "unrecognized"
}

// SubType is a subsystem type (SUBTYPE).
type SubType uint8

// Subsystem types (SUBTYPE).
const (
	SubTypeReferral  = 1 // a discovery service other than this one
	SubTypeNVM       = 2
	SubTypeDiscovery = 3 // this discovery controller
)

func (s SubType) String() string {
	switch s {
	case SubTypeReferral:
		return "discovery subsystem referral"
	case SubTypeNVM:
		return "nvme subsystem"
	case SubTypeDiscovery:
		return "current discovery subsystem"
	}
	return "unrecognized"
}

// TReq is the transport requirements field (TREQ).
type TReq uint8

// Transport requirements (TREQ), secure channel bits (NVMe-oF 1.1 §5.3),
// and bit 2, SQ flow control disable supported (TP 8005).
const (
	TReqSecureChannelNotSpecified = 0
	TReqSecureChannelRequired     = 1
	TReqSecureChannelNotRequired  = 2
	TReqSecureChannelMask         = 3
	TReqDisableSQFlow             = 4
)

func (t TReq) String() string {
	var s string
	switch t & TReqSecureChannelMask {
	case TReqSecureChannelNotSpecified:
		s = "not specified"
	case TReqSecureChannelRequired:
		s = "required"
	case TReqSecureChannelNotRequired:
		s = "not required"
	default:
		s = "reserved"
	}
	if t&TReqDisableSQFlow != 0 {
		s += ", sq flow control disable supported"
	}
	return s
}

// EFlags is the entry flags field (EFLAGS, NVMe-oF 1.1a TP 8013/8014).
type EFlags uint16

// Entry flags (EFLAGS).
const (
	EFlagsDuplicateReturnInfo          = 1 << 0 // DUPRETINFO
	EFlagsExplicitDiscoveryConnections = 1 << 1 // EPCSD
	EFlagsNoCDCConnectivity            = 1 << 2 // NCC
)

func (f EFlags) String() string {
	var parts []string
	if f&EFlagsDuplicateReturnInfo != 0 {
		parts = append(parts, "duplicate discovery information")
	}
	if f&EFlagsExplicitDiscoveryConnections != 0 {
		parts = append(parts, "explicit discovery connections")
	}
	if f&EFlagsNoCDCConnectivity != 0 {
		parts = append(parts, "no cdc connectivity")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// SecType is the NVMe/TCP security type of the entry's TSAS (SECTYPE).
type SecType uint8

// NVMe/TCP security types (SECTYPE).
const (
	SecTypeNone  = 0
	SecTypeTLS12 = 1
	SecTypeTLS13 = 2
)

func (s SecType) String() string {
	switch s {
	case SecTypeNone:
		return "none"
	case SecTypeTLS12:
		return "tls"
	case SecTypeTLS13:
		return "tls13"
	}
	return "unrecognized"
}

// DiscoveryEntry is one Discovery Log Page Entry.
type DiscoveryEntry struct {
	TrType  uint8
	AdrFam  uint8
	SubType uint8
	TReq    uint8
	PortID  uint16
	CntlID  uint16
	ASQSZ   uint16
	EFlags  uint16
	TrSvcID string
	SubNQN  string
	TrAddr  string
	// TSAS for TCP: security type (0 = none).
	SecType uint8
	// TSAS for RDMA: QP service type, provider type, connection
	// management service, partition key.
	RDMAQPType, RDMAPrType, RDMACMS uint8
	RDMAPKey                        uint16
}

// DiscoveryLog is a decoded discovery log page.
type DiscoveryLog struct {
	GenCtr  uint64
	NumRec  uint64
	RecFmt  uint16
	Entries []DiscoveryEntry
}

// AdrFamFor returns the ADRFAM of an address.
func AdrFamFor(a netip.Addr) uint8 {
	if a.Is4() || a.Is4In6() {
		return AdrFamIPv4
	}
	return AdrFamIPv6
}

// DiscoveryLogSize returns the size of a log page with n entries.
func DiscoveryLogSize(n int) int { return DiscoveryHeaderSize + n*DiscoveryEntrySize }

// EncodeDiscoveryLog writes the full log page into b (DiscoveryLogSize bytes).
func EncodeDiscoveryLog(b []byte, genctr uint64, entries []DiscoveryEntry) error {
	if len(b) < DiscoveryLogSize(len(entries)) {
		return fmt.Errorf("discovery log: buffer %d bytes, need %d", len(b), DiscoveryLogSize(len(entries)))
	}
	clear(b[:DiscoveryLogSize(len(entries))])
	le.PutUint64(b[0:], genctr)
	le.PutUint64(b[8:], uint64(len(entries)))
	for i := range entries {
		e := &entries[i]
		if len(e.TrSvcID) > 32 || len(e.TrAddr) > 256 || len(e.SubNQN) > 256 {
			return fmt.Errorf("discovery entry %d: field too long", i)
		}
		p := b[DiscoveryHeaderSize+i*DiscoveryEntrySize:]
		p[0], p[1], p[2], p[3] = e.TrType, e.AdrFam, e.SubType, e.TReq
		le.PutUint16(p[4:], e.PortID)
		le.PutUint16(p[6:], e.CntlID)
		le.PutUint16(p[8:], e.ASQSZ)
		le.PutUint16(p[10:], e.EFlags)
		putASCII(p[32:64], e.TrSvcID)
		copy(p[256:512], e.SubNQN)
		putASCII(p[512:768], e.TrAddr)
		if e.TrType == TrTypeRDMA {
			p[768], p[769], p[770] = e.RDMAQPType, e.RDMAPrType, e.RDMACMS
			le.PutUint16(p[776:], e.RDMAPKey)
		} else {
			p[768] = e.SecType
		}
	}
	return nil
}

// DecodeDiscoveryLog parses a discovery log page; b may hold fewer entries
// than NUMREC (the host reads the header first), and only whole entries are decoded.
func DecodeDiscoveryLog(b []byte) (DiscoveryLog, error) {
	var l DiscoveryLog
	if len(b) < DiscoveryHeaderSize {
		return l, fmt.Errorf("discovery log: %d bytes, need at least %d", len(b), DiscoveryHeaderSize)
	}
	l.GenCtr = le.Uint64(b[0:])
	l.NumRec = le.Uint64(b[8:])
	l.RecFmt = le.Uint16(b[16:])
	have := uint64((len(b) - DiscoveryHeaderSize) / DiscoveryEntrySize)
	n := min(l.NumRec, have)
	for i := uint64(0); i < n; i++ {
		p := b[DiscoveryHeaderSize+int(i)*DiscoveryEntrySize:]
		e := DiscoveryEntry{
			TrType: p[0], AdrFam: p[1], SubType: p[2], TReq: p[3],
			PortID: le.Uint16(p[4:]), CntlID: le.Uint16(p[6:]),
			ASQSZ: le.Uint16(p[8:]), EFlags: le.Uint16(p[10:]),
			TrSvcID: getASCII(p[32:64]), SubNQN: getCString(p[256:512]),
			TrAddr: getASCII(p[512:768]),
		}
		if e.TrType == TrTypeRDMA {
			e.RDMAQPType, e.RDMAPrType, e.RDMACMS = p[768], p[769], p[770]
			e.RDMAPKey = le.Uint16(p[776:])
		} else {
			e.SecType = p[768]
		}
		l.Entries = append(l.Entries, e)
	}
	return l, nil
}

// Features (NVMe Base 2.0 §5.27.1, Figure 317).
const (
	FeatArbitration    = 0x01
	FeatPowerMgmt      = 0x02
	FeatTempThreshold  = 0x04
	FeatErrorRecovery  = 0x05
	FeatVolatileWC     = 0x06
	FeatNumQueues      = 0x07
	FeatIRQCoalesce    = 0x08
	FeatIRQConfig      = 0x09
	FeatWriteAtomicity = 0x0A
	FeatAsyncEvent     = 0x0B
	FeatKeepAlive      = 0x0F
	FeatHostID         = 0x81
	FeatResvMask       = 0x82 // reservation notification mask (namespace)
	FeatResvPersist    = 0x83 // reservation persistence (namespace)
)

// FID is the feature identifier of Get/Set Features (CDW10 bits 7:0).
func (c *SQE) FID() uint8 { return c[40] }

// FeatureSel is the Get Features select field (CDW10 bits 10:8).
func (c *SQE) FeatureSel() uint8 { return c[41] & 7 }

// FeatureSave is the Set Features save bit (CDW10 bit 31).
func (c *SQE) FeatureSave() bool { return c[43]&0x80 != 0 }

// SetFeatures fills a Set Features command.
func (c *SQE) SetFeatures(fid uint8, cdw11 uint32) {
	c.SetOpcode(AdminSetFeatures)
	c.SetCDW(10, uint32(fid))
	c.SetCDW(11, cdw11)
}

// GetFeatures fills a Get Features command.
func (c *SQE) GetFeatures(fid uint8) {
	c.SetOpcode(AdminGetFeatures)
	c.SetCDW(10, uint32(fid))
}

// Asynchronous event completion DW0 (NVMe Base 2.0 §5.2, Figure 146).
const (
	AEReasonNotice             = 0x2
	AENoticeNSAttrChanged      = 0x00
	AENoticeDiscoveryLogChange = 0xF0 // NVMe-oF 1.1 §5.3: on discovery controllers
)

// AsyncEventDW0 builds the DW0 of an AER completion.
func AsyncEventDW0(typ, info, lid uint8) uint32 {
	return uint32(typ&7) | uint32(info)<<8 | uint32(lid)<<16
}
