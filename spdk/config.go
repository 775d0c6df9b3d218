package spdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/server"
)

// SPDK's JSON configuration is what rpc.py save_config writes and
// nvmf_tgt --json reads:
//
//	{"subsystems": [
//	  {"subsystem": "bdev", "config": [{"method": "bdev_malloc_create", "params": {...}}, ...]},
//	  {"subsystem": "nvmf", "config": [{"method": "nvmf_create_transport", ...}, ...]}]}
//
// save_config builds it from framework_get_subsystems and one
// framework_get_config per subsystem; load_config (and LoadConfig here)
// replays each entry as a request, in order. An entry may also be a batch:
// an array of entries.

// frameworkSubsystem is one entry of framework_get_subsystems.
type frameworkSubsystem struct {
	Name      string   `json:"subsystem"`
	DependsOn []string `json:"depends_on"`
}

// frameworkSubsystems are the SPDK subsystems whose configuration
// flashpath holds, in the order their entries must be replayed.
var frameworkSubsystems = []frameworkSubsystem{
	{"keyring", []string{}},
	{"bdev", []string{}},
	{"nvmf", []string{"bdev", "keyring"}},
}

// configEntry is one entry of a subsystem's configuration: a request
// without jsonrpc and id.
type configEntry struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

func entry(method string, params any) configEntry {
	b, err := json.Marshal(params)
	if err != nil {
		panic(fmt.Sprintf("spdk: encode %s params: %v", method, err)) // the types below always encode
	}
	return configEntry{method, b}
}

func (s *Server) getFrameworkSubsystems(p json.RawMessage) (any, *Error) {
	if e := noParams(p); e != nil {
		return nil, e
	}
	return frameworkSubsystems, nil
}

// framework_get_config: the requests that rebuild one subsystem's running
// configuration. Entries are never batched (with_batches is accepted and
// changes nothing: a flat list is also what SPDK's load_config reads).
func (s *Server) getConfig(params json.RawMessage) (any, *Error) {
	var p struct {
		Name        string `json:"name"`
		WithBatches bool   `json:"with_batches"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	cfg := s.srv.Applied()
	switch p.Name {
	case "keyring":
		return s.keyringConfig(cfg)
	case "bdev":
		return s.bdevConfig(cfg)
	case "nvmf":
		return s.nvmfConfig(cfg)
	case "":
		return nil, errorf(CodeInvalidParams, "Invalid parameters: name is required (framework_get_subsystems lists the subsystems)")
	}
	return nil, errorf(CodeInvalidParams, "Subsystem '%s' not found", p.Name)
}

// Parameters as framework_get_config writes them: the creating method's,
// with SPDK's names, in a fixed order.
type (
	memBdevConfig struct {
		Name      string `json:"name"`
		NumBlocks uint64 `json:"num_blocks"`
		BlockSize int    `json:"block_size"`
		UUID      string `json:"uuid"`
	}
	fileBdevConfig struct {
		Name      string `json:"name"`
		Filename  string `json:"filename"`
		BlockSize int    `json:"block_size"`
		ReadOnly  bool   `json:"readonly,omitempty"`
		UUID      string `json:"uuid"`
	}
	subsystemConfig struct {
		NQN           string `json:"nqn"`
		AllowAnyHost  bool   `json:"allow_any_host"`
		SerialNumber  string `json:"serial_number"`
		ModelNumber   string `json:"model_number"`
		MaxNamespaces int    `json:"max_namespaces,omitempty"`
		ANAReporting  bool   `json:"ana_reporting,omitempty"`
		MinCntlid     uint16 `json:"min_cntlid,omitempty"`
		MaxCntlid     uint16 `json:"max_cntlid,omitempty"`
	}
	hostConfig struct {
		NQN  string `json:"nqn"`
		Host string `json:"host"`
		hostKeys
	}
	nsConfig struct {
		NQN       string `json:"nqn"`
		Namespace struct {
			NSID     uint32 `json:"nsid"`
			BdevName string `json:"bdev_name"`
			UUID     string `json:"uuid,omitempty"`
			NGUID    string `json:"nguid,omitempty"`
			ANAGrpID uint32 `json:"anagrpid,omitempty"`
			PTPLFile string `json:"ptpl_file,omitempty"`
		} `json:"namespace"`
	}
	listenerConfig struct {
		NQN           string        `json:"nqn"`
		ListenAddress listenAddress `json:"listen_address"`
		SecureChannel bool          `json:"secure_channel"`
	}
	setConfigParams struct {
		DiscoveryFilter  string          `json:"discovery_filter,omitempty"`
		AdminCmdPassthru map[string]bool `json:"admin_cmd_passthru,omitempty"`
		DHCHAPDigests    []string        `json:"dhchap_digests,omitempty"`
		DHCHAPDHGroups   []string        `json:"dhchap_dhgroups,omitempty"`
		DupHostPolicy    string          `json:"dup_host_policy,omitempty"`
		PollGroupsMask   string          `json:"poll_groups_mask,omitempty"`
		AcceptorPollRate int             `json:"acceptor_poll_rate,omitempty"`
		ConnSched        string          `json:"conn_sched,omitempty"`
	}
)

// bdevConfig lists a create request for every bdev, sorted by name: the
// RPC's and those standing for the configuration file's namespaces.
func (s *Server) bdevConfig(cfg *server.Config) (any, *Error) {
	type named struct {
		name string
		e    configEntry
	}
	var all []named
	for name, b := range s.bdevs {
		e, rerr := bdevEntry(b)
		if rerr != nil {
			return nil, rerr
		}
		all = append(all, named{name, e})
	}
	for _, sc := range cfg.Subsystems {
		ss := s.srv.Target.Subsystem(sc.NQN)
		for _, nc := range sc.Namespaces {
			if s.bdevOf(sc.NQN, nc) != nil || ss == nil {
				continue
			}
			ns := ss.Namespace(nc.NSID)
			if ns == nil {
				continue
			}
			b := &bdev{name: configBdevName(sc.NQN, nc.NSID), spec: nc.Backend, uuid: formatUUID(ns.UUID),
				blockSize: ns.Backend.BlockSize(), numBlocks: uint64(ns.Backend.Size()) / uint64(ns.Backend.BlockSize())}
			e, rerr := bdevEntry(b)
			if rerr != nil {
				return nil, rerr
			}
			all = append(all, named{b.name, e})
		}
	}
	slices.SortFunc(all, func(a, b named) int { return strings.Compare(a.name, b.name) })
	out := make([]configEntry, len(all))
	for i, n := range all {
		out[i] = n.e
	}
	return out, nil
}

// bdevEntry is the request that creates b again. A backend option SPDK's
// bdevs cannot carry (buffered, sync) is an error naming it: the saved
// file would otherwise serve the namespace differently.
func bdevEntry(b *bdev) (configEntry, *Error) {
	sp, err := backend.ParseSpec(b.spec)
	if err != nil {
		return configEntry{}, errorf(CodeInternalError, "bdev %s: %v", b.name, err)
	}
	if sp.Options.Buffered || sp.Options.SyncIO {
		return configEntry{}, errorf(CodeInternalError, "bdev %s: backend %q uses the page cache or synchronous I/O (?buffered, ?sync), which SPDK's JSON config cannot express: remove the option, or keep this target in a flashpath config file", b.name, b.spec)
	}
	switch sp.Kind {
	case backend.KindMem, backend.KindNull:
		method := "bdev_malloc_create"
		if sp.Kind == backend.KindNull {
			method = "bdev_null_create"
		}
		return entry(method, memBdevConfig{b.name, b.numBlocks, b.blockSize, b.uuid}), nil
	}
	method := "bdev_aio_create"
	if b.module == "uring" {
		method = "bdev_uring_create"
	}
	return entry(method, fileBdevConfig{b.name, sp.Path, b.blockSize, sp.Options.ReadOnly, b.uuid}), nil
}

// nvmfConfig lists the requests that rebuild the NVMe-oF side: settings,
// transports, then each subsystem with its hosts and namespaces, then the
// listeners (each with every subsystem that serves it, in order).
func (s *Server) nvmfConfig(cfg *server.Config) (any, *Error) {
	out := []configEntry{}
	keys, rerr := s.keyNames(cfg)
	if rerr != nil {
		return nil, rerr
	}
	if len(cfg.DHCHAPHashes) > 0 || len(cfg.DHCHAPDHGroups) > 0 {
		out = append(out, entry("nvmf_set_config", setConfigParams{DHCHAPDigests: cfg.DHCHAPHashes, DHCHAPDHGroups: cfg.DHCHAPDHGroups}))
	}
	for _, tr := range sortedKeys(s.transports) {
		out = append(out, configEntry{"nvmf_create_transport", s.transports[tr]})
	}
	for _, sc := range cfg.Subsystems {
		ss := s.srv.Target.Subsystem(sc.NQN)
		sub := subsystemConfig{NQN: sc.NQN, AllowAnyHost: anyHost(&sc), SerialNumber: sc.Serial, ModelNumber: sc.Model, MaxNamespaces: s.maxNS[sc.NQN],
			ANAReporting: len(sc.ANAStates) > 0 || len(anaGroupsOf(&sc)) > 1, MinCntlid: sc.MinCntlID, MaxCntlid: sc.MaxCntlID}
		if ss != nil {
			c := ss.Config()
			sub.SerialNumber, sub.ModelNumber = c.Serial, c.Model
		}
		out = append(out, entry("nvmf_create_subsystem", sub))
		for _, h := range sc.AllowedHosts {
			out = append(out, entry("nvmf_subsystem_add_host", hostConfig{sc.NQN, h.NQN, hostKeysOf(h, keys)}))
		}
		for _, nc := range sc.Namespaces {
			var ns nsConfig
			ns.NQN = sc.NQN
			ns.Namespace.NSID, ns.Namespace.BdevName = nc.NSID, configBdevName(sc.NQN, nc.NSID)
			if nc.ANAGroup > 1 {
				ns.Namespace.ANAGrpID = nc.ANAGroup
			}
			ns.Namespace.PTPLFile = nc.PTPLFile
			if b := s.bdevOf(sc.NQN, nc); b != nil {
				ns.Namespace.BdevName = b.name
			}
			if ss != nil {
				if n := ss.Namespace(nc.NSID); n != nil {
					ns.Namespace.UUID = formatUUID(n.UUID)
					ns.Namespace.NGUID = strings.ToUpper(fmt.Sprintf("%x", n.NGUID))
				}
			}
			out = append(out, entry("nvmf_subsystem_add_ns", ns))
		}
	}
	for _, l := range cfg.DiscoveryListeners {
		secure, rerr := listenerTLS(l)
		if rerr != nil {
			return nil, rerr
		}
		out = append(out, entry("nvmf_subsystem_add_listener", listenerConfig{nvmeof.DiscoveryNQN, s.boundAddress(l), secure}))
	}
	for _, l := range cfg.Listeners {
		secure, rerr := listenerTLS(l)
		if rerr != nil {
			return nil, rerr
		}
		var nqns []string
		if s.listenRefs[l][nvmeof.DiscoveryNQN] {
			nqns = append(nqns, nvmeof.DiscoveryNQN)
		}
		for _, sc := range cfg.Subsystems {
			if s.listensOn(l, sc.NQN) {
				nqns = append(nqns, sc.NQN)
			}
		}
		if len(nqns) == 0 {
			nqns = append(nqns, nvmeof.DiscoveryNQN) // a listener no subsystem names serves discovery
		}
		la := s.boundAddress(l)
		for _, nqn := range nqns {
			out = append(out, entry("nvmf_subsystem_add_listener", listenerConfig{nqn, la, secure}))
		}
	}
	for _, sc := range cfg.Subsystems {
		out = append(out, anaEntries(&sc)...)
	}
	return out, nil
}

// boundAddress is listener l's address; on port 0, the port the system
// chose, which a restart from the saved file keeps.
func (s *Server) boundAddress(l string) listenAddress {
	la := listenAddressOf(l)
	if bound := s.srv.ListenerAddr(l); la.Trsvcid == "0" && bound != "" {
		la = listenAddressOf(bound)
	}
	return la
}

// listenerTLS reports whether listener l takes TLS only (secure_channel);
// a listener that takes TLS or plain has no SPDK form.
func listenerTLS(l string) (bool, *Error) {
	_, query, _ := strings.Cut(l, "?")
	q, _ := url.ParseQuery(query)
	switch q.Get("tls") {
	case "required":
		return true, nil
	case "optional":
		return false, errorf(CodeInternalError, "listener %s takes TLS or plain connections, which SPDK's JSON config cannot express (secure_channel is TLS only): make it ?tls=required, or keep this target in a flashpath config file", l)
	}
	return false, nil
}

// --- methods that configure SPDK's internals ---

// noEffect are SPDK methods that tune SPDK's own machinery, which
// flashpath does not have: they are accepted (with any parameters) so
// that SPDK's saved configurations load, and change nothing.
var noEffect = map[string]string{
	"framework_set_scheduler": "flashpath has no reactors to schedule (Go schedules its goroutines)",
	"sock_set_default_impl":   "flashpath has one socket layer",
	"sock_impl_set_options":   "flashpath sizes its own socket buffers (busy_poll is in its config file)",
	"iobuf_set_options":       "flashpath's buffer pool is sized by buffer_memory in its config file",
	"accel_set_options":       "flashpath has no accel framework",
	"bdev_set_options":        "flashpath has no bdev_io pool",
	"bdev_raid_set_options":   "flashpath has no RAID bdevs",
	"bdev_nvme_set_options":   "flashpath attaches no NVMe bdevs (bdev_nvme)",
	"bdev_nvme_set_hotplug":   "flashpath attaches no NVMe bdevs (bdev_nvme)",
	"bdev_wait_for_examine":   "flashpath's bdevs are ready when created",
	"nvmf_set_max_subsystems": "flashpath has no subsystem limit",
}

func (s *Server) acceptNoEffect(method string, params json.RawMessage) (any, *Error) {
	if params != nil && params[0] != '{' {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: want an object")
	}
	s.log.Info("rpc: accepted, no effect in flashpath", "method", method, "why", noEffect[method])
	return true, nil
}

// SPDK's defaults for nvmf_set_config's DH-HMAC-CHAP lists, which are
// flashpath's too (in another order of preference).
var (
	defaultDigests  = []string{"sha256", "sha384", "sha512"}
	defaultDHGroups = []string{"null", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192"}
)

// nvmf_set_config: SPDK applies it before the target starts; flashpath
// takes its DH-HMAC-CHAP lists from a configuration file at start
// (PrepareConfig), and at run time accepts the lists running.
func (s *Server) setConfig(params json.RawMessage) (any, *Error) {
	var p setConfigParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if e := p.check(); e != nil {
		return nil, e
	}
	cfg := s.srv.Applied()
	if !sameSet(p.DHCHAPDigests, cfg.DHCHAPHashes, defaultDigests) || !sameSet(p.DHCHAPDHGroups, cfg.DHCHAPDHGroups, defaultDHGroups) {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: dhchap_digests, dhchap_dhgroups: the target runs %v and %v and applies new lists at start only (as SPDK): put them in the config file (dhchap_hashes, dhchap_dhgroups) and restart",
			orDefault(cfg.DHCHAPHashes, defaultDigests), orDefault(cfg.DHCHAPDHGroups, defaultDHGroups))
	}
	return true, nil
}

// check refuses what changes behaviour flashpath does not have.
func (p *setConfigParams) check() *Error {
	if p.DiscoveryFilter != "" && p.DiscoveryFilter != "match_any" {
		return errorf(CodeInvalidParams, "Invalid parameters: discovery_filter %q: flashpath's discovery log lists every listener (match_any): leave it out", p.DiscoveryFilter)
	}
	for k, on := range p.AdminCmdPassthru {
		if on {
			return errorf(CodeInvalidParams, "Invalid parameters: admin_cmd_passthru.%s: flashpath passes no admin commands through to a drive: leave it false", k)
		}
	}
	if p.DupHostPolicy != "" && p.DupHostPolicy != "allow" {
		return errorf(CodeInvalidParams, "Invalid parameters: dup_host_policy %q: flashpath lets a host NQN hold several controllers (allow)", p.DupHostPolicy)
	}
	return nil
}

func orDefault(l, def []string) []string {
	if len(l) == 0 {
		return def
	}
	return l
}

// sameSet reports whether want (nil: no change asked) names the same set
// as running (or def, when running is empty).
func sameSet(want, running, def []string) bool {
	if want == nil {
		return true
	}
	a, b := slices.Clone(want), slices.Clone(orDefault(running, def))
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// nvmf_set_crdt: the Command Retry Delay Times of Identify Controller;
// flashpath asks hosts for no delay.
func (s *Server) setCRDT(params json.RawMessage) (any, *Error) {
	var p struct {
		CRDT1 int `json:"crdt1"`
		CRDT2 int `json:"crdt2"`
		CRDT3 int `json:"crdt3"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if p.CRDT1 != 0 || p.CRDT2 != 0 || p.CRDT3 != 0 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: crdt1..3: flashpath reports no command retry delay: leave them 0")
	}
	return true, nil
}

// --- loading a saved configuration ---

// Config is SPDK's JSON configuration, as save_config writes it.
type Config struct {
	Subsystems []ConfigSubsystem `json:"subsystems"`
}

// ConfigSubsystem is one subsystem's part of a Config: its requests in
// order, each a request object or a batch (an array of them).
type ConfigSubsystem struct {
	Subsystem string            `json:"subsystem"`
	Config    []json.RawMessage `json:"config"`
}

// ParseConfig decodes SPDK's JSON configuration. Members it does not know
// are errors naming them.
func ParseConfig(b []byte) (*Config, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var c Config
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("SPDK JSON config: %w", err)
	}
	if d.More() {
		return nil, errors.New("SPDK JSON config: more than one JSON value")
	}
	if c.Subsystems == nil {
		return nil, errors.New(`SPDK JSON config: no "subsystems" (save_config writes {"subsystems": [...]})`)
	}
	for i, sub := range c.Subsystems {
		if sub.Subsystem == "" {
			return nil, fmt.Errorf("SPDK JSON config: subsystems[%d].subsystem: missing", i)
		}
		for j := range sub.Config {
			if _, err := sub.requests(j); err != nil {
				return nil, fmt.Errorf("SPDK JSON config: subsystems[%d] (%s).config[%d]: %w", i, sub.Subsystem, j, err)
			}
		}
	}
	return &c, nil
}

// requests decodes entry j: one request, or the requests of a batch.
func (sub *ConfigSubsystem) requests(j int) ([]configEntry, error) {
	raw := bytes.TrimSpace(sub.Config[j])
	var list []json.RawMessage
	if len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
	} else {
		list = []json.RawMessage{raw}
	}
	out := make([]configEntry, 0, len(list))
	for _, r := range list {
		d := json.NewDecoder(bytes.NewReader(r))
		d.DisallowUnknownFields()
		var e configEntry
		if err := d.Decode(&e); err != nil {
			return nil, fmt.Errorf("want {\"method\": ..., \"params\": {...}}: %w", err)
		}
		if e.Method == "" {
			return nil, errors.New("method missing")
		}
		if string(e.Params) == "null" {
			e.Params = nil
		}
		out = append(out, e)
	}
	return out, nil
}

// each calls fn for every request of c in order, with where it is
// ("subsystems[i] (name).config[j]"); it stops at the first error.
func (c *Config) each(fn func(where string, e configEntry) error) error {
	for i, sub := range c.Subsystems {
		for j := range sub.Config {
			where := fmt.Sprintf("subsystems[%d] (%s).config[%d]", i, sub.Subsystem, j)
			reqs, err := sub.requests(j)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			for _, e := range reqs {
				if err := fn(where, e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// PrepareConfig copies from c into cfg what SPDK applies before its
// target starts and flashpath takes at start only: nvmf_set_config's
// DH-HMAC-CHAP lists. Start the server with cfg, then LoadConfig(c).
func PrepareConfig(c *Config, cfg *server.Config) error {
	return c.each(func(where string, e configEntry) error {
		if e.Method != "nvmf_set_config" {
			return nil
		}
		var p setConfigParams
		if rerr := decodeParams(e.Params, &p); rerr != nil {
			return fmt.Errorf("%s nvmf_set_config: %s", where, rerr.Message)
		}
		if rerr := p.check(); rerr != nil {
			return fmt.Errorf("%s nvmf_set_config: %s", where, rerr.Message)
		}
		cfg.DHCHAPHashes, cfg.DHCHAPDHGroups = p.DHCHAPDigests, p.DHCHAPDHGroups
		return nil
	})
}

// LoadConfig replays c's requests in order, as nvmf_tgt --json does at
// start. The first that fails stops it, with an error naming the entry
// (subsystems[i].config[j]) and the method; what applied before stays.
func (s *Server) LoadConfig(c *Config) error {
	return c.each(func(where string, e configEntry) error {
		if _, rerr := s.call(Request{Method: e.Method, Params: e.Params}); rerr != nil {
			return fmt.Errorf("%s %s: %s", where, e.Method, rerr.Message)
		}
		return nil
	})
}
