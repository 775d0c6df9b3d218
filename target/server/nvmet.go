package server

// nvmetcli's saved configuration. The Linux target (nvmet) is configured
// through configfs (/sys/kernel/config/nvmet); `nvmetcli save` writes
// that tree as JSON, /etc/nvmet/config.json by default, and `nvmetcli
// restore` (the nvmet.service unit at boot) writes it back:
//
//	{"hosts": [{"nqn": HOSTNQN, "dhchap": {"key": "DHHC-1:..", "ctrl_key": "", "hash": "hmac(sha256)", "dhgroup": "null"}}],
//	 "ports": [{"portid": 1,
//	            "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "10.0.0.1", "trsvcid": "4420", "treq": "not specified", "tsas": "none"},
//	            "param": {"inline_data_size": "-1", ...},
//	            "subsystems": [NQN, ...], "referrals": [], "ana_groups": [{"grpid": 1, "ana": {"state": "optimized"}}]}],
//	 "subsystems": [{"nqn": NQN,
//	                 "attr": {"allow_any_host": "0", "serial": "..", "model": "Linux", "version": "1.3", "cntlid_min": "1", ...},
//	                 "allowed_hosts": [HOSTNQN, ...],
//	                 "namespaces": [{"nsid": 1, "enable": 1, "device": {"path": "/dev/nvme0n1", "uuid": "..", "nguid": ".."},
//	                                 "ana_grpid": 1, "ana": {"grpid": "1"}, "resv": {"enable": "0"}}],
//	                 "passthru": [{"enable": 0, "device": {"path": ""}, ...}]}],
//	 "discovery": {"nqn": "nqn.2014-08.org.nvmexpress.discovery"}}
//
// An object's attribute groups are its configfs files by prefix
// (attr_serial is "attr": {"serial": ...}; a host's dhchap_key is
// "dhchap": {"key": ...}), each value a string as the kernel shows it;
// nvmetcli saves every writable attribute, defaults included. Older
// nvmetcli versions save fewer groups (no "dhchap", "resv", "passthru",
// "discovery").
//
// flashpath's model is narrower than nvmet's: its listeners serve every
// subsystem, its ANA groups are 1 to 32 (nvmet's: up to 128), it has no
// referrals, no passthru. The conversion keeps what maps exactly and
// refuses the rest with the key path and what to do, rather than serve
// something other than what the file says:
//
//   - A port is a listener: tcp and rdma ports with IPv4 or IPv6 addresses
//     ("tcp://10.0.0.1:4420"); tsas "tls1.3" with treq "required" (or
//     "not specified", which the kernel turns into required) is
//     "?tls=required", with treq "not required" "?tls=optional". loop, fc
//     and pci ports are refused.
//   - Every port that links a subsystem must link the same subsystems,
//     since flashpath serves all of them on all listeners. A port that
//     links none is not enabled by nvmet, so it is no listener; a
//     subsystem that no port links is not served by nvmet, so it is left
//     out too (both with a warning, as a disabled namespace): the file is
//     served as nvmet serves it. A file where no port links a subsystem
//     serves nothing and is refused.
//   - A namespace with "enable" 1 is served; its device.path is
//     "file:PATH" for a regular file, PATH as is for a block device
//     (backend.Parse reads both), checked when the file is converted.
//     device.uuid and a non-zero device.nguid are kept.
//   - allow_any_host and allowed_hosts map to the same settings; a host's
//     dhchap.key and dhchap.ctrl_key go with it to each subsystem that
//     lists it (nvmet, too, authenticates only hosts listed by a
//     subsystem that does not allow any host). dhchap.hash and
//     dhchap.dhgroup are what nvmet prefers in the negotiation, falling
//     back to what the host offers; flashpath has one order for all
//     hosts (dhchap_hashes, dhchap_dhgroups), so a preference other than
//     the kernel's default (hmac(sha256), null) goes first there, and
//     hosts that prefer different ones are refused.
//   - TLS PSKs live in the kernel's .nvme keyring, not in this file. A
//     hosts[] entry may carry flashpath's "tls_key" or "tls_key_file"
//     (nvmetcli restore reads only a host's "nqn" and its attribute
//     groups, so it ignores them); a TLS port without any, or a
//     TLS-only target with a host or an any-host subsystem that has none,
//     is refused, since no host could connect where it connects to nvmet.
//
// Attributes: those flashpath honours are mapped; known ones that
// flashpath does not implement are ignored at the kernel's default and
// refused otherwise (vendor_id, subsys_vendor_id,
// ieee_oui, qid_max, pi_enable, version, resv.enable). A namespace's
// ana_grpid (or ana.grpid) is its ana_group; a port's ana_groups states
// other than optimized become ana_states of the subsystems linked to the
// port, on its listener. The
// port tuning parameters inline_data_size, max_queue_size and mdts are
// ignored whatever their value: hosts read the sizes the target reports
// and flashpath chooses its own. firmware is ignored (its default is the
// kernel's release, so any value may be one; flashpath reports its own
// version). Unknown keys, which newer kernels and nvmetcli versions add
// over time: ignored when empty, "0", 0, false, [] or {} (how nvmet shows
// a setting that is off or unset), refused otherwise, since flashpath
// cannot tell whether they change what hosts see.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/tcp"
)

// ErrSPDKJSON is wrapped by Load and Parse when the document is SPDK's
// JSON configuration (what rpc.py save_config writes and nvmf_tgt --json
// reads): a list of JSON-RPC requests rather than a flashpath
// configuration. Use IsSPDKJSON to tell beforehand.
var ErrSPDKJSON = errors.New("an SPDK JSON config (save_config)")

// configFormat is what a configuration document is.
type configFormat int

const (
	formatFlashpath configFormat = iota // YAML or JSON in Config's shape
	formatNvmet                         // nvmetcli save
	formatSPDK                          // SPDK save_config
	formatNvmeCLI                       // nvme-cli's host configuration
)

// detectFormat tells the foreign JSON documents flashpath recognises from
// its own configuration; anything else, including what does not parse,
// is formatFlashpath, whose parser reports the errors.
func detectFormat(b []byte) configFormat {
	b = bytes.TrimSpace(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")))
	if len(b) == 0 {
		return formatFlashpath
	}
	switch b[0] {
	case '[':
		// nvme-cli's /etc/nvme/config.json: [{"hostnqn": ..., "subsystems": [...]}].
		var hosts []map[string]json.RawMessage
		if json.Unmarshal(b, &hosts) != nil {
			return formatFlashpath
		}
		for _, h := range hosts {
			if _, ok := h["hostnqn"]; ok {
				return formatNvmeCLI
			}
		}
	case '{':
		var top map[string]json.RawMessage
		if json.Unmarshal(b, &top) != nil {
			return formatFlashpath
		}
		switch {
		case isSPDK(top):
			return formatSPDK
		case isNvmet(top):
			return formatNvmet
		}
	}
	return formatFlashpath
}

// isSPDK: "subsystems" entries are {"subsystem": NAME, "config": [...]}.
func isSPDK(top map[string]json.RawMessage) bool {
	var subs []map[string]json.RawMessage
	if json.Unmarshal(top["subsystems"], &subs) != nil {
		return false
	}
	for _, s := range subs {
		if _, ok := s["subsystem"]; ok {
			return true
		}
	}
	return false
}

// isNvmet: "ports" or "hosts" at the top (flashpath has "listeners"), or
// subsystems with nvmet's "attr" or "passthru" groups or namespaces with
// a "device" group.
func isNvmet(top map[string]json.RawMessage) bool {
	if _, ok := top["listeners"]; ok {
		return false
	}
	_, ports := top["ports"]
	_, hosts := top["hosts"]
	if ports || hosts {
		return true
	}
	var subs []struct {
		Attr       json.RawMessage   `json:"attr"`
		Passthru   json.RawMessage   `json:"passthru"`
		Namespaces []json.RawMessage `json:"namespaces"`
	}
	if json.Unmarshal(top["subsystems"], &subs) != nil {
		return false
	}
	for _, s := range subs {
		if s.Attr != nil || s.Passthru != nil {
			return true
		}
		for _, ns := range s.Namespaces {
			var n map[string]json.RawMessage
			if json.Unmarshal(ns, &n) == nil && n["device"] != nil {
				return true
			}
		}
	}
	return false
}

// IsSPDKJSON reports whether b is SPDK's JSON configuration (rpc.py
// save_config): a top-level "subsystems" whose entries have "subsystem"
// and "config".
func IsSPDKJSON(b []byte) bool { return detectFormat(b) == formatSPDK }

// IsNvmetJSON reports whether b is the JSON that nvmetcli save writes
// for the Linux target, which Load and Parse convert.
func IsNvmetJSON(b []byte) bool { return detectFormat(b) == formatNvmet }

// parseForeign converts or refuses the foreign formats detectFormat
// recognises; ok is false for flashpath's own.
func parseForeign(b []byte) (cfg *Config, ok bool, err error) {
	switch detectFormat(b) {
	case formatNvmet:
		cfg, err = FromNvmet(b)
		if err != nil {
			err = fmt.Errorf("nvmetcli JSON: %w", err)
		}
		return cfg, true, err
	case formatSPDK:
		return nil, true, fmt.Errorf("%w: SPDK JSON-RPC requests to replay, not a flashpath configuration: flashpath target --config FILE starts from it as nvmf_tgt --json does, and flashpath rpc load_config (or rpc.py load_config) applies it to a running target", ErrSPDKJSON)
	case formatNvmeCLI:
		return nil, true, errors.New("an nvme-cli host configuration (/etc/nvme/config.json, which nvme connect-all reads): it lists the targets a host connects to, not what a target serves; give flashpath target a flashpath configuration or the target's nvmetcli save file (/etc/nvmet/config.json), and keep this file on the host")
	}
	return nil, false, nil
}

// FromNvmet converts the JSON that nvmetcli save writes into a
// configuration that validates, or says what it cannot honour, naming
// each key by its path (ports[1].addr.trtype). Namespace devices are
// looked at (regular file or block device) as it converts. What nvmet
// would not serve either (a disabled namespace, a port or subsystem not
// linked) is left out with a warning on slog's default logger.
func FromNvmet(b []byte) (*Config, error) {
	c := nvmetConverter{stat: os.Stat, evalSymlinks: filepath.EvalSymlinks}
	cfg, notes, err := c.convert(b)
	if err != nil {
		return nil, err
	}
	for _, n := range notes {
		slog.Warn("nvmetcli JSON: " + n)
	}
	return cfg, nil
}

// nvmetConverter converts one document; stat and evalSymlinks look at
// namespace devices (tests replace them).
type nvmetConverter struct {
	stat         func(string) (fs.FileInfo, error)
	evalSymlinks func(string) (string, error)

	errs  []error
	notes []string
}

func (c *nvmetConverter) errorf(path, format string, a ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s%s", path, fmt.Sprintf(format, a...)))
}

func (c *nvmetConverter) notef(format string, a ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, a...))
}

// jobj is a JSON object being read: each key read is marked, and done
// checks the rest.
type jobj struct {
	c    *nvmetConverter
	path string
	m    map[string]json.RawMessage
	seen map[string]bool
}

// object reads raw as an object; null or missing is an empty one.
func (c *nvmetConverter) object(path string, raw json.RawMessage) *jobj {
	o := &jobj{c: c, path: path, m: map[string]json.RawMessage{}, seen: map[string]bool{}}
	if len(raw) == 0 || string(raw) == "null" {
		return o
	}
	if err := json.Unmarshal(raw, &o.m); err != nil {
		c.errorf(path, ": want a JSON object, got %s", jsonKind(raw))
		o.m = map[string]json.RawMessage{}
	}
	return o
}

// key is the path of a key of o.
func (o *jobj) key(k string) string {
	if o.path == "" {
		return k
	}
	return o.path + "." + k
}

func (o *jobj) raw(k string) (json.RawMessage, bool) {
	o.seen[k] = true
	r, ok := o.m[k]
	if ok && string(r) == "null" {
		return nil, false
	}
	return r, ok
}

func (o *jobj) obj(k string) *jobj {
	r, _ := o.raw(k)
	return o.c.object(o.key(k), r)
}

func (o *jobj) list(k string) []json.RawMessage {
	r, ok := o.raw(k)
	if !ok {
		return nil
	}
	var l []json.RawMessage
	if err := json.Unmarshal(r, &l); err != nil {
		o.c.errorf(o.key(k), ": want a JSON array, got %s", jsonKind(r))
		return nil
	}
	return l
}

// str reads a JSON string.
func (o *jobj) str(k string) (string, bool) {
	r, ok := o.raw(k)
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		o.c.errorf(o.key(k), ": want a string, got %s", jsonKind(r))
		return "", false
	}
	return s, true
}

// attr reads an attribute value: a string as the kernel shows it, or a
// number or boolean, which nvmetcli restore writes as text too.
func (o *jobj) attr(k string) (string, bool) {
	r, ok := o.raw(k)
	if !ok {
		return "", false
	}
	s, err := attrText(r)
	if err != nil {
		o.c.errorf(o.key(k), ": want a string or a number, got %s", jsonKind(r))
		return "", false
	}
	return s, true
}

func attrText(r json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return strings.TrimSpace(v), nil
	case float64:
		return string(bytes.TrimSpace(r)), nil
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	}
	return "", errors.New("not an attribute value")
}

// int reads a number, or a string holding one (nvmetcli restore takes
// int(value)); ok is false where it is missing or not a number.
func (o *jobj) int(k string) (int64, bool) {
	s, ok := o.attr(k)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		o.c.errorf(o.key(k), " %q: want an integer", s)
		return 0, false
	}
	return n, true
}

// bool reads an attribute as the kernel's kstrtobool does (1/0, y/n,
// on/off, true/false).
func (o *jobj) bool(k string) (val, ok bool) {
	s, ok := o.attr(k)
	if !ok {
		return false, false
	}
	v, err := kstrtobool(s)
	if err != nil {
		o.c.errorf(o.key(k), " %q: want 0 or 1", s)
		return false, false
	}
	return v, true
}

func kstrtobool(s string) (bool, error) {
	if s == "" {
		return false, errors.New("empty")
	}
	switch s[0] {
	case 'y', 'Y', 't', 'T', '1':
		return true, nil
	case 'n', 'N', 'f', 'F', '0':
		return false, nil
	case 'o', 'O':
		if len(s) > 1 {
			switch s[1] {
			case 'n', 'N':
				return true, nil
			case 'f', 'F':
				return false, nil
			}
		}
	}
	return false, errors.New("not a boolean")
}

// skip marks keys as read without looking at them.
func (o *jobj) skip(keys ...string) {
	for _, k := range keys {
		o.seen[k] = true
	}
}

// done checks the keys not read: unknown to this converter, they are
// ignored when empty or zero (what nvmet shows for a setting that is off
// or unset) and refused otherwise.
func (o *jobj) done() {
	keys := make([]string, 0, len(o.m))
	for k := range o.m {
		if !o.seen[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if isEmptyJSON(o.m[k]) {
			continue
		}
		o.c.errorf(o.key(k), " %s: not something flashpath knows from nvmet, and not empty or 0, so it may change what hosts see: remove it if nvmet's default suits you", brief(o.m[k]))
	}
}

func isEmptyJSON(r json.RawMessage) bool {
	var v any
	if json.Unmarshal(r, &v) != nil {
		return false
	}
	switch v := v.(type) {
	case nil:
		return true
	case string:
		s := strings.TrimSpace(v)
		return s == "" || s == "0"
	case float64:
		return v == 0
	case bool:
		return !v
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

func jsonKind(r json.RawMessage) string {
	r = bytes.TrimSpace(r)
	if len(r) == 0 {
		return "nothing"
	}
	switch r[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// brief shows a JSON value in an error, cut short.
func brief(r json.RawMessage) string {
	s := string(bytes.TrimSpace(r))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

// nvmetHost is an entry of hosts.
type nvmetHost struct {
	idx             int
	nqn             string
	key, ctrlKey    string
	hash, dhgroup   string // preferences other than the kernel's default, or ""
	tlsKey, tlsFile string
	used            bool // allowed by a served subsystem
}

// nvmetSubsys is an entry of subsystems, converted.
type nvmetSubsys struct {
	idx     int
	cfg     SubsystemConfig
	anyHost bool
	hosts   []*nvmetHost // allowed_hosts, in order
}

// nvmetPort is an enabled entry of ports (one that links subsystems).
type nvmetPort struct {
	idx      int
	portid   int64
	listener string
	tls      tcp.TLSMode
	links    []string         // subsystem NQNs, sorted
	ana      []ANAStateConfig // the port's ANA groups' states other than optimized (Listener set)
}

// convert converts the document; notes are what it left out as nvmet
// would.
func (c *nvmetConverter) convert(b []byte) (*Config, []string, error) {
	top := c.object("", nil)
	if err := json.Unmarshal(b, &top.m); err != nil {
		return nil, nil, fmt.Errorf("not a JSON object as nvmetcli save writes: %w", err)
	}

	disc := top.obj("discovery")
	if nqn, ok := disc.attr("nqn"); ok && nqn != "" && nqn != nvmeof.DiscoveryNQN {
		c.errorf(disc.key("nqn"), " %q: flashpath's discovery controller answers the well-known %s only: remove the attribute", nqn, nvmeof.DiscoveryNQN)
	}
	disc.done()

	hosts := map[string]*nvmetHost{}
	var hostList []*nvmetHost
	for i, raw := range top.list("hosts") {
		if h := c.host(i, raw); h != nil {
			if prev, dup := hosts[h.nqn]; dup {
				c.errorf(fmt.Sprintf("hosts[%d].nqn", i), " %s: also hosts[%d]", h.nqn, prev.idx)
				continue
			}
			hosts[h.nqn] = h
			hostList = append(hostList, h)
		}
	}

	subsByNQN := map[string]*nvmetSubsys{}
	var subs []*nvmetSubsys
	for i, raw := range top.list("subsystems") {
		if s := c.subsystem(i, raw, hosts); s != nil {
			if prev, dup := subsByNQN[s.cfg.NQN]; dup {
				c.errorf(fmt.Sprintf("subsystems[%d].nqn", i), " %s: also subsystems[%d]", s.cfg.NQN, prev.idx)
				continue
			}
			subsByNQN[s.cfg.NQN] = s
			subs = append(subs, s)
		}
	}

	var ports []*nvmetPort
	portsRaw := top.list("ports")
	for i, raw := range portsRaw {
		if p := c.port(i, raw, subsByNQN); p != nil {
			ports = append(ports, p)
		}
	}
	top.done()
	if len(c.errs) > 0 {
		return nil, c.notes, errors.Join(c.errs...)
	}

	served := c.links(ports, len(portsRaw))
	cfg := &Config{}
	for _, p := range ports {
		for _, q := range ports {
			if q.idx < p.idx && q.listener == p.listener {
				c.errorf(fmt.Sprintf("ports[%d].addr", p.idx), ": the same address as ports[%d] (%s): nvmet cannot enable both either; remove one", q.idx, p.listener)
			}
		}
		cfg.Listeners = append(cfg.Listeners, p.listener)
	}
	for _, s := range subs {
		if !served[s.cfg.NQN] {
			c.notef("subsystems[%d] %s is linked to no port: nvmet does not serve it, and neither does flashpath (link it to the ports to serve it)", s.idx, s.cfg.NQN)
			continue
		}
		for _, h := range s.hosts {
			h.used = true
		}
		for _, p := range ports {
			if slices.Contains(p.links, s.cfg.NQN) {
				s.cfg.ANAStates = append(s.cfg.ANAStates, p.ana...)
			}
		}
		cfg.Subsystems = append(cfg.Subsystems, s.cfg)
	}
	c.checkTLS(ports, subs, served, hostList)
	cfg.DHCHAPHashes, cfg.DHCHAPDHGroups = c.authPreferences(hostList)
	if len(c.errs) > 0 {
		return nil, c.notes, errors.Join(c.errs...)
	}
	if err := cfg.Validate(); err != nil {
		return nil, c.notes, fmt.Errorf("the converted configuration: %w", err)
	}
	return cfg, c.notes, nil
}

// host reads hosts[i].
func (c *nvmetConverter) host(i int, raw json.RawMessage) *nvmetHost {
	o := c.object(fmt.Sprintf("hosts[%d]", i), raw)
	defer o.done()
	h := &nvmetHost{idx: i}
	h.nqn, _ = o.str("nqn")
	if err := target.ValidateNQN(h.nqn); err != nil {
		c.errorf(o.key("nqn"), ": %v", err)
		return nil
	}
	d := o.obj("dhchap")
	h.key, _ = d.attr("key")
	h.ctrlKey, _ = d.attr("ctrl_key")
	if h.key != "" {
		if _, err := dhchap.ParseSecret(h.key); err != nil {
			c.errorf(d.key("key"), ": %v", err)
		}
	}
	if h.ctrlKey != "" {
		if _, err := dhchap.ParseSecret(h.ctrlKey); err != nil {
			c.errorf(d.key("ctrl_key"), ": %v", err)
		}
		if h.key == "" {
			c.errorf(d.key("ctrl_key"), ": set without dhchap.key, so nvmet does not authenticate this host and never uses it; give the host a key too (nvme gen-dhchap-key --nqn %s), or remove it", h.nqn)
		}
	}
	if s, ok := d.attr("hash"); ok && s != "" && s != "none" {
		if hash, err := dhchap.ParseHash(s); err != nil {
			c.errorf(d.key("hash"), ": %v", err)
		} else if hash != dhchap.SHA256 { // the kernel's default
			h.hash = hash.String()
		}
	}
	if s, ok := d.attr("dhgroup"); ok && s != "" && s != "none" {
		if g, err := dhchap.ParseDHGroup(s); err != nil {
			c.errorf(d.key("dhgroup"), ": %v", err)
		} else if g != dhchap.DHNull { // the kernel's default
			h.dhgroup = g.String()
		}
	}
	d.done()
	// flashpath's own keys: nvmet's PSKs are in the kernel keyring.
	h.tlsKey, _ = o.str("tls_key")
	h.tlsFile, _ = o.str("tls_key_file")
	if h.tlsKey != "" || h.tlsFile != "" {
		hc := HostConfig{NQN: h.nqn, TLSKey: h.tlsKey, TLSKeyFile: h.tlsFile}
		if err := hc.resolve(); err != nil {
			c.errorf(o.path, ".%v", err)
		}
	}
	return h
}

// Kernel defaults of subsystem attributes flashpath does not implement.
const (
	nvmetQIDMax = 128 // NVMET_NR_QUEUES
)

// subsystem reads subsystems[i].
func (c *nvmetConverter) subsystem(i int, raw json.RawMessage, hosts map[string]*nvmetHost) *nvmetSubsys {
	o := c.object(fmt.Sprintf("subsystems[%d]", i), raw)
	defer o.done()
	s := &nvmetSubsys{idx: i}
	s.cfg.NQN, _ = o.str("nqn")
	if err := target.ValidateNQN(s.cfg.NQN); err != nil {
		c.errorf(o.key("nqn"), ": %v", err)
		return nil
	}
	if s.cfg.NQN == nvmeof.DiscoveryNQN {
		c.errorf(o.key("nqn"), " %s: the discovery subsystem's NQN (nvmet refuses it too)", s.cfg.NQN)
		return nil
	}

	a := o.obj("attr")
	s.anyHost, _ = a.bool("allow_any_host") // the kernel's default is 0
	if v, ok := a.attr("serial"); ok {
		if len(v) > 20 || !printableASCII(v) {
			c.errorf(a.key("serial"), " %q: want at most 20 printable ASCII characters", v)
		}
		s.cfg.Serial = v
	}
	if v, ok := a.attr("model"); ok {
		if len(v) > 40 || !printableASCII(v) {
			c.errorf(a.key("model"), " %q: want at most 40 printable ASCII characters", v)
		}
		s.cfg.Model = v
	}
	a.skip("firmware") // default: the kernel's release; flashpath reports its own
	if v, ok := a.attr("version"); ok {
		switch v {
		case "", "1.3", "2.0", "2.1": // nvmet's defaults (1.3, then 2.1), and flashpath's
		default:
			c.errorf(a.key("version"), " %q: flashpath reports NVMe 2.0, the version it implements, and cannot report another: remove the attribute", v)
		}
	}
	s.cfg.MinCntlID = c.cntlidAttr(a, "cntlid_min", 1)
	s.cfg.MaxCntlID = c.cntlidAttr(a, "cntlid_max", target.MaxCntlID)
	if err := target.CheckCntlIDRange(s.cfg.MinCntlID, s.cfg.MaxCntlID); err != nil {
		c.errorf(a.key("cntlid_min"), ", cntlid_max: %v", err)
	}
	c.intAttr(a, "vendor_id", 0, "flashpath reports PCI vendor ID 0 as nvmet does by default: remove the attribute")
	c.intAttr(a, "subsys_vendor_id", 0, "flashpath reports PCI subsystem vendor ID 0 as nvmet does by default: remove the attribute")
	c.intAttr(a, "ieee_oui", 0, "flashpath reports IEEE OUI 0 as nvmet does by default: remove the attribute")
	c.intAttr(a, "qid_max", nvmetQIDMax, "flashpath has no per-subsystem limit on I/O queues: remove the attribute")
	if on, _ := a.bool("pi_enable"); on {
		c.errorf(a.key("pi_enable"), ": flashpath's namespaces have no protection information: set it to 0")
	}
	a.done()

	for j, raw := range o.list("allowed_hosts") {
		p := fmt.Sprintf("%s.allowed_hosts[%d]", o.path, j)
		var nqn string
		if err := json.Unmarshal(raw, &nqn); err != nil {
			c.errorf(p, ": want a host NQN, got %s", jsonKind(raw))
			continue
		}
		h := hosts[nqn]
		switch {
		case h == nil:
			c.errorf(p, " %s: not in hosts: add {\"nqn\": %q} to hosts (nvmetcli restore cannot link it either)", nqn, nqn)
			continue
		case slices.Contains(s.hosts, h):
			c.errorf(p, " %s: listed twice", nqn)
			continue
		}
		s.hosts = append(s.hosts, h)
		s.cfg.AllowedHosts = append(s.cfg.AllowedHosts, HostConfig{NQN: h.nqn, DHCHAPKey: h.key, DHCHAPCtrlKey: h.ctrlKey, TLSKey: h.tlsKey, TLSKeyFile: h.tlsFile})
	}
	if s.anyHost && len(s.hosts) > 0 {
		c.errorf(a.key("allow_any_host"), ": 1, but allowed_hosts lists %d hosts: nvmet refuses the two together; set it to 0 to admit the listed hosts only, or empty allowed_hosts", len(s.hosts))
	}
	s.cfg.AllowAnyHost = new(s.anyHost)

	nsids := map[int64]int{}
	for j, raw := range o.list("namespaces") {
		if nc, ok := c.namespace(i, j, raw, nsids); ok {
			s.cfg.Namespaces = append(s.cfg.Namespaces, nc)
		}
	}
	if s.cfg.Namespaces == nil {
		s.cfg.Namespaces = []NamespaceConfig{}
	}

	for k, raw := range o.list("passthru") {
		pt := c.object(fmt.Sprintf("%s.passthru[%d]", o.path, k), raw)
		if on, _ := pt.bool("enable"); on {
			path, _ := pt.obj("device").attr("path")
			c.errorf(pt.key("enable"), ": a passthru subsystem hands hosts the whole NVMe controller %s; flashpath exports namespaces: give its namespaces (/dev/nvmeXnY) as namespaces, and set enable to 0", path)
		}
		// A disabled passthru (every subsystem has one on kernels built
		// with it) does nothing: its other attributes do not matter.
	}
	return s
}

// intAttr refuses an integer attribute other than its default.
// cntlidAttr reads a controller ID bound (0: not given, or the default
// def, which the configuration leaves out).
func (c *nvmetConverter) cntlidAttr(o *jobj, k string, def uint16) uint16 {
	s, ok := o.attr(k)
	if !ok || s == "" {
		return 0
	}
	v, err := strconv.ParseUint(s, 0, 16)
	if err != nil || v == 0 || v > target.MaxCntlID {
		c.errorf(o.key(k), " %q: want a controller ID from 1 to %d", s, target.MaxCntlID)
		return 0
	}
	if uint16(v) == def {
		return 0
	}
	return uint16(v)
}

func (c *nvmetConverter) intAttr(o *jobj, k string, def int64, why string) {
	s, ok := o.attr(k)
	if !ok || s == "" {
		return
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		c.errorf(o.key(k), " %q: want an integer", s)
		return
	}
	if v != def {
		c.errorf(o.key(k), " %s: %s", s, why)
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// namespace reads subsystems[i].namespaces[j]; ok is false for one that
// is not served (disabled, or refused).
func (c *nvmetConverter) namespace(i, j int, raw json.RawMessage, nsids map[int64]int) (nc NamespaceConfig, ok bool) {
	o := c.object(fmt.Sprintf("subsystems[%d].namespaces[%d]", i, j), raw)
	nsid, hasID := o.int("nsid")
	switch {
	case !hasID:
		if _, present := o.m["nsid"]; !present {
			c.errorf(o.key("nsid"), ": missing (nvmetcli restore skips a namespace without one)")
		}
		return nc, false
	case nsid < 1:
		c.errorf(o.key("nsid"), " %d: NSIDs start at 1 (nvmet refuses %d too)", nsid, nsid)
		return nc, false
	case nsid > target.MaxNSID:
		c.errorf(o.key("nsid"), " %d: flashpath serves NSIDs 1 to %d: renumber the namespace", nsid, target.MaxNSID)
		return nc, false
	}
	if prev, dup := nsids[nsid]; dup {
		c.errorf(o.key("nsid"), " %d: also namespaces[%d]", nsid, prev)
		return nc, false
	}
	nsids[nsid] = j
	// nvmetcli restore enables a namespace only when "enable" says so.
	if on, _ := o.bool("enable"); !on {
		c.notef("%s (NSID %d) is disabled: not served, as on nvmet", o.path, nsid)
		return nc, false
	}
	defer o.done()
	nc.NSID = uint32(nsid)

	d := o.obj("device")
	path, _ := d.attr("path")
	nc.Backend = c.backend(d.key("path"), path)
	if u, ok := d.attr("uuid"); ok && u != "" {
		if id, err := parseHex16(u); err != nil {
			c.errorf(d.key("uuid"), ": %v", err)
		} else if id != ([16]byte{}) {
			nc.UUID = u
		}
	}
	if g, ok := d.attr("nguid"); ok && g != "" {
		// nvmet reports no NGUID when it is zero; flashpath then derives
		// one from the NQN and NSID, which a host may show but does not
		// rely on.
		if id, err := parseHex16(g); err != nil {
			c.errorf(d.key("nguid"), ": %v", err)
		} else if id != ([16]byte{}) {
			nc.NGUID = g
		}
	}
	d.done()

	// The namespace's ANA group: ana_grpid (older nvmetcli) or ana.grpid.
	grp := func(key string, g int64) {
		switch {
		case g < 0 || g > target.MaxANAGroups: // 0: unset, group 1
			c.errorf(key, " %d: flashpath has ANA groups 1 to %d: put the namespace in one of them", g, target.MaxANAGroups)
		case g > 1:
			nc.ANAGroup = uint32(g)
		}
	}
	if g, ok := o.int("ana_grpid"); ok {
		grp(o.key("ana_grpid"), g)
	}
	ana := o.obj("ana")
	if g, ok := ana.int("grpid"); ok {
		grp(ana.key("grpid"), g)
	}
	ana.done()
	resv := o.obj("resv")
	resv.bool("enable") // either way: flashpath's namespaces always take reservations
	resv.done()
	return nc, nc.Backend != ""
}

// backend turns a device path into a backend spec: file:PATH for a
// regular file, PATH for a block device.
func (c *nvmetConverter) backend(key, path string) string {
	switch {
	case path == "" || path == "(null)":
		c.errorf(key, ": missing: give the file or block device to export")
		return ""
	case !filepath.IsAbs(path):
		c.errorf(key, " %q: want an absolute path (the kernel opens it from /)", path)
		return ""
	}
	fi, err := c.stat(path)
	if err != nil {
		c.errorf(key, ": %v (nvmet could not enable the namespace either)", err)
		return ""
	}
	if !specPath(path) {
		// A ':' before digits or a '?' means size and options in a
		// backend spec: use where the link leads, as the kernel does.
		if r, err := c.evalSymlinks(path); err == nil && specPath(r) {
			path = r
		} else {
			c.errorf(key, " %q: a '?', or a ':' followed by a digit, cannot be written in a flashpath backend spec: give another name of the device (/dev/nvmeXnY, /dev/disk/by-id/...) or rename the file", path)
			return ""
		}
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		return "file:" + path
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0:
		return path
	case m&fs.ModeCharDevice != 0:
		c.errorf(key, " %q: a character device: flashpath exports block devices and files (for /dev/ngXnY give /dev/nvmeXnY)", path)
	default:
		c.errorf(key, " %q: not a regular file or a block device", path)
	}
	return ""
}

// specPath reports whether a backend spec reads path back from
// "file:"+path, with no size or options.
func specPath(path string) bool {
	sp, err := backend.ParseSpec("file:" + path)
	return err == nil && sp.Path == path && sp.Options == (backend.FileOptions{})
}

// port reads ports[i]; nil for one that links no subsystem (nvmet does
// not enable it) or that is refused.
func (c *nvmetConverter) port(i int, raw json.RawMessage, subs map[string]*nvmetSubsys) *nvmetPort {
	o := c.object(fmt.Sprintf("ports[%d]", i), raw)
	p := &nvmetPort{idx: i}
	portid, ok := o.int("portid")
	if !ok {
		if _, present := o.m["portid"]; !present {
			c.errorf(o.key("portid"), ": missing (nvmetcli restore skips a port without one)")
		}
		return nil
	}
	p.portid = portid
	nerrs := len(c.errs)
	for j, raw := range o.list("subsystems") {
		var nqn string
		if err := json.Unmarshal(raw, &nqn); err != nil {
			c.errorf(fmt.Sprintf("%s.subsystems[%d]", o.path, j), ": want a subsystem NQN, got %s", jsonKind(raw))
			continue
		}
		if subs[nqn] == nil {
			c.errorf(fmt.Sprintf("%s.subsystems[%d]", o.path, j), " %s: not in subsystems (nvmetcli restore cannot link it either)", nqn)
			continue
		}
		if slices.Contains(p.links, nqn) {
			c.errorf(fmt.Sprintf("%s.subsystems[%d]", o.path, j), " %s: listed twice", nqn)
			continue
		}
		p.links = append(p.links, nqn)
	}
	slices.Sort(p.links)
	if len(p.links) == 0 {
		if len(c.errs) == nerrs {
			c.notef("%s (portid %d) links no subsystem: nvmet does not enable it, and flashpath does not listen on it", o.path, portid)
		}
		return nil
	}
	defer o.done()

	a := o.obj("addr")
	trtype, _ := a.attr("trtype")
	switch trtype {
	case "tcp", "rdma":
	case "loop":
		c.errorf(a.key("trtype"), " %q: flashpath serves tcp and rdma (loop is the kernel's host talking to its own target): use a tcp port on 127.0.0.1 and nvme connect -t tcp -a 127.0.0.1", trtype)
	case "":
		c.errorf(a.key("trtype"), ": missing: tcp or rdma")
	default:
		c.errorf(a.key("trtype"), " %q: flashpath serves tcp and rdma", trtype)
	}
	adrfam, _ := a.attr("adrfam")
	traddr, _ := a.attr("traddr")
	trsvcid, _ := a.attr("trsvcid")
	treq, _ := a.attr("treq")
	tsas, _ := a.attr("tsas")
	a.skip("portid")
	a.done()
	if trtype != "tcp" && trtype != "rdma" {
		return nil
	}
	var ip netip.Addr
	switch adrfam {
	case "ipv4", "ipv6":
		var err error
		if ip, err = netip.ParseAddr(traddr); err != nil || ip.Is4() != (adrfam == "ipv4") {
			c.errorf(a.key("traddr"), " %q: want an %s address (nvmet takes no host names)", traddr, map[string]string{"ipv4": "IPv4", "ipv6": "IPv6"}[adrfam])
			return nil
		}
	default:
		c.errorf(a.key("adrfam"), " %q: flashpath listens on IP addresses: ipv4 or ipv6", adrfam)
		return nil
	}
	port, err := strconv.ParseUint(trsvcid, 10, 16)
	if err != nil || port == 0 {
		c.errorf(a.key("trsvcid"), " %q: want a TCP port number, e.g. 4420", trsvcid)
		return nil
	}
	host := ip.String()
	if ip.Is6() {
		host = "[" + strings.ReplaceAll(host, "%", "%25") + "]"
	}
	p.listener = fmt.Sprintf("%s://%s:%d", trtype, host, port)

	switch treq {
	case "", "not specified", "not required", "required":
	default:
		c.errorf(a.key("treq"), " %q: want \"not specified\", \"not required\" or \"required\"", treq)
		return nil
	}
	switch {
	case trtype == "tcp" && tsas == "tls1.3":
		// The kernel turns "not specified" into "required" with TLS.
		p.tls = tcp.TLSRequired
		if treq == "not required" {
			p.tls = tcp.TLSOptional
		}
		p.listener += "?tls=" + map[tcp.TLSMode]string{tcp.TLSRequired: "required", tcp.TLSOptional: "optional"}[p.tls]
	case trtype == "tcp" && tsas != "" && tsas != "none":
		c.errorf(a.key("tsas"), " %q: want \"none\" or \"tls1.3\"", tsas)
	case trtype == "rdma" && tsas != "" && tsas != "connected":
		c.errorf(a.key("tsas"), " %q: flashpath's NVMe/RDMA uses connected (RC) queue pairs", tsas)
	case treq == "required":
		c.errorf(a.key("treq"), " \"required\": a secure channel, but tsas is not tls1.3 (and flashpath has none on NVMe/RDMA), so nvmet announces what it does not provide: set treq to \"not specified\", or tsas to tls1.3 on a tcp port")
	}

	param := o.obj("param")
	param.skip("inline_data_size", "max_queue_size", "mdts") // hosts read what the target reports
	if on, _ := param.bool("pi_enable"); on {
		c.errorf(param.key("pi_enable"), ": flashpath's namespaces have no protection information: set it to 0")
	}
	param.done()

	for k, raw := range o.list("referrals") {
		r := c.object(fmt.Sprintf("%s.referrals[%d]", o.path, k), raw)
		if on, _ := r.bool("enable"); on {
			name, _ := r.attr("name")
			c.errorf(r.path, " %q: flashpath's discovery controller reports no referrals: remove it, or set its enable to 0 (hosts use nvme discover on each target)", name)
		}
		// A disabled referral is not reported: nothing else matters.
	}
	// The port's ANA groups and their states (nvmet: ports/N/ana_groups/G/
	// ana/state); a group the port does not list is optimized there.
	for k, raw := range o.list("ana_groups") {
		g := c.object(fmt.Sprintf("%s.ana_groups[%d]", o.path, k), raw)
		id, ok := g.int("grpid")
		if !ok || id < 1 || id > target.MaxANAGroups {
			c.errorf(g.key("grpid"), " %d: flashpath has ANA groups 1 to %d: use one of them", id, target.MaxANAGroups)
			continue
		}
		ana := g.obj("ana")
		if s, _ := ana.attr("state"); s != "" {
			st, err := nvmeof.ParseANAState(s)
			switch {
			case err != nil:
				c.errorf(ana.key("state"), ": %v", err)
			case st != nvmeof.ANAOptimized && p != nil:
				p.ana = append(p.ana, ANAStateConfig{Listener: p.listener, Group: uint32(id), State: st.String()})
			}
		}
		ana.done()
		g.done()
	}
	return p
}

// links checks that every enabled port links the same subsystems, and
// returns them.
func (c *nvmetConverter) links(ports []*nvmetPort, nports int) map[string]bool {
	if len(ports) == 0 {
		if nports == 0 {
			c.errorf("ports", ": none, so nvmet serves nothing: add a port and link the subsystems to it (nvmetcli: cd /ports; create 1; cd 1; set addr trtype=tcp adrfam=ipv4 traddr=ADDRESS trsvcid=4420; cd subsystems; create NQN)")
		} else {
			c.errorf("ports", ": no port links a subsystem, so nvmet serves nothing: link the subsystems to a port (nvmetcli: cd /ports/PORTID/subsystems; create NQN)")
		}
		return nil
	}
	first := ports[0]
	for _, p := range ports[1:] {
		for _, nqn := range first.links {
			if !slices.Contains(p.links, nqn) {
				c.errorf(fmt.Sprintf("ports[%d].subsystems", p.idx), ": %s is linked to ports[%d] (portid %d) but not to this port (portid %d); flashpath serves every subsystem on every listener, so it cannot leave one off a port: link it here too (nvmetcli: cd /ports/%d/subsystems; create %s), or serve the two ports' subsystems from two flashpath targets", nqn, first.idx, first.portid, p.portid, p.portid, nqn)
			}
		}
		for _, nqn := range p.links {
			if !slices.Contains(first.links, nqn) {
				c.errorf(fmt.Sprintf("ports[%d].subsystems", first.idx), ": %s is linked to ports[%d] (portid %d) but not to this port (portid %d); flashpath serves every subsystem on every listener, so it cannot leave one off a port: link it here too (nvmetcli: cd /ports/%d/subsystems; create %s), or serve the two ports' subsystems from two flashpath targets", nqn, p.idx, p.portid, first.portid, first.portid, nqn)
			}
		}
	}
	served := map[string]bool{}
	for _, nqn := range first.links {
		served[nqn] = true
	}
	return served
}

// tlsKeyHint says where flashpath takes a host's TLS PSK from.
const tlsKeyHint = `nvmet finds TLS PSKs in the kernel's .nvme keyring, which this file does not hold: add the host's configured PSK (what nvme gen-tls-key printed) to its hosts[] entry as "tls_key_file": "/etc/flashpath/keys/HOST.psk" (nvmetcli restore ignores it)`

// checkTLS checks that hosts can connect over TLS where nvmet takes TLS.
func (c *nvmetConverter) checkTLS(ports []*nvmetPort, subs []*nvmetSubsys, served map[string]bool, hosts []*nvmetHost) {
	var tlsPort *nvmetPort
	allRequired := len(ports) > 0
	for _, p := range ports {
		if p.tls != tcp.TLSOff && tlsPort == nil {
			tlsPort = p
		}
		allRequired = allRequired && p.tls == tcp.TLSRequired
	}
	keys := 0
	for _, h := range hosts {
		if h.used && (h.tlsKey != "" || h.tlsFile != "") {
			keys++
			if tlsPort == nil {
				c.errorf(fmt.Sprintf("hosts[%d]", h.idx), ": has a TLS key, but no port has tsas tls1.3; flashpath's host with a key connects over TLS only: give a tcp port tsas tls1.3, or remove the key")
			}
		}
	}
	if tlsPort == nil {
		return
	}
	if keys == 0 {
		c.errorf(fmt.Sprintf("ports[%d].addr.tsas", tlsPort.idx), " \"tls1.3\": no host allowed by a subsystem has a TLS PSK: %s", tlsKeyHint)
		return
	}
	if !allRequired {
		return
	}
	for _, s := range subs {
		if !served[s.cfg.NQN] {
			continue
		}
		if s.anyHost {
			c.errorf(fmt.Sprintf("subsystems[%d].attr.allow_any_host", s.idx), ": 1, but every port requires TLS, and flashpath takes a host's PSK from the subsystem's allowed_hosts: list the hosts (allowed_hosts, each with a tls_key_file in hosts[]) and set allow_any_host to 0")
		}
		for k, h := range s.hosts {
			if h.tlsKey == "" && h.tlsFile == "" {
				c.errorf(fmt.Sprintf("subsystems[%d].allowed_hosts[%d]", s.idx, k), " %s: every port requires TLS, and this host has no TLS PSK: %s", h.nqn, tlsKeyHint)
			}
		}
	}
}

// authPreferences turns the hosts' DH-HMAC-CHAP preferences into
// flashpath's order: the one preference first, then flashpath's defaults.
func (c *nvmetConverter) authPreferences(hosts []*nvmetHost) (hashes, groups []string) {
	var hash, group *nvmetHost
	for _, h := range hosts {
		if !h.used || h.key == "" {
			continue
		}
		if h.hash != "" {
			if hash == nil {
				hash = h
			} else if h.hash != hash.hash {
				c.errorf(fmt.Sprintf("hosts[%d].dhchap.hash", h.idx), " %s: hosts[%d] prefers %s, and flashpath has one order of preference for all hosts (dhchap_hashes): give the hosts the same hash, or remove the attribute (then flashpath prefers sha512)", h.hash, hash.idx, hash.hash)
			}
		}
		if h.dhgroup != "" {
			if group == nil {
				group = h
			} else if h.dhgroup != group.dhgroup {
				c.errorf(fmt.Sprintf("hosts[%d].dhchap.dhgroup", h.idx), " %s: hosts[%d] prefers %s, and flashpath has one order of preference for all hosts (dhchap_dhgroups): give the hosts the same group, or remove the attribute (then flashpath prefers ffdhe2048)", h.dhgroup, group.idx, group.dhgroup)
			}
		}
	}
	if hash != nil {
		hashes = []string{hash.hash}
		for _, h := range []dhchap.Hash{dhchap.SHA512, dhchap.SHA384, dhchap.SHA256} {
			if h.String() != hash.hash {
				hashes = append(hashes, h.String())
			}
		}
	}
	if group != nil {
		groups = []string{group.dhgroup}
		for _, g := range []dhchap.DHGroup{dhchap.FFDHE2048, dhchap.FFDHE3072, dhchap.FFDHE4096, dhchap.FFDHE6144, dhchap.FFDHE8192, dhchap.DHNull} {
			if g.String() != group.dhgroup {
				groups = append(groups, g.String())
			}
		}
	}
	return hashes, groups
}
