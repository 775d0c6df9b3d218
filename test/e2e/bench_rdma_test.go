package e2e

import (
	"strconv"
	"testing"

	"github.com/flashpath/flashpath/bench"
	_ "github.com/flashpath/flashpath/bench/fabrics"
	"github.com/flashpath/flashpath/initiator"
	hostrdma "github.com/flashpath/flashpath/initiator/rdma"
	"github.com/flashpath/flashpath/rdma/rdmatest"
	"github.com/flashpath/flashpath/target/backend"
	trdma "github.com/flashpath/flashpath/target/rdma"
)

// startRDMATarget serves a 16 MiB memory namespace over NVMe/RDMA on an
// in-process fake provider, which the nvme-rdma engine then uses too, and
// returns the engine's filename.
func startRDMATarget(t *testing.T) string {
	t.Helper()
	fab := rdmatest.New()
	old := initiator.RegisterTransport(hostrdma.New(fab))
	t.Cleanup(func() { initiator.RegisterTransport(old) })
	be, err := backend.NewMem(16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	tgt := newBenchTarget(t, be)
	ln, err := trdma.Listen(tgt, "169.254.42.1:4420", trdma.Options{Provider: fab})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); tgt.Close() })
	return "rdma://" + ln.Addr().String() + "/" + benchNQN + "/1"
}

// TestRDMAEngineVerified: nvme-rdma writes the namespace with checksums
// (in-capsule 4K writes and 128K keyed ones from registered buffers),
// reads it back verified, then random reads at depth 32.
func TestRDMAEngineVerified(t *testing.T) {
	name := startRDMATarget(t)
	for _, bs := range []int{4 << 10, 128 << 10} {
		r := runJob(t, "ioengine=nvme-rdma", "filename="+name, "rw=randwrite", "bs="+strconv.Itoa(bs), "size=4m", "iodepth=8", "verify=crc32c")
		if w, rd := r.Dir[bench.DirWrite].IOs, r.Dir[bench.DirRead].IOs; w != uint64(4<<20/bs) || rd != w {
			t.Fatalf("bs=%d: %d writes, %d verify reads; want %d each", bs, w, rd, 4<<20/bs)
		}
	}
	r := runJob(t, "ioengine=nvme-rdma", "filename="+name, "rw=randread", "bs=4k", "iodepth=32", "io_size=2m", "norandommap")
	if rd := r.Dir[bench.DirRead]; rd.IOs != 512 || rd.Bytes != 2<<20 {
		t.Fatalf("random reads: %d I/Os, %d bytes; want 512, 2 MiB", rd.IOs, rd.Bytes)
	}
}
