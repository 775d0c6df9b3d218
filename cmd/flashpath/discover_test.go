package main

import (
	"bytes"
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
)

// TestPrintDiscoveryRDMA: an NVMe/RDMA entry prints as nvme discover
// prints it, TSAS fields included, in both formats.
func TestPrintDiscoveryRDMA(t *testing.T) {
	log := nvmeof.DiscoveryLog{GenCtr: 4, NumRec: 1, Entries: []nvmeof.DiscoveryEntry{{
		TrType: nvmeof.TrTypeRDMA, AdrFam: nvmeof.AdrFamIPv4, SubType: nvmeof.SubTypeNVM, TReq: nvmeof.TReqSecureChannelNotSpecified,
		PortID: 2, TrSvcID: "4420", SubNQN: "nqn.x", TrAddr: "192.168.1.10", EFlags: nvmeof.EFlagsDuplicateReturnInfo,
		RDMAQPType: nvmeof.RDMAQPTypeConnected, RDMAPrType: nvmeof.RDMAPrTypeNotSpecific, RDMACMS: nvmeof.RDMACMSRDMACM, RDMAPKey: 0xffff,
	}}}
	var b bytes.Buffer
	printDiscovery(&b, log)
	want := `
Discovery Log Number of Records 1, Generation counter 4
=====Discovery Log Entry 0======
trtype:  rdma
adrfam:  ipv4
subtype: nvme subsystem
treq:    not specified
portid:  2
trsvcid: 4420
subnqn:  nqn.x
traddr:  192.168.1.10
eflags:  duplicate discovery information
rdma_prtype: not specified
rdma_qptype: connected
rdma_cms:    rdma-cm
rdma_pkey: 0xffff
`
	if b.String() != want {
		t.Errorf("normal output:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := printDiscoveryJSON(&b, log); err != nil {
		t.Fatal(err)
	}
	want = `{
  "genctr": 4,
  "records": [
    {
      "trtype": "rdma",
      "adrfam": "ipv4",
      "subtype": "nvme subsystem",
      "treq": "not specified",
      "portid": 2,
      "trsvcid": "4420",
      "subnqn": "nqn.x",
      "traddr": "192.168.1.10",
      "eflags": "duplicate discovery information",
      "rdma_prtype": "not specified",
      "rdma_qptype": "connected",
      "rdma_cms": "rdma-cm",
      "rdma_pkey": "0xffff"
    }
  ]
}
`
	if b.String() != want {
		t.Errorf("json output:\n%s\nwant:\n%s", b.String(), want)
	}
}
