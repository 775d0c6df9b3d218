package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.img")
	if err := os.WriteFile(existing, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		spec     string
		kind     string
		size     int64
		bs       int
		err      string // substring of the error; "" for success
		buffered bool
		ro       bool
	}{
		{spec: "mem:1GiB", kind: "mem", size: 1 << 30, bs: 512},
		{spec: "mem:1TiB", kind: "mem", size: 1 << 40, bs: 512},
		{spec: "mem:64M?bs=4096", kind: "mem", size: 64 << 20, bs: 4096},
		{spec: "null:1TiB", kind: "null", size: 1 << 40, bs: 512},
		{spec: "null:1TB?bs=512", kind: "null", size: 1e12, bs: 512},
		{spec: "file:" + dir + "/new.img:64MiB", kind: "file", size: 64 << 20, bs: 512},
		{spec: "file:" + dir + "/new.img", kind: "file", size: 64 << 20, bs: 512},              // as created above
		{spec: "file:" + dir + "/new.img:1MiB?bs=4096", kind: "file", size: 1 << 20, bs: 4096}, // a prefix
		{spec: "file:" + existing + "?buffered", kind: "file", size: 1 << 20, bs: 512, buffered: true},
		{spec: "file:" + existing + "?ro&buffered=false", kind: "file", size: 1 << 20, bs: 512, ro: true},
		{spec: existing, kind: "file", size: 1 << 20, bs: 512},
		{spec: dir + "/abs.img:2MiB", kind: "file", size: 2 << 20, bs: 512},
		{spec: "file:" + dir + "/odd:name.img:1MiB", kind: "file", size: 1 << 20, bs: 512},

		{spec: "", err: "missing kind"},
		{spec: "mem", err: "missing kind"},
		{spec: "mem:", err: "size missing: give one, e.g. mem:1GiB"},
		{spec: "mem:1.5G", err: "fractions are not supported"},
		{spec: "mem:lots", err: "want a whole number"},
		{spec: "mem:1000", err: "not a multiple of the block size 512"},
		{spec: "mem:0", err: "give a positive size"},
		{spec: "mem:1G?bs=1024", err: "use bs=512 or bs=4096"},
		{spec: "mem:1G?buffered", err: "apply to file and block backends only"},
		{spec: "null:1G?fast", err: `unknown option "fast"`},
		{spec: "null:1G?ro=maybe", err: "use ro, ro=true or ro=false"},
		{spec: "disk:1G", err: `unknown kind "disk"`},
		{spec: "file:", err: "path missing"},
		{spec: "file:" + dir + "/missing", err: "size missing and file does not exist: give a size, e.g. file:" + dir + "/missing:1GiB"},
		{spec: "file:" + dir + "/x:0", err: "size 0"},
		{spec: "file:" + dir + "/x:12Q", err: "unknown unit"},
		{spec: "block:" + existing, err: "is not a block device: use file:"},
	} {
		b, err := Parse(c.spec)
		if c.err != "" {
			if b != nil {
				b.Close()
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q): %v; want an error containing %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", c.spec, err)
			continue
		}
		if b.Kind() != c.kind || b.Size() != c.size || b.BlockSize() != c.bs {
			t.Errorf("Parse(%q): kind %q, size %d, bs %d; want %q, %d, %d", c.spec, b.Kind(), b.Size(), b.BlockSize(), c.kind, c.size, c.bs)
		}
		if f, ok := b.(*File); ok {
			if !c.buffered && !f.Direct() {
				t.Logf("Parse(%q): O_DIRECT not available here", c.spec)
			}
			if c.buffered && f.Direct() || f.ReadOnly() != c.ro {
				t.Errorf("Parse(%q): direct %v, read-only %v", c.spec, f.Direct(), f.ReadOnly())
			}
		}
		if err := b.Close(); err != nil {
			t.Errorf("Parse(%q): Close: %v", c.spec, err)
		}
	}
}
