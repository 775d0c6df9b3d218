package nvmeof

import (
	"bytes"
	"fmt"
)

// IdentifySize is the size of every Identify data structure.
const IdentifySize = 4096

// Identify CNS values (NVMe Base 2.0 §5.17.1, Figure 273).
const (
	CNSNamespace        = 0x00
	CNSController       = 0x01
	CNSActiveNSList     = 0x02
	CNSNSDescList       = 0x03
	CNSCSNamespace      = 0x05
	CNSCSController     = 0x06
	CNSCSActiveNSList   = 0x07
	CNSIndependentNS    = 0x08
	CNSAllocatedNSList  = 0x10
	CNSCtrlList         = 0x13
	CNSCommandSetStruct = 0x1C
)

// CNS is the Identify Controller or Namespace Structure (CDW10 bits 7:0).
func (c *SQE) CNS() uint8 { return c[40] }

// CNTID is the Identify controller identifier (CDW10 bits 31:16).
func (c *SQE) CNTID() uint16 { return le.Uint16(c[42:]) }

// CSI is the Identify command set identifier (CDW11 bits 31:24).
func (c *SQE) CSI() uint8 { return c[47] }

// SetIdentify fills an Identify command.
func (c *SQE) SetIdentify(cns uint8, nsid uint32) {
	c.SetOpcode(AdminIdentify)
	c.SetNSID(nsid)
	c.SetCDW(10, uint32(cns))
}

// Controller types (CNTRLTYPE).
const (
	CtrlTypeIO        = 1
	CtrlTypeDiscovery = 2
	CtrlTypeAdmin     = 3
)

// IdentifyController is the subset of the Identify Controller data structure
// (NVMe Base 2.0 §5.17.2.1, Figure 275; fabrics fields NVMe-oF 1.1 Figure 28)
// that flashpath fills in and reads back.
type IdentifyController struct {
	VID, SSVID uint16
	Serial     string // SN, 20 ASCII bytes
	Model      string // MN, 40 ASCII bytes
	Firmware   string // FR, 8 ASCII bytes
	RAB        uint8
	IEEE       [3]byte
	CMIC       uint8
	MDTS       uint8 // 2^MDTS minimum pages; 0 = no limit
	CntlID     uint16
	Version    uint32
	OAES       uint32
	CTRATT     uint32
	CntrlType  uint8
	FGUID      [16]byte
	OACS       uint16
	ACL        uint8
	AERL       uint8
	FRMW       uint8
	LPA        uint8
	ELPE       uint8
	KAS        uint16 // keep-alive granularity, 100 ms units
	ANATT      uint8  // ANA transition time, seconds
	ANACAP     uint8
	ANAGRPMAX  uint32
	NANAGRPID  uint32
	SQES, CQES uint8
	MaxCmd     uint16
	NN         uint32
	ONCS       uint16
	FUSES      uint16
	FNA        uint8
	VWC        uint8
	AWUN       uint16
	AWUPF      uint16
	SGLS       uint32
	MNAN       uint32
	SubNQN     string
	IOCCSZ     uint32 // 16-byte units, including the 64-byte SQE
	IORCSZ     uint32
	ICDOFF     uint16
	FCATT      uint8
	MSDBD      uint8
	OFCS       uint16
}

// OAES bits (and the Asynchronous Event Configuration feature's).
const (
	OAESNamespaceAttr   = 1 << 8
	OAESDiscoveryChange = 1 << 31 // Discovery Log Page Change notices (discovery controllers)
)

// CTRATT bits.
const CTRATTHostID128 = 1 << 0

// CMIC bits.
const CMICMultiCtrl = 1 << 1

// LPA bits.
const (
	LPASmartPerNS     = 1 << 0
	LPACommandEffects = 1 << 1
	LPAExtendedData   = 1 << 2
)

// ONCS bits.
const (
	ONCSCompare     = 1 << 0
	ONCSWriteUncor  = 1 << 1
	ONCSDSM         = 1 << 2
	ONCSWriteZeroes = 1 << 3
	ONCSResv        = 1 << 5 // reservations
)

// VWC bits: present, and flush with the broadcast NSID supported.
const (
	VWCPresent        = 1 << 0
	VWCFlushBroadcast = 3 << 1
)

// SGLS bits.
const (
	SGLSSupported       = 1 << 0
	SGLSKeyed           = 1 << 2
	SGLSOffsetSupported = 1 << 20
)

// Encode writes the structure into b (at least IdentifySize bytes).
func (id *IdentifyController) Encode(b []byte) error {
	if len(b) < IdentifySize {
		return fmt.Errorf("identify controller: buffer %d bytes, need %d", len(b), IdentifySize)
	}
	clear(b[:IdentifySize])
	le.PutUint16(b[0:], id.VID)
	le.PutUint16(b[2:], id.SSVID)
	putASCII(b[4:24], id.Serial)
	putASCII(b[24:64], id.Model)
	putASCII(b[64:72], id.Firmware)
	b[72] = id.RAB
	copy(b[73:76], id.IEEE[:])
	b[76] = id.CMIC
	b[77] = id.MDTS
	le.PutUint16(b[78:], id.CntlID)
	le.PutUint32(b[80:], id.Version)
	le.PutUint32(b[92:], id.OAES)
	le.PutUint32(b[96:], id.CTRATT)
	b[111] = id.CntrlType
	copy(b[112:128], id.FGUID[:])
	le.PutUint16(b[256:], id.OACS)
	b[258] = id.ACL
	b[259] = id.AERL
	b[260] = id.FRMW
	b[261] = id.LPA
	b[262] = id.ELPE
	le.PutUint16(b[320:], id.KAS)
	b[342] = id.ANATT
	b[343] = id.ANACAP
	le.PutUint32(b[344:], id.ANAGRPMAX)
	le.PutUint32(b[348:], id.NANAGRPID)
	b[512] = id.SQES
	b[513] = id.CQES
	le.PutUint16(b[514:], id.MaxCmd)
	le.PutUint32(b[516:], id.NN)
	le.PutUint16(b[520:], id.ONCS)
	le.PutUint16(b[522:], id.FUSES)
	b[524] = id.FNA
	b[525] = id.VWC
	le.PutUint16(b[526:], id.AWUN)
	le.PutUint16(b[528:], id.AWUPF)
	le.PutUint32(b[536:], id.SGLS)
	le.PutUint32(b[540:], id.MNAN)
	if len(id.SubNQN) > 255 {
		return fmt.Errorf("identify controller: SUBNQN %d bytes, longer than 255", len(id.SubNQN))
	}
	copy(b[768:1024], id.SubNQN)
	le.PutUint32(b[1792:], id.IOCCSZ)
	le.PutUint32(b[1796:], id.IORCSZ)
	le.PutUint16(b[1800:], id.ICDOFF)
	b[1802] = id.FCATT
	b[1803] = id.MSDBD
	le.PutUint16(b[1804:], id.OFCS)
	// Power state 0 descriptor: max power 25.00 W (centiwatts), operational.
	le.PutUint16(b[2048:], 2500)
	return nil
}

// DecodeIdentifyController parses an Identify Controller data structure.
func DecodeIdentifyController(b []byte) (IdentifyController, error) {
	var id IdentifyController
	if len(b) < IdentifySize {
		return id, fmt.Errorf("identify controller: %d bytes, need %d", len(b), IdentifySize)
	}
	id.VID = le.Uint16(b[0:])
	id.SSVID = le.Uint16(b[2:])
	id.Serial = getASCII(b[4:24])
	id.Model = getASCII(b[24:64])
	id.Firmware = getASCII(b[64:72])
	id.RAB = b[72]
	copy(id.IEEE[:], b[73:76])
	id.CMIC = b[76]
	id.MDTS = b[77]
	id.CntlID = le.Uint16(b[78:])
	id.Version = le.Uint32(b[80:])
	id.OAES = le.Uint32(b[92:])
	id.CTRATT = le.Uint32(b[96:])
	id.CntrlType = b[111]
	copy(id.FGUID[:], b[112:128])
	id.OACS = le.Uint16(b[256:])
	id.ACL = b[258]
	id.AERL = b[259]
	id.FRMW = b[260]
	id.LPA = b[261]
	id.ELPE = b[262]
	id.KAS = le.Uint16(b[320:])
	id.ANATT = b[342]
	id.ANACAP = b[343]
	id.ANAGRPMAX = le.Uint32(b[344:])
	id.NANAGRPID = le.Uint32(b[348:])
	id.SQES = b[512]
	id.CQES = b[513]
	id.MaxCmd = le.Uint16(b[514:])
	id.NN = le.Uint32(b[516:])
	id.ONCS = le.Uint16(b[520:])
	id.FUSES = le.Uint16(b[522:])
	id.FNA = b[524]
	id.VWC = b[525]
	id.AWUN = le.Uint16(b[526:])
	id.AWUPF = le.Uint16(b[528:])
	id.SGLS = le.Uint32(b[536:])
	id.MNAN = le.Uint32(b[540:])
	id.SubNQN = getCString(b[768:1024])
	id.IOCCSZ = le.Uint32(b[1792:])
	id.IORCSZ = le.Uint32(b[1796:])
	id.ICDOFF = le.Uint16(b[1800:])
	id.FCATT = b[1802]
	id.MSDBD = b[1803]
	id.OFCS = le.Uint16(b[1804:])
	return id, nil
}

// MaxTransfer returns the maximum data transfer size in bytes implied by
// MDTS for a minimum page size of 4 KiB; 0 means no limit.
func (id *IdentifyController) MaxTransfer() int {
	if id.MDTS == 0 || id.MDTS > 20 {
		return 0
	}
	return 4096 << id.MDTS
}

// LBAFormat is an LBA format descriptor.
type LBAFormat struct {
	MS    uint16 // metadata size
	LBADS uint8  // log2 of the LBA data size
	RP    uint8  // relative performance
}

// IdentifyNamespace is the subset of the Identify Namespace data structure
// (NVM Command Set 1.0 §4.1.5.1, Figure 97) that flashpath uses.
type IdentifyNamespace struct {
	NSZE, NCAP, NUSE uint64
	NSFEAT           uint8
	NLBAF            uint8 // 0-based, up to 63; LBAF holds the first 16
	FLBAS            uint8
	DLFEAT           uint8
	NMIC             uint8
	RESCAP           uint8 // reservation capabilities (Rescap*)
	NOWS             uint16
	NVMCAP           [16]byte
	ANAGRPID         uint32
	NSATTR           uint8 // bit 0: write protected
	NGUID            [16]byte
	EUI64            [8]byte
	LBAF             [16]LBAFormat
}

// NSFEAT bits.
const NSFEATThin = 1 << 0

// NSATTR bits: the namespace is write protected (NVM Command Set 1.0
// §4.1.5.1, byte 99).
const NSATTRWriteProtected = 1 << 0

// DLFEAT: deallocated blocks read as zeros, and Write Zeroes may deallocate.
const DLFEATZeroes = 0x1 | 1<<3

// Encode writes the structure into b (at least IdentifySize bytes).
func (ns *IdentifyNamespace) Encode(b []byte) error {
	if len(b) < IdentifySize {
		return fmt.Errorf("identify namespace: buffer %d bytes, need %d", len(b), IdentifySize)
	}
	clear(b[:IdentifySize])
	le.PutUint64(b[0:], ns.NSZE)
	le.PutUint64(b[8:], ns.NCAP)
	le.PutUint64(b[16:], ns.NUSE)
	b[24] = ns.NSFEAT
	b[25] = ns.NLBAF
	b[26] = ns.FLBAS
	b[30] = ns.NMIC
	b[31] = ns.RESCAP
	b[33] = ns.DLFEAT
	copy(b[48:64], ns.NVMCAP[:])
	le.PutUint16(b[72:], ns.NOWS)
	le.PutUint32(b[92:], ns.ANAGRPID)
	b[99] = ns.NSATTR
	copy(b[104:120], ns.NGUID[:])
	copy(b[120:128], ns.EUI64[:])
	for i, f := range ns.LBAF {
		o := 128 + 4*i
		le.PutUint16(b[o:], f.MS)
		b[o+2] = f.LBADS
		b[o+3] = f.RP & 3
	}
	return nil
}

// DecodeIdentifyNamespace parses an Identify Namespace data structure.
func DecodeIdentifyNamespace(b []byte) (IdentifyNamespace, error) {
	var ns IdentifyNamespace
	if len(b) < IdentifySize {
		return ns, fmt.Errorf("identify namespace: %d bytes, need %d", len(b), IdentifySize)
	}
	ns.NSZE = le.Uint64(b[0:])
	ns.NCAP = le.Uint64(b[8:])
	ns.NUSE = le.Uint64(b[16:])
	ns.NSFEAT = b[24]
	ns.NLBAF = b[25]
	ns.FLBAS = b[26]
	ns.NMIC = b[30]
	ns.RESCAP = b[31]
	ns.DLFEAT = b[33]
	copy(ns.NVMCAP[:], b[48:64])
	ns.NOWS = le.Uint16(b[72:])
	ns.ANAGRPID = le.Uint32(b[92:])
	ns.NSATTR = b[99]
	copy(ns.NGUID[:], b[104:120])
	copy(ns.EUI64[:], b[120:128])
	for i := range ns.LBAF {
		o := 128 + 4*i
		ns.LBAF[i] = LBAFormat{MS: le.Uint16(b[o:]), LBADS: b[o+2], RP: b[o+3] & 3}
	}
	if ns.NLBAF > 63 {
		return ns, fmt.Errorf("identify namespace: NLBAF %d exceeds 63", ns.NLBAF)
	}
	return ns, nil
}

// FormatIndex is the index of the formatted LBA format: FLBAS bits 3:0,
// with bits 6:5 as the upper two bits (NVM Command Set 1.0 Figure 97).
func (ns *IdentifyNamespace) FormatIndex() int {
	return int(ns.FLBAS&0xF) | int(ns.FLBAS&0x60)>>1
}

// BlockSize returns the data size of the formatted LBA format, or 0 when the
// structure names an invalid one or one beyond the 16 that LBAF holds.
func (ns *IdentifyNamespace) BlockSize() int {
	f := ns.FormatIndex()
	if f > int(ns.NLBAF) || f >= len(ns.LBAF) || ns.LBAF[f].LBADS < 9 || ns.LBAF[f].LBADS > 16 {
		return 0
	}
	return 1 << ns.LBAF[f].LBADS
}

// EncodeNSList writes an active namespace list (CNS 02h): up to 1024
// ascending NSIDs greater than after.
func EncodeNSList(b []byte, nsids []uint32, after uint32) {
	clear(b[:IdentifySize])
	n := 0
	for _, id := range nsids {
		if id > after && n < IdentifySize/4 {
			le.PutUint32(b[4*n:], id)
			n++
		}
	}
}

// DecodeNSList parses a namespace list, stopping at the first zero entry.
func DecodeNSList(b []byte) ([]uint32, error) {
	if len(b) < IdentifySize {
		return nil, fmt.Errorf("namespace list: %d bytes, need %d", len(b), IdentifySize)
	}
	var ids []uint32
	for i := 0; i < IdentifySize; i += 4 {
		id := le.Uint32(b[i:])
		if id == 0 {
			break
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Namespace identification descriptor types (NVMe Base 2.0 Figure 279).
const (
	NIDTEUI64 = 0x1
	NIDTNGUID = 0x2
	NIDTUUID  = 0x3
	NIDTCSI   = 0x4
)

// NSDescriptor is one namespace identification descriptor.
type NSDescriptor struct {
	Type uint8
	ID   []byte
}

func nidLen(t uint8) int {
	switch t {
	case NIDTEUI64:
		return 8
	case NIDTNGUID, NIDTUUID:
		return 16
	case NIDTCSI:
		return 1
	}
	return -1
}

// EncodeNSDescList writes a namespace identification descriptor list (CNS 03h).
func EncodeNSDescList(b []byte, descs []NSDescriptor) error {
	if len(b) < IdentifySize {
		return fmt.Errorf("ns descriptor list: buffer %d bytes, need %d", len(b), IdentifySize)
	}
	clear(b[:IdentifySize])
	off := 0
	for _, d := range descs {
		if nidLen(d.Type) != len(d.ID) {
			return fmt.Errorf("ns descriptor type %d: %d-byte ID, want %d", d.Type, len(d.ID), nidLen(d.Type))
		}
		if off+4+len(d.ID) > IdentifySize {
			return fmt.Errorf("ns descriptor list: more than %d bytes", IdentifySize)
		}
		b[off], b[off+1] = d.Type, uint8(len(d.ID))
		copy(b[off+4:], d.ID)
		off += 4 + len(d.ID)
	}
	return nil
}

// DecodeNSDescList parses a namespace identification descriptor list.
func DecodeNSDescList(b []byte) ([]NSDescriptor, error) {
	if len(b) < IdentifySize {
		return nil, fmt.Errorf("ns descriptor list: %d bytes, need %d", len(b), IdentifySize)
	}
	var out []NSDescriptor
	for off := 0; off+4 <= IdentifySize; {
		t, n := b[off], int(b[off+1])
		if t == 0 {
			break
		}
		if off+4+n > IdentifySize {
			return out, fmt.Errorf("ns descriptor at %d: length %d runs past the list", off, n)
		}
		if want := nidLen(t); want >= 0 && want != n {
			return out, fmt.Errorf("ns descriptor type %d at %d: length %d, want %d", t, off, n, want)
		}
		out = append(out, NSDescriptor{Type: t, ID: bytes.Clone(b[off+4 : off+4+n])})
		off += 4 + n
	}
	return out, nil
}

func putASCII(dst []byte, s string) {
	for i := range dst {
		dst[i] = ' '
	}
	copy(dst, s)
}

func getASCII(b []byte) string { return string(bytes.TrimRight(b, " \x00")) }

func getCString(b []byte) string {
	if n := bytes.IndexByte(b, 0); n >= 0 {
		b = b[:n]
	}
	return string(b)
}
