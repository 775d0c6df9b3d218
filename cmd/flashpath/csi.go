package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flashpath/flashpath/csi"
	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/daemon"
)

func init() { register(newCSICmd) }

type csiFlags struct {
	endpoint   string
	name       string
	controller string
	node       bool
	hostNQN    string
	topology   []string
	topoFile   string
	daemonFlags
}

func newCSICmd() *cobra.Command {
	var f csiFlags
	cmd := &cobra.Command{
		Use:   "csi",
		Short: "Run the Kubernetes CSI driver: the controller (--controller CONFIG), the node side (--node), or both",
		Long: `Run flashpath's CSI driver (CSI spec v1 over gRPC) on --endpoint until
SIGTERM or SIGINT.

The controller (--controller CONFIG, one per cluster, beside
csi-provisioner and csi-attacher) places volumes on the flashpath targets
that CONFIG lists: CreateVolume makes a file on the target with the most
free space in the requested topology (the target's --volume-dir) and
exports it as a subsystem of its own; ControllerPublishVolume allows the
node's host NQN on it. It reaches the targets over their JSON-RPC
(--rpc-listen with a bearer token).

The node side (--node, a DaemonSet, privileged) connects a volume through
the kernel's NVMe-oF host (every address of the target: native
multipath), makes an ext4 or xfs file system on a blank volume and mounts
it, or hands the block device itself to the pod. Its node ID is the
host NQN.`,
		Example: `  flashpath csi --endpoint unix:///csi/csi.sock --controller /etc/flashpath-csi/targets.yaml
  flashpath csi --endpoint unix:///csi/csi.sock --node --topology topology.flashpath.io/rack=rack1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, _, err := f.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			o, err := f.options(log)
			if err != nil {
				return err
			}
			return runCSI(cmd, f.endpoint, o, log)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", "unix:///csi/csi.sock", "where to serve CSI: unix:///PATH (the sidecars' and kubelet's socket) or tcp://HOST:PORT")
	fl.StringVar(&f.name, "driver-name", csi.DefaultName, "the driver's name (the CSIDriver object's and the StorageClass's provisioner)")
	fl.StringVar(&f.controller, "controller", "", "serve the controller service with this configuration of targets (YAML: targets: [{name, rpc, token_file, addresses, topology}])")
	fl.BoolVar(&f.node, "node", false, "serve the node service (connect, format, mount on this machine)")
	fl.StringVar(&f.hostNQN, "hostnqn", "", "the node's host NQN, its CSI node ID (default: /etc/nvme/hostnqn)")
	fl.StringArrayVar(&f.topology, "topology", nil, "the node's topology segment KEY=VALUE, repeatable, e.g. "+csi.TopologyRack+"=rack1")
	fl.StringVar(&f.topoFile, "topology-file", "", "a file of the node's topology segments, KEY=VALUE a line ('#' starts a comment), e.g. /etc/flashpath/topology provisioned with the node (a DaemonSet's pods cannot read their node's labels)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	return cmd
}

func (f *csiFlags) options(log *slog.Logger) (csi.Options, error) {
	o := csi.Options{Name: f.name, Version: version, Logger: log}
	if f.controller == "" && !f.node {
		return o, errors.New("give --controller CONFIG, --node, or both")
	}
	if f.controller != "" {
		c, err := csi.LoadConfig(f.controller)
		if err != nil {
			return o, err
		}
		o.Controller = c
	}
	if !f.node {
		if len(f.topology) > 0 || f.hostNQN != "" || f.topoFile != "" {
			return o, errors.New("--topology, --topology-file and --hostnqn are the node's: give --node")
		}
		return o, nil
	}
	n := &csi.NodeOptions{HostNQN: f.hostNQN, Topology: map[string]string{}, OS: csi.NewHostOS(log)}
	if n.HostNQN == "" {
		h, err := initiator.DefaultHostNQN()
		if err != nil {
			return o, fmt.Errorf("host NQN: %w (give --hostnqn)", err)
		}
		n.HostNQN = h
	}
	segs := f.topology
	if f.topoFile != "" {
		b, err := os.ReadFile(f.topoFile)
		if err != nil {
			return o, fmt.Errorf("--topology-file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line, _, _ = strings.Cut(line, "#"); strings.TrimSpace(line) != "" {
				segs = append(segs, strings.TrimSpace(line))
			}
		}
	}
	for _, t := range segs {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" || v == "" || strings.ContainsAny(t, " \t") {
			return o, fmt.Errorf("topology segment %q: want KEY=VALUE, e.g. %s=rack1", t, csi.TopologyRack)
		}
		n.Topology[k] = v
	}
	o.Node = n
	return o, nil
}

func runCSI(cmd *cobra.Command, endpoint string, o csi.Options, log *slog.Logger) error {
	d, err := csi.New(o)
	if err != nil {
		return err
	}
	ln, err := csi.Listen(endpoint)
	if err != nil {
		return err
	}
	srv := d.NewServer()
	log.Info("CSI driver serving", "endpoint", endpoint, "name", o.Name, "controller", o.Controller != nil, "node", o.Node != nil)
	var serveErr error
	daemon.CatchSignals().Run(cmd.Context(), log,
		func(context.Context) {
			log.Warn("SIGHUP: flashpath csi has nothing to reload: restart it for a new --controller file")
		},
		func(ctx context.Context) {
			stop := context.AfterFunc(ctx, srv.GracefulStop) // waits for the calls under way
			defer stop()
			serveErr = srv.Serve(ln)
		})
	if serveErr != nil {
		return fmt.Errorf("csi: %w", serveErr)
	}
	log.Info("stopped")
	return nil
}
