// Package csi is flashpath's Container Storage Interface driver (CSI spec
// v1 over gRPC): Kubernetes provisions flashpath volumes with it and
// mounts them on its nodes through the kernel's NVMe-oF host.
//
//	controller (one per cluster)                 target (each storage node)
//	CreateVolume ──JSON-RPC over HTTP──▶ flashpath_volume_create  (VOLUMEDIR/ID.img)
//	                                      nvmf_create_subsystem    (NQN of the volume)
//	                                      nvmf_subsystem_add_ns
//	ControllerPublish ──────────────────▶ nvmf_subsystem_add_host  (the node's host NQN)
//
//	node (each GPU node)
//	NodeStage   nvme connect (every address: native multipath) → mkfs if blank → mount
//	NodePublish bind mount (a file system, or the block device itself)
//
// The controller keeps no state of its own: a volume's ID names its target
// and a hash of the CSI name ("rack1-a/csi-0123..."), from which the file,
// bdev and subsystem names follow, so everything it knows it reads back
// from the targets, and CreateVolume is idempotent by name. The node's
// operating-system work (connect, format, mount) is behind NodeOS so that
// tests run without a kernel NVMe host.
package csi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Config is the controller's list of targets (a file, usually from a
// ConfigMap).
type Config struct {
	Targets []TargetConfig `json:"targets"`
}

// TargetConfig is one flashpath target the controller may place volumes on.
type TargetConfig struct {
	// Name is the target's name in volume IDs: lower-case letters,
	// digits and '-'; never rename a target that holds volumes.
	Name string `json:"name"`
	// RPC is where its JSON-RPC is served: https://HOST:PORT or
	// http://HOST:PORT (the target's --rpc-listen, with or without
	// --rpc-tls-cert) or unix:///PATH (its --rpc-socket, on the same
	// machine).
	RPC string `json:"rpc"`
	// TokenFile holds the bearer token for http:// and https:// (the
	// target's --rpc-token-file).
	TokenFile string `json:"token_file,omitempty"`
	// CAFile holds the certificates (PEM) that an https:// target's
	// certificate must chain to (its --rpc-tls-cert); default: the
	// system's roots.
	CAFile string `json:"ca_file,omitempty"`
	// Addresses are where hosts connect: tcp://HOST:PORT (or rdma://);
	// several give the kernel host several paths (native multipath).
	Addresses []string `json:"addresses"`
	// Topology are the target's topology segments, e.g.
	// topology.flashpath.io/rack: rack1; a volume on it is accessible
	// from the nodes with the same segments.
	Topology map[string]string `json:"topology,omitempty"`
}

var targetNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// LoadConfig reads a controller configuration file (YAML or JSON).
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("csi config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return nil, fmt.Errorf("csi config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("csi config %s: %w", path, err)
	}
	return &c, nil
}

// Validate checks c, naming the field at fault.
func (c *Config) Validate() error {
	if len(c.Targets) == 0 {
		return errors.New("targets: none: name at least one flashpath target")
	}
	seen := map[string]bool{}
	for i, t := range c.Targets {
		at := fmt.Sprintf("targets[%d]", i)
		if !targetNameRE.MatchString(t.Name) {
			return fmt.Errorf("%s.name %q: want 1 to 32 lower-case letters, digits and '-'", at, t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("%s.name %q: used twice", at, t.Name)
		}
		seen[t.Name] = true
		switch {
		case strings.HasPrefix(t.RPC, "http://"), strings.HasPrefix(t.RPC, "https://"):
			if t.TokenFile == "" {
				return fmt.Errorf("%s.token_file: required with an http(s):// rpc (the target's --rpc-token-file)", at)
			}
			if t.CAFile != "" && !strings.HasPrefix(t.RPC, "https://") {
				return fmt.Errorf("%s.ca_file: for an https:// rpc only", at)
			}
		case strings.HasPrefix(t.RPC, "unix:///"):
		default:
			return fmt.Errorf("%s.rpc %q: want https://HOST:PORT or http://HOST:PORT (the target's --rpc-listen) or unix:///PATH", at, t.RPC)
		}
		if len(t.Addresses) == 0 {
			return fmt.Errorf("%s.addresses: none: give where hosts connect, e.g. tcp://10.0.0.5:4420", at)
		}
		for j, a := range t.Addresses {
			if _, _, _, err := ParseAddress(a); err != nil {
				return fmt.Errorf("%s.addresses[%d]: %w", at, j, err)
			}
		}
		for k := range t.Topology {
			if k == "" || strings.ContainsAny(k, " ,=") {
				return fmt.Errorf("%s.topology: key %q: want a label key such as %s", at, k, TopologyRack)
			}
		}
	}
	return nil
}

// ParseAddress splits tcp://HOST[:PORT] or rdma://HOST[:PORT] (port 4420
// when left out) into the kernel's transport, traddr and trsvcid.
func ParseAddress(a string) (transport, host, port string, err error) {
	transport, hp, ok := strings.Cut(a, "://")
	if !ok || (transport != "tcp" && transport != "rdma") || hp == "" {
		return "", "", "", fmt.Errorf("address %q: want tcp://HOST:PORT or rdma://HOST:PORT", a)
	}
	host, port, err = net.SplitHostPort(hp)
	if err != nil {
		host, port = strings.Trim(hp, "[]"), "4420"
	}
	if n, perr := strconv.ParseUint(port, 10, 16); host == "" || strings.ContainsAny(host, ",/ ") || perr != nil || n == 0 {
		return "", "", "", fmt.Errorf("address %q: want tcp://HOST:PORT or rdma://HOST:PORT, PORT from 1 to 65535", a)
	}
	return transport, host, port, nil
}
