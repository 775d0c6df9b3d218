package nvmeof

import "fmt"

// NVMe/RDMA (NVMe RDMA Transport Specification 1.0): the private data of
// the RDMA connection manager's request, reply and reject messages.

// RDMA CM private data sizes.
const (
	RDMACMReqSize = 32
	RDMACMRepSize = 32
	RDMACMRejSize = 4
)

// RDMARecFmt10 is the only private data record format (RECFMT).
const RDMARecFmt10 = 0

// RDMA CM reject status codes (the STS field of the reject private data).
const (
	RDMACMInvalidLen     = 0x01
	RDMACMInvalidRecFmt  = 0x02
	RDMACMInvalidQID     = 0x03
	RDMACMInvalidHSQSize = 0x04
	RDMACMInvalidHRQSize = 0x05
	RDMACMNoResources    = 0x06
	RDMACMInvalidIRD     = 0x07
	RDMACMInvalidORD     = 0x08
	RDMACMInvalidCntlID  = 0x09
)

// RDMACMReq is the private data of a host's connection request.
type RDMACMReq struct {
	RecFmt  uint16
	QID     uint16
	HRQSize uint16 // host receive queue size (not 0's based)
	HSQSize uint16 // host send queue size, 0's based (as the Connect command's SQSIZE)
	CntlID  uint16
}

// DecodeRDMACMReq parses a connection request's private data. The
// connection manager may pad the data (InfiniBand CM carries 92 bytes), so
// only the first 32 bytes count.
func DecodeRDMACMReq(b []byte) (RDMACMReq, error) {
	if len(b) < RDMACMReqSize {
		return RDMACMReq{}, fmt.Errorf("nvme/rdma: connect private data %d bytes, need %d", len(b), RDMACMReqSize)
	}
	return RDMACMReq{
		RecFmt: le.Uint16(b[0:]), QID: le.Uint16(b[2:]),
		HRQSize: le.Uint16(b[4:]), HSQSize: le.Uint16(b[6:]), CntlID: le.Uint16(b[8:]),
	}, nil
}

// Encode writes the request into b (RDMACMReqSize bytes).
func (r RDMACMReq) Encode(b []byte) {
	clear(b[:RDMACMReqSize])
	le.PutUint16(b[0:], r.RecFmt)
	le.PutUint16(b[2:], r.QID)
	le.PutUint16(b[4:], r.HRQSize)
	le.PutUint16(b[6:], r.HSQSize)
	le.PutUint16(b[8:], r.CntlID)
}

// RDMACMRep is the private data of the controller's accept.
type RDMACMRep struct {
	RecFmt  uint16
	CRQSize uint16 // controller receive queue size
}

// Encode writes the reply into b (RDMACMRepSize bytes).
func (r RDMACMRep) Encode(b []byte) {
	clear(b[:RDMACMRepSize])
	le.PutUint16(b[0:], r.RecFmt)
	le.PutUint16(b[2:], r.CRQSize)
}

// DecodeRDMACMRep parses an accept's private data.
func DecodeRDMACMRep(b []byte) (RDMACMRep, error) {
	if len(b) < 4 {
		return RDMACMRep{}, fmt.Errorf("nvme/rdma: accept private data %d bytes, need 4", len(b))
	}
	return RDMACMRep{RecFmt: le.Uint16(b[0:]), CRQSize: le.Uint16(b[2:])}, nil
}

// EncodeRDMACMRej writes reject private data with status sts into b
// (RDMACMRejSize bytes).
func EncodeRDMACMRej(b []byte, sts uint16) {
	le.PutUint16(b[0:], RDMARecFmt10)
	le.PutUint16(b[2:], sts)
}

// DecodeRDMACMRej returns the status of reject private data.
func DecodeRDMACMRej(b []byte) (uint16, error) {
	if len(b) < RDMACMRejSize {
		return 0, fmt.Errorf("nvme/rdma: reject private data %d bytes, need %d", len(b), RDMACMRejSize)
	}
	return le.Uint16(b[2:]), nil
}

// RDMACMStatusText names a reject status.
func RDMACMStatusText(sts uint16) string {
	switch sts {
	case RDMACMInvalidLen:
		return "invalid private data length"
	case RDMACMInvalidRecFmt:
		return "invalid record format"
	case RDMACMInvalidQID:
		return "invalid queue ID"
	case RDMACMInvalidHSQSize:
		return "invalid host send queue size"
	case RDMACMInvalidHRQSize:
		return "invalid host receive queue size"
	case RDMACMNoResources:
		return "no resources"
	case RDMACMInvalidIRD:
		return "invalid IRD"
	case RDMACMInvalidORD:
		return "invalid ORD"
	case RDMACMInvalidCntlID:
		return "invalid controller ID"
	}
	return fmt.Sprintf("status %#x", sts)
}

// Discovery log TSAS values for RDMA (RDMA Transport Specification §4.2,
// Figure 3): bytes 0 QP service type, 1 provider type, 2 connection
// management service, 8-9 partition key. The types' String is the name
// nvme-cli prints.
type (
	RDMAQPType uint8
	RDMAPrType uint8
	RDMACMS    uint8
)

// RDMA QP service types (RDMA_QPTYPE).
const (
	RDMAQPTypeConnected = 1
	RDMAQPTypeDatagram  = 2
)

// RDMA provider types (RDMA_PRTYPE).
const (
	RDMAPrTypeNotSpecific = 1
	RDMAPrTypeIB          = 2
	RDMAPrTypeRoCE        = 3
	RDMAPrTypeRoCEv2      = 4
	RDMAPrTypeIWARP       = 5
)

// RDMA connection management services (RDMA_CMS).
const RDMACMSRDMACM = 1

func (t RDMAQPType) String() string {
	switch t {
	case RDMAQPTypeConnected:
		return "connected"
	case RDMAQPTypeDatagram:
		return "datagram"
	}
	return "unrecognized"
}

func (t RDMAPrType) String() string {
	switch t {
	case RDMAPrTypeNotSpecific:
		return "not specified"
	case RDMAPrTypeIB:
		return "infiniband"
	case RDMAPrTypeRoCE:
		return "roce"
	case RDMAPrTypeRoCEv2:
		return "roce-v2"
	case RDMAPrTypeIWARP:
		return "iwarp"
	}
	return "unrecognized"
}

func (c RDMACMS) String() string {
	if c == RDMACMSRDMACM {
		return "rdma-cm"
	}
	return "unrecognized"
}
