package topo

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSys builds a sysfs tree: two sockets; GPU0, mlx5_0 and nvme0 behind
// one switch on socket 0; GPU1 alone on socket 1; nvme1 on socket 0 but
// another root complex; nvme2 over TCP.
func fakeSys(t *testing.T) string {
	root := t.TempDir()
	dev := func(path string, numa int, attrs map[string]string) string {
		p := filepath.Join(root, "devices", path)
		must(t, os.MkdirAll(p, 0o755))
		must(t, os.WriteFile(filepath.Join(p, "numa_node"), []byte(itoa(numa)+"\n"), 0o644))
		for k, v := range attrs {
			must(t, os.WriteFile(filepath.Join(p, k), []byte(v+"\n"), 0o644))
		}
		bus := filepath.Join(root, "bus", "pci", "devices")
		must(t, os.MkdirAll(bus, 0o755))
		must(t, os.Symlink(p, filepath.Join(bus, filepath.Base(p))))
		return p
	}
	gpu := map[string]string{"vendor": "0x10de", "class": "0x030200", "device": "0x2330"}
	dev("pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:00.0", 0, gpu)
	nic := dev("pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0", 0, map[string]string{"vendor": "0x15b3", "class": "0x020700"})
	nv0 := dev("pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:02.0", 0, map[string]string{"vendor": "0x144d", "class": "0x010802"})
	dev("pci0000:80/0000:80:01.0/0000:81:00.0", 1, gpu)
	nv1 := dev("pci0000:40/0000:40:01.0/0000:41:00.0", 0, map[string]string{"vendor": "0x144d", "class": "0x010802"})

	ib := filepath.Join(root, "class", "infiniband", "mlx5_0")
	must(t, os.MkdirAll(ib, 0o755))
	must(t, os.Symlink(nic, filepath.Join(ib, "device")))
	must(t, os.MkdirAll(filepath.Join(nic, "net", "eth2"), 0o755))

	ctrl := func(name, transport, target string) {
		p := filepath.Join(root, "class", "nvme", name)
		must(t, os.MkdirAll(filepath.Join(p, name+"n1"), 0o755))
		os.WriteFile(filepath.Join(p, "transport"), []byte(transport+"\n"), 0o644)
		os.WriteFile(filepath.Join(p, "state"), []byte("live\n"), 0o644)
		os.WriteFile(filepath.Join(p, "model"), []byte("Fake SSD\n"), 0o644)
		if target != "" {
			must(t, os.Symlink(target, filepath.Join(p, "device")))
		} else {
			os.WriteFile(filepath.Join(p, "address"), []byte("traddr=10.0.0.2,trsvcid=4420\n"), 0o644)
		}
	}
	ctrl("nvme0", "pcie", nv0)
	ctrl("nvme1", "pcie", nv1)
	ctrl("nvme2", "tcp", "")
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestDiscover(t *testing.T) {
	r, err := Discover(Config{SysRoot: fakeSys(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GPUs) != 2 || len(r.NICs) != 1 || len(r.NVMe) != 3 {
		t.Fatalf("found %d GPUs, %d NICs, %d NVMe: %+v", len(r.GPUs), len(r.NICs), len(r.NVMe), r)
	}
	g0, g1 := r.GPUs[0], r.GPUs[1]
	if g0.PCIAddr != "0000:02:00.0" || g0.NUMANode != 0 || g1.NUMANode != 1 {
		t.Fatalf("GPUs %+v %+v", g0, g1)
	}
	if g0.ClosestNIC == nil || g0.ClosestNIC.Name != "mlx5_0" || g0.ClosestNIC.Distance != SameSwitch {
		t.Errorf("GPU0 closest NIC %+v", g0.ClosestNIC)
	}
	if g0.ClosestNVMe == nil || g0.ClosestNVMe.Name != "nvme0" || g0.ClosestNVMe.Distance != SameSwitch {
		t.Errorf("GPU0 closest NVMe %+v", g0.ClosestNVMe)
	}
	if g1.ClosestNIC.Distance != CrossSocket || len(g1.Warnings) == 0 || !strings.Contains(g1.Warnings[0], "sockets") {
		t.Errorf("GPU1: %+v, want a cross-socket warning", g1)
	}
	if len(r.NICs[0].NetDevs) != 1 || r.NICs[0].NetDevs[0].Name != "eth2" {
		t.Errorf("NIC netdevs %+v", r.NICs[0].NetDevs)
	}
	if r.NVMe[2].Transport != "tcp" || r.NVMe[2].Address == "" || len(r.NVMe[0].Namespaces) != 1 {
		t.Errorf("NVMe %+v", r.NVMe)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

func TestDistance(t *testing.T) {
	root := fakeSys(t)
	c := Config{SysRoot: root}
	d := func(p string) string { return filepath.Join(root, "devices", p) }
	for _, tc := range []struct {
		a, b   string
		na, nb int
		want   Distance
	}{
		{"pci0000:00/0000:00:01.0/0000:01:00.0", "pci0000:00/0000:00:01.0/0000:01:00.1", 0, 0, SameSwitch},
		{"pci0000:00/0000:00:01.0", "pci0000:00/0000:00:02.0", 0, 0, SameRootComplex},
		{"pci0000:00/0000:00:01.0", "pci0000:40/0000:40:01.0", 0, 0, SameNUMA},
		{"pci0000:00/0000:00:01.0", "pci0000:80/0000:80:01.0", 0, 1, CrossSocket},
		{"pci0000:00/0000:00:01.0", "virtual/net/lo", 0, 0, Unknown},
	} {
		if got := c.distance(d(tc.a), d(tc.b), tc.na, tc.nb); got != tc.want {
			t.Errorf("%s ↔ %s: %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestEmptyMachine(t *testing.T) {
	r, err := Discover(Config{SysRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GPUs)+len(r.NICs)+len(r.NVMe) != 0 || len(r.Notes) < 3 {
		t.Fatalf("empty machine: %+v", r)
	}
}

// TestFabricsNVMeThroughNIC: an NVMe-oF controller is placed where the NIC
// its traffic leaves through sits (the route to its traddr): nvme3 over
// RDMA to 10.0.0.5 through eth2 of mlx5_0, behind GPU0's switch; GPU1 on
// the other socket is warned that the path through eth2 crosses sockets.
// One reached through lo has no PCIe place.
func TestFabricsNVMeThroughNIC(t *testing.T) {
	root := fakeSys(t)
	nic, err := filepath.EvalSymlinks(filepath.Join(root, "class", "infiniband", "mlx5_0", "device"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.MkdirAll(filepath.Join(root, "class", "net", "eth2"), 0o755))
	must(t, os.Symlink(nic, filepath.Join(root, "class", "net", "eth2", "device")))
	// nvme0 and nvme1 become fabrics controllers: only nvme3 has a NIC behind it.
	for _, n := range []string{"nvme0", "nvme1"} {
		must(t, os.RemoveAll(filepath.Join(root, "class", "nvme", n)))
	}
	p := filepath.Join(root, "class", "nvme", "nvme3")
	must(t, os.MkdirAll(filepath.Join(p, "nvme3c3n1"), 0o755))
	must(t, os.WriteFile(filepath.Join(p, "transport"), []byte("rdma\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(p, "state"), []byte("live\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(p, "address"), []byte("traddr=10.0.0.5,trsvcid=4420,src_addr=10.0.0.1\n"), 0o644))
	routes := map[string]string{"10.0.0.5": "eth2", "10.0.0.2": "lo"}
	r, err := Discover(Config{SysRoot: root, RouteDev: func(ip string) (string, error) { return routes[ip], nil }})
	if err != nil {
		t.Fatal(err)
	}
	var nv3, nv2 *NVMe
	for i := range r.NVMe {
		switch r.NVMe[i].Name {
		case "nvme3":
			nv3 = &r.NVMe[i]
		case "nvme2":
			nv2 = &r.NVMe[i]
		}
	}
	if nv3 == nil || nv3.NetDev != "eth2" || nv3.NetPCIAddr != "0000:02:01.0" || nv3.NUMANode != 0 {
		t.Fatalf("nvme3: %+v", nv3)
	}
	if nv2 == nil || nv2.NetDev != "lo" || nv2.NetPCIAddr != "" {
		t.Fatalf("nvme2: %+v", nv2)
	}
	g0, g1 := r.GPUs[0], r.GPUs[1]
	if l := g0.ClosestNVMe; l == nil || l.Name != "nvme3" || l.Via != "eth2" || l.Distance != SameSwitch || l.PCIAddr != "0000:02:01.0" {
		t.Errorf("GPU0 closest NVMe %+v", l)
	}
	found := false
	for _, w := range g1.Warnings {
		found = found || strings.Contains(w, "nvme3 (0000:02:01.0 through eth2) sit on different sockets")
	}
	if !found {
		t.Errorf("GPU1 warnings %v, want nvme3 through eth2 across sockets", g1.Warnings)
	}
}
