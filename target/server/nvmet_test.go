package server

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/daemon"
)

// fakeFile is what the fake file system of the fixtures holds at a path.
type fakeFile struct {
	mode fs.FileMode
	link string // where a symbolic link leads
}

func (f fakeFile) Name() string       { return "" }
func (f fakeFile) Size() int64        { return 0 }
func (f fakeFile) Mode() fs.FileMode  { return f.mode }
func (f fakeFile) ModTime() time.Time { return time.Time{} }
func (f fakeFile) IsDir() bool        { return f.mode.IsDir() }
func (f fakeFile) Sys() any           { return nil }

// fixtureFS is the machine the fixtures were saved on.
var fixtureFS = map[string]fakeFile{
	"/srv/nvmet/ns1.img": {},
	"/srv/nvmet/ns2.img": {},
	"/dev/nvme0n1":       {mode: fs.ModeDevice},
	"/dev/nvme1n1":       {mode: fs.ModeDevice},
	"/dev/ng0n1":         {mode: fs.ModeDevice | fs.ModeCharDevice},
	"/dev/disk/by-path/pci-0000:3b:00.0-nvme-1": {link: "/dev/nvme1n1"},
}

func fixtureConverter() nvmetConverter {
	resolve := func(p string) (string, error) {
		f, ok := fixtureFS[p]
		if !ok {
			return "", &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
		}
		if f.link != "" {
			return f.link, nil
		}
		return p, nil
	}
	return nvmetConverter{
		stat: func(p string) (fs.FileInfo, error) {
			r, err := resolve(p)
			if err != nil {
				return nil, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
			}
			return fixtureFS[r], nil
		},
		evalSymlinks: resolve,
	}
}

// asJSON is a configuration as its file would hold it, for comparing.
func asJSON(t *testing.T, cfg *Config) any {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestNvmetFixtures converts each file in testdata/nvmet: the setups
// flashpath serves become the flashpath configuration written beside
// them, the others fail with errors naming the keys at fault.
func TestNvmetFixtures(t *testing.T) {
	const (
		h1 = "nqn.2014-08.org.nvmexpress:uuid:7d0c4f8e-2a61-4b1d-9f3e-0a5b6c7d8e01"
		h2 = "nqn.2014-08.org.nvmexpress:uuid:7d0c4f8e-2a61-4b1d-9f3e-0a5b6c7d8e02"
		h3 = "nqn.2014-08.org.nvmexpress:uuid:7d0c4f8e-2a61-4b1d-9f3e-0a5b6c7d8e03"
	)
	tests := map[string]struct {
		want  string   // the flashpath configuration it converts to (YAML)
		notes []string // what it leaves out, as nvmet would
		errs  []string // or the errors
	}{
		"tcp-file": {want: `
listeners: [tcp://10.0.0.5:4420]
subsystems:
  - nqn: nqn.2026-01.io.example:scratch
    serial: 8f2e4c1a9b7d3e6f
    model: Linux
    allow_any_host: true
    namespaces:
      - {nsid: 1, backend: "file:/srv/nvmet/ns1.img", uuid: 3c1b7a52-9e0d-4f6a-8b21-5d7e9c0f4a13}
`},
		"rdma-block": {want: `
listeners: [rdma://192.168.6.68:4420]
subsystems:
  - nqn: nqn.2026-01.io.example:flash
    allow_any_host: false
    allowed_hosts: [` + h1 + `, ` + h2 + `]
    namespaces:
      - {nsid: 1, backend: /dev/nvme0n1, nguid: ef90689c-6c46-d44c-89c1-4067801309a8}
      - {nsid: 2, backend: /dev/nvme1n1, nguid: ef90689c-6c46-d44c-89c1-4067801309a9}
`},
		"dhchap": {want: `
listeners: ["tcp://[::]:4420"]
dhchap_hashes: [sha512, sha384, sha256]
dhchap_dhgroups: [ffdhe3072, ffdhe2048, ffdhe4096, ffdhe6144, ffdhe8192, "null"]
subsystems:
  - nqn: nqn.2026-01.io.example:secure
    serial: c0ffee0123456789
    model: Linux
    allow_any_host: false
    allowed_hosts:
      - nqn: ` + h1 + `
        dhchap_key: "DHHC-1:01:Dgk2sgGMDPrbsZXeP6DvorU5tP7fD0yhXZPVUB9Q2sGb9W98:"
        dhchap_ctrl_key: "DHHC-1:03:+yS4Cpc4TdytINszWCmjGxSlehR4KyMzbTV1vcQMC2QYIYsiVqFTju0PqIJI1aIpntUXFqkdmtwa6DNfAzL+xuH6UwA=:"
      - nqn: ` + h2 + `
        dhchap_key: "DHHC-1:00:sCRHbfL4tTVBsFGfUZ6u7ORcna3HZLkqnnV/eSKrhOn1TXkN:"
      - ` + h3 + `
    namespaces:
      - {nsid: 1, backend: /dev/nvme0n1, uuid: 0b6f3a2e-5d1c-4e8f-9a7b-1c2d3e4f5a6b}
`},
		"tls": {want: `
listeners: ["tcp://0.0.0.0:4420?tls=required"]
subsystems:
  - nqn: nqn.2026-01.io.example:secure
    serial: 5eed5eed5eed5eed
    model: Linux
    allow_any_host: false
    allowed_hosts:
      - nqn: ` + h1 + `
        tls_key: "NVMeTLSkey-1:01:xfZSUuLRM8k1w49leVbaSLFO5j/WuL3FmbV5DK9LpOKgK6tZ:"
    namespaces:
      - {nsid: 1, backend: "file:/srv/nvmet/ns1.img", uuid: 3c1b7a52-9e0d-4f6a-8b21-5d7e9c0f4a13}
`},
		"ana": {want: `
listeners: [tcp://10.0.0.5:4420]
subsystems:
  - nqn: nqn.2026-01.io.example:a
    allow_any_host: true
    namespaces: [{nsid: 1, backend: /dev/nvme0n1, ana_group: 2}]
    ana_states: [{listener: tcp://10.0.0.5:4420, group: 2, state: non-optimized}]
`},
		"two-ports": {want: `
listeners: [tcp://10.0.0.5:4420, rdma://192.168.6.68:4420]
subsystems:
  - nqn: nqn.2026-01.io.example:a
    allow_any_host: true
    namespaces: [{nsid: 1, backend: "file:/srv/nvmet/ns1.img"}]
  - nqn: nqn.2026-01.io.example:b
    allow_any_host: true
    namespaces: [{nsid: 7, backend: /dev/nvme0n1}]
`, notes: []string{
			"subsystems[0].namespaces[1] (NSID 2) is disabled: not served, as on nvmet",
			"ports[2] (portid 3) links no subsystem: nvmet does not enable it, and flashpath does not listen on it",
			"subsystems[2] nqn.2026-01.io.example:parked is linked to no port: nvmet does not serve it, and neither does flashpath",
		}},

		"refuse-fc":   {errs: []string{`ports[0].addr.trtype "fc": flashpath serves tcp and rdma`}},
		"refuse-loop": {errs: []string{`ports[0].addr.trtype "loop": flashpath serves tcp and rdma`, "use a tcp port on 127.0.0.1"}},
		"refuse-some-ports": {errs: []string{
			"ports[1].subsystems: nqn.2026-01.io.example:b is linked to ports[0] (portid 1) but not to this port (portid 2)",
			"cd /ports/2/subsystems; create nqn.2026-01.io.example:b",
		}},
		"refuse-no-port": {errs: []string{"ports: no port links a subsystem, so nvmet serves nothing"}},
		"refuse-ana": {errs: []string{
			"ports[0].ana_groups[1].grpid 40: flashpath has ANA groups 1 to 32",
			"subsystems[0].namespaces[0].ana_grpid 40: flashpath has ANA groups 1 to 32",
		}},
		"refuse-referral":       {errs: []string{`ports[0].referrals[0] "pod2": flashpath's discovery controller reports no referrals`}},
		"refuse-passthru":       {errs: []string{"subsystems[0].passthru[0].enable: a passthru subsystem hands hosts the whole NVMe controller /dev/nvme0"}},
		"refuse-nsid-zero":      {errs: []string{"subsystems[0].namespaces[0].nsid 0: NSIDs start at 1"}},
		"refuse-missing-device": {errs: []string{"subsystems[0].namespaces[1].device.path: stat /srv/nvmet/missing.img: file does not exist"}},
		"refuse-char-device":    {errs: []string{`subsystems[0].namespaces[0].device.path "/dev/ng0n1": a character device`}},
		"refuse-attrs": {errs: []string{
			`subsystems[0].attr.cntlid_min "0": want a controller ID from 1 to 65519`,
			`subsystems[0].attr.frobnicate "7": not something flashpath knows from nvmet`,
		}},
		"refuse-tls-no-key":   {errs: []string{`ports[0].addr.tsas "tls1.3": no host allowed by a subsystem has a TLS PSK: nvmet finds TLS PSKs in the kernel's .nvme keyring`}},
		"refuse-tls-any-host": {errs: []string{"subsystems[1].attr.allow_any_host: 1, but every port requires TLS"}},
		"refuse-dhchap-hash":  {errs: []string{"hosts[1].dhchap.hash sha384: hosts[0] prefers sha512"}},
		"refuse-unknown-host": {errs: []string{"subsystems[0].allowed_hosts[1] " + h2 + ": not in hosts"}},
	}
	files, err := filepath.Glob("testdata/nvmet/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		tc, ok := tests[name]
		if !ok {
			t.Errorf("%s: no test case", file)
			continue
		}
		delete(tests, name)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !IsNvmetJSON(b) || IsSPDKJSON(b) {
				t.Errorf("IsNvmetJSON = %v, IsSPDKJSON = %v; want true, false", IsNvmetJSON(b), IsSPDKJSON(b))
			}
			c := fixtureConverter()
			cfg, notes, err := c.convert(b)
			if tc.errs != nil {
				if err == nil {
					t.Fatalf("converted to %+v, want errors %q", cfg, tc.errs)
				}
				for _, e := range tc.errs {
					if !strings.Contains(err.Error(), e) {
						t.Errorf("error\n%v\nwants %q", err, e)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := daemon.ParseConfig([]byte(tc.want), (*Config).Validate)
			if err != nil {
				t.Fatalf("the wanted configuration: %v", err)
			}
			if got, w := asJSON(t, cfg), asJSON(t, want); !reflect.DeepEqual(got, w) {
				g, _ := json.MarshalIndent(got, "", "  ")
				t.Errorf("converted to\n%s\nwant the configuration of\n%s", g, tc.want)
			}
			if len(notes) != len(tc.notes) {
				t.Errorf("notes %q, want %d", notes, len(tc.notes))
			}
			for _, n := range tc.notes {
				found := false
				for _, got := range notes {
					found = found || strings.Contains(got, n)
				}
				if !found {
					t.Errorf("notes %q lack %q", notes, n)
				}
			}
		})
	}
	for name := range tests {
		t.Errorf("testdata/nvmet/%s.json: missing", name)
	}
}

// nvmetDoc is a one-port, one-subsystem document with the given port
// address, subsystem attributes and namespace fields spliced in.
func nvmetDoc(addr, attr, ns string) string {
	return `{"hosts": [], "ports": [{"portid": 1, "addr": {` + addr + `}, "subsystems": ["nqn.2026-01.io.example:a"]}],
"subsystems": [{"nqn": "nqn.2026-01.io.example:a", "attr": {"allow_any_host": "1"` + attr + `},
  "namespaces": [{"nsid": 1, "enable": 1, "device": {"path": "/dev/nvme0n1"}` + ns + `}]}]}`
}

// nvmetTLSDoc is nvmetDoc with a host that has a TLS key, the one
// allowed.
func nvmetTLSDoc(addr string) string {
	return `{"hosts": [{"nqn": "nqn.2014-08.org.nvmexpress:uuid:1", "tls_key": "NVMeTLSkey-1:01:xfZSUuLRM8k1w49leVbaSLFO5j/WuL3FmbV5DK9LpOKgK6tZ:"}],
"ports": [{"portid": 1, "addr": {` + addr + `}, "subsystems": ["nqn.2026-01.io.example:a"]}],
"subsystems": [{"nqn": "nqn.2026-01.io.example:a", "attr": {"allow_any_host": "0"}, "allowed_hosts": ["nqn.2014-08.org.nvmexpress:uuid:1"],
  "namespaces": [{"nsid": 1, "enable": 1, "device": {"path": "/dev/nvme0n1"}}]}]}`
}

const tcp4 = `"trtype": "tcp", "adrfam": "ipv4", "traddr": "10.0.0.5", "trsvcid": "4420"`

// TestNvmetPorts: port addresses and their TLS settings, as listeners.
func TestNvmetPorts(t *testing.T) {
	for addr, want := range map[string]string{
		tcp4: "tcp://10.0.0.5:4420",
		`"trtype": "tcp", "adrfam": "ipv6", "traddr": "fe80::1%eth0", "trsvcid": "4421"`:                                "tcp://[fe80::1%25eth0]:4421",
		`"trtype": "rdma", "adrfam": "ipv6", "traddr": "fd00::5", "trsvcid": "4420", "tsas": "connected"`:               "rdma://[fd00::5]:4420",
		tcp4 + `, "tsas": "tls1.3", "treq": "not specified"`:                                                            "tcp://10.0.0.5:4420?tls=required",
		tcp4 + `, "tsas": "tls1.3", "treq": "not required"`:                                                             "tcp://10.0.0.5:4420?tls=optional",
		tcp4 + `, "tsas": "none", "treq": "not required"`:                                                               "tcp://10.0.0.5:4420",
		`"trtype": "tcp", "adrfam": "ipv4", "traddr": "10.0.0.5", "trsvcid": 4420, "treq": "not specified", "tsas": ""`: "tcp://10.0.0.5:4420",
	} {
		doc := nvmetDoc(addr, "", "")
		if strings.Contains(want, "tls=") {
			doc = nvmetTLSDoc(addr)
		}
		c := fixtureConverter()
		cfg, _, err := c.convert([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", addr, err)
			continue
		}
		if len(cfg.Listeners) != 1 || cfg.Listeners[0] != want {
			t.Errorf("%s: listeners %q, want [%s]", addr, cfg.Listeners, want)
		}
	}
	for addr, want := range map[string]string{
		`"trtype": "tcp", "adrfam": "ipv4", "traddr": "fd00::5", "trsvcid": "4420"`:                       `ports[0].addr.traddr "fd00::5": want an IPv4 address`,
		`"trtype": "tcp", "adrfam": "ipv4", "traddr": "target.example", "trsvcid": "4420"`:                `ports[0].addr.traddr "target.example": want an IPv4 address (nvmet takes no host names)`,
		`"trtype": "rdma", "adrfam": "ib", "traddr": "10.0.0.5", "trsvcid": "4420"`:                       `ports[0].addr.adrfam "ib": flashpath listens on IP addresses`,
		`"trtype": "tcp", "adrfam": "ipv4", "traddr": "10.0.0.5", "trsvcid": "0"`:                         `ports[0].addr.trsvcid "0": want a TCP port number`,
		`"trtype": "pci", "adrfam": "pci", "traddr": "0000:01:00.0", "trsvcid": ""`:                       `ports[0].addr.trtype "pci": flashpath serves tcp and rdma`,
		`"trtype": "", "adrfam": "", "traddr": "", "trsvcid": ""`:                                         `ports[0].addr.trtype: missing`,
		tcp4 + `, "treq": "required", "tsas": "none"`:                                                     `ports[0].addr.treq "required": a secure channel, but tsas is not tls1.3`,
		`"trtype": "rdma", "adrfam": "ipv4", "traddr": "10.0.0.5", "trsvcid": "4420", "tsas": "datagram"`: `ports[0].addr.tsas "datagram"`,
		tcp4 + `, "tsas": "tls1.3"`: `ports[0].addr.tsas "tls1.3": no host allowed by a subsystem has a TLS PSK`,
	} {
		c := fixtureConverter()
		if _, _, err := c.convert([]byte(nvmetDoc(addr, "", ""))); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error containing %q", addr, err, want)
		}
	}
}

// TestNvmetAttributes: nvmet's attributes at their defaults are
// ignored, unknown ones too when off, and the rest refused by path.
func TestNvmetAttributes(t *testing.T) {
	for _, ok := range []struct{ attr, ns string }{
		{`, "version": "1.3", "cntlid_min": "0x1", "cntlid_max": 65519, "vendor_id": "0x0", "ieee_oui": "0x000000", "qid_max": "128", "firmware": "5.14.0-427.el9.x86_64", "pi_enable": "0"`, ""},
		{`, "new_switch": "0", "new_name": "", "new_list": []`, `, "ana": {"grpid": "1"}, "resv": {"enable": "0"}, "ana_grpid": 0, "future": {}`},
		{``, `, "device": {"path": "/dev/nvme0n1", "uuid": "00000000-0000-0000-0000-000000000000", "p2pmem": "0"}`},
	} {
		c := fixtureConverter()
		if _, _, err := c.convert([]byte(nvmetDoc(tcp4, ok.attr, ok.ns))); err != nil {
			t.Errorf("attr %s ns %s: %v", ok.attr, ok.ns, err)
		}
	}
	for _, bad := range []struct{ attr, ns, want string }{
		{`, "version": "1.4"`, "", `subsystems[0].attr.version "1.4": flashpath reports NVMe 2.0`},
		{`, "qid_max": "8"`, "", "subsystems[0].attr.qid_max 8: flashpath has no per-subsystem limit"},
		{`, "vendor_id": "0x1b96"`, "", "subsystems[0].attr.vendor_id 0x1b96"},
		{`, "pi_enable": "1"`, "", "subsystems[0].attr.pi_enable: flashpath's namespaces have no protection information"},
		{`, "serial": "this serial is far too long"`, "", `subsystems[0].attr.serial "this serial is far too long": want at most 20`},
		{`, "allow_any_host": "maybe"`, "", `subsystems[0].attr.allow_any_host "maybe": want 0 or 1`},
		{"", `, "nsid": 5000`, "subsystems[0].namespaces[0].nsid 5000: flashpath serves NSIDs 1 to 1024"},
		{"", `, "device": {"path": "dev/nvme0n1"}`, `subsystems[0].namespaces[0].device.path "dev/nvme0n1": want an absolute path`},
		{"", `, "device": {"path": "/dev/nvme0n1", "nguid": "xyz"}`, "subsystems[0].namespaces[0].device.nguid"},
		{"", `, "device": {"path": "/dev/nvme0n1", "zoned": "1"}`, `subsystems[0].namespaces[0].device.zoned "1": not something flashpath knows`},
		{"", `, "device": "/dev/nvme0n1"`, "subsystems[0].namespaces[0].device: want a JSON object, got a string"},
	} {
		c := fixtureConverter()
		if _, _, err := c.convert([]byte(nvmetDoc(tcp4, bad.attr, bad.ns))); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("attr %s ns %s: %v, want an error containing %q", bad.attr, bad.ns, err, bad.want)
		}
	}
}

// TestNvmetDevicePaths: a path that a backend spec cannot hold is taken
// where its link leads, or refused.
func TestNvmetDevicePaths(t *testing.T) {
	c := fixtureConverter()
	if got := c.backend("k", "/dev/disk/by-path/pci-0000:3b:00.0-nvme-1"); got != "/dev/nvme1n1" {
		t.Errorf("by-path link: backend %q, want /dev/nvme1n1", got)
	}
	dir := t.TempDir()
	for _, name := range []string{"a?b.img", "disk:1"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		c := nvmetConverter{stat: os.Stat, evalSymlinks: filepath.EvalSymlinks}
		if got := c.backend("k", p); got != "" || len(c.errs) != 1 || !strings.Contains(c.errs[0].Error(), "cannot be written in a flashpath backend spec") {
			t.Errorf("%s: backend %q, errors %v", name, got, c.errs)
		}
	}
	p := filepath.Join(dir, "disk:a.img")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c = nvmetConverter{stat: os.Stat, evalSymlinks: filepath.EvalSymlinks}
	if got := c.backend("k", p); got != "file:"+p || c.errs != nil {
		t.Errorf("%s: backend %q, errors %v; want file:%s", p, got, c.errs, p)
	}
}

// TestParseFormats: Parse and Load convert nvmetcli's file, and say what
// SPDK's and nvme-cli's JSON files are; flashpath's own JSON still parses.
func TestParseFormats(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "ns1.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(nvmetDoc(tcp4, "", ""), "/dev/nvme0n1", img, 1)
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if ns := cfg.Subsystems[0].Namespaces; len(ns) != 1 || ns[0].Backend != "file:"+img {
		t.Fatalf("namespaces %+v, want file:%s", ns, img)
	}
	if _, err := Parse([]byte(strings.Replace(doc, `"trtype": "tcp"`, `"trtype": "fc"`, 1))); err == nil || !strings.HasPrefix(err.Error(), `nvmetcli JSON: ports[0].addr.trtype "fc"`) {
		t.Errorf("Parse of an fc port: %v", err)
	}

	spdk := []byte(`{"subsystems": [
  {"subsystem": "bdev", "config": [{"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 131072, "block_size": 512}}]},
  {"subsystem": "nvmf", "config": [{"method": "nvmf_create_subsystem", "params": {"nqn": "nqn.2016-06.io.spdk:cnode1"}}]}]}`)
	if !IsSPDKJSON(spdk) || IsNvmetJSON(spdk) {
		t.Errorf("SPDK config: IsSPDKJSON %v, IsNvmetJSON %v", IsSPDKJSON(spdk), IsNvmetJSON(spdk))
	}
	if err := os.WriteFile(path, spdk, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrSPDKJSON) || !strings.Contains(err.Error(), "an SPDK JSON config (save_config): ") {
		t.Errorf("Load of an SPDK config: %v, want ErrSPDKJSON", err)
	}

	nvmecli := []byte(`[{"hostnqn": "nqn.2014-08.org.nvmexpress:uuid:1", "hostid": "1",
  "subsystems": [{"nqn": "nqn.2026-01.io.example:a", "ports": [{"transport": "tcp", "traddr": "10.0.0.5", "trsvcid": "4420"}]}]}]`)
	if _, err := Parse(nvmecli); err == nil || !strings.Contains(err.Error(), "an nvme-cli host configuration") {
		t.Errorf("Parse of nvme-cli's config: %v", err)
	}

	for _, own := range []string{
		`{"listeners": ["tcp://127.0.0.1:4420"], "subsystems": [{"nqn": "nqn.a:b", "allowed_hosts": ["nqn.h:1"], "namespaces": [{"backend": "mem:1MiB"}]}]}`,
		"listeners: [tcp://127.0.0.1:4420]\nsubsystems: [{nqn: nqn.a:b, namespaces: [{backend: mem:1MiB}]}]\n",
	} {
		if IsNvmetJSON([]byte(own)) || IsSPDKJSON([]byte(own)) {
			t.Errorf("%s: taken for a foreign format", own)
		}
		if _, err := Parse([]byte(own)); err != nil {
			t.Errorf("%s: %v", own, err)
		}
	}
	// nvmet's subsystem shape alone, without ports or hosts, is nvmet's.
	if !IsNvmetJSON([]byte(`{"subsystems": [{"nqn": "nqn.a:b", "attr": {"allow_any_host": "1"}, "namespaces": []}]}`)) {
		t.Error("subsystems with attr: not taken for nvmetcli JSON")
	}
}

// FuzzNvmetJSON feeds arbitrary bytes to format detection and the
// nvmetcli converter: an error or a configuration that validates, never
// a panic.
func FuzzNvmetJSON(f *testing.F) {
	files, _ := filepath.Glob("testdata/nvmet/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// One that converts with the real file system.
	img := filepath.Join(f.TempDir(), "ns.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(strings.Replace(nvmetDoc(tcp4, "", ""), "/dev/nvme0n1", img, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		detectFormat(data)
		c := nvmetConverter{stat: os.Stat, evalSymlinks: filepath.EvalSymlinks}
		cfg, _, err := c.convert(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("converted to a configuration that does not validate: %v", err)
		}
	})
}
