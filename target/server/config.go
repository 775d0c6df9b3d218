// Package server runs a flashpath target as a daemon: it turns a Config
// (from a YAML/JSON file or the CLI's quick flags) into a target with its
// subsystems, namespaces and listeners, serves Prometheus metrics, tells
// systemd when it is ready (sd_notify) and shuts down cleanly.
package server

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flashpath/flashpath/internal/daemon"
	"github.com/flashpath/flashpath/internal/units"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/tcp"
)

// DefaultNQN is the subsystem the demo target serves.
const DefaultNQN = "nqn.2026-11.io.flashpath:demo"

// DefaultListen is where the demo target listens.
const DefaultListen = "tcp://127.0.0.1:4420"

// DefaultDiscoveryListen is the demo target's discovery service:
// NVMe/TCP's well-known discovery port, where nvme discover and
// flashpath initiator --discover look when given no port.
const DefaultDiscoveryListen = "tcp://127.0.0.1:8009"

// The well-known ports (NVMe/TCP 1.0 §7.4.9.1, as IANA assigns them):
// NVMe-oF I/O, and NVMe/TCP's discovery service.
const (
	IOPort        = "4420"
	DiscoveryPort = "8009"
)

// MaxBusyPoll bounds Config.BusyPoll: past it a connection is a
// busy-polling thread, not a bounded wait.
const MaxBusyPoll = 10 * time.Millisecond

// DefaultBusyPoll is the busy-poll window where the configuration gives
// none: about what a host takes to send its next command after a
// completion, so that a queue at depth 1 never waits for a CPU to wake.
const DefaultBusyPoll = 50 * time.Microsecond

// Config is a target's whole configuration.
type Config struct {
	// Listeners are transport addresses: "tcp://127.0.0.1:4420",
	// "tcp://[::]:4420", "rdma://192.168.1.10:4420" (an RDMA NIC's or a
	// soft-RoCE device's address). An NVMe/TCP listener takes TLS 1.3
	// with PSKs with "?tls=required" (TLS only) or "?tls=optional" (TLS
	// or plain, as each host starts); the keys are the allowed hosts'
	// tls_key.
	Listeners []string `json:"listeners"`
	// DiscoveryListeners serve the discovery controller only
	// (tcp://HOST[:PORT], port 8009 by default; ?tls= as for
	// Listeners): NVMe/TCP's discovery port, where `nvme discover -a
	// HOST` and `flashpath initiator --discover tcp://HOST` look by
	// default. The discovery log lists the Listeners, never these; a
	// host connecting there to another subsystem is refused. (Listeners
	// serve the discovery controller too.)
	DiscoveryListeners []string `json:"discovery_listeners,omitempty"`
	// Subsystems to export.
	Subsystems []SubsystemConfig `json:"subsystems"`
	// RPCSocket is the path of the Unix socket that serves SPDK's
	// JSON-RPC (package spdk; "" or "off" = none, the default for a file).
	// With it, listeners and subsystems may start empty: rpc.py-style
	// requests add them.
	RPCSocket string `json:"rpc_socket,omitempty"`
	// SPDKConfig is the SPDK JSON configuration (rpc.py save_config's
	// file) that configures this target once it runs: package spdk
	// replays it. With it, listeners and subsystems start empty. It is
	// not a member of the file.
	SPDKConfig string `json:"-"`
	// Metrics is the address of the Prometheus /metrics endpoint ("" = off).
	Metrics string `json:"metrics,omitempty"`
	// Pprof adds Go's /debug/pprof/ profiles to the metrics endpoint.
	Pprof bool `json:"pprof,omitempty"`
	// MetricsMaxHosts is how many host NQNs get series of their own in
	// the metrics' host label, the first to connect (default 100,
	// target.DefaultMaxHostMetrics; negative: none); the others are
	// counted together as host="other", so that a thousand hosts, or a
	// host making up NQNs, cannot flood Prometheus.
	MetricsMaxHosts int `json:"metrics_max_hosts,omitempty"`
	// MaxH2CData is the NVMe/TCP MAXH2CDATA in bytes (default 128 KiB).
	MaxH2CData int `json:"max_h2c_data,omitempty"`
	// BusyPoll is how long an NVMe/TCP connection that has nothing to
	// read keeps polling its socket before it sleeps (default
	// DefaultBusyPoll; "0s": sleep at once). Commands arriving within it
	// are served without waking an idle CPU, at the price of that CPU
	// time. Use BusyPollWindow to read it.
	BusyPoll *units.Duration `json:"busy_poll,omitempty"`
	// Sendfile sends reads of 256 KiB or more from buffered file
	// namespaces over NVMe/TCP from the page cache (sendfile(2)) rather
	// than copying them (default true). Use SendfileOn to read it.
	Sendfile *bool `json:"sendfile,omitempty"`
	// IOKeepAlive is the keep-alive timeout given to an I/O controller
	// whose host asks for none ("" or "0s": none, as asked). Discovery
	// controllers get 120 s in that case, as on the Linux target.
	IOKeepAlive units.Duration `json:"io_keep_alive,omitempty"`
	// DHCHAPHashes and DHCHAPDHGroups are the DH-HMAC-CHAP hash functions
	// ("sha256", "sha384", "sha512") and DH groups ("null", "ffdhe2048" ...
	// "ffdhe8192") the target accepts, in order of preference. Default:
	// sha512, sha384, sha256; ffdhe2048 to ffdhe8192, then null.
	DHCHAPHashes   []string `json:"dhchap_hashes,omitempty"`
	DHCHAPDHGroups []string `json:"dhchap_dhgroups,omitempty"`
	// BufferMemory caps the data buffer pool ("1GiB", the default), and
	// MaxHostBuffer what one host address may hold of it at once
	// (default a quarter; the last eighth is kept for hosts holding
	// little). MaxConns and MaxConnsPerHost cap a listener's connections
	// in total (default 65,536 for NVMe/TCP, 4,096 for NVMe/RDMA, whose
	// connections map and register their queues' memory) and from one
	// address (default 1,024).
	BufferMemory    string `json:"buffer_memory,omitempty"`
	MaxHostBuffer   string `json:"max_host_buffer,omitempty"`
	MaxConns        int    `json:"max_conns,omitempty"`
	MaxConnsPerHost int    `json:"max_conns_per_host,omitempty"`
	// ICTimeout bounds the wait for a new NVMe/TCP connection's ICReq,
	// ConnectTimeout the wait from ICResp to Connect and each step of
	// authentication, SendTimeout how long a host that does not read its
	// responses keeps its connection (defaults 10s, 10s, 30s).
	ICTimeout      units.Duration `json:"ic_timeout,omitempty"`
	ConnectTimeout units.Duration `json:"connect_timeout,omitempty"`
	SendTimeout    units.Duration `json:"send_timeout,omitempty"`
}

// limits parses the buffer limits (0: the default).
func (c *Config) limits() (mem, perHost int64, err error) {
	if c.BufferMemory != "" {
		if mem, err = units.Parse(c.BufferMemory, units.IEC); err != nil || mem < 4<<20 {
			return 0, 0, fmt.Errorf("buffer_memory %q: want a size of at least 4MiB, e.g. 1GiB", c.BufferMemory)
		}
	}
	if c.MaxHostBuffer != "" {
		if perHost, err = units.Parse(c.MaxHostBuffer, units.IEC); err != nil || perHost < 1<<20 {
			return 0, 0, fmt.Errorf("max_host_buffer %q: want a size of at least 1MiB, e.g. 256MiB", c.MaxHostBuffer)
		}
	}
	return mem, perHost, nil
}

// SubsystemConfig is one subsystem in a Config.
type SubsystemConfig struct {
	NQN          string            `json:"nqn"`
	Serial       string            `json:"serial,omitempty"`
	Model        string            `json:"model,omitempty"`
	AllowAnyHost *bool             `json:"allow_any_host,omitempty"` // default: true when allowed_hosts is empty
	AllowedHosts []HostConfig      `json:"allowed_hosts,omitempty"`
	Namespaces   []NamespaceConfig `json:"namespaces"`
	// ANAStates are the ANA group states per listener (ana.go); every
	// group is optimized on every listener where none is given.
	ANAStates []ANAStateConfig `json:"ana_states,omitempty"`
	// MinCntlID and MaxCntlID bound its controllers' IDs (default 1 and
	// 65519): targets serving the same subsystem for multipath need
	// disjoint ranges (SPDK's names).
	MinCntlID uint16 `json:"min_cntlid,omitempty"`
	MaxCntlID uint16 `json:"max_cntlid,omitempty"`
}

// NamespaceConfig is one namespace in a Config.
type NamespaceConfig struct {
	NSID uint32 `json:"nsid,omitempty"`
	// Backend: "mem:1GiB", "null:1TiB", "file:/path[:size]", "/dev/nvme0n1".
	Backend string `json:"backend"`
	// UUID and NGUID override the identifiers derived from NQN and NSID.
	UUID  string `json:"uuid,omitempty"`
	NGUID string `json:"nguid,omitempty"`
	// ANAGroup is the namespace's ANA group, 1 to 32 (default 1); its
	// state per listener is the subsystem's ana_states.
	ANAGroup uint32 `json:"ana_group,omitempty"`
	// PTPLFile keeps the namespace's reservations through a restart once
	// a host turns persistence through power loss on (nvme resv-register
	// --cptpl=3); SPDK's ptpl_file, in its format. One file per
	// namespace, in a directory that exists.
	PTPLFile string `json:"ptpl_file,omitempty"`
}

// BusyPollWindow is BusyPoll, or its default.
func (c *Config) BusyPollWindow() time.Duration {
	if c.BusyPoll == nil {
		return DefaultBusyPoll
	}
	return c.BusyPoll.Duration()
}

// rpcOn: the configuration names a JSON-RPC socket.
func (c *Config) rpcOn() bool { return c.RPCSocket != "" && c.RPCSocket != "off" }

// SendfileOn is Sendfile, or its default (on).
func (c *Config) SendfileOn() bool { return c.Sendfile == nil || *c.Sendfile }

// Load reads a YAML or JSON configuration file. Unknown fields are
// errors. It takes what Parse takes.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML or JSON (JSON is YAML) and validates the result.
// It also converts the JSON that nvmetcli save writes for the Linux
// target (FromNvmet), and refuses SPDK's JSON configuration (an error
// wrapping ErrSPDKJSON) and nvme-cli's host configuration with what to
// do instead.
func Parse(b []byte) (*Config, error) {
	if cfg, ok, err := parseForeign(b); ok {
		return cfg, err
	}
	return daemon.ParseConfig(b, (*Config).Validate)
}

// Default is the demo configuration: one 1 GiB memory namespace on
// 127.0.0.1:4420, open to any host.
func Default() *Config {
	return &Config{
		Listeners:          []string{DefaultListen},
		DiscoveryListeners: []string{DefaultDiscoveryListen},
		Subsystems:         []SubsystemConfig{{NQN: DefaultNQN, Namespaces: []NamespaceConfig{{NSID: 1, Backend: "mem:1GiB"}}}},
	}
}

// DiscoveryFor is the discovery service that goes with listeners by
// default: port 8009 on the host of each tcp:// listener on port 4420,
// with its TLS mode (the well-known ports together, as nvmet is set up for
// nvme discover); none for listeners on other ports.
func DiscoveryFor(listeners []string) []string {
	var out []string
	for _, l := range listeners {
		spec, err := parseListener(l)
		if err != nil || spec.trtype != "tcp" {
			continue
		}
		host, port, err := net.SplitHostPort(spec.addr)
		if err != nil || port != IOPort {
			continue
		}
		d := "tcp://" + net.JoinHostPort(host, DiscoveryPort)
		if spec.tls != tcp.TLSOff {
			d += "?tls=" + spec.tls.String()
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// Validate checks the configuration and names the offending field.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Listeners) == 0 && !c.rpcOn() && c.SPDKConfig == "" {
		errs = append(errs, errors.New("listeners: at least one is needed, e.g. tcp://127.0.0.1:4420 (or give rpc_socket and add them with nvmf_subsystem_add_listener)"))
	}
	tlsListener := false
	seenListener := map[string]bool{}
	for i, l := range c.Listeners {
		if seenListener[l] {
			errs = append(errs, fmt.Errorf("listeners[%d]: %s appears twice", i, l))
		}
		seenListener[l] = true
		spec, err := parseListener(l)
		if err != nil {
			errs = append(errs, fmt.Errorf("listeners[%d]: %w", i, err))
		}
		tlsListener = tlsListener || spec.tls != tcp.TLSOff
	}
	for i, l := range c.DiscoveryListeners {
		spec, err := parseDiscoveryListener(l)
		if err != nil {
			errs = append(errs, fmt.Errorf("discovery_listeners[%d]: %w", i, err))
			continue
		}
		if seenListener[l] {
			errs = append(errs, fmt.Errorf("discovery_listeners[%d]: %s appears twice", i, l))
		}
		seenListener[l] = true
		for _, o := range c.Listeners {
			if ol, err := parseListener(o); err == nil && ol.trtype == "tcp" && ol.addr == spec.addr && !strings.HasSuffix(ol.addr, ":0") {
				errs = append(errs, fmt.Errorf("discovery_listeners[%d]: %s is also a listener (which serves discovery too): give the discovery service its own port, %s", i, l, DiscoveryPort))
			}
		}
		tlsListener = tlsListener || spec.tls != tcp.TLSOff
	}
	if len(c.Subsystems) == 0 && !c.rpcOn() && c.SPDKConfig == "" {
		errs = append(errs, errors.New("subsystems: at least one is needed (or give rpc_socket and add them with nvmf_create_subsystem)"))
	}
	if n := c.MaxH2CData; n != 0 && (n < 4096 || n > target.MaxTransfer || n%4 != 0) {
		errs = append(errs, fmt.Errorf("max_h2c_data %d: want a multiple of 4 from 4096 to %d (NVMe/TCP MAXH2CDATA), or leave it out for 128 KiB", n, target.MaxTransfer))
	}
	if c.IOKeepAlive < 0 {
		errs = append(errs, fmt.Errorf("io_keep_alive %v: want 0 (none) or more, e.g. \"120s\"", c.IOKeepAlive))
	}
	if d := c.BusyPollWindow(); d < 0 || d > MaxBusyPoll {
		errs = append(errs, fmt.Errorf("busy_poll (--busy-poll) %v: want 0 (off) to %v, e.g. \"50us\" (a bare number counts seconds)", units.Duration(d), MaxBusyPoll))
	}
	if _, _, err := c.authOptions(); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := c.limits(); err != nil {
		errs = append(errs, err)
	}
	if c.ICTimeout < 0 || c.ConnectTimeout < 0 || c.SendTimeout < 0 {
		errs = append(errs, errors.New("ic_timeout, connect_timeout, send_timeout: want a duration such as \"10s\", or leave them out for the defaults"))
	}
	if c.MaxConns < 0 || c.MaxConnsPerHost < 0 {
		errs = append(errs, errors.New("max_conns, max_conns_per_host: want 0 (the default) or more"))
	}
	if c.Pprof && c.Metrics == "" {
		errs = append(errs, errors.New("pprof: profiles are served on the metrics endpoint: give metrics an address too, e.g. 127.0.0.1:9420"))
	}
	seen := map[string]bool{}
	ptpl := map[string]string{} // ptpl_file: the namespace that has it
	for i, s := range c.Subsystems {
		if err := target.ValidateNQN(s.NQN); err != nil {
			errs = append(errs, fmt.Errorf("subsystems[%d].nqn: %w", i, err))
		}
		if seen[s.NQN] {
			errs = append(errs, fmt.Errorf("subsystems[%d].nqn: %s appears twice", i, s.NQN))
		}
		seen[s.NQN] = true
		if s.AllowAnyHost != nil && *s.AllowAnyHost && len(s.AllowedHosts) > 0 {
			errs = append(errs, fmt.Errorf("subsystems[%d]: allow_any_host is true but allowed_hosts is set: choose one", i))
		}
		for j := range s.AllowedHosts {
			h := &c.Subsystems[i].AllowedHosts[j]
			if err := target.ValidateNQN(h.NQN); err != nil {
				errs = append(errs, fmt.Errorf("subsystems[%d].allowed_hosts[%d]: %w", i, j, err))
			}
			if err := h.resolve(); err != nil {
				errs = append(errs, fmt.Errorf("subsystems[%d].allowed_hosts[%d]: %w", i, j, err))
			}
			// Over the JSON-RPC the TLS listener may come after the host
			// (save_config writes hosts first, as SPDK does).
			if h.tls != nil && !tlsListener && !c.rpcOn() && c.SPDKConfig == "" {
				errs = append(errs, fmt.Errorf("subsystems[%d].allowed_hosts[%d]: %s has a tls_key, so it connects over TLS only, but no listener has TLS: add ?tls=required or ?tls=optional to a tcp:// listener", i, j, h.NQN))
			}
		}
		errs = append(errs, c.validateANA(i, &c.Subsystems[i])...)
		if err := target.CheckCntlIDRange(s.MinCntlID, s.MaxCntlID); err != nil {
			errs = append(errs, fmt.Errorf("subsystems[%d].min_cntlid, max_cntlid: %w", i, err))
		}
		ids := map[uint32]bool{}
		for j, ns := range s.Namespaces {
			if ns.Backend == "" {
				errs = append(errs, fmt.Errorf("subsystems[%d].namespaces[%d].backend: empty (e.g. mem:1GiB, file:/srv/ns1:64GiB)", i, j))
			}
			if ns.NSID > target.MaxNSID {
				errs = append(errs, fmt.Errorf("subsystems[%d].namespaces[%d].nsid: %d outside 1..%d", i, j, ns.NSID, target.MaxNSID))
			}
			if ns.NSID != 0 && ids[ns.NSID] {
				errs = append(errs, fmt.Errorf("subsystems[%d].namespaces[%d].nsid: %d appears twice", i, j, ns.NSID))
			}
			ids[ns.NSID] = true
			if ns.UUID != "" {
				if _, err := parseHex16(ns.UUID); err != nil {
					errs = append(errs, fmt.Errorf("subsystems[%d].namespaces[%d].uuid: %w", i, j, err))
				}
			}
			if ns.NGUID != "" {
				if _, err := parseHex16(ns.NGUID); err != nil {
					errs = append(errs, fmt.Errorf("subsystems[%d].namespaces[%d].nguid: %w", i, j, err))
				}
			}
			if f := ns.PTPLFile; f != "" {
				key := filepath.Clean(f)
				if other, ok := ptpl[key]; ok {
					errs = append(errs, fmt.Errorf("subsystems[%d].namespaces[%d].ptpl_file: %s is also the file of %s: give each namespace its own", i, j, f, other))
				}
				ptpl[key] = fmt.Sprintf("subsystems[%d].namespaces[%d]", i, j)
			}
		}
	}
	return errors.Join(errs...)
}

// ParseListener splits "tcp://host:port" or "rdma://host:port" into its
// transport and address. A bare "host:port" means TCP; a missing port
// means 4420. A tcp:// listener may end in "?tls=required",
// "?tls=optional" or "?tls=off".
func ParseListener(s string) (trtype, addr string, err error) {
	l, err := parseListener(s)
	return l.trtype, l.addr, err
}

// SameListener reports whether listeners a and b are the same transport
// and address, ?tls options aside; one that does not parse is the same
// only as itself.
func SameListener(a, b string) bool {
	x, errA := parseListener(a)
	y, errB := parseListener(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return x.trtype == y.trtype && x.addr == y.addr
}

// parseDiscoveryListener parses a discovery listener: tcp://HOST[:PORT],
// port 8009 by default.
func parseDiscoveryListener(s string) (listenerSpec, error) {
	l, err := parseListenerPort(s, DiscoveryPort)
	if err == nil && l.trtype != "tcp" {
		err = fmt.Errorf("listener %q: the discovery service listens on NVMe/TCP (tcp://HOST:%s); NVMe/RDMA listeners serve discovery themselves", s, DiscoveryPort)
	}
	return l, err
}

type listenerSpec struct {
	trtype, addr string
	tls          tcp.TLSMode
}

func parseListener(s string) (listenerSpec, error) { return parseListenerPort(s, IOPort) }

// parseListenerPort is parseListener with defPort where s gives none.
func parseListenerPort(s, defPort string) (listenerSpec, error) {
	if !strings.Contains(s, "://") {
		s = "tcp://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return listenerSpec{}, fmt.Errorf("listener %q: %w", s, err)
	}
	if u.Scheme != "tcp" && u.Scheme != "rdma" {
		return listenerSpec{}, fmt.Errorf("listener %q: transport %q is not supported (use tcp://HOST:PORT or rdma://HOST:PORT)", s, u.Scheme)
	}
	if u.Host == "" || u.Path != "" || u.Fragment != "" {
		return listenerSpec{}, fmt.Errorf("listener %q: want %s://HOST:PORT", s, u.Scheme)
	}
	l := listenerSpec{trtype: u.Scheme, addr: u.Host}
	if u.Port() == "" {
		l.addr = strings.TrimSuffix(l.addr, ":") + ":" + defPort
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return listenerSpec{}, fmt.Errorf("listener %q: %w", s, err)
		}
		for k, v := range q {
			if k != "tls" || len(v) != 1 {
				return listenerSpec{}, fmt.Errorf("listener %q: option %q: the one option is tls=required|optional|off", s, k)
			}
		}
		if l.tls, err = tcp.ParseTLSMode(q.Get("tls")); err != nil {
			return listenerSpec{}, fmt.Errorf("listener %q: %w", s, err)
		}
		if l.tls != tcp.TLSOff && l.trtype != "tcp" {
			return listenerSpec{}, fmt.Errorf("listener %q: TLS is for NVMe/TCP listeners (NVMe/RDMA has none)", s)
		}
	}
	return l, nil
}

func parseHex16(s string) ([16]byte, error) {
	var out [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return out, fmt.Errorf("%q: want 32 hex digits (dashes allowed)", s)
	}
	if _, err := hex.Decode(out[:], []byte(h)); err != nil {
		return out, fmt.Errorf("%q: not hexadecimal", s)
	}
	return out, nil
}
