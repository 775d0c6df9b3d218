package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/spdk"
)

// rpcClient speaks SPDK's JSON-RPC as rpc.py does: one object per
// request on one connection, one object back.
type rpcClient struct {
	t  *testing.T
	c  net.Conn
	d  *json.Decoder
	id int
}

func (c *rpcClient) call(method string, params map[string]any) (json.RawMessage, *spdk.Error) {
	c.t.Helper()
	c.id++
	req := map[string]any{"jsonrpc": "2.0", "method": method, "id": c.id}
	if params != nil {
		req["params"] = params
	}
	b, _ := json.Marshal(req)
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
	var resp struct {
		ID     int             `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *spdk.Error     `json:"error"`
	}
	if err := c.d.Decode(&resp); err != nil || resp.ID != c.id {
		c.t.Fatalf("%s: response id %d, %v", method, resp.ID, err)
	}
	return resp.Result, resp.Error
}

func (c *rpcClient) must(method string, params map[string]any) json.RawMessage {
	c.t.Helper()
	res, e := c.call(method, params)
	if e != nil {
		c.t.Fatalf("%s %v: %v", method, params, e)
	}
	return res
}

// TestSPDKRPCSetup replays an operator's rpc.py setup script against a
// target started empty, then checks it through flashpath's host: I/O on
// the namespace, a namespace added over RPC announced to the connected
// host, and a host removed over RPC refused on its next connect.
func TestSPDKRPCSetup(t *testing.T) {
	rpc, _ := startRPCTarget(t)
	port := testutil.FreePort(t)

	const nqn = "nqn.2016-06.io.spdk:cnode1"
	host := "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001" // connect's
	la := map[string]any{"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1", "trsvcid": port}
	rpc.must("nvmf_create_transport", map[string]any{"trtype": "TCP", "io_unit_size": 131072, "max_qpairs_per_ctrlr": 8})
	rpc.must("bdev_malloc_create", map[string]any{"name": "Malloc0", "num_blocks": 32768, "block_size": 512})
	rpc.must("nvmf_create_subsystem", map[string]any{"nqn": nqn, "serial_number": "SPDK00000000000001", "model_number": "SPDK bdev Controller"})
	rpc.must("nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": "Malloc0"}})
	rpc.must("nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": la})
	rpc.must("nvmf_subsystem_add_host", map[string]any{"nqn": nqn, "host": host})

	events := make(chan initiator.Event, 16)
	tt := testTarget{addr: "127.0.0.1:" + port, subnqn: nqn, nsid: 1}
	ctrl := connect(t, tt, func(c *initiator.Config) { c.Events = func(ev initiator.Event) { events <- ev } })
	if id := ctrl.Identify(); id.Serial != "SPDK00000000000001" || id.Model != "SPDK bdev Controller" {
		t.Errorf("identify: serial %q model %q", id.Serial, id.Model)
	}
	ns := openNS(t, ctrl, 1)
	if ns.Size() != 32768*512 || ns.BlockSize() != 512 {
		t.Errorf("namespace 1: %d bytes in %d-byte blocks, want %d in 512", ns.Size(), ns.BlockSize(), 32768*512)
	}
	readWriteRandom(t, ns, 2)
	var io struct {
		Bdevs []struct {
			Name         string `json:"name"`
			BytesWritten uint64 `json:"bytes_written"`
			NumReadOps   uint64 `json:"num_read_ops"`
		} `json:"bdevs"`
	}
	if err := json.Unmarshal(rpc.must("bdev_get_iostat", map[string]any{"name": "Malloc0"}), &io); err != nil || len(io.Bdevs) != 1 || io.Bdevs[0].BytesWritten == 0 || io.Bdevs[0].NumReadOps == 0 {
		t.Errorf("bdev_get_iostat after I/O: %+v %v", io, err)
	}

	var ctrls []struct {
		CntlID      uint16 `json:"cntlid"`
		HostNQN     string `json:"hostnqn"`
		NumIOQPairs int    `json:"num_io_qpairs"`
	}
	if err := json.Unmarshal(rpc.must("nvmf_subsystem_get_controllers", map[string]any{"nqn": nqn}), &ctrls); err != nil ||
		len(ctrls) != 1 || ctrls[0].HostNQN != host || ctrls[0].CntlID != ctrl.CntlID() || ctrls[0].NumIOQPairs != len(ctrl.Queues()) {
		t.Errorf("nvmf_subsystem_get_controllers: %+v %v (cntlid %d, %d I/O queues)", ctrls, err, ctrl.CntlID(), len(ctrl.Queues()))
	}

	// A namespace added over RPC reaches the connected host.
	rpc.must("bdev_null_create", map[string]any{"name": "Null0", "num_blocks": 2048, "block_size": 4096})
	if got := string(rpc.must("nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": "Null0", "nsid": 2}})); got != "2" {
		t.Fatalf("add_ns returned %s, want 2", got)
	}
	select {
	case ev := <-events:
		if ev.Type != nvmeof.AEReasonNotice || ev.Info != nvmeof.AENoticeNSAttrChanged || !slices.Contains(ev.ChangedNamespaces, 2) {
			t.Fatalf("event %+v, want a namespace attribute notice listing 2", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no asynchronous event for the namespace added over RPC")
	}
	if ns2 := openNS(t, ctrl, 2); ns2.Size() != 2048*4096 {
		t.Errorf("namespace 2: %d bytes", ns2.Size())
	}

	// The data written before is still there: the RPC changes did not
	// touch namespace 1.
	want := bytes.Repeat([]byte{0x5a}, 4096)
	if _, err := ns.WriteAt(want, 1<<20); err != nil {
		t.Fatal(err)
	}
	rpc.must("nvmf_subsystem_remove_ns", map[string]any{"nqn": nqn, "nsid": 2})
	got := make([]byte, len(want))
	if _, err := ns.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("namespace 1 after removing namespace 2: %v", err)
	}

	// A host taken off the list is refused on its next connect.
	rpc.must("nvmf_subsystem_remove_host", map[string]any{"nqn": nqn, "host": host})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := initiator.Connect(ctx, initiator.Config{Addr: "tcp://" + tt.addr, SubNQN: nqn, CtrlLossTimeout: -1,
		Options: initiator.Options{HostNQN: host}}); err == nil {
		c.Close()
		t.Fatal("a host removed over RPC still connects")
	}
	// And allowed again over RPC, it connects.
	rpc.must("nvmf_subsystem_allow_any_host", map[string]any{"nqn": nqn, "allow_any_host": true})
	connect(t, tt, nil)
}
