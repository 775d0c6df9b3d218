package target

import "net/netip"

// QueueTransport is what the core asks of a transport for one queue pair,
// in the manner of the kernel's struct nvmet_fabrics_ops.
type QueueTransport interface {
	// Complete sends the response (and, for a successful read-direction
	// command, its data) for r and releases r. It may be called from any
	// goroutine, at most once per Execute.
	Complete(r *Request)
	// Close tears down the queue's connection: the controller was deleted
	// or its keep-alive timer expired. It must not block on the queue's own
	// goroutine.
	Close(reason error)
}

// TransportInfo is what a controller reports about the transport its admin
// queue came in on (Identify Controller SGLS and IOCCSZ, error log TRTYPE).
type TransportInfo struct {
	TrType uint8 // nvmeof.TrTypeTCP, TrTypeRDMA
	// InlineData is the in-capsule data I/O queues accept (IOCCSZ).
	InlineData int
	// KeyedSGL: data moves by remote memory access (NVMe/RDMA keyed SGL
	// data block descriptors).
	KeyedSGL bool
}

// PortInfo describes a listener for the discovery log page.
type PortInfo struct {
	ID             uint16
	TrType         uint8 // nvmeof.TrTypeTCP, TrTypeRDMA
	Addr           netip.AddrPort
	InlineDataSize int // in-capsule data the transport accepts on I/O queues
	MaxH2CData     int
	// TReq and SecType are the discovery log entry's secure channel
	// requirement (nvmeof.TReqSecureChannel*, 0: not specified) and, for
	// NVMe/TCP, TSAS security type (nvmeof.SecType*, 0: none).
	TReq, SecType uint8
	// DiscoveryOnly makes the port a discovery service port (NVMe/TCP's
	// 8009, which nvme discover tries by default): hosts reach the
	// discovery controller there and nothing else (a Connect to another
	// subsystem is refused, as Linux nvmet refuses a subsystem not linked
	// to the port), and the discovery log does not list it, since it
	// serves no I/O.
	DiscoveryOnly bool
}

// Transport limits the core reports in Identify Controller.
const (
	// MaxTransferShift is MDTS: 2^8 pages of 4 KiB = 1 MiB per command.
	MaxTransferShift = 8
	// MaxAdminQueueDepth is the most entries an admin queue may have (SPDK's
	// default max_aq_depth; Linux and SPDK hosts ask for 32).
	MaxAdminQueueDepth = 128
	// MaxTransfer is the largest data transfer of one command.
	MaxTransfer = 4096 << MaxTransferShift
	// AdminInlineData is the in-capsule data accepted on admin queues (the
	// Linux host assumes 8 KiB before it has read IOCCSZ).
	AdminInlineData = 8192
)
