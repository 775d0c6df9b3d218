package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flashpath/flashpath/internal/daemon"
	"github.com/flashpath/flashpath/internal/units"
	"github.com/flashpath/flashpath/spdk"
	"github.com/flashpath/flashpath/target/server"
)

func init() { register(newTargetCmd) }

type targetFlags struct {
	listen     []string
	discovery  []string
	nqn        string
	namespaces []string
	allowHosts []string
	tls        string
	tlsKeyFile string
	busyPoll   units.Duration
	sendfile   bool
	rpcSocket  string
	remote     remoteRPC
	daemonFlags
}

// remoteRPC is the JSON-RPC for other machines (flashpath csi's
// controller): over HTTP with a bearer token, and the folder where its
// flashpath_volume_create makes volume files.
type remoteRPC struct {
	listen    string // tcp://HOST:PORT
	tokenFile string
	volumeDir string
	stateFile string
	tlsCert   string
	tlsKey    string
	token     string      // read from tokenFile by check
	tls       *tls.Config // from tlsCert and tlsKey by check
}

// check validates the flags and reads the token.
func (r *remoteRPC) check() error {
	if r.listen == "" {
		if r.tokenFile != "" || r.tlsCert != "" || r.tlsKey != "" {
			return errors.New("--rpc-token-file, --rpc-tls-cert and --rpc-tls-key are for --rpc-listen: give it too")
		}
		return nil
	}
	if (r.tlsCert == "") != (r.tlsKey == "") {
		return errors.New("--rpc-tls-cert and --rpc-tls-key go together: the certificate and its private key (PEM)")
	}
	if r.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(r.tlsCert, r.tlsKey)
		if err != nil {
			return fmt.Errorf("--rpc-tls-cert, --rpc-tls-key: %w", err)
		}
		r.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	hp, ok := strings.CutPrefix(r.listen, "tcp://")
	if _, _, err := net.SplitHostPort(hp); !ok || err != nil {
		return fmt.Errorf("--rpc-listen %q: want tcp://HOST:PORT, e.g. tcp://10.0.0.5:5260", r.listen)
	}
	if r.tokenFile == "" {
		return errors.New("--rpc-listen needs --rpc-token-file FILE: the bearer token its clients send (e.g. head -c 32 /dev/urandom | base64 > FILE)")
	}
	b, err := os.ReadFile(r.tokenFile)
	if err != nil {
		return fmt.Errorf("--rpc-token-file: %w", err)
	}
	r.token = strings.TrimSpace(string(b))
	if len(r.token) < spdk.MinTokenLength {
		return fmt.Errorf("--rpc-token-file %s: %d characters: want at least %d", r.tokenFile, len(r.token), spdk.MinTokenLength)
	}
	return nil
}

func newTargetCmd() *cobra.Command {
	var f targetFlags
	cmd := &cobra.Command{
		Use:   "target",
		Short: "Run the NVMe-oF target in the foreground until SIGTERM/SIGINT",
		Long: `Run the NVMe-oF target until SIGTERM or SIGINT. On SIGHUP it re-reads
--config and applies the changes to subsystems, namespaces and allowed
hosts without dropping connections (listeners need a restart). With
--rpc-socket (on by default as root) it also takes SPDK's JSON-RPC:
rpc.py -s SOCKET nvmf_create_subsystem ..., the same changes at run time.

With no flags it serves one 1 GiB memory namespace under
` + server.DefaultNQN + ` on 127.0.0.1:4420, open to any host, and
the discovery service on 127.0.0.1:8009, NVMe/TCP's discovery port, where
nvme discover and flashpath initiator --discover look by default (each
tcp:// listener on port 4420 gets one beside it on 8009).
Configure it with a YAML/JSON file (--config) or the quick flags.`,
		Example: `  flashpath target
  flashpath target --listen tcp://0.0.0.0:4420 --nqn nqn.2026-11.io.example:ssd \
      --namespace file:/srv/ns1.img:64GiB --namespace null:1TiB
  flashpath target --listen tcp://0.0.0.0:4420 --tls required \
      --allow-host nqn.2014-08.org.nvmexpress:uuid:... --tls-key-file /etc/flashpath/keys/host.psk
  flashpath target --config /etc/flashpath/target.yaml
  flashpath target --config saved.json          # rpc.py save_config's file, as nvmf_tgt --json
  flashpath target --config /etc/nvmet/config.json   # nvmetcli save's file`,
		Args: cobra.NoArgs,
		RunE: daemonRunE(&f.daemonFlags, f.toConfig, func(cmd *cobra.Command, cfg *server.Config, log *slog.Logger, say notice, reload func() (*server.Config, error)) error {
			return runTarget(cmd, cfg, log, say, reload, &f.remote)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "configuration file: flashpath's YAML or JSON (listeners, subsystems, namespaces, allowed hosts), SPDK's JSON config (rpc.py save_config, nvmf_tgt --json), or nvmetcli's saved JSON (/etc/nvmet/config.json)")
	fl.StringArrayVar(&f.listen, "listen", nil, "listener, tcp://HOST:PORT or rdma://HOST:PORT, repeatable (default "+server.DefaultListen+")")
	fl.StringArrayVar(&f.discovery, "discovery-listen", nil, "discovery-only listener tcp://HOST[:PORT] (port 8009), repeatable; \"off\" for none (default: HOST:8009 beside each tcp://HOST:4420 listener; config: discovery_listeners)")
	fl.StringVar(&f.nqn, "nqn", server.DefaultNQN, "subsystem NQN")
	fl.StringArrayVar(&f.namespaces, "namespace", nil, "namespace backend, repeatable: mem:1GiB | null:1TiB | file:/path[:size] | /dev/DEVICE (default mem:1GiB)")
	fl.StringArrayVar(&f.allowHosts, "allow-host", nil, "host NQN allowed to connect, repeatable (default: any host)")
	fl.StringVar(&f.tls, "tls", "off", "TLS 1.3 with PSKs on the tcp:// listeners: required (TLS only), optional (TLS or plain, as each host starts) or off (config: tcp://HOST:PORT?tls=required)")
	fl.StringVar(&f.tlsKeyFile, "tls-key-file", "", "file holding the TLS PSK (nvme gen-tls-key, NVMeTLSkey-1:...) of the --allow-host hosts, which then connect over TLS only (config: allowed_hosts tls_key_file)")
	fl.BoolVar(&f.sendfile, "sendfile", true, "send NVMe/TCP reads of 256 KiB or more from buffered file namespaces straight from the page cache (sendfile): less target CPU; --sendfile=false copies them, which can suit a host on the same machine (config: sendfile)")
	durationVar(fl, &f.busyPoll, "busy-poll", server.DefaultBusyPoll, "how long an NVMe/TCP connection with nothing to read polls its socket before it sleeps: lower latency for that CPU time; 0 sleeps at once (config: busy_poll)")
	fl.StringVar(&f.rpcSocket, "rpc-socket", "", "Unix socket for SPDK's JSON-RPC (rpc.py -s PATH ...), mode 0600; \"off\" for none (default "+spdk.DefaultSocket+" when run as root, else off; config: rpc_socket). Given alone, the target starts empty, like nvmf_tgt")
	fl.StringVar(&f.remote.listen, "rpc-listen", "", "also serve the JSON-RPC over HTTP on tcp://HOST:PORT (one POST per request, as SPDK's rpc_http_proxy), for flashpath csi's controller on other machines; needs --rpc-token-file; HTTPS with --rpc-tls-cert and --rpc-tls-key, else bind it to a management network")
	fl.StringVar(&f.remote.tlsCert, "rpc-tls-cert", "", "certificate (PEM, with its chain) that makes --rpc-listen HTTPS")
	fl.StringVar(&f.remote.tlsKey, "rpc-tls-key", "", "private key (PEM) of --rpc-tls-cert")
	fl.StringVar(&f.remote.tokenFile, "rpc-token-file", "", "file holding the bearer token that --rpc-listen's clients must send (Authorization: Bearer TOKEN), at least 16 characters")
	fl.StringVar(&f.remote.stateFile, "rpc-state", "", "keep what the JSON-RPC makes across restarts: the target starts empty (like nvmf_tgt) and replays FILE, which is rewritten (SPDK's JSON config, as save_config) after every change; needs --rpc-socket")
	fl.StringVar(&f.remote.volumeDir, "volume-dir", "", "folder where the JSON-RPC's flashpath_volume_create makes volume files (NAME.img, sparse) for flashpath csi; free space is reported by flashpath_get_volumes")
	f.daemonFlags.add(fl, "127.0.0.1:9420")
	return cmd
}

func (f *targetFlags) toConfig(cmd *cobra.Command) (*server.Config, error) {
	var cfg *server.Config
	var err error
	if f.remote.stateFile != "" {
		cfg, err = f.stateConfig(cmd)
	} else {
		cfg, err = f.fileOrFlags(cmd)
	}
	if err != nil {
		return nil, err
	}
	// The socket: the flag, else the configuration's rpc_socket, else the
	// default as root; "off" in either place means none.
	sockFrom := "rpc_socket"
	switch {
	case cmd.Flags().Changed("rpc-socket"):
		cfg.RPCSocket, sockFrom = f.rpcSocket, "--rpc-socket"
	case cfg.RPCSocket == "" && os.Geteuid() == 0:
		cfg.RPCSocket = spdk.DefaultSocket
	}
	if cfg.RPCSocket == "off" {
		cfg.RPCSocket = ""
	}
	if cfg.RPCSocket != "" && !filepath.IsAbs(cfg.RPCSocket) {
		return nil, fmt.Errorf("%s %q: give an absolute path, e.g. %s, or off", sockFrom, cfg.RPCSocket, spdk.DefaultSocket)
	}
	if f.remote.stateFile != "" && cfg.RPCSocket == "" {
		return nil, fmt.Errorf("--rpc-state keeps what the JSON-RPC makes: give --rpc-socket PATH too")
	}
	if err := f.remote.check(); err != nil {
		return nil, err
	}
	if d := f.remote.volumeDir; d != "" {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() || !filepath.IsAbs(d) {
			return nil, fmt.Errorf("--volume-dir %q: want the absolute path of an existing folder", d)
		}
	}
	return cfg, cfg.Validate()
}

// stateConfig is the configuration of a target that keeps its JSON-RPC
// state in --rpc-state FILE: empty, like nvmf_tgt, then FILE (SPDK's
// JSON config, rewritten after every change) replayed, when there is one.
func (f *targetFlags) stateConfig(cmd *cobra.Command) (*server.Config, error) {
	for _, n := range []string{"config", "listen", "discovery-listen", "nqn", "namespace", "allow-host", "tls", "tls-key-file"} {
		if cmd.Flags().Changed(n) {
			return nil, fmt.Errorf("--rpc-state FILE is the target's whole configuration, made over the JSON-RPC (nvmf_create_transport, nvmf_subsystem_add_listener...): leave out --%s", n)
		}
	}
	if !filepath.IsAbs(f.remote.stateFile) {
		return nil, fmt.Errorf("--rpc-state %q: give an absolute path", f.remote.stateFile)
	}
	cfg := f.daemonConfig(&server.Config{})
	switch _, err := os.Stat(f.remote.stateFile); {
	case err == nil:
		cfg.SPDKConfig = f.remote.stateFile
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("--rpc-state: %w", err)
	}
	return cfg, nil
}

func (f *targetFlags) fileOrFlags(cmd *cobra.Command) (*server.Config, error) {
	quick := cmd.Flags().Changed("listen") || cmd.Flags().Changed("discovery-listen") || cmd.Flags().Changed("nqn") ||
		cmd.Flags().Changed("namespace") || cmd.Flags().Changed("allow-host") ||
		cmd.Flags().Changed("tls") || cmd.Flags().Changed("tls-key-file")
	if f.config != "" {
		if quick {
			return nil, fmt.Errorf("--config cannot be combined with --listen, --discovery-listen, --nqn, --namespace, --allow-host, --tls or --tls-key-file: put them in the file (tcp://HOST:PORT?tls=required, discovery_listeners, allowed_hosts tls_key_file)")
		}
		cfg, err := server.Load(f.config)
		if errors.Is(err, server.ErrSPDKJSON) {
			// SPDK's save_config file (nvmf_tgt --json): the target
			// starts empty and runTarget replays it.
			cfg, err = &server.Config{SPDKConfig: f.config}, nil
		}
		if err != nil {
			return nil, err
		}
		if f.metrics != "" {
			cfg.Metrics = f.metrics
		}
		cfg.Pprof = cfg.Pprof || f.pprof
		if cmd.Flags().Changed("busy-poll") {
			cfg.BusyPoll = new(f.busyPoll)
		}
		if cmd.Flags().Changed("sendfile") {
			cfg.Sendfile = new(f.sendfile)
		}
		return cfg, nil
	}
	if !quick && cmd.Flags().Changed("rpc-socket") && f.rpcSocket != "off" && f.rpcSocket != "" {
		// Like SPDK's nvmf_tgt: nothing until rpc.py configures it.
		return f.daemonConfig(&server.Config{}), nil
	}
	cfg := server.Default()
	if len(f.listen) > 0 {
		cfg.Listeners = f.listen
	}
	if f.tls != "off" {
		for i, l := range cfg.Listeners {
			if !strings.HasPrefix(l, "rdma://") && !strings.Contains(l, "?") {
				cfg.Listeners[i] = l + "?tls=" + f.tls
			}
		}
	}
	switch {
	case !cmd.Flags().Changed("discovery-listen"):
		cfg.DiscoveryListeners = server.DiscoveryFor(cfg.Listeners)
	case slices.Equal(f.discovery, []string{"off"}):
		cfg.DiscoveryListeners = nil
	default:
		cfg.DiscoveryListeners = f.discovery
	}
	ss := &cfg.Subsystems[0]
	ss.NQN = f.nqn
	if f.tlsKeyFile != "" && len(f.allowHosts) == 0 {
		return nil, fmt.Errorf("--tls-key-file is the key of the --allow-host hosts: name them (a host's NQN is in its /etc/nvme/hostnqn)")
	}
	for _, h := range f.allowHosts {
		ss.AllowedHosts = append(ss.AllowedHosts, server.HostConfig{NQN: h, TLSKeyFile: f.tlsKeyFile})
	}
	if len(f.namespaces) > 0 {
		ss.Namespaces = nil
		for i, spec := range f.namespaces {
			ss.Namespaces = append(ss.Namespaces, server.NamespaceConfig{NSID: uint32(i + 1), Backend: spec})
		}
	}
	return f.daemonConfig(cfg), nil
}

// daemonConfig sets on cfg what the flags say of the running target
// (metrics, pprof, busy polling, sendfile), for the configurations the
// flags make; a --config file keeps its own unless they are given.
func (f *targetFlags) daemonConfig(cfg *server.Config) *server.Config {
	cfg.Metrics, cfg.Pprof = f.metrics, f.pprof
	cfg.BusyPoll, cfg.Sendfile = new(f.busyPoll), new(f.sendfile)
	return cfg
}

// servingHostFlags are what nvme connect and flashpath bench need besides the
// address to reach a subsystem open to some hosts only: the first allowed
// host's NQN, and its secrets where they are kept in files (never printed
// inline; a TLS PSK over a TLS listener, where the kernel takes it from
// its keyring).
func servingHostFlags(ss server.SubsystemConfig, tlsPort bool) (nvme, bench string) {
	if len(ss.AllowedHosts) == 0 {
		return "", ""
	}
	h := ss.AllowedHosts[0]
	nvme = " --hostnqn " + h.NQN
	bench = " --hostnqn " + h.NQN
	if h.TLSKeyFile != "" && tlsPort {
		bench += ` --tls_key "$(cat ` + h.TLSKeyFile + `)"`
	}
	if h.DHCHAPKeyFile != "" {
		nvme += ` --dhchap-secret "$(cat ` + h.DHCHAPKeyFile + `)"`
		bench += ` --dhchap_secret "$(cat ` + h.DHCHAPKeyFile + `)"`
	}
	return nvme, bench
}

// runTarget serves cfg until SIGTERM or SIGINT. On SIGHUP it applies what
// reload returns (nil: no configuration file to re-read).
func runTarget(cmd *cobra.Command, cfg *server.Config, log *slog.Logger, say notice, reload func() (*server.Config, error), remote *remoteRPC) error {
	var saved *spdk.Config
	if cfg.SPDKConfig != "" {
		b, err := os.ReadFile(cfg.SPDKConfig)
		if err == nil {
			saved, err = spdk.ParseConfig(b)
		}
		if err == nil {
			err = spdk.PrepareConfig(saved, cfg)
		}
		if err != nil {
			return fmt.Errorf("config %s: %w", cfg.SPDKConfig, err)
		}
		path := cfg.SPDKConfig
		reload = func() (*server.Config, error) {
			return nil, fmt.Errorf("%s is an SPDK JSON config, which applies at start only (as nvmf_tgt --json): change the running target over the JSON-RPC (flashpath rpc, rpc.py), or restart it", path)
		}
	}
	sig := daemon.CatchSignals()
	srv, err := server.Start(cfg, server.Options{Logger: log, FirmwareRev: firmwareRev()})
	if err != nil {
		sig.Stop()
		return err
	}
	fail := func(err error) error {
		sig.Stop()
		srv.Shutdown(context.Background())
		return err
	}
	var rpc *spdk.Server
	if cfg.RPCSocket != "" || saved != nil || remote.listen != "" {
		rpc = spdk.New(srv, spdk.Options{Logger: log, Version: version, VolumeDir: remote.volumeDir, StateFile: remote.stateFile})
	}
	if saved != nil {
		if err := rpc.LoadConfig(saved); err != nil {
			return fail(fmt.Errorf("config %s: %w", cfg.SPDKConfig, err))
		}
		log.Info("SPDK JSON config applied", "config", cfg.SPDKConfig)
	}
	if cfg.RPCSocket != "" {
		err = rpc.Serve(cfg.RPCSocket)
		switch {
		case err != nil && cfg.RPCSocket == spdk.DefaultSocket:
			// The default (as root): another target may hold it.
			log.Warn("SPDK JSON-RPC off: the default socket is not available: give --rpc-socket PATH for this target", "err", err)
		case err != nil:
			return fail(fmt.Errorf("%w (--rpc-socket off to run without it)", err))
		}
	}
	if remote.listen != "" {
		if err := rpc.ListenHTTP(strings.TrimPrefix(remote.listen, "tcp://"), remote.token, remote.tls); err != nil {
			rpc.Close()
			return fail(err)
		}
	}
	running := srv.Applied()
	for _, p := range srv.Ports() {
		host, svc := splitHostPort(p.Addr)
		host = connectHost(host, net.InterfaceAddrs)
		tls := ""
		if p.TLS {
			tls = " --tls"
		}
		if p.Discovery {
			discover := fmt.Sprintf("nvme discover -t %s -a %s -s %s%s", p.Trtype, host, svc, tls)
			connectAll := fmt.Sprintf("nvme connect-all -t %s -a %s -s %s%s", p.Trtype, host, svc, tls)
			say.say(fmt.Sprintf("discovery on nvme/%s %s:%s\n  discover:    %s\n  connect all: %s\n", p.Trtype, host, svc, discover, connectAll),
				"discovery service", "trtype", p.Trtype, "traddr", host, "trsvcid", svc, "tls", p.TLS, "discover", discover, "connect_all", connectAll)
			continue
		}
		for _, ss := range running.Subsystems {
			nvmeHost, benchHost := servingHostFlags(ss, p.TLS)
			connect := fmt.Sprintf("nvme connect -t %s -a %s -s %s -n %s%s%s", p.Trtype, host, svc, ss.NQN, nvmeHost, tls)
			bench := fmt.Sprintf("flashpath bench --ioengine nvme-%s --filename %s://%s:%s/%s/1%s --rw randread --bs 4k --iodepth 32 --runtime 10s --time_based", p.Trtype, p.Trtype, host, svc, ss.NQN, benchHost)
			say.say(fmt.Sprintf("serving %s on nvme/%s %s:%s\n  connect:  %s\n  bench:    %s\n", ss.NQN, p.Trtype, host, svc, connect, bench),
				"serving", "subsys", ss.NQN, "trtype", p.Trtype, "traddr", host, "trsvcid", svc, "tls", p.TLS, "connect", connect, "bench", bench)
		}
	}
	if rpc != nil && rpc.Path() != "" {
		try := "rpc.py -s " + rpc.Path() + " nvmf_get_subsystems"
		say.say(fmt.Sprintf("SPDK JSON-RPC on %s:  %s\n", rpc.Path(), try), "SPDK JSON-RPC", "socket", rpc.Path(), "try", try)
	}
	if rpc != nil && rpc.HTTPAddr() != "" {
		say.say(fmt.Sprintf("JSON-RPC over HTTP on %s (bearer token, TLS %v), volumes in %q\n", rpc.HTTPAddr(), remote.tls != nil, remote.volumeDir),
			"JSON-RPC over HTTP", "addr", rpc.HTTPAddr(), "tls", remote.tls != nil, "volume_dir", remote.volumeDir)
	}
	if err := daemon.Notify("READY=1"); err != nil {
		log.Warn("sd_notify failed", "err", err)
	}
	sig.Run(cmd.Context(), log, func(context.Context) { reloadTarget(srv, log, reload) }, nil)
	if rpc != nil {
		if err := rpc.Close(); err != nil {
			log.Warn("rpc socket: close failed", "socket", rpc.Path(), "err", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func reloadTarget(srv *server.Server, log *slog.Logger, reload func() (*server.Config, error)) {
	if reload == nil {
		log.Warn("SIGHUP: no --config to re-read: ignored")
		return
	}
	log.Info("SIGHUP: reloading the configuration")
	cfg, err := reload()
	if err == nil {
		err = srv.Reload(cfg)
	}
	if err != nil {
		log.Error("reload failed", "err", err)
		return
	}
	log.Info("reload done")
}

func splitHostPort(a string) (string, string) {
	i := strings.LastIndex(a, ":")
	if i < 0 {
		return a, ""
	}
	return strings.Trim(a[:i], "[]"), a[i+1:]
}

// connectHost is the address a host would connect to for a listener on
// host: the listener's own, or for one on every address (0.0.0.0, ::)
// this machine's first global unicast IPv4 address (127.0.0.1 without
// one), since "nvme connect -a ::" reaches nothing.
func connectHost(host string, addrs func() ([]net.Addr, error)) string {
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return host
	}
	if as, err := addrs(); err == nil {
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// firmwareRev is the version as the 8-character firmware revision.
func firmwareRev() string {
	v := strings.TrimPrefix(version, "v")
	if len(v) > 8 {
		v = v[:8]
	}
	return v
}
