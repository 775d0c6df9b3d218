package target

import (
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
)

// TestDiscoveryOnlyPort: a DiscoveryOnly port (NVMe/TCP's 8009) serves the
// discovery controller, whose log lists the I/O ports and not itself; a
// Connect to a subsystem there is refused (Invalid Parameter on SUBNQN),
// as Linux nvmet refuses a subsystem not linked to the port; its port ID
// is not given again when another port comes and goes.
func TestDiscoveryOnlyPort(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	io := tgt.AddPort(PortInfo{TrType: nvmeof.TrTypeTCP, Addr: mustAddrPort("0.0.0.0:4420")})
	disc := tgt.AddPort(PortInfo{TrType: nvmeof.TrTypeTCP, Addr: mustAddrPort("0.0.0.0:8009"), DiscoveryOnly: true})

	on := func(port uint16) *peer {
		p := newPeer(t, tgt)
		p.q.SetPort(port)
		return p
	}
	// The discovery controller on the discovery port lists the I/O port.
	d := on(disc)
	d.ok(connectSQE(0, 31, 0), connectData(t, nvmeof.DiscoveryNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
	d.ok(propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(true))), nil)
	n := uint32(nvmeof.DiscoveryLogSize(4))
	r := d.ok(logSQE(nvmeof.LogDiscovery, 0, n, 0), make([]byte, n))
	log, err := nvmeof.DecodeDiscoveryLog(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Entries) != 1 || log.Entries[0].PortID != io || log.Entries[0].TrSvcID != "4420" || log.Entries[0].SubNQN != testNQN {
		t.Fatalf("discovery log %+v: want %s on port %d (4420) only", log.Entries, testNQN, io)
	}
	d.q.Closed()

	// A subsystem is refused on the discovery port, served on the I/O port.
	r = on(disc).want(nvmeof.StatusConnectInvalidParam, connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
	if r.Status()&nvmeof.StatusDNR == 0 || r.Rsp.DW0() != nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffSubNQN) {
		t.Errorf("refused connect: status %v, DW0 %#x: want DNR and the SUBNQN offset", r.Status(), r.Rsp.DW0())
	}
	p := on(io)
	p.ok(connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
	p.q.Closed()

	// Port IDs stay unique as ports come and go.
	other := tgt.AddPort(PortInfo{TrType: nvmeof.TrTypeTCP, Addr: mustAddrPort("0.0.0.0:4421")})
	tgt.RemovePort(io)
	next := tgt.AddPort(PortInfo{TrType: nvmeof.TrTypeTCP, Addr: mustAddrPort("0.0.0.0:4422")})
	if next == disc || next == other || next == io {
		t.Fatalf("new port ID %d reuses one of %d, %d, %d", next, io, disc, other)
	}
	on(disc).want(nvmeof.StatusConnectInvalidParam, connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
}
