package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/flashpath/flashpath/gds"
	"github.com/flashpath/flashpath/gds/topo"
	"github.com/spf13/cobra"
)

func init() {
	register(newTopoCmd)
	register(newLoadCmd)
}

type topoConfig struct {
	Output string // text or json
}

func newTopoCmd() *cobra.Command {
	var cfg topoConfig
	cmd := &cobra.Command{
		Use:   "topo",
		Short: "Show GPUs, RDMA devices, NVMe drives and which NIC and drive is closest to each GPU",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validOutput(cfg.Output); err != nil {
				return err
			}
			r, err := topo.Discover(topo.Config{})
			if err != nil {
				return err
			}
			cufile := gds.ProbeCuFile()
			if cfg.Output == "json" {
				return writeJSON(cmd.OutOrStdout(), struct {
					*topo.Report
					CuFile gds.CuFileStatus `json:"cufile"`
				}{r, cufile})
			}
			printTopo(cmd.OutOrStdout(), r, cufile)
			return nil
		},
	}
	cmd.Flags().StringVarP(&cfg.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

func validOutput(o string) error {
	if o != "text" && o != "json" {
		return fmt.Errorf("--output %q: want text or json", o)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

func printTopo(w io.Writer, r *topo.Report, cf gds.CuFileStatus) {
	fmt.Fprintf(w, "GPUs (%d):\n", len(r.GPUs))
	for _, g := range r.GPUs {
		fmt.Fprintf(w, "  GPU %d  %-28s pci %s  numa %d  %.1f GiB\n", g.Index, g.Name, g.PCIAddr, g.NUMANode, float64(g.MemoryBytes)/(1<<30))
		if l := g.ClosestNIC; l != nil {
			fmt.Fprintf(w, "         closest NIC   %s (%s): %s\n", l.Name, l.PCIAddr, l.Distance)
		}
		if l := g.ClosestNVMe; l != nil {
			fmt.Fprintf(w, "         closest NVMe  %s (%s): %s\n", l.Name, l.PCIAddr, l.Distance)
		}
		for _, warn := range g.Warnings {
			fmt.Fprintf(w, "         WARNING: %s\n", warn)
		}
	}
	fmt.Fprintf(w, "RDMA devices (%d):\n", len(r.NICs))
	for _, n := range r.NICs {
		fmt.Fprintf(w, "  %-10s pci %s  numa %d  netdevs:", n.Name, n.PCIAddr, n.NUMANode)
		for _, d := range n.NetDevs {
			fmt.Fprintf(w, " %s", d.Name)
			if d.State != "" {
				fmt.Fprintf(w, "(%s)", d.State)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "NVMe controllers (%d):\n", len(r.NVMe))
	for _, n := range r.NVMe {
		where := n.PCIAddr
		if where == "" {
			where = n.Address
		}
		fmt.Fprintf(w, "  %-8s %-5s %s  numa %d  %s  namespaces %v\n", n.Name, n.Transport, where, n.NUMANode, n.Model, n.Namespaces)
	}
	fmt.Fprintf(w, "cuFile: available=%v true_gds=%v nvidia-fs=%v (%s)\n", cf.Available, cf.TrueGDS, cf.NVFSLoaded, cf.Reason)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// loadConfig is `flashpath load`'s configuration.
type loadConfig struct {
	File     string
	GPU      int
	Path     string // auto, cufile, bounce
	Direct   string // auto, on, off
	Workers  int
	Depth    int
	ChunkMiB int
	Verify   bool
	Output   string
}

func (c loadConfig) options() (gds.Options, error) {
	p, err := gds.ParsePath(c.Path)
	if err != nil {
		return gds.Options{}, fmt.Errorf("--gpu-path: %w", err)
	}
	switch gds.Direct(c.Direct) {
	case gds.DirectAuto, gds.DirectOn, gds.DirectOff:
	default:
		return gds.Options{}, fmt.Errorf("--direct %q: want auto, on or off", c.Direct)
	}
	if c.GPU < 0 {
		return gds.Options{}, fmt.Errorf("--gpu %d: must be >= 0", c.GPU)
	}
	if c.Workers < 0 || c.Depth < 0 || c.ChunkMiB < 0 {
		return gds.Options{}, fmt.Errorf("--workers, --depth and --chunk-mib must be >= 0")
	}
	if err := validOutput(c.Output); err != nil {
		return gds.Options{}, err
	}
	return gds.Options{Path: p, Direct: gds.Direct(c.Direct), Workers: c.Workers, Depth: c.Depth, Chunk: int64(c.ChunkMiB) << 20}, nil
}

// loadResult is what `flashpath load` reports.
type loadResult struct {
	File      string            `json:"file"`
	GPU       int               `json:"gpu"`
	Path      gds.Path          `json:"path"`
	Reason    string            `json:"reason"`
	Direct    bool              `json:"direct_io"`
	Cached    float64           `json:"page_cache_fraction"`
	Tensors   int               `json:"tensors"`
	Bytes     int64             `json:"bytes"`
	InitS     float64           `json:"init_s"`  // driver and context
	SetupS    float64           `json:"setup_s"` // header, allocation, staging
	LoadS     float64           `json:"load_s"`  // the transfer
	GBps      float64           `json:"gbps"`
	TotalS    float64           `json:"total_s"` // setup + load
	CPUS      float64           `json:"cpu_s"`   // user+system CPU during setup + load
	CPUSPerGB float64           `json:"cpu_s_per_gb"`
	Verified  *bool             `json:"verified,omitempty"`
	Checks    []gds.TensorCheck `json:"checks,omitempty"`
	VerifyErr string            `json:"verify_error,omitempty"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func newLoadCmd() *cobra.Command {
	var cfg loadConfig
	cmd := &cobra.Command{
		Use:   "load FILE.safetensors",
		Short: "Load a safetensors checkpoint into GPU memory through the fastest path, report GB/s",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.File = args[0]
			o, err := cfg.options()
			if err != nil {
				return err
			}
			return runLoad(cmd.Context(), cmd.OutOrStdout(), cfg, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.GPU, "gpu", 0, "GPU ordinal")
	f.StringVar(&cfg.Path, "gpu-path", "auto", "path to GPU memory: auto, cufile or bounce")
	f.StringVar(&cfg.Direct, "direct", "auto", "bounce path: O_DIRECT reads auto (unless the file is in page cache), on or off")
	f.IntVar(&cfg.Workers, "workers", 0, "reader threads (0: CPUs, at most 16)")
	f.IntVar(&cfg.Depth, "depth", 0, "staging buffers in flight per reader (0: 2)")
	f.IntVar(&cfg.ChunkMiB, "chunk-mib", 0, "MiB per read and copy (0: 16)")
	f.BoolVar(&cfg.Verify, "verify", false, "copy every tensor back and compare its CRC-32 with the file's")
	f.StringVarP(&cfg.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

func runLoad(ctx context.Context, w io.Writer, cfg loadConfig, o gds.Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	t0 := time.Now()
	dev, err := gds.OpenDevice(cfg.GPU)
	if err != nil {
		return err
	}
	defer dev.Close()
	init := time.Since(t0)
	cpu0 := cpuSeconds()
	c, err := dev.LoadSafetensors(ctx, cfg.File, o)
	if err != nil {
		return err
	}
	defer c.Close()
	cpu := cpuSeconds() - cpu0
	r := loadResult{File: cfg.File, GPU: cfg.GPU, Path: c.Path, Reason: c.Reason, Direct: c.Direct, Cached: c.Cached,
		Tensors: len(c.Tensors), Bytes: c.Bytes, InitS: init.Seconds(), SetupS: c.Setup.Seconds(), LoadS: c.Transfer.Seconds(),
		GBps: c.GBps(), TotalS: (c.Setup + c.Transfer).Seconds(), CPUS: cpu}
	if c.Bytes > 0 {
		r.CPUSPerGB = cpu / (float64(c.Bytes) / 1e9)
	}
	var verr error
	if cfg.Verify {
		checks, err := c.Verify(max(o.Workers, 8))
		ok := err == nil
		r.Verified = &ok
		if err != nil {
			r.VerifyErr, verr = err.Error(), err
		}
		if cfg.Output == "json" && !ok {
			r.Checks = checks
		}
	}
	if cfg.Output == "json" {
		if err := writeJSON(w, r); err != nil {
			return err
		}
		return verr
	}
	fmt.Fprintf(w, "loaded %s: %d tensors, %.2f GB into GPU %d\n", r.File, r.Tensors, float64(r.Bytes)/1e9, r.GPU)
	fmt.Fprintf(w, "path:     %s (%s)\n", r.Path, r.Reason)
	fmt.Fprintf(w, "rate:     %.2f GB/s  (transfer %.3f s, setup %.3f s, driver init %.3f s)\n", r.GBps, r.LoadS, r.SetupS, r.InitS)
	fmt.Fprintf(w, "cpu:      %.3f s, %.3f s/GB\n", r.CPUS, r.CPUSPerGB)
	if r.Verified != nil {
		if *r.Verified {
			fmt.Fprintf(w, "verify:   OK, %d tensors match the file (CRC-32)\n", r.Tensors)
		} else {
			fmt.Fprintf(w, "verify:   FAILED: %s\n", r.VerifyErr)
		}
	}
	return verr
}
