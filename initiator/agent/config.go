package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/daemon"
	"github.com/flashpath/flashpath/internal/units"
)

// Config is the initiator daemon's whole configuration.
type Config struct {
	// HostNQN and HostID identify this host (default: /etc/nvme/hostnqn
	// and /etc/nvme/hostid, as nvme-cli).
	HostNQN string `json:"hostnqn,omitempty"`
	HostID  string `json:"hostid,omitempty"`
	// Discovery controllers whose subsystems are connected.
	Discovery []DiscoveryConfig `json:"discovery,omitempty"`
	// DiscoveryConf names an nvme-cli discovery.conf whose controllers are
	// added to Discovery (read by Load, and again on each reload).
	DiscoveryConf string `json:"discovery_conf,omitempty"`
	// Connect lists subsystems connected directly.
	Connect []ConnectConfig `json:"connect,omitempty"`
	// Defaults are the connect options of entries that set none.
	Defaults ConnectOptions `json:"defaults,omitempty"`
	// Interval between checks that every subsystem is connected (default
	// 30s): discovery is read again and what is missing (new subsystems,
	// controllers the kernel gave up on after ctrl_loss_tmo) connected.
	Interval Duration `json:"interval,omitempty"`
	// Metrics is the address of the Prometheus /metrics endpoint ("" = off).
	Metrics string `json:"metrics,omitempty"`
	// DisconnectOnStop disconnects the configured subsystems when the
	// daemon stops (default: they stay connected, as nvme connect leaves
	// them, so that mounted filesystems survive a daemon restart).
	DisconnectOnStop bool `json:"disconnect_on_stop,omitempty"`
}

// DiscoveryConfig is one discovery controller.
type DiscoveryConfig struct {
	// Address: "tcp://10.0.0.5" (port 8009 by default).
	Address string `json:"address"`
	// Subsystems limits the connects to these NQNs (default: every
	// subsystem in the discovery log).
	Subsystems []string `json:"subsystems,omitempty"`
	// Persistent keeps a connection to the discovery controller (nvme
	// discover --persistent) so that its Discovery Log Page Change notices
	// trigger a pass at once rather than at the next interval (default
	// true; the daemon only, not --once).
	Persistent *bool `json:"persistent,omitempty"`
	ConnectOptions
}

func (d DiscoveryConfig) persistent() bool { return d.Persistent == nil || *d.Persistent }

// ConnectConfig is one subsystem connected directly.
type ConnectConfig struct {
	// Address: "tcp://10.0.0.5" (port 4420 by default) or "rdma://...".
	Address string `json:"address"`
	NQN     string `json:"nqn"`
	ConnectOptions
}

// ConnectOptions are the kernel host's connect options (nvme connect's).
// The timeouts are durations as every flashpath setting takes them ("600",
// "600s", "10m"), in whole seconds, which is what the kernel counts.
type ConnectOptions struct {
	NrIOQueues     int       `json:"nr_io_queues,omitempty"`
	NrPollQueues   int       `json:"nr_poll_queues,omitempty"` // for polled I/O (io_uring IOPOLL)
	QueueSize      int       `json:"queue_size,omitempty"`
	KeepAliveTmo   Duration  `json:"keep_alive_tmo,omitempty"`
	ReconnectDelay Duration  `json:"reconnect_delay,omitempty"`
	CtrlLossTmo    *Duration `json:"ctrl_loss_tmo,omitempty"` // -1 (Forever): reconnect forever
	HdrDigest      *bool     `json:"hdr_digest,omitempty"`
	DataDigest     *bool     `json:"data_digest,omitempty"`
}

// or fills the unset options of o from d.
func (o ConnectOptions) or(d ConnectOptions) ConnectOptions {
	if o.NrIOQueues == 0 {
		o.NrIOQueues = d.NrIOQueues
	}
	if o.QueueSize == 0 {
		o.QueueSize = d.QueueSize
	}
	if o.NrPollQueues == 0 {
		o.NrPollQueues = d.NrPollQueues
	}
	if o.KeepAliveTmo == 0 {
		o.KeepAliveTmo = d.KeepAliveTmo
	}
	if o.ReconnectDelay == 0 {
		o.ReconnectDelay = d.ReconnectDelay
	}
	if o.CtrlLossTmo == nil {
		o.CtrlLossTmo = d.CtrlLossTmo
	}
	if o.HdrDigest == nil {
		o.HdrDigest = d.HdrDigest
	}
	if o.DataDigest == nil {
		o.DataDigest = d.DataDigest
	}
	return o
}

// Duration is a time span written "600", "600s" or "10m" in the file, or
// -1 (Forever) for ctrl_loss_tmo (units.ParseDuration).
type Duration = units.Duration

// Forever is ctrl_loss_tmo -1: the kernel reconnects forever.
const Forever = units.Forever

// DefaultInterval is how often the daemon checks its connections.
const DefaultInterval = 30 * time.Second

// Load reads a YAML or JSON configuration file (unknown fields are
// errors) and the discovery.conf it names.
func Load(path string) (*Config, error) {
	cfg, err := daemon.LoadConfig(path, func(c *Config) error {
		if c.DiscoveryConf != "" {
			if err := c.AddDiscoveryConf(c.DiscoveryConf); err != nil {
				return err
			}
		}
		return c.Validate()
	})
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// AddDiscoveryConf appends the discovery controllers of an nvme-cli
// discovery.conf.
func (c *Config) AddDiscoveryConf(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("discovery_conf: %w", err)
	}
	ds, err := ParseDiscoveryConf(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c.Discovery = append(c.Discovery, ds...)
	return nil
}

// Parse decodes YAML or JSON (JSON is YAML) and validates the result.
func Parse(b []byte) (*Config, error) { return daemon.ParseConfig(b, (*Config).Validate) }

// Validate checks every field, naming the ones that are wrong, and fills
// defaults.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Discovery) == 0 && len(c.Connect) == 0 {
		errs = append(errs, errors.New("nothing to connect: give discovery or connect entries"))
	}
	if c.HostID != "" {
		if _, err := initiator.ParseHostID(c.HostID); err != nil {
			errs = append(errs, fmt.Errorf("hostid: %w", err))
		}
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %v: want a duration more than 0, such as 30s", c.Interval))
	}
	if c.Interval == 0 {
		c.Interval = Duration(DefaultInterval)
	}
	errs = append(errs, c.Defaults.validate("defaults"))
	for i, d := range c.Discovery {
		f := fmt.Sprintf("discovery[%d]", i)
		if _, _, _, err := splitAddress(d.Address, initiator.DefaultDiscoveryPort); err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %w", f, err))
		}
		errs = append(errs, d.ConnectOptions.validate(f))
	}
	for i, cc := range c.Connect {
		f := fmt.Sprintf("connect[%d]", i)
		if _, _, _, err := splitAddress(cc.Address, initiator.DefaultPort); err != nil {
			errs = append(errs, fmt.Errorf("%s.address: %w", f, err))
		}
		if cc.NQN == "" {
			errs = append(errs, fmt.Errorf("%s.nqn: missing", f))
		}
		errs = append(errs, cc.ConnectOptions.validate(f))
	}
	return errors.Join(errs...)
}

func (o ConnectOptions) validate(field string) error {
	var errs []error
	for _, v := range []struct {
		name string
		n    int
	}{{"nr_io_queues", o.NrIOQueues}, {"nr_poll_queues", o.NrPollQueues}, {"queue_size", o.QueueSize}} {
		if v.n < 0 {
			errs = append(errs, fmt.Errorf("%s.%s %d: must not be negative", field, v.name, v.n))
		}
	}
	for _, v := range []struct {
		name    string
		d       *Duration
		forever bool
	}{{"keep_alive_tmo", &o.KeepAliveTmo, false}, {"reconnect_delay", &o.ReconnectDelay, false}, {"ctrl_loss_tmo", o.CtrlLossTmo, true}} {
		switch {
		case v.d == nil:
		case *v.d < 0 && !(v.forever && *v.d == Forever):
			errs = append(errs, fmt.Errorf("%s.%s %v: want a duration of 0 or more, such as 10s", field, v.name, *v.d))
		default:
			if _, err := v.d.Seconds(); err != nil {
				errs = append(errs, fmt.Errorf("%s.%s %w", field, v.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// splitAddress parses "tcp://host[:port]" (tcp:// is the default scheme)
// into the kernel's transport, traddr and trsvcid.
func splitAddress(a, defaultPort string) (transport, host, port string, err error) {
	transport, hostport, err := initiator.SplitAddr(a, defaultPort)
	if err != nil {
		return "", "", "", err
	}
	host, port, err = net.SplitHostPort(hostport)
	return transport, host, port, err
}
