package initiator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
)

// Transport is one NVMe-oF transport of the host, in the manner of the
// Linux host's struct nvme_ctrl_ops: it connects queue pairs and makes
// memory reachable by them; the core (this package) runs everything
// above. initiator/tcp and initiator/rdma implement it and register
// themselves (RegisterTransport) when imported.
type Transport interface {
	// Name is the transport type as address schemes spell it: "tcp", "rdma".
	Name() string
	// DialQueue connects one queue pair to the controller at p.Addr,
	// ready for its Fabrics Connect command; the core starts its receive
	// side (Link.Receive) and owns it from then on.
	DialQueue(ctx context.Context, p QueueParams) (Link, error)
	// Register makes mem reachable by the transport without copies (over
	// NVMe/RDMA a memory region the controller reads and writes
	// directly); requests whose buffers lie in it then move no bytes
	// through bounce buffers. Transports that copy anyway (NVMe/TCP)
	// return a Registration that does nothing.
	Register(mem []byte) (Registration, error)
}

// Registration is memory registered with a transport; Close releases it
// once no request in flight uses it.
type Registration interface {
	Close() error
}

// DeviceMemory is memory of a device, a GPU's, as a plain value: this
// package never reads or writes its bytes, and never imports the device's
// driver. The caller (gds, say) allocates it and exports the dma-buf.
type DeviceMemory struct {
	Addr uint64 // the device address (a CUdeviceptr), which requests name
	Len  int64
	// DMABufFD is a dma-buf exporting the memory
	// (cuMemGetHandleForAddressRange), Addr lying at Offset in it; -1
	// when there is none, and the transport registers Addr itself (over
	// RDMA that needs a peer memory client such as nvidia-peermem). The
	// transport keeps what it needs of the fd: the caller may close it
	// once RegisterDevice returns.
	DMABufFD int
	Offset   uint64
}

// DeviceRegistrar is implemented by transports whose controller can move
// data to and from device memory directly (NVMe/RDMA: the NIC reads and
// writes GPU memory); it is optional, and transports without it refuse
// device requests with ErrNoDeviceMemory.
type DeviceRegistrar interface {
	// RegisterDevice makes m reachable by the controller: requests whose
	// Dev range lies in it then move with no copy.
	RegisterDevice(m DeviceMemory) (Registration, error)
}

// ErrNoDeviceMemory is wrapped by the errors of a transport that cannot
// move data to or from device memory (NVMe/TCP): stage through host
// buffers instead.
var ErrNoDeviceMemory = errors.New("initiator: this transport cannot reach device memory")

// QueueParams describe the queue pair a Transport dials.
type QueueParams struct {
	Addr    string // "host:port"
	QID     uint16 // 0: the admin queue
	Depth   int    // commands in flight at most
	CntlID  uint16 // the controller an I/O queue joins (NVMe/RDMA sends it in its private data)
	HDigest bool   // NVMe/TCP header digest
	DDigest bool   // NVMe/TCP data digest
	// ICD is the in-capsule data the controller accepts with commands
	// other than fabrics commands on this queue (from IOCCSZ; 0 on the
	// admin queue).
	ICD int
	// BusyPoll is how long the receive side polls before it sleeps
	// (Options.BusyPoll; I/O queues only). Transports that cannot poll
	// ignore it.
	BusyPoll time.Duration
	// Polled asks for a queue without a receive goroutine, whose users
	// poll it (Options.Polled); a Link that is not a PollLink ignores it.
	Polled bool
	// TLSKey (Options.TLSKey, already checked) secures an NVMe/TCP
	// connection with TLS; its PSK identities name HostNQN and SubNQN.
	TLSKey          string
	HostNQN, SubNQN string
	Log             *slog.Logger

	timeout time.Duration
	onDead  func(error) // called once when the queue fails
}

// Link is a transport's half of one queue pair: it puts commands on the
// wire and receives what the controller sends back. The core calls
// Prepare, then Send under the queue's send lock; its receive goroutine
// runs Receive until the connection fails, then (after every request in
// flight is released) Close.
type Link interface {
	// Prepare readies the command in slot cid for Send; it runs on the
	// submitter's goroutine, outside the send lock, before the command
	// is in flight. An error means it is not sent (and not released).
	Prepare(cid uint16, c *Command) error
	// Send puts slot cid's prepared command on the wire, or buffers it
	// until Flush; called under the send lock, with the command in flight.
	Send(cid uint16, c *Command) error
	// Flush sends what Send buffered; called under the send lock.
	Flush() error
	// Release drops what Prepare took for slot cid: its command was not
	// sent, or the queue failed under it. Commands that complete are
	// released by the transport before it calls Queue.Complete.
	Release(cid uint16)
	// Receive runs the receive side until the connection fails or Stop
	// is called, completing commands with Queue.Complete; it returns why
	// it ended. It runs on the queue's receive goroutine.
	Receive(q *Queue) error
	// Stop breaks the connection so that Receive returns; called once,
	// from any goroutine, when the queue fails. After it the device or
	// the socket touches none of the queue's buffers.
	Stop()
	// Close frees the link once Receive has returned and every command
	// in flight was released.
	Close()
}

// PollLink is a Link whose receive side can also run on the
// application's goroutines (Options.Polled), as SPDK's host and the Linux
// host's poll queues reap completions: the queue then has no receive
// goroutine, and completions are delivered on the goroutine that polls.
type PollLink interface {
	Link
	// Poll runs the receive side, completing commands with
	// Queue.Complete, until ready reports true (checked between PDUs;
	// it blocks on the connection meanwhile), then handles what it has
	// already read without waiting. It returns why the connection
	// failed, or nil. The core calls it with the queue's receive side
	// held: one Poll at a time.
	Poll(q *Queue, ready func() bool) error
}

// Command is a request as a transport sees it, in its queue slot from
// Prepare until Release or Queue.Complete.
type Command struct {
	sqe *nvmeof.SQE
	// Buf is the command's data; Out says it flows host to controller.
	Buf []byte
	Out bool
	// DevLen > 0: the data is DevLen bytes of device memory at address
	// Dev (Buf is nil). A transport that cannot carry it fails Prepare
	// with an error wrapping ErrNoDeviceMemory.
	Dev    uint64
	DevLen int
}

// Len returns the length of the command's data, in Buf or device memory.
func (c *Command) Len() int {
	if c.DevLen > 0 {
		return c.DevLen
	}
	return len(c.Buf)
}

// Fabrics reports whether the command is a fabrics command (Connect,
// Property Get/Set), which the in-capsule limits of I/O commands do not
// bound.
func (c *Command) Fabrics() bool { return c.sqe.Opcode() == nvmeof.OpFabrics }

// ShortTransferOK reports whether the controller may transfer less data
// than Len and still succeed: Authentication Receive returns "up to AL
// bytes" (SPDK's target sends just the message; Linux nvmet pads to AL).
func (c *Command) ShortTransferOK() bool {
	return c.sqe.Opcode() == nvmeof.OpFabrics && c.sqe.FCType() == nvmeof.FabricsAuthRecv
}

// PutSQE writes the command's submission entry into b (at least
// nvmeof.SQESize bytes) with command id cid and SGL data transfer, and
// returns it for the transport to fill in the data block descriptor.
func (c *Command) PutSQE(b []byte, cid uint16) *nvmeof.SQE {
	sqe := nvmeof.SQEView(b)
	*sqe = *c.sqe
	sqe.SetCID(cid)
	sqe.SetFlags(sqe.Flags()&^0xC0 | nvmeof.FlagsSGL)
	return sqe
}

var transports sync.Map // name -> Transport

// RegisterTransport makes t the transport of addresses with its name as
// scheme; initiator/tcp and initiator/rdma call it when imported. A later
// registration under the same name replaces the earlier one, which it
// returns (nil if none): tests put a transport over a fake device in
// place this way, and the previous one back when done.
func RegisterTransport(t Transport) (previous Transport) {
	if old, ok := transports.Swap(t.Name(), t); ok {
		return old.(Transport)
	}
	return nil
}

// transportFor returns the registered transport named name.
func transportFor(name string) (Transport, error) {
	if t, ok := transports.Load(name); ok {
		return t.(Transport), nil
	}
	var have []string
	transports.Range(func(k, _ any) bool { have = append(have, k.(string)); return true })
	sort.Strings(have)
	return nil, fmt.Errorf("transport %q is not built into this program (have: %s): import github.com/flashpath/flashpath/initiator/%s",
		name, strings.Join(have, ", "), name)
}
