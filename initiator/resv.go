package initiator

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/flashpath/flashpath/nvmeof"
)

// Reservations (NVMe Base 2.0 §8.19): this host (its Host Identifier)
// registers a key on the namespace and may hold a reservation that keeps
// other hosts from writing, or from reading too; a host taking over from
// a failed one preempts it, and with Preempt and Abort the command
// returns only once the failed host's commands already on the target have
// run. The commands go once over one I/O queue: they are not re-sent on a
// new connection.

// resv runs one reservation command on ns: buf is its data, out says
// which way it flows.
func (n *Namespace) resv(ctx context.Context, name string, op uint8, cdw10, cdw11 uint32, buf []byte, out bool) error {
	s, err := n.c.ioSession(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var sqe nvmeof.SQE
	sqe.SetOpcode(op)
	sqe.SetNSID(n.id)
	sqe.SetCDW(10, cdw10)
	sqe.SetCDW(11, cdw11)
	_, err = n.queue(s).exec(ctx, name, &sqe, buf, out)
	return err
}

// ResvRegister registers this host's key nrkey (act nvmeof.ResvRegister),
// removes its registration (ResvUnregister) or replaces its key crkey
// with nrkey (ResvReplace); iekey skips the check of crkey. cptpl 3
// turns the namespace's persistence through power loss on, 2 off, 0
// leaves it (nvme resv-register --cptpl).
func (n *Namespace) ResvRegister(ctx context.Context, act uint8, iekey bool, cptpl uint8, crkey, nrkey uint64) error {
	cdw10 := uint32(act&7) | uint32(cptpl&3)<<30
	if iekey {
		cdw10 |= nvmeof.ResvIEKEY
	}
	buf := make([]byte, nvmeof.ResvKeysSize)
	nvmeof.PutResvKeys(buf, crkey, nrkey)
	return n.resv(ctx, "reservation register", nvmeof.NVMResvRegister, cdw10, 0, buf, true)
}

// ResvAcquire takes a reservation of type rtype (act nvmeof.ResvAcquire),
// or preempts the registrants with key prkey (ResvPreempt,
// ResvPreemptAndAbort), as the host registered with crkey.
func (n *Namespace) ResvAcquire(ctx context.Context, act, rtype uint8, crkey, prkey uint64) error {
	buf := make([]byte, nvmeof.ResvKeysSize)
	nvmeof.PutResvKeys(buf, crkey, prkey)
	return n.resv(ctx, "reservation acquire", nvmeof.NVMResvAcquire, uint32(act&7)|uint32(rtype)<<8, 0, buf, true)
}

// ResvRelease releases this host's reservation of type rtype (act
// nvmeof.ResvRelease), or clears every registration and the reservation
// (ResvClear), as the host registered with crkey.
func (n *Namespace) ResvRelease(ctx context.Context, act, rtype uint8, crkey uint64) error {
	buf := binary.LittleEndian.AppendUint64(nil, crkey)
	return n.resv(ctx, "reservation release", nvmeof.NVMResvRelease, uint32(act&7)|uint32(rtype)<<8, 0, buf, true)
}

// ResvReport returns the namespace's registrants and reservation (the
// extended data structure: 128-bit Host Identifiers), up to 63
// registrants.
func (n *Namespace) ResvReport(ctx context.Context) (nvmeof.ResvReport, error) {
	buf := make([]byte, 4096)
	if err := n.resv(ctx, "reservation report", nvmeof.NVMResvReport, uint32(len(buf)/4-1), 1, buf, false); err != nil {
		return nvmeof.ResvReport{}, err
	}
	return nvmeof.DecodeResvReport(buf)
}
