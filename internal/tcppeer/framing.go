// Package tcppeer is a hand-driven NVMe/TCP peer for tests: either end of
// a connection, built on one PDU framing. Host drives a target byte by
// byte (malformed PDUs, protocol violations, a minimal admin and I/O
// queue to check that a target still serves); Controller is a small
// scripted controller for transcript tests of a host, with knobs for the
// transport parameters a host must honour. Fuzz tests build their seed
// streams with Framing.
//
// It is test support: it favours clarity over speed and reports through
// testing.TB.
package tcppeer

import (
	"fmt"
	"io"

	"github.com/flashpath/flashpath/nvmeof"
)

// Framing is the PDU format of one direction of a connection, as ICReq
// and ICResp agreed it.
type Framing struct {
	HDigest bool
	DDigest bool
	// PDA is the data alignment the receiving end asked for (a host's
	// PDUs follow the controller's CPDA), 0-based in dwords.
	PDA uint8
}

// PDU encodes one PDU. hdr is its common and PDU-specific header, HLEN
// bytes, with the type and any flags other than the digest flags in
// hdr[0:2]; PDU fills in the digest flags, HLEN, PDO and PLEN, the
// digests and the padding before the data.
func (f Framing) PDU(hdr, data []byte) []byte {
	hlen := uint32(len(hdr))
	flags := hdr[1]
	plen := hlen
	if f.HDigest {
		flags |= nvmeof.FlagHDGST
		plen += nvmeof.DigestSize
	}
	var pdo uint32
	if len(data) > 0 {
		pdo = nvmeof.PadTo(hlen, f.HDigest, f.PDA)
		plen = pdo + uint32(len(data))
		if f.DDigest {
			flags |= nvmeof.FlagDDGST
			plen += nvmeof.DigestSize
		}
	}
	b := make([]byte, plen)
	copy(b, hdr)
	nvmeof.PutHeader(b, nvmeof.Header{Type: hdr[0], Flags: flags, HLen: uint8(hlen), PDO: uint8(pdo), PLen: plen})
	if f.HDigest {
		nvmeof.PutDigest(b[hlen:], nvmeof.Digest(b[:hlen]))
	}
	if len(data) > 0 {
		copy(b[pdo:], data)
		if f.DDigest {
			nvmeof.PutDigest(b[pdo+uint32(len(data)):], nvmeof.Digest(data))
		}
	}
	return b
}

// Header returns an empty header of hlen bytes for a PDU of type typ
// with flags.
func Header(typ, flags uint8, hlen int) []byte {
	b := make([]byte, hlen)
	b[0], b[1] = typ, flags
	return b
}

// CapsuleCmd is the header of a command capsule carrying sqe.
func CapsuleCmd(sqe *nvmeof.SQE) []byte {
	b := Header(nvmeof.PDUCapsuleCmd, 0, nvmeof.CapsuleCmdHLen)
	copy(b[nvmeof.CHSize:], sqe[:])
	return b
}

// CapsuleRsp is the header of a response capsule; fill sets its CQE.
func CapsuleRsp(fill func(cqe *nvmeof.CQE)) []byte {
	b := Header(nvmeof.PDUCapsuleRsp, 0, nvmeof.CapsuleRspHLen)
	fill(nvmeof.CQEView(b[nvmeof.CHSize:]))
	return b
}

// DataHdr is the header of an H2CData, C2HData or R2T PDU.
func DataHdr(typ, flags uint8, d nvmeof.DataPDU) []byte {
	hlen := nvmeof.DataHLen
	if typ == nvmeof.PDUR2T {
		hlen = nvmeof.R2THLen
	}
	b := Header(typ, flags, hlen)
	d.Encode(b)
	return b
}

// ReadPDU reads one whole PDU as it is, checking nothing but its length.
func ReadPDU(r io.Reader) (nvmeof.Header, []byte, error) {
	var ch [nvmeof.CHSize]byte
	if _, err := io.ReadFull(r, ch[:]); err != nil {
		return nvmeof.Header{}, nil, err
	}
	h, _ := nvmeof.ParseHeader(ch[:])
	if h.PLen < nvmeof.CHSize || h.PLen > 4<<20 {
		return h, nil, fmt.Errorf("PDU type %#x: bad PLEN %d", h.Type, h.PLen)
	}
	b := make([]byte, h.PLen)
	copy(b, ch[:])
	if _, err := io.ReadFull(r, b[nvmeof.CHSize:]); err != nil {
		return h, nil, err
	}
	return h, b, nil
}

// ReadChecked reads one PDU framed as f says (digests present and
// correct, data at the PDO f.PDA asks for) and returns its header, its
// bytes and its data.
func (f Framing) ReadChecked(r io.Reader) (nvmeof.Header, []byte, []byte, error) {
	h, pdu, err := ReadPDU(r)
	if err != nil {
		return h, nil, nil, err
	}
	lay, err := h.Check(f.HDigest, f.DDigest, 1<<24)
	if err != nil {
		return h, nil, nil, fmt.Errorf("PDU: %w", err)
	}
	if lay.HDigest && nvmeof.Digest(pdu[:h.HLen]) != nvmeof.GetDigest(pdu[h.HLen:]) {
		return h, nil, nil, fmt.Errorf("PDU type %#x: bad header digest", h.Type)
	}
	if lay.DataLen == 0 {
		return h, pdu, nil, nil
	}
	if want := nvmeof.PadTo(uint32(h.HLen), f.HDigest, f.PDA); lay.DataOff != want {
		return h, nil, nil, fmt.Errorf("PDU type %#x: PDO %d, PDA %d wants %d", h.Type, lay.DataOff, f.PDA, want)
	}
	data := pdu[lay.DataOff : lay.DataOff+lay.DataLen]
	if lay.DDigest && nvmeof.Digest(data) != nvmeof.GetDigest(pdu[lay.DataOff+lay.DataLen:]) {
		return h, nil, nil, fmt.Errorf("PDU type %#x: bad data digest", h.Type)
	}
	return h, pdu, data, nil
}
