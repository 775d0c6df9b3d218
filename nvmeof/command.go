package nvmeof

import (
	"encoding/binary"
	"fmt"
)

// SQESize is the size of a submission queue entry (NVMe Base 2.0 §4.2).
const SQESize = 64

// SQE is a submission queue entry: a 64-byte NVMe command.
type SQE [SQESize]byte

// SQEView returns the SQE stored at the start of b without copying.
// It returns nil when b is shorter than SQESize.
func SQEView(b []byte) *SQE {
	if len(b) < SQESize {
		return nil
	}
	return (*SQE)(b[:SQESize])
}

var le = binary.LittleEndian

// Opcode is the command opcode (byte 0).
func (c *SQE) Opcode() uint8 { return c[0] }

// SetOpcode sets the command opcode.
func (c *SQE) SetOpcode(op uint8) { c[0] = op }

// Flags is byte 1: FUSE in bits 1:0, PSDT in bits 7:6.
func (c *SQE) Flags() uint8 { return c[1] }

// SetFlags sets byte 1.
func (c *SQE) SetFlags(f uint8) { c[1] = f }

// PSDT is the PRP or SGL for Data Transfer field (flags bits 7:6).
func (c *SQE) PSDT() uint8 { return c[1] >> 6 }

// CID is the command identifier.
func (c *SQE) CID() uint16 { return le.Uint16(c[2:]) }

// SetCID sets the command identifier.
func (c *SQE) SetCID(id uint16) { le.PutUint16(c[2:], id) }

// NSID is the namespace identifier.
func (c *SQE) NSID() uint32 { return le.Uint32(c[4:]) }

// SetNSID sets the namespace identifier.
func (c *SQE) SetNSID(ns uint32) { le.PutUint32(c[4:], ns) }

// CDW returns command dword n (0..15).
func (c *SQE) CDW(n int) uint32 { return le.Uint32(c[4*n:]) }

// SetCDW sets command dword n (0..15).
func (c *SQE) SetCDW(n int, v uint32) { le.PutUint32(c[4*n:], v) }

// SGL returns a view of the first SGL descriptor (DPTR, bytes 24..39).
func (c *SQE) SGL() *SGLDesc { return (*SGLDesc)(c[24:40]) }

// FCType is the fabrics command type (byte 4) when Opcode is OpFabrics.
func (c *SQE) FCType() uint8 { return c[4] }

// SetFCType sets the fabrics command type.
func (c *SQE) SetFCType(t uint8) { c[4] = t }

// Reset zeroes the entry.
func (c *SQE) Reset() { *c = SQE{} }

// PSDT values (NVMe Base 2.0 §4.2, Figure 88).
const (
	PSDTPRP        = 0
	PSDTSGLMptrBuf = 1 // SGLs for data transfer, MPTR is an address
	PSDTSGLMptrSGL = 2
)

// FlagsSGL is the Flags byte selecting SGLs for the data transfer.
const FlagsSGL = PSDTSGLMptrBuf << 6

// Admin command opcodes (NVMe Base 2.0 §5, Figure 138).
const (
	AdminDeleteIOSQ   = 0x00
	AdminCreateIOSQ   = 0x01
	AdminGetLogPage   = 0x02
	AdminDeleteIOCQ   = 0x04
	AdminCreateIOCQ   = 0x05
	AdminIdentify     = 0x06
	AdminAbort        = 0x08
	AdminSetFeatures  = 0x09
	AdminGetFeatures  = 0x0A
	AdminAsyncEvent   = 0x0C
	AdminKeepAlive    = 0x18
	AdminDoorbellBuf  = 0x7C
	OpFabrics         = 0x7F
	AdminFormatNVM    = 0x80
	AdminSanitize     = 0x84
	AdminGetLBAStatus = 0x86
)

// NVM command set opcodes (NVM Command Set 1.0 §3).
const (
	NVMFlush        = 0x00
	NVMWrite        = 0x01
	NVMRead         = 0x02
	NVMWriteUncor   = 0x04
	NVMCompare      = 0x05
	NVMWriteZeroes  = 0x08
	NVMDSM          = 0x09
	NVMVerify       = 0x0C
	NVMResvRegister = 0x0D
	NVMResvReport   = 0x0E
	NVMResvAcquire  = 0x11
	NVMResvRelease  = 0x15
)

// Fabrics command types (NVMe-oF 1.1 §3.3, Figure 20).
const (
	FabricsPropertySet = 0x00
	FabricsConnect     = 0x01
	FabricsPropertyGet = 0x04
	FabricsAuthSend    = 0x05
	FabricsAuthRecv    = 0x06
	FabricsDisconnect  = 0x08
)

// SGLDescSize is the size of an SGL descriptor (NVMe Base 2.0 §4.1.8).
const SGLDescSize = 16

// SGLDesc is an SGL descriptor.
type SGLDesc [SGLDescSize]byte

// SGL descriptor types (upper nibble of byte 15) and sub types (lower nibble).
const (
	SGLTypeDataBlock      = 0x0
	SGLTypeBitBucket      = 0x1
	SGLTypeSegment        = 0x2
	SGLTypeLastSegment    = 0x3
	SGLTypeKeyedDataBlock = 0x4
	SGLTypeTransportData  = 0x5

	SGLSubAddress   = 0x0
	SGLSubOffset    = 0x1
	SGLSubTransport = 0xA
	SGLSubInvalid   = 0xF // keyed: invalidate the key
)

// Common SGL identifiers (byte 15).
const (
	// SGLInCapsule describes data in the command capsule at an offset (NVMe-oF §2.3).
	SGLInCapsule = SGLTypeDataBlock<<4 | SGLSubOffset
	// SGLTransport describes data moved by the transport (NVMe/TCP: H2C/C2H data PDUs).
	SGLTransport = SGLTypeTransportData<<4 | SGLSubTransport
	// SGLKeyed describes a remote memory region (NVMe/RDMA).
	SGLKeyed = SGLTypeKeyedDataBlock<<4 | SGLSubAddress
	// SGLKeyedInvalidate is SGLKeyed with remote invalidation requested.
	SGLKeyedInvalidate = SGLTypeKeyedDataBlock<<4 | SGLSubInvalid
)

// Address is bytes 0..7 (address or offset).
func (d *SGLDesc) Address() uint64 { return le.Uint64(d[0:]) }

// Length is the data length. Keyed descriptors have a 3-byte length.
func (d *SGLDesc) Length() uint32 {
	if d.Type() == SGLTypeKeyedDataBlock {
		return uint32(d[8]) | uint32(d[9])<<8 | uint32(d[10])<<16
	}
	return le.Uint32(d[8:])
}

// Key is the remote key of a keyed data block descriptor.
func (d *SGLDesc) Key() uint32 { return le.Uint32(d[11:]) }

// ID is byte 15: type << 4 | sub type.
func (d *SGLDesc) ID() uint8 { return d[15] }

// Type is the descriptor type.
func (d *SGLDesc) Type() uint8 { return d[15] >> 4 }

// SubType is the descriptor sub type.
func (d *SGLDesc) SubType() uint8 { return d[15] & 0xF }

// SetDataBlock fills an unkeyed descriptor: id is SGLInCapsule or SGLTransport.
func (d *SGLDesc) SetDataBlock(id uint8, addr uint64, length uint32) {
	*d = SGLDesc{}
	le.PutUint64(d[0:], addr)
	le.PutUint32(d[8:], length)
	d[15] = id
}

// SetKeyed fills a keyed data block descriptor (24-bit length).
func (d *SGLDesc) SetKeyed(addr uint64, length uint32, key uint32, invalidate bool) error {
	if length >= 1<<24 {
		return fmt.Errorf("keyed SGL length %d exceeds 24 bits", length)
	}
	*d = SGLDesc{}
	le.PutUint64(d[0:], addr)
	d[8], d[9], d[10] = byte(length), byte(length>>8), byte(length>>16)
	le.PutUint32(d[11:], key)
	d[15] = SGLKeyed
	if invalidate {
		d[15] = SGLKeyedInvalidate
	}
	return nil
}

// NVM I/O command fields.

// SLBA is the starting LBA (CDW10-11) of Read, Write, Compare, Write Zeroes.
func (c *SQE) SLBA() uint64 { return le.Uint64(c[40:]) }

// NLB is the 0-based number of logical blocks (CDW12 bits 15:0).
func (c *SQE) NLB() uint16 { return le.Uint16(c[48:]) }

// SetRW fills the LBA range fields of an I/O command. nlb is 1-based.
func (c *SQE) SetRW(slba uint64, nlb uint32) {
	le.PutUint64(c[40:], slba)
	le.PutUint16(c[48:], uint16(nlb-1))
}

// FUA reports Force Unit Access (CDW12 bit 30).
func (c *SQE) FUA() bool { return c[51]&0x40 != 0 }

// SetFUA sets Force Unit Access.
func (c *SQE) SetFUA(on bool) {
	if on {
		c[51] |= 0x40
	} else {
		c[51] &^= 0x40
	}
}

// Write Zeroes and DSM bits.
const (
	CDW12Deac         = 1 << 25 // Write Zeroes: deallocate
	DSMAttrDeallocate = 1 << 2  // DSM CDW11 AD
)

// DSMRangeSize is the size of one Dataset Management range (NVM Command Set §3.2.3).
const DSMRangeSize = 16

// DSMRange is one DSM range: context attributes, length in logical blocks, starting LBA.
type DSMRange struct {
	Attributes uint32
	NLB        uint32
	SLBA       uint64
}

// DecodeDSMRange decodes range i of a DSM payload.
func DecodeDSMRange(b []byte, i int) (DSMRange, error) {
	if i < 0 || i >= len(b)/DSMRangeSize {
		return DSMRange{}, fmt.Errorf("DSM range %d beyond %d-byte payload", i, len(b))
	}
	off := i * DSMRangeSize
	return DSMRange{Attributes: le.Uint32(b[off:]), NLB: le.Uint32(b[off+4:]), SLBA: le.Uint64(b[off+8:])}, nil
}

// EncodeDSMRange writes r as range i of b.
func EncodeDSMRange(b []byte, i int, r DSMRange) {
	off := i * DSMRangeSize
	le.PutUint32(b[off:], r.Attributes)
	le.PutUint32(b[off+4:], r.NLB)
	le.PutUint64(b[off+8:], r.SLBA)
}
