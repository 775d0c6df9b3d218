package sysfs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestAttrs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state"), []byte("live\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "nvme0n1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadAttr(dir, "state"); v != "live" || err != nil {
		t.Errorf("ReadAttr(state) = %q, %v", v, err)
	}
	if _, err := ReadAttr(dir, "missing"); err == nil {
		t.Error("ReadAttr(missing) succeeded")
	}
	if v := Attr(dir, "missing"); v != "" {
		t.Errorf("Attr(missing) = %q", v)
	}
	if got := Names(dir); !slices.Equal(got, []string{"nvme0n1", "state"}) {
		t.Errorf("Names = %q", got)
	}
	if got := Names(filepath.Join(dir, "missing")); len(got) != 0 {
		t.Errorf("Names(missing) = %q", got)
	}
}

func TestNVMeControllersWithoutDriver(t *testing.T) {
	ctrls, err := NVMeControllers(t.TempDir())
	if ctrls != nil || err != nil {
		t.Errorf("no class/nvme: %v, %v; want none and no error", ctrls, err)
	}
}

func TestNames(t *testing.T) {
	for name, want := range map[string][2]bool{
		"nvme0": {true, false}, "nvme12": {true, false}, "nvme0n1": {false, true}, "nvme3c1n2": {false, false},
		"nvme-fabrics": {false, false}, "nvme": {false, false},
	} {
		if c, n := IsNVMeController(name), IsNVMeNamespace(name); c != want[0] || n != want[1] {
			t.Errorf("%s: controller %v namespace %v, want %v", name, c, n, want)
		}
	}
	if a, p := ParseNVMeAddress("traddr=10.0.0.1,trsvcid=4420,src_addr=10.0.0.2"); a != "10.0.0.1" || p != "4420" {
		t.Errorf("ParseNVMeAddress = %q %q", a, p)
	}
}
