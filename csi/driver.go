package csi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultName is the driver's name (a Kubernetes CSIDriver object's).
const DefaultName = "csi.flashpath.io"

// TopologyRack is the topology key for a rack; any label key works (a
// GPU node pool: topology.flashpath.io/pool).
const TopologyRack = "topology.flashpath.io/rack"

// Options configure a Driver: Controller for the controller service, Node
// for the node service, or both.
type Options struct {
	Name    string // DefaultName when empty
	Version string
	Logger  *slog.Logger
	// Controller is the targets to place volumes on; nil: no controller
	// service.
	Controller *Config
	// Node is this node's side; nil: no node service.
	Node *NodeOptions
}

// NodeOptions configure the node service.
type NodeOptions struct {
	// HostNQN is the node's host NQN (/etc/nvme/hostnqn), its CSI node
	// ID: ControllerPublishVolume allows it on the volume's subsystem.
	HostNQN string
	// Topology are the node's segments (e.g. TopologyRack: rack1).
	Topology map[string]string
	// OS connects, formats and mounts (HostOS on Linux).
	OS NodeOS
}

// Driver serves CSI's Identity, Controller and Node services.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	name, version string
	log           *slog.Logger
	targets       []*target // in the configuration's order
	node          *NodeOptions

	// volMu guards vols, the locks that serialize the operations on one
	// volume (by its hash), each there while someone holds or waits for it.
	volMu sync.Mutex
	vols  map[string]*volLock // guarded by volMu
}

type volLock struct {
	mu    sync.Mutex
	users int // guarded by Driver.volMu
}

// target is one configured target and its client.
type target struct {
	TargetConfig
	rpc *rpcClient
}

// New returns a driver for o.
func New(o Options) (*Driver, error) {
	d := &Driver{name: o.Name, version: o.Version, log: o.Logger, node: o.Node, vols: map[string]*volLock{}}
	if d.name == "" {
		d.name = DefaultName
	}
	if d.version == "" {
		d.version = "dev"
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if o.Controller == nil && o.Node == nil {
		return nil, errors.New("csi: neither the controller nor the node service: give a controller configuration, a node, or both")
	}
	if o.Controller != nil {
		if err := o.Controller.Validate(); err != nil {
			return nil, fmt.Errorf("csi config: %w", err)
		}
		for _, tc := range o.Controller.Targets {
			c, err := newRPCClient(tc)
			if err != nil {
				return nil, err
			}
			d.targets = append(d.targets, &target{tc, c})
		}
	}
	if o.Node != nil {
		if !validNQN(o.Node.HostNQN) {
			return nil, fmt.Errorf("csi node: host NQN %q: want nqn.... (the node's /etc/nvme/hostnqn)", o.Node.HostNQN)
		}
		if o.Node.OS == nil {
			return nil, errors.New("csi node: no NodeOS")
		}
	}
	return d, nil
}

// Register adds the driver's services to s.
func (d *Driver) Register(s *grpc.Server) {
	csi.RegisterIdentityServer(s, d)
	if d.targets != nil {
		csi.RegisterControllerServer(s, d)
	}
	if d.node != nil {
		csi.RegisterNodeServer(s, d)
	}
}

// Listen opens endpoint, unix:///PATH (the kubelet's and the sidecars'
// socket) or tcp://HOST:PORT; a stale socket file is removed first.
func Listen(endpoint string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(endpoint, "unix://"); ok {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("csi endpoint %q: want unix:///ABSOLUTE/PATH", endpoint)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("csi endpoint: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, fmt.Errorf("csi endpoint: %w", err)
		}
		return net.Listen("unix", p)
	}
	if hp, ok := strings.CutPrefix(endpoint, "tcp://"); ok {
		return net.Listen("tcp", hp)
	}
	return nil, fmt.Errorf("csi endpoint %q: want unix:///PATH or tcp://HOST:PORT", endpoint)
}

// NewServer returns a gRPC server with the driver registered, logging
// every failed call.
func (d *Driver) NewServer() *grpc.Server {
	s := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			d.log.Warn("csi call failed", "method", info.FullMethod, "err", err)
		} else {
			d.log.Debug("csi call", "method", info.FullMethod)
		}
		return resp, err
	}))
	d.Register(s)
	return s
}

// lock serializes the operations on volume hash h: unlock when done.
func (d *Driver) lock(h string) (unlock func()) {
	d.volMu.Lock()
	l := d.vols[h]
	if l == nil {
		l = new(volLock)
		d.vols[h] = l
	}
	l.users++
	d.volMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		d.volMu.Lock()
		if l.users--; l.users == 0 {
			delete(d.vols, h)
		}
		d.volMu.Unlock()
	}
}

// --- names ---

// nqnPrefix starts the NQN of every volume's subsystem.
const nqnPrefix = "nqn.2026-12.io.flashpath:csi:"

// volumeHash is the target-side name of the volume named name: its file
// (HASH.img), bdev and the end of its subsystem's NQN.
func volumeHash(name string) string {
	h := sha256.Sum256([]byte(name))
	return "csi-" + hex.EncodeToString(h[:16])
}

func volumeNQN(hash string) string { return nqnPrefix + hash }

// volumeID is TARGET/HASH.
func volumeID(t, hash string) string { return t + "/" + hash }

// parseVolumeID splits a volume ID; ok is false for one this driver never
// made.
func parseVolumeID(id string) (targetName, hash string, ok bool) {
	t, h, ok := strings.Cut(id, "/")
	if !ok || !targetNameRE.MatchString(t) || !isVolumeHash(h) {
		return "", "", false
	}
	return t, h, true
}

// isVolumeHash reports whether a target's volume name is one volumeHash
// makes (the folder may hold volumes made by hand too).
func isVolumeHash(h string) bool {
	return len(h) == 36 && strings.HasPrefix(h, "csi-") && strings.Trim(h[4:], "0123456789abcdef") == ""
}

func validNQN(n string) bool {
	return strings.HasPrefix(n, "nqn.") && len(n) <= 223 && !strings.ContainsAny(n, " ,\n\t")
}

func (d *Driver) target(name string) *target {
	for _, t := range d.targets {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// --- identity ---

func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: d.version}, nil
}

func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	svc := func(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
		return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
	}
	var caps []*csi.PluginCapability
	if d.targets != nil {
		caps = append(caps, svc(csi.PluginCapability_Service_CONTROLLER_SERVICE))
	}
	caps = append(caps, svc(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS))
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

// Probe is ready once constructed: targets are asked per call, and one
// that is down fails only the calls that need it.
func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// --- capabilities ---

// checkCaps validates volume capabilities: mount (ext4, xfs) or block
// access, by one node. It returns an InvalidArgument error naming what
// is not supported.
func checkCaps(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume_capabilities: none given")
	}
	for _, c := range caps {
		if err := checkCap(c); err != nil {
			return err
		}
	}
	return nil
}

func checkCap(c *csi.VolumeCapability) error {
	if c == nil {
		return status.Error(codes.InvalidArgument, "volume_capability: missing")
	}
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
		csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER, csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
	default:
		return status.Errorf(codes.InvalidArgument, "access mode %v: flashpath volumes are reached by one node at a time (SINGLE_NODE_*)", c.GetAccessMode().GetMode())
	}
	switch at := c.GetAccessType().(type) {
	case *csi.VolumeCapability_Block:
	case *csi.VolumeCapability_Mount:
		if fs := at.Mount.GetFsType(); fs != "" && fs != "ext4" && fs != "xfs" {
			return status.Errorf(codes.InvalidArgument, "fs_type %q: flashpath formats ext4 or xfs", fs)
		}
	default:
		return status.Error(codes.InvalidArgument, "volume_capability: access_type missing: give mount or block")
	}
	return nil
}
