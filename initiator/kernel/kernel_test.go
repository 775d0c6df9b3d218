package kernel_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator/kernel"
	"github.com/flashpath/flashpath/initiator/kernel/kerneltest"
)

func TestOptions(t *testing.T) {
	p := kernel.Params{Transport: "tcp", TrAddr: "10.0.0.5", TrSvcID: "4420", NQN: "nqn.2026-11.io.example:a",
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4697-8879-aabbccddee01", HostID: "0f1e2d3c-4b5a-4697-8879-aabbccddee01",
		NrIOQueues: 4, NrPollQueues: 1, KeepAliveTmo: 5, ReconnectDelay: 2, CtrlLossTmo: -1, HdrDigest: true, DataDigest: true}
	got, err := p.Options()
	if err != nil {
		t.Fatal(err)
	}
	want := "nqn=nqn.2026-11.io.example:a,transport=tcp,traddr=10.0.0.5,trsvcid=4420," +
		"hostnqn=nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4697-8879-aabbccddee01,hostid=0f1e2d3c-4b5a-4697-8879-aabbccddee01," +
		"nr_io_queues=4,nr_poll_queues=1,keep_alive_tmo=5,reconnect_delay=2,ctrl_loss_tmo=-1,hdr_digest,data_digest"
	if got != want {
		t.Fatalf("options\n got %s\nwant %s", got, want)
	}
	// Zero values leave the kernel's defaults: no token at all.
	got, _ = kernel.Params{Transport: "rdma", TrAddr: "169.254.42.1", TrSvcID: "4420", NQN: "n"}.Options()
	if got != "nqn=n,transport=rdma,traddr=169.254.42.1,trsvcid=4420" {
		t.Fatalf("minimal options: %s", got)
	}
	for _, bad := range []kernel.Params{
		{Transport: "tcp", TrAddr: "10.0.0.5", NQN: "a,hostnqn=evil"},
		{Transport: "tcp", TrAddr: "10.0.0.5\n", NQN: "a"},
		{Transport: "tcp", NQN: "a"},
	} {
		if _, err := bad.Options(); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
}

func TestControllers(t *testing.T) {
	fs := kerneltest.New(t.TempDir())
	if cs, err := fs.Controllers(); err != nil || len(cs) != 0 {
		t.Fatalf("no nvme driver: %v, %v; want none and no error", cs, err)
	}
	must(t, fs.Add("nvme0", "pcie", "", "", "nqn.2014.08.org.nvmexpress:local", "live", 1))
	must(t, fs.Add("nvme10", "tcp", "10.0.0.5", "4420", "nqn.a", "connecting", 2))
	must(t, fs.Add("nvme2", "rdma", "169.254.42.1", "4421", "nqn.b", "live", 1))
	cs, err := fs.Controllers()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, []string{"nvme0", "nvme2", "nvme10"}) {
		t.Fatalf("order %v, want nvme0 nvme2 nvme10", names)
	}
	c := cs[2]
	want := kernel.Controller{Name: "nvme10", Transport: "tcp", TrAddr: "10.0.0.5", TrSvcID: "4420", SubNQN: "nqn.a",
		State: "connecting", CntlID: 11, Namespaces: []string{"nvme10n1", "nvme10n2"},
		Address: "traddr=10.0.0.5,trsvcid=4420,src_addr=127.0.0.1"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("controller\n got %+v\nwant %+v", c, want)
	}
	if cs[0].Fabrics() || !cs[1].Fabrics() || !c.Fabrics() {
		t.Fatal("Fabrics: pcie is not, tcp and rdma are")
	}
	st, err := fs.Stat("nvme10n2")
	if err != nil {
		t.Fatal(err)
	}
	if st != (kernel.BlockStat{ReadIOs: 20, ReadBytes: 16 * 512, ReadTicks: 3, WriteIOs: 40, WriteBytes: 32 * 512, WriteTicks: 5, InFlight: 2}) {
		t.Fatalf("stat %+v", st)
	}
	// Counted on the path only (multipath before Linux 6.3): the same.
	must(t, fs.CountOnPaths("nvme10n2"))
	if st2, err := fs.Stat("nvme10n2"); err != nil || st2 != st {
		t.Fatalf("stat counted on the path: %+v, %v; want %+v", st2, err, st)
	}
	if _, err := fs.Stat("../../etc/passwd"); err == nil {
		t.Fatal("Stat accepted a path")
	}
	// Disconnect writes delete_controller as nvme disconnect does.
	if err := fs.Host.Disconnect("nvme2"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(fs.Sys, "class/nvme/nvme2/delete_controller")); string(b) != "1" {
		t.Fatalf("delete_controller holds %q, want 1", b)
	}
	if err := fs.Host.Disconnect("nvme2/../nvme0"); err == nil {
		t.Fatal("Disconnect accepted a path")
	}
}

// TestConnectWithoutDriver: no /dev/nvme-fabrics says what to load.
func TestConnectWithoutDriver(t *testing.T) {
	h := &kernel.Host{Fabrics: filepath.Join(t.TempDir(), "nvme-fabrics"), Sys: t.TempDir()}
	_, err := h.Connect(kernel.Params{Transport: "tcp", TrAddr: "127.0.0.1", TrSvcID: "4420", NQN: "n"})
	if !errors.Is(err, kernel.ErrNotSupported) || !strings.Contains(err.Error(), "modprobe nvme-tcp") {
		t.Fatalf("Connect = %v, want ErrNotSupported saying modprobe nvme-tcp", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
