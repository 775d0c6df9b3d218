package rdma

import (
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
)

// TestReservationsOverRDMA: the reservation commands cross NVMe/RDMA:
// Register and Acquire with their keys in the capsule, Report into a
// keyed buffer (RDMA WRITE), and the holder's writes go through.
func TestReservationsOverRDMA(t *testing.T) {
	tt := startTarget(t)
	_, cntlid := tt.controller(t)
	q := tt.ioQueue(t, cntlid, 1, 8)
	resv := func(op uint8, cdw10 uint32, cur, other uint64) nvmeof.CQE {
		c := &cmd{}
		c.sqe.SetOpcode(op)
		c.sqe.SetNSID(1)
		c.sqe.SetCDW(10, cdw10)
		c.inline = make([]byte, nvmeof.ResvKeysSize)
		nvmeof.PutResvKeys(c.inline, cur, other)
		if op == nvmeof.NVMResvRelease {
			c.inline = c.inline[:nvmeof.ResvReleaseSize]
		}
		return q.exec(c)
	}
	ok(t, "register", resv(nvmeof.NVMResvRegister, nvmeof.ResvRegister, 0, 0x5EC))
	ok(t, "acquire", resv(nvmeof.NVMResvAcquire, nvmeof.ResvAcquire|nvmeof.ResvExclusiveAccess<<8, 0x5EC, 0))

	c := &cmd{keyed: q.data[:4096]}
	c.sqe.SetOpcode(nvmeof.NVMResvReport)
	c.sqe.SetNSID(1)
	c.sqe.SetCDW(10, 4096/4-1)
	c.sqe.SetCDW(11, 1) // extended data structure
	ok(t, "report", q.exec(c))
	rep, err := nvmeof.DecodeResvReport(q.data[:4096])
	if err != nil || rep.Type != nvmeof.ResvExclusiveAccess || rep.Regs != 1 || rep.List[0].Key != 0x5EC || rep.List[0].HostID != hostID || !rep.List[0].Holds {
		t.Fatalf("report %+v (%v)", rep, err)
	}
	w := rw(nvmeof.NVMWrite, 0, 1)
	w.inline = make([]byte, 512)
	ok(t, "the holder's write", q.exec(&w))
	ok(t, "release", resv(nvmeof.NVMResvRelease, nvmeof.ResvRelease|nvmeof.ResvExclusiveAccess<<8, 0x5EC, 0))
}
