package spdk

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/server"
)

// method runs one JSON-RPC method with s.mu held.
type method func(s *Server, params json.RawMessage) (any, *Error)

// methods are the SPDK methods flashpath serves, with SPDK's names,
// parameters and results.
var methods map[string]method

func init() {
	methods = map[string]method{
		"spdk_get_version":         (*Server).getVersion,
		"rpc_get_methods":          (*Server).getMethods,
		"framework_wait_init":      func(s *Server, p json.RawMessage) (any, *Error) { return true, noParams(p) },
		"framework_get_subsystems": (*Server).getFrameworkSubsystems,
		"framework_get_config":     (*Server).getConfig,
		"nvmf_set_config":          (*Server).setConfig,
		"nvmf_set_crdt":            (*Server).setCRDT,
		"bdev_malloc_create":       func(s *Server, p json.RawMessage) (any, *Error) { return s.createMemBdev("malloc", p) },
		"bdev_null_create":         func(s *Server, p json.RawMessage) (any, *Error) { return s.createMemBdev("null", p) },
		"bdev_aio_create":          func(s *Server, p json.RawMessage) (any, *Error) { return s.createFileBdev("aio", p) },
		"bdev_uring_create":        func(s *Server, p json.RawMessage) (any, *Error) { return s.createFileBdev("uring", p) },
		"bdev_malloc_delete":       func(s *Server, p json.RawMessage) (any, *Error) { return s.deleteBdev("malloc", p) },
		"bdev_null_delete":         func(s *Server, p json.RawMessage) (any, *Error) { return s.deleteBdev("null", p) },
		"bdev_aio_delete":          func(s *Server, p json.RawMessage) (any, *Error) { return s.deleteBdev("aio", p) },
		"bdev_uring_delete":        func(s *Server, p json.RawMessage) (any, *Error) { return s.deleteBdev("uring", p) },
		"bdev_get_bdevs":           (*Server).getBdevs,
		"bdev_get_iostat":          (*Server).getIOStat,

		"nvmf_create_transport":                 (*Server).createTransport,
		"nvmf_get_transports":                   (*Server).getTransports,
		"nvmf_create_subsystem":                 (*Server).createSubsystem,
		"nvmf_delete_subsystem":                 (*Server).deleteSubsystem,
		"nvmf_get_subsystems":                   (*Server).getSubsystems,
		"nvmf_subsystem_add_ns":                 (*Server).addNS,
		"nvmf_subsystem_remove_ns":              (*Server).removeNS,
		"nvmf_subsystem_add_host":               (*Server).addHost,
		"nvmf_subsystem_remove_host":            (*Server).removeHost,
		"nvmf_subsystem_allow_any_host":         (*Server).allowAnyHost,
		"nvmf_subsystem_add_listener":           func(s *Server, p json.RawMessage) (any, *Error) { return s.listener(true, p) },
		"nvmf_subsystem_remove_listener":        func(s *Server, p json.RawMessage) (any, *Error) { return s.listener(false, p) },
		"nvmf_subsystem_get_listeners":          (*Server).getListeners,
		"nvmf_subsystem_get_controllers":        (*Server).getControllers,
		"nvmf_subsystem_set_keys":               (*Server).setKeys,
		"nvmf_subsystem_listener_set_ana_state": (*Server).setANAState,
		"keyring_file_add_key":                  (*Server).addKey,
		"keyring_file_remove_key":               (*Server).removeKey,
		"keyring_get_keys":                      (*Server).getKeys,
		"nvmf_subsystem_get_qpairs":             (*Server).getQpairs,
		"nvmf_get_stats":                        (*Server).getStats,
	}
	for name := range noEffect {
		methods[name] = func(s *Server, p json.RawMessage) (any, *Error) { return s.acceptNoEffect(name, p) }
	}
}

// refused are SPDK methods flashpath does not serve (yet), with why: they
// answer -95 "Operation not supported", not -32601, so that a script can
// tell "flashpath lacks it" from a typo.
var refused = map[string]string{
	"framework_start_init":        "flashpath starts initialized: leave it out",
	"keyring_linux_set_options":   "flashpath does not read the kernel keyring: add key files with keyring_file_add_key",
	"nvmf_subsystem_add_ns_host":  "namespace masking is not implemented",
	"nvmf_ns_add_host":            "namespace masking is not implemented",
	"nvmf_ns_remove_host":         "namespace masking is not implemented",
	"bdev_nvme_attach_controller": "flashpath exports local files and devices: use bdev_aio_create or bdev_uring_create on the device",
	"bdev_lvol_create_lvstore":    "logical volumes are not implemented: export a file or partition with bdev_aio_create",
	"bdev_lvol_create":            "logical volumes are not implemented: export a file or partition with bdev_aio_create",
	"bdev_split_create":           "split bdevs are not implemented: export partitions with bdev_aio_create",
}

// MethodNames lists the methods served, sorted.
func MethodNames() []string { return sortedKeys(methods) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func noParams(p json.RawMessage) *Error {
	var v struct{}
	return decodeParams(p, &v)
}

// spdkVersion is the SPDK release whose JSON-RPC this package follows.
const spdkMajor, spdkMinor = 24, 9

func (s *Server) getVersion(p json.RawMessage) (any, *Error) {
	if e := noParams(p); e != nil {
		return nil, e
	}
	suffix := "-flashpath"
	if s.opts.Version != "" {
		suffix += "-" + s.opts.Version
	}
	return map[string]any{
		"version": fmt.Sprintf("SPDK v%d.%02d%s (flashpath: SPDK-compatible JSON-RPC)", spdkMajor, spdkMinor, suffix),
		"fields":  map[string]any{"major": spdkMajor, "minor": spdkMinor, "patch": 0, "suffix": suffix},
	}, nil
}

func (s *Server) getMethods(p json.RawMessage) (any, *Error) {
	var q struct {
		Current        bool `json:"current"`
		IncludeAliases bool `json:"include_aliases"`
	}
	if e := decodeParams(p, &q); e != nil {
		return nil, e
	}
	return MethodNames(), nil
}

// nqnParams are the parameters of the methods that name a subsystem alone.
type nqnParams struct {
	NQN string `json:"nqn"`
	tgtName
}

// tgtName is the tgt_name parameter of the nvmf methods, embedded in
// their parameters: decodeParams refuses one that is set, as flashpath
// runs one target.
type tgtName struct {
	TgtName string `json:"tgt_name"`
}

func (t tgtName) check() *Error {
	if t.TgtName != "" {
		return errorf(CodeInvalidParams, "Invalid parameters: tgt_name %q: flashpath runs one target: leave tgt_name out", t.TgtName)
	}
	return nil
}

// update applies change through server.Update; a failure is an internal
// error with what failed.
func (s *Server) update(what string, change func(cfg *server.Config) *Error) *Error {
	var rerr *Error
	err := s.srv.Update(func(cfg *server.Config) error {
		if rerr = change(cfg); rerr != nil {
			return rerr
		}
		return nil
	})
	if rerr != nil {
		return rerr
	}
	if err != nil {
		return errorf(CodeInternalError, "%s: %v", what, err)
	}
	return nil
}

func findSubsys(cfg *server.Config, nqn string) *server.SubsystemConfig {
	for i := range cfg.Subsystems {
		if cfg.Subsystems[i].NQN == nqn {
			return &cfg.Subsystems[i]
		}
	}
	return nil
}

func removeNS(ns []server.NamespaceConfig, nsid uint32) []server.NamespaceConfig {
	return slices.DeleteFunc(ns, func(nc server.NamespaceConfig) bool { return nc.NSID == nsid })
}

// subsys returns the subsystem nqn of cfg, or SPDK's error.
func subsys(cfg *server.Config, nqn string) (*server.SubsystemConfig, *Error) {
	if nqn == "" {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: nqn is required")
	}
	sc := findSubsys(cfg, nqn)
	if sc == nil {
		return nil, errorf(CodeInvalidParams, "Unable to find subsystem with NQN %s (nvmf_get_subsystems lists them)", nqn)
	}
	return sc, nil
}

// --- transports ---

// trtypeOf returns a listener's SPDK trtype, TCP or RDMA.
func trtypeOf(l string) string {
	tr, _, err := server.ParseListener(l)
	if err != nil {
		return ""
	}
	return strings.ToUpper(tr)
}

func (s *Server) createTransport(params json.RawMessage) (any, *Error) {
	var p map[string]json.RawMessage
	if params == nil || json.Unmarshal(params, &p) != nil {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: trtype is required (TCP or RDMA)")
	}
	var tr, tgt string
	if json.Unmarshal(p["trtype"], &tr) != nil || tr == "" {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: trtype is required (TCP or RDMA)")
	}
	if t, ok := p["tgt_name"]; ok && json.Unmarshal(t, &tgt) != nil {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: tgt_name: want a string")
	}
	if e := (tgtName{tgt}).check(); e != nil {
		return nil, e
	}
	tr = strings.ToUpper(tr)
	if tr != "TCP" && tr != "RDMA" {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: transport type '%s' is not supported by flashpath: use TCP or RDMA", tr)
	}
	if _, ok := s.transports[tr]; ok {
		return nil, errorf(CodeInternalError, "Transport type '%s' already exists", tr)
	}
	delete(p, "tgt_name")
	p["trtype"] = json.RawMessage(strconv.Quote(tr))
	b, _ := json.Marshal(p)
	s.transports[tr] = b
	s.log.Info("rpc: transport created", "trtype", tr, "params", string(b))
	return true, nil
}

func (s *Server) getTransports(params json.RawMessage) (any, *Error) {
	var p struct {
		Trtype string `json:"trtype"`
		tgtName
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	out := []json.RawMessage{}
	for _, tr := range sortedKeys(s.transports) {
		if p.Trtype == "" || strings.EqualFold(p.Trtype, tr) {
			out = append(out, s.transports[tr])
		}
	}
	if p.Trtype != "" && len(out) == 0 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: transport %s not created", p.Trtype)
	}
	return out, nil
}

// --- subsystems ---

type createSubsystemParams struct {
	NQN           string `json:"nqn"`
	SerialNumber  string `json:"serial_number"`
	ModelNumber   string `json:"model_number"`
	AllowAnyHost  bool   `json:"allow_any_host"`
	MaxNamespaces int    `json:"max_namespaces"`
	tgtName
	ANAReporting          bool `json:"ana_reporting"`
	MinCntlid             int  `json:"min_cntlid"`
	MaxCntlid             int  `json:"max_cntlid"`
	MaxDiscardSizeKiB     int  `json:"max_discard_size_kib"`
	MaxWriteZeroesSizeKiB int  `json:"max_write_zeroes_size_kib"`
	PassthroughInfo       bool `json:"passthrough"`
	EnableNSSR            bool `json:"enable_nssr"`
	DMRSL                 int  `json:"dmrsl"`
	WZSL                  int  `json:"wzsl"`
}

func (s *Server) createSubsystem(params json.RawMessage) (any, *Error) {
	var p createSubsystemParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if err := target.ValidateNQN(p.NQN); err != nil {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: nqn: %v", err)
	}
	if p.NQN == nvmeof.DiscoveryNQN {
		return nil, errorf(CodeInternalError, "Unable to create subsystem %s: it is the discovery subsystem, which flashpath serves on every listener", p.NQN)
	}
	if len(p.SerialNumber) > 20 || !printable(p.SerialNumber) {
		return nil, errorf(CodeInvalidParams, "Invalid SN %s: want at most 20 printable ASCII characters", p.SerialNumber)
	}
	if len(p.ModelNumber) > 40 || !printable(p.ModelNumber) {
		return nil, errorf(CodeInvalidParams, "Invalid MN %s: want at most 40 printable ASCII characters", p.ModelNumber)
	}
	if p.MaxNamespaces < 0 || p.MaxNamespaces > target.MaxNSID {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: max_namespaces %d: flashpath serves NSIDs 1..%d", p.MaxNamespaces, target.MaxNSID)
	}
	if p.MinCntlid < 0 || p.MaxCntlid < 0 || p.MinCntlid > target.MaxCntlID || p.MaxCntlid > target.MaxCntlID ||
		target.CheckCntlIDRange(uint16(p.MinCntlid), uint16(p.MaxCntlid)) != nil {
		return nil, errorf(CodeInvalidParams, "Invalid cntlid range [%d-%d]: want 1 <= min_cntlid <= max_cntlid <= %d", p.MinCntlid, p.MaxCntlid, target.MaxCntlID)
	}
	// dmrsl and wzsl are limits SPDK derives from its bdevs and writes
	// into every saved configuration: accepted, and flashpath reports its
	// own (it has no Copy command; Write Zeroes has no limit of its own).
	if p.MaxDiscardSizeKiB != 0 || p.MaxWriteZeroesSizeKiB != 0 || p.PassthroughInfo || p.EnableNSSR {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: max_discard_size_kib, max_write_zeroes_size_kib, passthrough, enable_nssr are not supported: leave them out")
	}
	e := s.update("create subsystem "+p.NQN, func(cfg *server.Config) *Error {
		if findSubsys(cfg, p.NQN) != nil {
			return errorf(CodeInternalError, "Unable to create subsystem %s: it exists (nvmf_delete_subsystem it first)", p.NQN)
		}
		cfg.Subsystems = append(cfg.Subsystems, server.SubsystemConfig{NQN: p.NQN, Serial: p.SerialNumber, Model: p.ModelNumber, AllowAnyHost: new(p.AllowAnyHost),
			MinCntlID: uint16(p.MinCntlid), MaxCntlID: uint16(p.MaxCntlid)})
		return nil
	})
	if e != nil {
		return nil, e
	}
	s.maxNS[p.NQN] = p.MaxNamespaces
	return true, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) deleteSubsystem(params json.RawMessage) (any, *Error) {
	var p nqnParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	e := s.update("delete subsystem "+p.NQN, func(cfg *server.Config) *Error {
		if _, e := subsys(cfg, p.NQN); e != nil {
			return e
		}
		cfg.Subsystems = slices.DeleteFunc(cfg.Subsystems, func(sc server.SubsystemConfig) bool { return sc.NQN == p.NQN })
		cfg.Listeners = s.dropListenRefs(cfg.Listeners, p.NQN, "")
		pruneANA(cfg)
		return nil
	})
	if e != nil {
		return nil, e
	}
	s.commitListenRefs(p.NQN, "", false)
	delete(s.maxNS, p.NQN)
	for _, b := range s.bdevs {
		if b.nqn == p.NQN {
			b.nqn, b.nsid = "", 0
		}
	}
	return true, nil
}

type hostInfo struct {
	NQN            string `json:"nqn"`
	DHCHAPKey      string `json:"dhchap_key,omitempty"`
	DHCHAPCtrlrKey string `json:"dhchap_ctrlr_key,omitempty"`
}

type nsInfo struct {
	NSID     uint32 `json:"nsid"`
	BdevName string `json:"bdev_name"`
	Name     string `json:"name"`
	NGUID    string `json:"nguid,omitempty"`
	UUID     string `json:"uuid,omitempty"`
	ANAGrpID uint32 `json:"anagrpid"`
}

type subsystemInfo struct {
	NQN             string          `json:"nqn"`
	Subtype         string          `json:"subtype"`
	ListenAddresses []listenAddress `json:"listen_addresses"`
	AllowAnyHost    bool            `json:"allow_any_host"`
	Hosts           []hostInfo      `json:"hosts"`
	SerialNumber    string          `json:"serial_number,omitempty"`
	ModelNumber     string          `json:"model_number,omitempty"`
	MaxNamespaces   int             `json:"max_namespaces,omitempty"`
	MinCntlid       int             `json:"min_cntlid,omitempty"`
	MaxCntlid       int             `json:"max_cntlid,omitempty"`
	Namespaces      []nsInfo        `json:"namespaces,omitempty"`
}

func (s *Server) getSubsystems(params json.RawMessage) (any, *Error) {
	var p nqnParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	cfg := s.srv.Applied()
	disc := subsystemInfo{NQN: nvmeof.DiscoveryNQN, Subtype: "Discovery", ListenAddresses: []listenAddress{}, AllowAnyHost: true, Hosts: []hostInfo{}}
	for _, l := range cfg.DiscoveryListeners {
		disc.ListenAddresses = append(disc.ListenAddresses, listenAddressOf(l))
	}
	for _, l := range cfg.Listeners {
		disc.ListenAddresses = append(disc.ListenAddresses, listenAddressOf(l))
	}
	out := []subsystemInfo{disc}
	for _, sc := range cfg.Subsystems {
		info := subsystemInfo{NQN: sc.NQN, Subtype: "NVMe", ListenAddresses: []listenAddress{}, Hosts: []hostInfo{}, Namespaces: []nsInfo{},
			MaxNamespaces: s.maxNS[sc.NQN], SerialNumber: sc.Serial, ModelNumber: sc.Model}
		lo, hi := target.SubsystemConfig{MinCntlID: sc.MinCntlID, MaxCntlID: sc.MaxCntlID}.CntlIDRange()
		info.MinCntlid, info.MaxCntlid = int(lo), int(hi)
		if info.MaxNamespaces == 0 {
			info.MaxNamespaces = target.MaxNSID
		}
		for _, l := range cfg.Listeners {
			if s.listensOn(l, sc.NQN) {
				info.ListenAddresses = append(info.ListenAddresses, listenAddressOf(l))
			}
		}
		info.AllowAnyHost = anyHost(&sc)
		for _, h := range sc.AllowedHosts {
			info.Hosts = append(info.Hosts, hostInfo{NQN: h.NQN, DHCHAPKey: s.keyName(h.DHCHAPKeyFile), DHCHAPCtrlrKey: s.keyName(h.DHCHAPCtrlKeyFile)})
		}
		ss := s.srv.Target.Subsystem(sc.NQN)
		if ss != nil {
			c := ss.Config()
			info.SerialNumber, info.ModelNumber = c.Serial, c.Model
		}
		for _, nc := range sc.Namespaces {
			ni := nsInfo{NSID: nc.NSID, BdevName: configBdevName(sc.NQN, nc.NSID), ANAGrpID: max(nc.ANAGroup, 1)}
			if b := s.bdevOf(sc.NQN, nc); b != nil {
				ni.BdevName = b.name
			}
			ni.Name = ni.BdevName
			if ss != nil {
				if ns := ss.Namespace(nc.NSID); ns != nil {
					ni.UUID = formatUUID(ns.UUID)
					ni.NGUID = strings.ToUpper(fmt.Sprintf("%x", ns.NGUID))
				}
			}
			info.Namespaces = append(info.Namespaces, ni)
		}
		out = append(out, info)
	}
	if p.NQN != "" {
		for _, info := range out {
			if info.NQN == p.NQN {
				return []subsystemInfo{info}, nil
			}
		}
		return nil, errorf(CodeInvalidParams, "Invalid parameters: subsystem %s not found", p.NQN)
	}
	return out, nil
}

// --- namespaces ---

type addNSParams struct {
	NQN string `json:"nqn"`
	tgtName
	Namespace struct {
		BdevName      string `json:"bdev_name"`
		NSID          uint32 `json:"nsid"`
		UUID          string `json:"uuid"`
		NGUID         string `json:"nguid"`
		EUI64         string `json:"eui64"`
		PTPLFile      string `json:"ptpl_file"`
		ANAGrpID      uint32 `json:"anagrpid"`
		NoAutoVisible bool   `json:"no_auto_visible"`
		HideMetadata  bool   `json:"hide_metadata"`
	} `json:"namespace"`
}

func (s *Server) addNS(params json.RawMessage) (any, *Error) {
	var p addNSParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	n := p.Namespace
	switch {
	case n.BdevName == "":
		return nil, errorf(CodeInvalidParams, "Invalid parameters: namespace.bdev_name is required")
	case n.EUI64 != "":
		return nil, errorf(CodeInvalidParams, "Invalid parameters: eui64: flashpath derives the EUI-64: leave it out (uuid and nguid may be set)")
	case n.ANAGrpID > target.MaxANAGroups:
		return nil, errorf(CodeInvalidParams, "Invalid parameters: anagrpid %d: flashpath has ANA groups 1 to %d", n.ANAGrpID, target.MaxANAGroups)
	case n.NoAutoVisible || n.HideMetadata:
		return nil, errorf(CodeInvalidParams, "Invalid parameters: no_auto_visible, hide_metadata: namespace masking and metadata are not supported: leave them out")
	case n.NSID > target.MaxNSID:
		return nil, errorf(CodeInvalidParams, "Invalid parameters: nsid %d outside 1..%d", n.NSID, target.MaxNSID)
	}
	if n.UUID != "" {
		if e := checkUUID("namespace.uuid", n.UUID); e != nil {
			return nil, e
		}
	}
	if n.NGUID != "" {
		if e := checkUUID("namespace.nguid", n.NGUID); e != nil {
			return nil, errorf(CodeInvalidParams, "Invalid parameters: namespace.nguid %q: want 32 hex digits", n.NGUID)
		}
	}
	b := s.bdevs[n.BdevName]
	if b == nil {
		if s.configBdev(n.BdevName) {
			return nil, errorf(CodeInvalidParams, "Invalid parameters: bdev %s is already a namespace (from the configuration file)", n.BdevName)
		}
		return nil, errorf(CodeInvalidParams, "Invalid parameters: bdev %s not found: create it first (bdev_malloc_create, bdev_null_create, bdev_aio_create, bdev_uring_create)", n.BdevName)
	}
	nsid := n.NSID
	e := s.update("add namespace", func(cfg *server.Config) *Error {
		sc, e := subsys(cfg, p.NQN)
		if e != nil {
			return e
		}
		if nqn, id := b.attachedTo(cfg); nqn != "" {
			return errorf(CodeInvalidParams, "Invalid parameters: bdev %s is already namespace %d of %s: remove it there first (nvmf_subsystem_remove_ns)", b.name, id, nqn)
		}
		used := map[uint32]bool{}
		for _, nc := range sc.Namespaces {
			used[nc.NSID] = true
		}
		if nsid == 0 {
			for nsid = 1; used[nsid]; nsid++ {
			}
		} else if used[nsid] {
			return errorf(CodeInvalidParams, "Invalid parameters: NSID %d is in use in %s: choose another or remove it (nvmf_subsystem_remove_ns)", nsid, p.NQN)
		}
		if max := s.maxNS[p.NQN]; (max != 0 && int(nsid) > max) || nsid > target.MaxNSID {
			return errorf(CodeInvalidParams, "Invalid parameters: NSID %d is over the subsystem's max_namespaces %d", nsid, max)
		}
		uuid := n.UUID
		if uuid == "" {
			uuid = b.uuid
		}
		sc.Namespaces = append(sc.Namespaces, server.NamespaceConfig{NSID: nsid, Backend: b.spec, UUID: uuid, NGUID: n.NGUID, ANAGroup: n.ANAGrpID, PTPLFile: n.PTPLFile})
		return nil
	})
	if e != nil {
		return nil, e
	}
	b.nqn, b.nsid = p.NQN, nsid
	return nsid, nil
}

func (s *Server) removeNS(params json.RawMessage) (any, *Error) {
	var p struct {
		NQN  string `json:"nqn"`
		NSID uint32 `json:"nsid"`
		tgtName
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	e := s.update("remove namespace", func(cfg *server.Config) *Error {
		sc, e := subsys(cfg, p.NQN)
		if e != nil {
			return e
		}
		n := len(sc.Namespaces)
		if sc.Namespaces = removeNS(sc.Namespaces, p.NSID); len(sc.Namespaces) == n {
			return errorf(CodeInvalidParams, "Invalid parameters: %s has no namespace %d", p.NQN, p.NSID)
		}
		return nil
	})
	if e != nil {
		return nil, e
	}
	for _, b := range s.bdevs {
		if b.nqn == p.NQN && b.nsid == p.NSID {
			b.nqn, b.nsid = "", 0
		}
	}
	return true, nil
}

// --- hosts ---

type hostParams struct {
	NQN  string `json:"nqn"`
	Host string `json:"host"`
	tgtName
	PSK            string `json:"psk"`
	DHCHAPKey      string `json:"dhchap_key"`
	DHCHAPCtrlrKey string `json:"dhchap_ctrlr_key"`
	TimeoutMS      int    `json:"timeout_ms"` // remove_host: flashpath's removal does not wait
}

func (s *Server) addHost(params json.RawMessage) (any, *Error) {
	var p hostParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if err := target.ValidateNQN(p.Host); err != nil {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: host: %v", err)
	}
	e := s.update("add host", func(cfg *server.Config) *Error {
		sc, e := subsys(cfg, p.NQN)
		if e != nil {
			return e
		}
		if anyHost(sc) {
			return errorf(CodeInvalidParams, "Invalid parameters: %s allows any host: turn that off first (nvmf_subsystem_allow_any_host --no-allow-any-host %s), then add hosts", p.NQN, p.NQN)
		}
		keys := hostKeys{PSK: p.PSK, DHCHAPKey: p.DHCHAPKey, DHCHAPCtrlrKey: p.DHCHAPCtrlrKey}
		if i := slices.IndexFunc(sc.AllowedHosts, func(h server.HostConfig) bool { return h.NQN == p.Host }); i >= 0 {
			if keys == (hostKeys{}) {
				return nil
			}
			return keys.apply(s, &sc.AllowedHosts[i]) // new keys for a host on the list
		}
		h := server.HostConfig{NQN: p.Host}
		if e := keys.apply(s, &h); e != nil {
			return e
		}
		sc.AllowAnyHost = new(false)
		sc.AllowedHosts = append(sc.AllowedHosts, h)
		return nil
	})
	if e != nil {
		return nil, e
	}
	return true, nil
}

// anyHost reports whether any host may connect to sc (the configuration
// file's default: when it names none).
func anyHost(sc *server.SubsystemConfig) bool {
	if sc.AllowAnyHost != nil {
		return *sc.AllowAnyHost
	}
	return len(sc.AllowedHosts) == 0
}

func (s *Server) removeHost(params json.RawMessage) (any, *Error) {
	var p hostParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	e := s.update("remove host", func(cfg *server.Config) *Error {
		sc, e := subsys(cfg, p.NQN)
		if e != nil {
			return e
		}
		n := len(sc.AllowedHosts)
		sc.AllowedHosts = slices.DeleteFunc(sc.AllowedHosts, func(h server.HostConfig) bool { return h.NQN == p.Host })
		if len(sc.AllowedHosts) == n {
			return errorf(CodeInvalidParams, "Invalid parameters: host %s is not on %s's list", p.Host, p.NQN)
		}
		if sc.AllowAnyHost == nil {
			sc.AllowAnyHost = new(false) // an empty list stays closed, as in SPDK
		}
		return nil
	})
	if e != nil {
		return nil, e
	}
	return true, nil
}

func (s *Server) allowAnyHost(params json.RawMessage) (any, *Error) {
	var p struct {
		NQN          string `json:"nqn"`
		AllowAnyHost *bool  `json:"allow_any_host"`
		tgtName
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if p.AllowAnyHost == nil {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: allow_any_host (true or false) is required")
	}
	e := s.update("allow any host", func(cfg *server.Config) *Error {
		sc, e := subsys(cfg, p.NQN)
		if e != nil {
			return e
		}
		if *p.AllowAnyHost && len(sc.AllowedHosts) > 0 {
			return errorf(CodeInvalidParams, "Invalid parameters: %s has a host list: flashpath keeps either the list or any host: remove the hosts (nvmf_subsystem_remove_host) first", p.NQN)
		}
		sc.AllowAnyHost = new(*p.AllowAnyHost)
		return nil
	})
	if e != nil {
		return nil, e
	}
	return true, nil
}

// --- listeners ---

// listenAddress is SPDK's listen_address.
type listenAddress struct {
	Trtype  string `json:"trtype"`
	Adrfam  string `json:"adrfam,omitempty"`
	Traddr  string `json:"traddr"`
	Trsvcid string `json:"trsvcid,omitempty"`
}

// listenAddressOf renders a configuration's listener as SPDK's listen_address.
func listenAddressOf(l string) listenAddress {
	tr, addr, err := server.ParseListener(l)
	if err != nil {
		return listenAddress{Trtype: "unknown", Traddr: l}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	fam := "IPv4"
	if strings.Contains(host, ":") {
		fam = "IPv6"
	}
	return listenAddress{Trtype: strings.ToUpper(tr), Adrfam: fam, Traddr: host, Trsvcid: port}
}

// listenerOf turns SPDK's listen_address into a configuration listener.
func listenerOf(la listenAddress, secure bool) (string, *Error) {
	tr := strings.ToLower(la.Trtype)
	if tr != "tcp" && tr != "rdma" {
		return "", errorf(CodeInvalidParams, "Invalid parameters: listen_address.trtype %q: flashpath listens on TCP or RDMA", la.Trtype)
	}
	switch strings.ToLower(la.Adrfam) {
	case "", "ipv4", "ipv6":
	default:
		return "", errorf(CodeInvalidParams, "Invalid parameters: listen_address.adrfam %q: flashpath listens on IPv4 or IPv6", la.Adrfam)
	}
	if la.Traddr == "" {
		return "", errorf(CodeInvalidParams, "Invalid parameters: listen_address.traddr is required")
	}
	port := la.Trsvcid
	if port == "" {
		port = "4420"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", errorf(CodeInvalidParams, "Invalid parameters: listen_address.trsvcid %q: want a port 1..65535", la.Trsvcid)
	}
	l := tr + "://" + net.JoinHostPort(la.Traddr, port)
	if secure {
		if tr != "tcp" {
			return "", errorf(CodeInvalidParams, "Invalid parameters: secure_channel is for TCP listeners (NVMe/RDMA has no TLS)")
		}
		l += "?tls=required"
	}
	if _, _, err := server.ParseListener(l); err != nil {
		return "", errorf(CodeInvalidParams, "Invalid parameters: listen_address: %v", err)
	}
	return l, nil
}

// listensOn reports whether nvmf_get_subsystems shows listener l for
// subsystem nqn: the configuration file's listeners are every
// subsystem's, the RPC's those of the subsystems that added them.
func (s *Server) listensOn(l, nqn string) bool { return s.fileLn[l] || s.listenRefs[l][nqn] }

// dropListenRefs returns listeners without those that only nqn named
// (every one nqn named if l is ""), for a change that removes them.
func (s *Server) dropListenRefs(listeners []string, nqn, l string) []string {
	return slices.DeleteFunc(slices.Clone(listeners), func(x string) bool {
		if l != "" && x != l {
			return false
		}
		refs := s.listenRefs[x]
		return refs[nqn] && len(refs) == 1
	})
}

// commitListenRefs records that nqn names listener l (add) or no longer
// does (l "" for all), once the change applied.
func (s *Server) commitListenRefs(nqn, l string, add bool) {
	if add {
		if s.listenRefs[l] == nil {
			s.listenRefs[l] = map[string]bool{}
		}
		s.listenRefs[l][nqn] = true
		return
	}
	for x, refs := range s.listenRefs {
		if l == "" || x == l {
			delete(refs, nqn)
			if len(refs) == 0 {
				delete(s.listenRefs, x)
			}
		}
	}
}

func (s *Server) listener(add bool, params json.RawMessage) (any, *Error) {
	var p struct {
		NQN           string        `json:"nqn"`
		ListenAddress listenAddress `json:"listen_address"`
		tgtName
		SecureChannel bool   `json:"secure_channel"`
		SockImpl      string `json:"sock_impl"`
		ANAState      string `json:"ana_state"`
		AnaGrpID      uint32 `json:"anagrpid"`
		NUMAId        *int   `json:"numa_id"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if p.NQN == "discovery" {
		p.NQN = nvmeof.DiscoveryNQN // rpc.py's shortcut
	}
	if p.SockImpl != "" && p.SockImpl != "posix" {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: sock_impl %q: flashpath has its own socket layer: leave it out", p.SockImpl)
	}
	var anaState nvmeof.ANAState
	if p.ANAState != "" {
		var e *Error
		if anaState, e = parseANAState(p.ANAState); e != nil {
			return nil, e
		}
	}
	if e := checkANAGroup(p.AnaGrpID); e != nil {
		return nil, e
	}
	want, e := listenerOf(p.ListenAddress, p.SecureChannel)
	if e != nil {
		return nil, e
	}
	tr := strings.ToUpper(p.ListenAddress.Trtype)
	if _, ok := s.transports[tr]; add && !ok {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: transport %s not created: run nvmf_create_transport -t %s first", tr, tr)
	}
	if p.NQN == nvmeof.DiscoveryNQN && tr == "TCP" {
		done, e := s.discoveryListener(add, want)
		if e != nil {
			return nil, e
		}
		if done {
			return true, nil
		}
	}
	var l string // the configuration's listener for want
	e = s.update("listener "+want, func(cfg *server.Config) *Error {
		if p.NQN != nvmeof.DiscoveryNQN {
			if _, e := subsys(cfg, p.NQN); e != nil {
				return e
			}
		}
		for _, x := range cfg.Listeners {
			if server.SameListener(x, want) {
				l = x
			}
		}
		if add {
			if l != "" && s.listensOn(l, p.NQN) && !s.fileLn[l] {
				return errorf(CodeInvalidParams, "Invalid parameters: listener %s exists on %s", want, p.NQN)
			}
			if l == "" {
				l = want
				cfg.Listeners = append(cfg.Listeners, l)
			}
			if sc := findSubsys(cfg, p.NQN); sc != nil && anaState != 0 {
				setANA(sc, l, p.AnaGrpID, anaState)
			}
			return nil
		}
		if s.fileLn[l] {
			return errorf(CodeInvalidParams, "Invalid parameters: listener %s is in the configuration file, which every subsystem uses: remove it from the file and restart", want)
		}
		if l == "" || !s.listenRefs[l][p.NQN] {
			return errorf(CodeInvalidParams, "Invalid parameters: %s does not listen on %s (nvmf_subsystem_get_listeners lists them)", p.NQN, want)
		}
		cfg.Listeners = s.dropListenRefs(cfg.Listeners, p.NQN, l)
		if sc := findSubsys(cfg, p.NQN); sc != nil {
			sc.ANAStates = slices.DeleteFunc(slices.Clone(sc.ANAStates), func(a server.ANAStateConfig) bool { return server.SameListener(a.Listener, l) })
		}
		pruneANA(cfg)
		return nil
	})
	if e != nil {
		return nil, e
	}
	if !s.fileLn[l] {
		s.commitListenRefs(p.NQN, l, add)
	}
	return true, nil
}

func (s *Server) getListeners(params json.RawMessage) (any, *Error) {
	var p nqnParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	cfg := s.srv.Applied()
	if _, e := subsys(cfg, p.NQN); e != nil {
		return nil, e
	}
	type groupState struct {
		ANAGroup uint32 `json:"ana_group"`
		ANAState string `json:"ana_state"`
	}
	type listenerInfo struct {
		Address   listenAddress `json:"address"`
		ANAStates []groupState  `json:"ana_states"`
	}
	sc := findSubsys(cfg, p.NQN)
	out := []listenerInfo{}
	for _, l := range cfg.Listeners {
		if s.listensOn(l, p.NQN) {
			li := listenerInfo{Address: s.boundAddress(l)} // on port 0, the port it serves on
			for _, g := range anaGroupsOf(sc) {
				li.ANAStates = append(li.ANAStates, groupState{g, spdkANAState(cfg.ANAStateOf(p.NQN, l, g))})
			}
			out = append(out, li)
		}
	}
	return out, nil
}

func (s *Server) getControllers(params json.RawMessage) (any, *Error) {
	var p nqnParams
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if _, e := subsys(s.srv.Applied(), p.NQN); e != nil {
		return nil, e
	}
	type ctrl struct {
		CntlID      uint16 `json:"cntlid"`
		HostNQN     string `json:"hostnqn"`
		HostID      string `json:"hostid"`
		NumIOQPairs int    `json:"num_io_qpairs"`
	}
	out := []ctrl{}
	if ss := s.srv.Target.Subsystem(p.NQN); ss != nil {
		for _, c := range ss.Controllers() {
			out = append(out, ctrl{CntlID: c.ID(), HostNQN: c.HostNQN(), HostID: formatUUID(c.HostID()), NumIOQPairs: c.IOQueues()})
		}
	}
	return out, nil
}
