package nvmeof

import (
	"bytes"
	"errors"
	"fmt"
)

// Well-known NQNs (NVMe-oF 1.1 §7.4.9.2).
const (
	DiscoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"
	NQNMaxLen    = 223
)

// Connect command fields (NVMe-oF 1.1 §3.3, Figure 19).

// RecFmt is the Connect record format (must be 0).
func (c *SQE) RecFmt() uint16 { return le.Uint16(c[40:]) }

// QID is the Connect queue identifier (0 = admin).
func (c *SQE) QID() uint16 { return le.Uint16(c[42:]) }

// SQSize is the Connect submission queue size, 0-based.
func (c *SQE) SQSize() uint16 { return le.Uint16(c[44:]) }

// CAttr is the Connect attributes byte.
func (c *SQE) CAttr() uint8 { return c[46] }

// CAttrDisableSQFlow in the Connect attributes asks the controller to stop
// reporting SQ head pointers (SQ flow control disabled, NVMe-oF 1.1 §3.3),
// which lets an NVMe/TCP controller skip the response after a read's data.
const CAttrDisableSQFlow = 1 << 2

// SetCAttr sets the Connect attributes byte.
func (c *SQE) SetCAttr(v uint8) { c[46] = v }

// KATO is the Connect keep-alive timeout in milliseconds.
func (c *SQE) KATO() uint32 { return le.Uint32(c[48:]) }

// SetConnect fills a Connect command; the data (ConnectDataSize bytes)
// follows in the capsule or through the transport.
func (c *SQE) SetConnect(qid, sqsize uint16, kato uint32) {
	c.SetOpcode(OpFabrics)
	c.SetFCType(FabricsConnect)
	le.PutUint16(c[40:], 0)
	le.PutUint16(c[42:], qid)
	le.PutUint16(c[44:], sqsize)
	le.PutUint32(c[48:], kato)
}

// ConnectDataSize is the size of the Connect command data (Figure 20).
const ConnectDataSize = 1024

// ConnectData is the Connect command data.
type ConnectData struct {
	HostID  [16]byte
	CntlID  uint16 // 0xFFFF: dynamic controller model, any controller
	SubNQN  string
	HostNQN string
}

// CntlIDDynamic asks for any controller of the dynamic controller model.
const CntlIDDynamic = 0xFFFF

// Encode writes d into b (at least ConnectDataSize bytes).
func (d *ConnectData) Encode(b []byte) error {
	if len(b) < ConnectDataSize {
		return fmt.Errorf("connect data: buffer %d bytes, need %d", len(b), ConnectDataSize)
	}
	if len(d.SubNQN) > NQNMaxLen || len(d.HostNQN) > NQNMaxLen {
		return fmt.Errorf("connect data: NQN longer than %d bytes", NQNMaxLen)
	}
	clear(b[:ConnectDataSize])
	copy(b[0:16], d.HostID[:])
	le.PutUint16(b[16:], d.CntlID)
	copy(b[256:512], d.SubNQN)
	copy(b[512:768], d.HostNQN)
	return nil
}

// DecodeConnectData parses Connect command data. NQNs are NUL-terminated
// UTF-8 strings of at most 223 bytes (NVMe Base 2.0 §4.5).
func DecodeConnectData(b []byte) (ConnectData, error) {
	var d ConnectData
	if len(b) < ConnectDataSize {
		return d, fmt.Errorf("connect data: %d bytes, need %d", len(b), ConnectDataSize)
	}
	copy(d.HostID[:], b[0:16])
	d.CntlID = le.Uint16(b[16:])
	var err error
	if d.SubNQN, err = cString(b[256:512]); err != nil {
		return d, fmt.Errorf("connect data: SUBNQN: %w", err)
	}
	if d.HostNQN, err = cString(b[512:768]); err != nil {
		return d, fmt.Errorf("connect data: HOSTNQN: %w", err)
	}
	return d, nil
}

// Byte offsets of Connect data fields, for the IPO of Connect Invalid Parameters.
const (
	ConnectDataOffCntlID  = 16
	ConnectDataOffSubNQN  = 256
	ConnectDataOffHostNQN = 512
)

// ConnectInvalidParam returns the DW0 of a Connect Invalid Parameters
// completion: IATTR (bit 16: 1 = in the data, 0 = in the SQE) and IPO.
func ConnectInvalidParam(inData bool, offset uint16) uint32 {
	v := uint32(offset)
	if inData {
		v |= 1 << 16
	}
	return v
}

func cString(b []byte) (string, error) {
	n := bytes.IndexByte(b, 0)
	if n < 0 {
		return "", errors.New("not NUL-terminated")
	}
	if n > NQNMaxLen {
		return "", fmt.Errorf("%d bytes, longer than %d", n, NQNMaxLen)
	}
	return string(b[:n]), nil
}

// Property Get / Set (NVMe-oF 1.1 §3.4, §3.5).

// PropAttrib is the property size attribute: 0 = 4 bytes, 1 = 8 bytes.
func (c *SQE) PropAttrib() uint8 { return c[40] & 7 }

// PropOffset is the property offset.
func (c *SQE) PropOffset() uint32 { return le.Uint32(c[44:]) }

// PropValue is the Property Set value.
func (c *SQE) PropValue() uint64 { return le.Uint64(c[48:]) }

// SetPropertyGet fills a Property Get command.
func (c *SQE) SetPropertyGet(offset uint32, size8 bool) {
	c.SetOpcode(OpFabrics)
	c.SetFCType(FabricsPropertyGet)
	c[40] = 0
	if size8 {
		c[40] = 1
	}
	le.PutUint32(c[44:], offset)
}

// SetPropertySet fills a Property Set command.
func (c *SQE) SetPropertySet(offset uint32, size8 bool, value uint64) {
	c.SetPropertyGet(offset, size8)
	c.SetFCType(FabricsPropertySet)
	le.PutUint64(c[48:], value)
}

// Controller properties (NVMe Base 2.0 §3.1.4, Figure 33).
const (
	PropCAP   = 0x00
	PropVS    = 0x08
	PropINTMS = 0x0C
	PropINTMC = 0x10
	PropCC    = 0x14
	PropCSTS  = 0x1C
	PropNSSR  = 0x20
)

// Version numbers as reported in VS.
const (
	VS1_3 = 0x00010300
	VS1_4 = 0x00010400
	VS2_0 = 0x00020000
)

// CAP is the Controller Capabilities property.
type CAP uint64

// MakeCAP builds a CAP value: mqes is the 0-based maximum queue entries,
// to is the ready timeout in 500 ms units.
func MakeCAP(mqes uint16, to uint8) CAP {
	const cssNVM = 1 << 37 // CSS bit 0: NVM command set
	return CAP(uint64(mqes) | 1<<16 /* CQR */ | uint64(to)<<24 | cssNVM)
}

// MQES is the 0-based maximum queue entries supported.
func (c CAP) MQES() uint16 { return uint16(c) }

// Timeout is CAP.TO in 500 ms units.
func (c CAP) Timeout() uint8 { return uint8(c >> 24) }

// CC (Controller Configuration) fields.
const (
	CCEnable      = 1 << 0
	CCShnMask     = 3 << 14
	CCShnNormal   = 1 << 14
	CCShnAbrupt   = 2 << 14
	CCIOSQESShift = 16
	CCIOCQESShift = 20
)

// CCValue builds a CC with EN, 4 KiB pages, NVM command set, 64-byte SQEs and 16-byte CQEs.
func CCValue(enable bool) uint32 {
	v := uint32(6<<CCIOSQESShift | 4<<CCIOCQESShift)
	if enable {
		v |= CCEnable
	}
	return v
}

// CSTS (Controller Status) fields.
const (
	CSTSReady        = 1 << 0
	CSTSFatal        = 1 << 1
	CSTSShstMask     = 3 << 2
	CSTSShstOccuring = 1 << 2
	CSTSShstComplete = 2 << 2
)

// Disconnect (NVMe-oF 1.1 §3.6): no fields beyond FCTYPE.

// SetDisconnect fills a Disconnect command.
func (c *SQE) SetDisconnect() {
	c.SetOpcode(OpFabrics)
	c.SetFCType(FabricsDisconnect)
}
