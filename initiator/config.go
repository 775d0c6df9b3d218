package initiator

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/flashpath/flashpath/internal/dhchap"
)

// Default ports (NVMe/TCP 1.0 §7.4.9.1): I/O controllers listen on 4420,
// discovery controllers on 8009.
const (
	DefaultPort          = "4420"
	DefaultDiscoveryPort = "8009"
)

// Options are the host settings shared by Discover and Connect.
type Options struct {
	// HostNQN identifies this host; empty: /etc/nvme/hostnqn, or one
	// generated from the machine's identity as nvme-cli does
	// (nqn.2014-08.org.nvmexpress:uuid:<uuid>), stable across runs.
	HostNQN string
	// HostID is the 128-bit host identifier; zero: /etc/nvme/hostid, or
	// the UUID of HostNQN.
	HostID [16]byte
	// DHCHAPSecret is the host's DH-HMAC-CHAP secret ("DHHC-1:XX:...:",
	// from nvme gen-dhchap-key), used when a target asks the host to
	// authenticate (nvme connect --dhchap-secret). DHCHAPCtrlSecret
	// makes every queue authenticate the target as well (bidirectional;
	// --dhchap-ctrl-secret).
	DHCHAPSecret     string
	DHCHAPCtrlSecret string
	// TLSKey secures every NVMe/TCP connection with TLS 1.3 (nvme connect
	// --tls): the configured PSK in the interchange format
	// ("NVMeTLSkey-1:XX:...:", from nvme gen-tls-key) that the target
	// holds for this host. The connection offers the PSK identities of
	// NVMe/TCP 1.0c ("NVMe0RXX <host NQN> <subsystem NQN>", which Linux
	// 6.12 uses) and of TP 8018 (with a digest), derived from the host and
	// subsystem NQNs. Not for NVMe/RDMA.
	TLSKey string
	// HeaderDigest and DataDigest ask for CRC32C digests (ICReq).
	HeaderDigest bool
	DataDigest   bool
	// ConnectTimeout bounds dialing and initializing each connection
	// (default 10 s).
	ConnectTimeout time.Duration
	// AdminTimeout bounds each admin command (default 60 s, as Linux).
	AdminTimeout time.Duration
	// BusyPoll is how long an I/O queue's receive side, with nothing to
	// read, keeps polling its connection before it sleeps (NVMe/TCP;
	// package internal/busypoll; default DefaultBusyPoll, negative: sleep
	// at once): a completion that comes within it is taken without waking
	// an idle CPU. A queue polls only while at most a few commands are in
	// flight (deeper queues' completions come in batches that pay for
	// the wake-up), and stops as soon as another queue of the process
	// has input.
	BusyPoll time.Duration
	// Polled makes I/O queues without a receive goroutine, where the
	// transport allows (NVMe/TCP): their users reap completions on their
	// own goroutines, each waiting request's caller polling its queue
	// (Queue.Poll), as SPDK's host does and the Linux host's poll queues
	// (nvme connect --nr-poll-queues) do for hipri I/O. A caller that
	// submits asynchronously must poll; blocking calls (Namespace.ReadAt,
	// Flush) poll by themselves. It saves a hand-off between goroutines
	// per batch of completions: for one goroutine driving a queue, such
	// as a benchmark job.
	Polled bool
	// Logger receives connection events (default slog.Default()).
	Logger *slog.Logger
}

// DefaultBusyPoll is Options.BusyPoll's default: about a round trip
// to a target on the same network, so a queue at depth 1 never waits for
// its CPU to wake.
const DefaultBusyPoll = 50 * time.Microsecond

// Config configures Connect.
type Config struct {
	// Addr of the controller: "127.0.0.1:4420" or "tcp://127.0.0.1:4420"
	// for NVMe/TCP, "rdma://192.168.1.10:4420" for NVMe/RDMA.
	Addr string
	// Transport carries the queues (default: the transport registered for
	// Addr's scheme by importing initiator/tcp or initiator/rdma); its
	// name must match the scheme. Over NVMe/RDMA, request buffers inside
	// memory registered with it (Controller.Register) move with no copy;
	// others are bounced through registered buffers.
	Transport Transport
	// SubNQN is the NVM subsystem to connect to.
	SubNQN string
	Options
	// IOQueues is the number of I/O queues (default min(NumCPU, 4)); the
	// controller may grant fewer.
	IOQueues int
	// QueueDepth is the commands in flight per I/O queue (default 128,
	// at most CAP.MQES).
	QueueDepth int
	// KATO is the keep-alive timeout (default 5 s; negative disables
	// keep-alive). Keep Alive commands are sent every KATO/2.
	KATO time.Duration
	// IOTimeout fails a queue whose command stays unanswered this long
	// (default 30 s).
	IOTimeout time.Duration
	// ReconnectDelay is the wait before each reconnect attempt after a
	// connection fails (default 2 s; nvme-cli's --reconnect-delay).
	ReconnectDelay time.Duration
	// CtrlLossTimeout is how long the controller keeps reconnecting before
	// it gives up (default 60 s; nvme-cli's --ctrl-loss-tmo). Meanwhile
	// Namespace I/O waits and is retried on the new connection; after it,
	// I/O fails with the last error. Negative: no reconnect, I/O in flight
	// fails with the connection's error.
	CtrlLossTimeout time.Duration
	// Events, when set, receives asynchronous events; it must not block.
	// Otherwise they are available from Controller.Events.
	Events func(Event)
}

// HostIdentity returns the host NQN and host ID these options connect
// with: the ones set, else nvme-cli's (/etc/nvme/hostnqn, /etc/nvme/hostid)
// or ones derived from the machine's identity. The kernel host, given
// none, would make up a random NQN per boot: pass these to it.
func (o Options) HostIdentity() (nqn, hostID string, err error) {
	if err := o.setDefaults(); err != nil {
		return "", "", err
	}
	return o.HostNQN, formatUUID(o.HostID), nil
}

func (o *Options) setDefaults() error {
	if o.HostNQN == "" {
		nqn, err := DefaultHostNQN()
		if err != nil {
			return err
		}
		o.HostNQN = nqn
	}
	if len(o.HostNQN) > 223 {
		return fmt.Errorf("HostNQN: %d bytes, longer than 223", len(o.HostNQN))
	}
	if o.HostID == [16]byte{} {
		o.HostID = defaultHostID(o.HostNQN)
	}
	if _, err := o.parseAuth(); err != nil {
		return err
	}
	if o.TLSKey != "" {
		if _, err := dhchap.ParsePSK(o.TLSKey); err != nil {
			return fmt.Errorf("TLSKey: %w", err)
		}
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	switch {
	case o.BusyPoll == 0:
		o.BusyPoll = DefaultBusyPoll
	case o.BusyPoll < 0:
		o.BusyPoll = 0
	}
	if o.AdminTimeout <= 0 {
		o.AdminTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

func (c *Config) setDefaults() error {
	if c.SubNQN == "" {
		return fmt.Errorf("SubNQN: empty; name the subsystem to connect to (flashpath discover lists them)")
	}
	if len(c.SubNQN) > 223 {
		return fmt.Errorf("SubNQN: %d bytes, longer than 223", len(c.SubNQN))
	}
	if err := c.Options.setDefaults(); err != nil {
		return err
	}
	if c.IOQueues <= 0 {
		c.IOQueues = min(runtime.NumCPU(), 4)
	}
	if c.IOQueues > 0xFFFE {
		return fmt.Errorf("IOQueues: %d, more than 65534", c.IOQueues)
	}
	if c.QueueDepth <= 0 {
		c.QueueDepth = 128
	}
	if c.QueueDepth > 0xFFFF {
		return fmt.Errorf("QueueDepth: %d, more than 65535", c.QueueDepth)
	}
	if c.KATO == 0 {
		c.KATO = 5 * time.Second
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 30 * time.Second
	}
	if c.ReconnectDelay <= 0 {
		c.ReconnectDelay = 2 * time.Second
	}
	if c.CtrlLossTimeout == 0 {
		c.CtrlLossTimeout = 60 * time.Second
	}
	return nil
}

// CtrlLossFromNVMeCLI turns a ctrl-loss-tmo as nvme-cli means it (0:
// give up at once; negative, nvme-cli's -1: reconnect forever) into
// Config.CtrlLossTimeout (negative: no reconnect; forever is the longest
// duration, about 292 years).
func CtrlLossFromNVMeCLI(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return -1
	case d < 0:
		return math.MaxInt64
	}
	return d
}

// SplitAddr accepts "host:port", a bare host (then defaultPort), and
// either with a scheme naming an NVMe-oF transport, "tcp://" (the
// default) or "rdma://"; it returns the transport and "host:port". The
// host is a host name, an IPv4 address or an IPv6 address, in brackets
// when a port follows; the port a number from 1 to 65535.
func SplitAddr(addr, defaultPort string) (transport, hostport string, err error) {
	a := addr
	transport = "tcp"
	if i := strings.Index(a, "://"); i >= 0 {
		transport = a[:i]
		if transport != "tcp" && transport != "rdma" {
			return "", "", fmt.Errorf("address %q: transport %q not supported, use tcp://HOST:PORT or rdma://HOST:PORT", addr, transport)
		}
		a = a[i+3:]
	}
	a = strings.TrimSuffix(a, "/")
	if a == "" {
		return "", "", fmt.Errorf("address %q: no host", addr)
	}
	hp, err := joinHostPort(a, defaultPort, true)
	if err != nil {
		return "", "", fmt.Errorf("address %q: %w", addr, err)
	}
	return transport, hp, nil
}

// DefaultHostNQN returns the host NQN nvme-cli would use: the contents of
// /etc/nvme/hostnqn, or nqn.2014-08.org.nvmexpress:uuid:<uuid> with a UUID
// derived from the machine identity (DMI product UUID or machine-id), so
// that it is the same on every run.
func DefaultHostNQN() (string, error) {
	if b, err := os.ReadFile("/etc/nvme/hostnqn"); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	}
	for _, p := range []string{"/sys/class/dmi/id/product_uuid", "/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(p); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				return "nqn.2014-08.org.nvmexpress:uuid:" + nameUUID(s), nil
			}
		}
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("generate a host NQN: no machine identity found (%w); set HostNQN", err)
	}
	return "nqn.2014-08.org.nvmexpress:uuid:" + nameUUID(h), nil
}

// nameUUID returns s itself when it is a UUID, else a name-based UUID
// (RFC 9562 version 5) of s.
func nameUUID(s string) string {
	if u, ok := parseUUID(s); ok {
		return formatUUID(u)
	}
	sum := sha1.Sum([]byte("flashpath-host:" + s))
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0F | 0x50
	u[8] = u[8]&0x3F | 0x80
	return formatUUID(u)
}

func parseUUID(s string) ([16]byte, bool) {
	u, err := uuid.Parse(s)
	return u, err == nil
}

func formatUUID(u [16]byte) string { return uuid.UUID(u).String() }

// defaultHostID: /etc/nvme/hostid, the UUID inside a uuid-style NQN, or
// a UUID derived from the NQN.
func defaultHostID(nqn string) [16]byte {
	if b, err := os.ReadFile("/etc/nvme/hostid"); err == nil {
		if u, ok := parseUUID(string(bytes.TrimSpace(b))); ok {
			return u
		}
	}
	if i := strings.LastIndex(nqn, ":uuid:"); i >= 0 {
		if u, ok := parseUUID(nqn[i+6:]); ok {
			return u
		}
	}
	u, _ := parseUUID(nameUUID(nqn))
	return u
}

// ParseHostID parses a host identifier written as a UUID.
func ParseHostID(s string) ([16]byte, error) {
	u, ok := parseUUID(strings.TrimSpace(s))
	if !ok {
		return u, fmt.Errorf("host ID %q is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", s)
	}
	return u, nil
}
