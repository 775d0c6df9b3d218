package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/flashpath/flashpath/internal/units"
)

// DefaultDiscoveryConf is nvme-cli's list of discovery controllers, read
// by `nvme connect-all` without arguments and its autoconnect service.
const DefaultDiscoveryConf = "/etc/nvme/discovery.conf"

// ParseDiscoveryConf reads nvme-cli's discovery.conf: one discovery
// controller a line, written as `nvme discover` arguments
// (`--transport=tcp --traddr=10.0.0.5 --trsvcid=8009`, or the short
// `-t tcp -a 10.0.0.5 -s 8009`), # comments and blank lines ignored. Each
// becomes a discovery entry with the connect options the line gives.
func ParseDiscoveryConf(b []byte) ([]DiscoveryConfig, error) {
	var out []DiscoveryConfig
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		d, err := parseConfLine(fields)
		if err != nil {
			return nil, fmt.Errorf("discovery.conf line %d: %w", n, err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("discovery.conf: %w", err)
	}
	return out, nil
}

// confFlags maps nvme-cli's short flags to their long names.
var confFlags = map[string]string{
	"t": "transport", "a": "traddr", "s": "trsvcid", "k": "keep-alive-tmo", "c": "reconnect-delay",
	"l": "ctrl-loss-tmo", "i": "nr-io-queues", "P": "nr-poll-queues", "Q": "queue-size", "g": "hdr-digest", "G": "data-digest",
	"q": "hostnqn", "I": "hostid", "w": "host-traddr", "f": "host-iface", "D": "duplicate-connect", "p": "persistent",
}

// confBools are the flags that take no value.
var confBools = map[string]bool{"hdr-digest": true, "data-digest": true, "duplicate-connect": true, "persistent": true}

func parseConfLine(fields []string) (DiscoveryConfig, error) {
	vals := map[string]string{}
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		var name, val string
		hasVal := false
		switch {
		case strings.HasPrefix(f, "--"):
			name, val, hasVal = strings.Cut(f[2:], "=")
		case strings.HasPrefix(f, "-") && len(f) >= 2:
			long, ok := confFlags[f[1:2]]
			if !ok {
				return DiscoveryConfig{}, fmt.Errorf("unknown flag %s", f)
			}
			name = long
			if len(f) > 2 {
				val, hasVal = strings.TrimPrefix(f[2:], "="), true
			}
		default:
			return DiscoveryConfig{}, fmt.Errorf("%q is not a flag (want --name=value or -x value)", f)
		}
		if !hasVal && !confBools[name] {
			if i+1 >= len(fields) {
				return DiscoveryConfig{}, fmt.Errorf("--%s needs a value", name)
			}
			i++
			val = fields[i]
		}
		vals[name] = val
	}
	var d DiscoveryConfig
	tr := vals["transport"]
	if tr == "" {
		tr = "tcp"
	}
	if tr != "tcp" && tr != "rdma" {
		return d, fmt.Errorf("transport %s: flashpath reads discovery over tcp and rdma only (give the subsystems as connect entries)", tr)
	}
	addr := vals["traddr"]
	if addr == "" {
		return d, fmt.Errorf("no --traddr")
	}
	if strings.Contains(addr, ":") && !strings.HasPrefix(addr, "[") {
		addr = "[" + addr + "]"
	}
	d.Address = tr + "://" + addr
	if s := vals["trsvcid"]; s != "" {
		d.Address += ":" + s
	}
	num := func(name string, dst *int, lo int) error {
		v, ok := vals[name]
		if !ok {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo {
			return fmt.Errorf("--%s %q: want an integer of at least %d", name, v, lo)
		}
		*dst = n
		return nil
	}
	for _, e := range []error{
		num("nr-io-queues", &d.NrIOQueues, 1), num("nr-poll-queues", &d.NrPollQueues, 0), num("queue-size", &d.QueueSize, 1),
	} {
		if e != nil {
			return d, e
		}
	}
	// nvme-cli writes seconds; flashpath's duration syntax reads them.
	dur := func(name string, dst *Duration) error {
		v, ok := vals[name]
		if !ok {
			return nil
		}
		x, err := units.ParseDuration(v)
		if err == nil && x == Forever && name != "ctrl-loss-tmo" {
			err = fmt.Errorf("duration %q: -1 is for --ctrl-loss-tmo only", v)
		}
		if err == nil {
			_, err = x.Seconds() // nvme-cli takes whole seconds: -c 0.1 is refused here, on its line
		}
		if err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
		*dst = x
		return nil
	}
	var tmo Duration
	for _, e := range []error{dur("keep-alive-tmo", &d.KeepAliveTmo), dur("reconnect-delay", &d.ReconnectDelay), dur("ctrl-loss-tmo", &tmo)} {
		if e != nil {
			return d, e
		}
	}
	if _, ok := vals["ctrl-loss-tmo"]; ok {
		d.CtrlLossTmo = &tmo
	}
	yes := true
	if _, ok := vals["hdr-digest"]; ok {
		d.HdrDigest = &yes
	}
	if _, ok := vals["data-digest"]; ok {
		d.DataDigest = &yes
	}
	for name := range vals {
		switch name {
		case "transport", "traddr", "trsvcid", "nr-io-queues", "nr-poll-queues", "queue-size", "keep-alive-tmo",
			"reconnect-delay", "ctrl-loss-tmo", "hdr-digest", "data-digest", "persistent":
		default:
			return d, fmt.Errorf("--%s is not supported here (host identity: hostnqn/hostid in the initiator's configuration)", name)
		}
	}
	return d, nil
}
