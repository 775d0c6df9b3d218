package nvmeof

import (
	"errors"
	"fmt"
	"hash/crc32"
)

// NVMe/TCP transport (NVMe/TCP Transport Specification 1.0).
//
// Every PDU starts with an 8-byte common header, followed by the PDU specific
// header (together HLEN bytes), an optional header digest, padding up to PDO,
// data, and an optional data digest; PLEN counts it all:
//
//	+-------------------------+---------+-----+---------------+---------+
//	| CH (8) | PSH (HLEN-8)   | HDGST 4 | pad | data          | DDGST 4 |
//	+-------------------------+---------+-----+---------------+---------+
//	0                         HLEN            PDO                       PLEN

// PDU types (§3.3, Figure 15).
const (
	PDUICReq      = 0x00
	PDUICResp     = 0x01
	PDUH2CTermReq = 0x02
	PDUC2HTermReq = 0x03
	PDUCapsuleCmd = 0x04
	PDUCapsuleRsp = 0x05
	PDUH2CData    = 0x06
	PDUC2HData    = 0x07
	PDUR2T        = 0x09
)

// PDU header flags.
const (
	FlagHDGST       = 1 << 0
	FlagDDGST       = 1 << 1
	FlagDataLast    = 1 << 2
	FlagDataSuccess = 1 << 3
)

// Digest options of ICReq/ICResp.
const (
	DigestHeader = 1 << 0
	DigestData   = 1 << 1
)

// Fixed header lengths (HLEN) of each PDU type.
const (
	CHSize         = 8
	ICReqSize      = 128
	ICRespSize     = 128
	CapsuleCmdHLen = CHSize + SQESize // 72
	CapsuleRspHLen = CHSize + CQESize // 24
	DataHLen       = 24
	R2THLen        = 24
	TermReqHLen    = 24
	DigestSize     = 4
	// MaxPDO is the largest PDU Data Offset a peer may use: data aligned
	// to the largest CPDA or HPDA, (31+1)*4 bytes (SPDK's
	// SPDK_NVME_TCP_PDU_PDO_MAX_OFFSET).
	MaxPDO = 128
	// TermReqMaxData is the most of the offending PDU header a TermReq
	// carries: a TermReq is at most 152 bytes long in all (§3.6.2.4).
	TermReqMaxData = 128
	// MaxHLen is the largest HLEN of any PDU.
	MaxHLen = 128
)

// Fatal error status of a TermReq (§3.6.2.9, Figure 27).
const (
	FESInvalidHeader     = 0x01
	FESSequenceError     = 0x02
	FESHeaderDigest      = 0x03
	FESDataOutOfRange    = 0x04
	FESDataLimitExceeded = 0x05
	FESUnsupportedParam  = 0x06
)

// Header is the decoded common header of a PDU.
type Header struct {
	Type  uint8
	Flags uint8
	HLen  uint8
	PDO   uint8
	PLen  uint32
}

// ParseHeader decodes the common header at the start of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < CHSize {
		return Header{}, fmt.Errorf("pdu header: %d bytes, need %d", len(b), CHSize)
	}
	return Header{Type: b[0], Flags: b[1], HLen: b[2], PDO: b[3], PLen: le.Uint32(b[4:])}, nil
}

// PutHeader writes a common header at the start of b.
func PutHeader(b []byte, h Header) {
	b[0], b[1], b[2], b[3] = h.Type, h.Flags, h.HLen, h.PDO
	le.PutUint32(b[4:], h.PLen)
}

// FatalError is a protocol violation that ends the connection with a TermReq.
type FatalError struct {
	FES uint16
	FEI uint32 // byte offset of the offending field in the PDU header, when known
	Msg string
}

func (e *FatalError) Error() string {
	return fmt.Sprintf("nvme/tcp fatal error %#x at %d: %s", e.FES, e.FEI, e.Msg)
}

func fatal(fes uint16, fei uint32, format string, args ...any) error {
	return &FatalError{FES: fes, FEI: fei, Msg: fmt.Sprintf(format, args...)}
}

// ExpectedHLen returns the header length a PDU type must carry, or 0 for an
// unknown type.
func ExpectedHLen(typ uint8) uint8 {
	switch typ {
	case PDUICReq, PDUICResp:
		return ICReqSize
	case PDUCapsuleCmd:
		return CapsuleCmdHLen
	case PDUCapsuleRsp:
		return CapsuleRspHLen
	case PDUH2CData, PDUC2HData, PDUR2T, PDUH2CTermReq, PDUC2HTermReq:
		return DataHLen
	}
	return 0
}

// HasData reports whether a PDU type may carry data after its header.
func HasData(typ uint8) bool {
	switch typ {
	case PDUCapsuleCmd, PDUH2CData, PDUC2HData, PDUH2CTermReq, PDUC2HTermReq:
		return true
	}
	return false
}

// Layout is where the parts of a PDU lie, from its common header and the
// digests negotiated for the connection.
type Layout struct {
	HDigest bool   // a header digest follows the header
	DDigest bool   // a data digest follows the data
	DataOff uint32 // offset of the data (PDO), 0 when there is none
	DataLen uint32 // bytes of data
}

// Check validates a common header received on a connection with the given
// digest options and returns the PDU's layout. maxPLen bounds PLEN. It never
// panics; a violation is a *FatalError naming the TermReq status to send.
func (h Header) Check(hdgst, ddgst bool, maxPLen uint32) (Layout, error) {
	want := ExpectedHLen(h.Type)
	if want == 0 {
		return Layout{}, fatal(FESInvalidHeader, 0, "unknown PDU type %#x", h.Type)
	}
	if h.HLen != want {
		return Layout{}, fatal(FESInvalidHeader, 2, "PDU type %#x: HLEN %d, want %d", h.Type, h.HLen, want)
	}
	var l Layout
	ic := h.Type == PDUICReq || h.Type == PDUICResp
	term := h.Type == PDUH2CTermReq || h.Type == PDUC2HTermReq
	hlen := uint32(h.HLen)
	if !ic && !term {
		if hdgst != (h.Flags&FlagHDGST != 0) {
			return Layout{}, fatal(FESInvalidHeader, 1, "PDU type %#x: HDGST flag does not match the negotiated header digest", h.Type)
		}
		l.HDigest = hdgst
		if hdgst {
			hlen += DigestSize
		}
	}
	if h.PLen > maxPLen {
		return Layout{}, fatal(FESDataLimitExceeded, 4, "PDU type %#x: PLEN %d exceeds %d", h.Type, h.PLen, maxPLen)
	}
	if h.PLen < hlen {
		return Layout{}, fatal(FESInvalidHeader, 4, "PDU type %#x: PLEN %d shorter than header %d", h.Type, h.PLen, hlen)
	}
	if h.PLen == hlen {
		if h.PDO != 0 && !term {
			return Layout{}, fatal(FESInvalidHeader, 3, "PDU type %#x: PDO %d without data", h.Type, h.PDO)
		}
		if h.Flags&FlagDDGST != 0 {
			return Layout{}, fatal(FESInvalidHeader, 1, "PDU type %#x: DDGST flag without data", h.Type)
		}
		return l, nil
	}
	if !HasData(h.Type) {
		return Layout{}, fatal(FESInvalidHeader, 4, "PDU type %#x: PLEN %d, want %d", h.Type, h.PLen, hlen)
	}
	if term {
		// Term requests carry the offending header right after theirs, with no digests.
		l.DataOff, l.DataLen = hlen, h.PLen-hlen
		if l.DataLen > TermReqMaxData {
			return Layout{}, fatal(FESInvalidHeader, 4, "TermReq: PLEN %d too long", h.PLen)
		}
		return l, nil
	}
	if uint32(h.PDO) < hlen {
		return Layout{}, fatal(FESInvalidHeader, 3, "PDU type %#x: PDO %d inside the %d-byte header", h.Type, h.PDO, hlen)
	}
	if ddgst != (h.Flags&FlagDDGST != 0) {
		return Layout{}, fatal(FESInvalidHeader, 1, "PDU type %#x: DDGST flag does not match the negotiated data digest", h.Type)
	}
	end := uint32(h.PDO)
	if ddgst {
		end += DigestSize
	}
	if h.PLen <= end {
		return Layout{}, fatal(FESInvalidHeader, 4, "PDU type %#x: PLEN %d leaves no data after PDO %d", h.Type, h.PLen, h.PDO)
	}
	l.DDigest = ddgst
	l.DataOff = uint32(h.PDO)
	l.DataLen = h.PLen - end
	return l, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Digest computes the CRC32C digest of NVMe/TCP (hardware accelerated by
// hash/crc32 where the CPU has it).
func Digest(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// DigestUpdate continues a digest over more bytes.
func DigestUpdate(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }

// PutDigest writes a digest (little-endian).
func PutDigest(b []byte, d uint32) { le.PutUint32(b, d) }

// GetDigest reads a digest.
func GetDigest(b []byte) uint32 { return le.Uint32(b) }

// ICReq is the Initialize Connection Request (§3.6.2.2, Figure 19).
type ICReq struct {
	PFV    uint16
	HPDA   uint8 // host PDU data alignment, 0-based dwords
	Digest uint8 // DigestHeader | DigestData
	MaxR2T uint32
}

// Encode writes the full 128-byte PDU.
func (r *ICReq) Encode(b []byte) {
	clear(b[:ICReqSize])
	PutHeader(b, Header{Type: PDUICReq, HLen: ICReqSize, PLen: ICReqSize})
	le.PutUint16(b[8:], r.PFV)
	b[10] = r.HPDA
	b[11] = r.Digest
	le.PutUint32(b[12:], r.MaxR2T)
}

// DecodeICReq parses a 128-byte ICReq, common header included.
func DecodeICReq(b []byte) (ICReq, error) {
	if err := checkIC(b, PDUICReq); err != nil {
		return ICReq{}, err
	}
	r := ICReq{PFV: le.Uint16(b[8:]), HPDA: b[10], Digest: b[11], MaxR2T: le.Uint32(b[12:])}
	if r.PFV != 0 {
		return r, fatal(FESUnsupportedParam, 8, "ICReq: PDU format version %d, only 0 is supported", r.PFV)
	}
	if r.HPDA > 31 {
		return r, fatal(FESUnsupportedParam, 10, "ICReq: HPDA %d exceeds 31", r.HPDA)
	}
	if r.Digest&^(DigestHeader|DigestData) != 0 {
		return r, fatal(FESUnsupportedParam, 11, "ICReq: unknown digest bits %#x", r.Digest)
	}
	return r, nil
}

// ICResp is the Initialize Connection Response (§3.6.2.3, Figure 20).
type ICResp struct {
	PFV     uint16
	CPDA    uint8
	Digest  uint8
	MaxData uint32 // MAXH2CDATA: the most data in one H2CData PDU
}

// Encode writes the full 128-byte PDU.
func (r *ICResp) Encode(b []byte) {
	clear(b[:ICRespSize])
	PutHeader(b, Header{Type: PDUICResp, HLen: ICRespSize, PLen: ICRespSize})
	le.PutUint16(b[8:], r.PFV)
	b[10] = r.CPDA
	b[11] = r.Digest
	le.PutUint32(b[12:], r.MaxData)
}

// DecodeICResp parses a 128-byte ICResp, common header included.
func DecodeICResp(b []byte) (ICResp, error) {
	if err := checkIC(b, PDUICResp); err != nil {
		return ICResp{}, err
	}
	r := ICResp{PFV: le.Uint16(b[8:]), CPDA: b[10], Digest: b[11], MaxData: le.Uint32(b[12:])}
	if r.PFV != 0 {
		return r, fmt.Errorf("ICResp: PDU format version %d, only 0 is supported", r.PFV)
	}
	if r.MaxData < 4096 || r.MaxData%4 != 0 {
		return r, fmt.Errorf("ICResp: MAXH2CDATA %d is not a multiple of 4 of at least 4096", r.MaxData)
	}
	if r.CPDA > 31 {
		return r, fmt.Errorf("ICResp: CPDA %d exceeds 31", r.CPDA)
	}
	return r, nil
}

func checkIC(b []byte, typ uint8) error {
	if len(b) < ICReqSize {
		return fatal(FESInvalidHeader, 0, "IC PDU: %d bytes, need %d", len(b), ICReqSize)
	}
	h, _ := ParseHeader(b)
	if h.Type != typ {
		return fatal(FESSequenceError, 0, "PDU type %#x where %#x was expected", h.Type, typ)
	}
	if h.HLen != ICReqSize || h.PLen != ICReqSize {
		return fatal(FESInvalidHeader, 2, "IC PDU: HLEN %d PLEN %d, want 128", h.HLen, h.PLen)
	}
	return nil
}

// DataPDU is the PDU specific header of H2CData, C2HData and R2T PDUs
// (§3.6.2.6-8): command id, transfer tag, offset and length within the
// command's data.
type DataPDU struct {
	CCCID  uint16
	TTag   uint16
	Offset uint32
	Length uint32
}

// DecodeDataPDU reads the PSH of a data or R2T PDU (b holds at least DataHLen bytes).
func DecodeDataPDU(b []byte) (DataPDU, error) {
	if len(b) < DataHLen {
		return DataPDU{}, fatal(FESInvalidHeader, 0, "data PDU: %d bytes, need %d", len(b), DataHLen)
	}
	return DataPDU{CCCID: le.Uint16(b[8:]), TTag: le.Uint16(b[10:]), Offset: le.Uint32(b[12:]), Length: le.Uint32(b[16:])}, nil
}

// Encode writes the PSH of a data or R2T PDU after a common header written by the caller.
func (d *DataPDU) Encode(b []byte) {
	le.PutUint16(b[8:], d.CCCID)
	le.PutUint16(b[10:], d.TTag)
	le.PutUint32(b[12:], d.Offset)
	le.PutUint32(b[16:], d.Length)
	clear(b[20:24])
}

// TermReq is the PSH of an H2CTermReq or C2HTermReq (§3.6.2.4-5).
type TermReq struct {
	FES uint16
	FEI uint32
}

// EncodeTermReq writes a complete TermReq PDU of type typ carrying up to
// TermReqMaxData bytes of the offending header, and returns its length.
func EncodeTermReq(b []byte, typ uint8, t TermReq, offending []byte) int {
	n := min(len(offending), TermReqMaxData)
	plen := TermReqHLen + n
	clear(b[:TermReqHLen])
	PutHeader(b, Header{Type: typ, HLen: TermReqHLen, PDO: 0, PLen: uint32(plen)})
	le.PutUint16(b[8:], t.FES)
	le.PutUint32(b[10:], t.FEI)
	copy(b[TermReqHLen:], offending[:n])
	return plen
}

// DecodeTermReq reads the PSH of a TermReq PDU.
func DecodeTermReq(b []byte) (TermReq, error) {
	if len(b) < TermReqHLen {
		return TermReq{}, errors.New("TermReq: short header")
	}
	return TermReq{FES: le.Uint16(b[8:]), FEI: le.Uint32(b[10:])}, nil
}

// PadTo returns the PDO for data following a header of hlen bytes (plus a
// header digest) aligned to (cpda+1) dwords.
func PadTo(hlen uint32, hdgst bool, cpda uint8) uint32 {
	off := hlen
	if hdgst {
		off += DigestSize
	}
	align := (uint32(cpda) + 1) * 4
	return (off + align - 1) / align * align
}
