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
	"github.com/flashpath/flashpath/gds/topo/nvmlgpus"
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
			r, err := topo.Discover(topo.Config{NVML: nvmlgpus.List})
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
			via := ""
			if l.Via != "" {
				via = " through " + l.Via
			}
			fmt.Fprintf(w, "         closest NVMe  %s (%s%s): %s\n", l.Name, l.PCIAddr, via, l.Distance)
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
		if n.NetDev != "" {
			where += " via " + n.NetDev
			if n.NetPCIAddr != "" {
				where += " (" + n.NetPCIAddr + ")"
			}
		}
		fmt.Fprintf(w, "  %-8s %-5s %s  numa %d  %s  namespaces %v\n", n.Name, n.Transport, where, n.NUMANode, n.Model, n.Namespaces)
	}
	fmt.Fprintf(w, "cuFile: available=%v usable=%v true_gds=%v nvidia-fs=%v allow_compat_mode=%s in %s (%s)\n",
		cf.Available, cf.Usable, cf.TrueGDS, cf.NVFSLoaded, cf.ConfigCompat, cf.Config, cf.Reason)
	if cf.Hint != "" {
		fmt.Fprintf(w, "cuFile hint: %s\n", cf.Hint)
	}
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
	Reader   string // auto, io_uring, pread
	CuFileIO string // auto, batch, sync
	Workers  int
	Depth    int
	ChunkMiB int
	Repeat   int // loads in one process: the first is cold, the last warm
	Verify   bool
	Output   string
	// Sharded and remote loads (an index or a namespace URL):
	Shards  []string // --shard NAME=LOCATION
	GPUs    string   // --gpus 0,1: shard i on the i mod n-th
	Queues  int      // I/O queues per target
	HostNQN string
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
	rd, err := gds.ParseReader(c.Reader)
	if err != nil {
		return gds.Options{}, fmt.Errorf("--reader: %w", err)
	}
	cio, err := gds.ParseCuFileIO(c.CuFileIO)
	if err != nil {
		return gds.Options{}, fmt.Errorf("--cufile-io: %w", err)
	}
	if c.GPU < 0 {
		return gds.Options{}, fmt.Errorf("--gpu %d: must be >= 0", c.GPU)
	}
	if c.Workers < 0 || c.Depth < 0 || c.ChunkMiB < 0 {
		return gds.Options{}, fmt.Errorf("--workers, --depth and --chunk-mib must be >= 0")
	}
	if c.Repeat < 0 {
		return gds.Options{}, fmt.Errorf("--repeat %d: must be >= 0", c.Repeat)
	}
	if err := validOutput(c.Output); err != nil {
		return gds.Options{}, err
	}
	return gds.Options{Path: p, Direct: gds.Direct(c.Direct), Reader: rd, CuFileIO: cio, Workers: c.Workers, Depth: c.Depth, Chunk: int64(c.ChunkMiB) << 20}, nil
}

// loadResult is what `flashpath load` reports.
type loadResult struct {
	File      string            `json:"file"`
	GPU       int               `json:"gpu"`
	Path      gds.Path          `json:"path"`
	Reason    string            `json:"reason"`
	Direct    bool              `json:"direct_io"`
	Reader    gds.Reader        `json:"reader,omitempty"` // bounce: io_uring or pread
	Cached    float64           `json:"page_cache_fraction"`
	Tensors   int               `json:"tensors"`
	Bytes     int64             `json:"bytes"`
	Workers   int               `json:"workers"`
	Depth     int               `json:"depth"`
	ChunkMiB  float64           `json:"chunk_mib"`
	InitS     float64           `json:"init_s"` // driver and context
	loadRun                     // the first (cold) load
	Warm      *loadRun          `json:"warm,omitempty"` // the last of --repeat loads in this process
	Runs      int               `json:"runs"`
	Verified  *bool             `json:"verified,omitempty"`
	Checks    []gds.TensorCheck `json:"checks,omitempty"`
	VerifyErr string            `json:"verify_error,omitempty"`
}

// loadRun is one load's timing.
type loadRun struct {
	SetupS       float64 `json:"setup_s"`        // header + alloc + open
	SetupHeaderS float64 `json:"setup_header_s"` // read and parse the header
	SetupAllocS  float64 `json:"setup_alloc_s"`  // the device allocation
	SetupOpenS   float64 `json:"setup_open_s"`   // path choice, staging buffers, streams
	StagingMiB   float64 `json:"staging_mib"`    // pinned staging the device holds after the load
	LoadS        float64 `json:"load_s"`         // the transfer
	GBps         float64 `json:"gbps"`           // bytes / load_s
	TotalS       float64 `json:"total_s"`        // setup + load
	TotalGBps    float64 `json:"total_gbps"`     // bytes / total_s
	CPUS         float64 `json:"cpu_s"`          // user+system CPU during setup + load
	CPUSPerGB    float64 `json:"cpu_s_per_gb"`
}

func newLoadRun(dev *gds.Device, c *gds.Checkpoint, cpu float64) loadRun {
	r := loadRun{SetupS: c.Setup.Seconds(), SetupHeaderS: c.SetupHeader.Seconds(), SetupAllocS: c.SetupAlloc.Seconds(),
		SetupOpenS: c.SetupOpen.Seconds(), StagingMiB: float64(dev.StagingBytes()) / (1 << 20),
		LoadS: c.Transfer.Seconds(), GBps: c.GBps(), TotalS: (c.Setup + c.Transfer).Seconds(), CPUS: cpu}
	if r.TotalS > 0 {
		r.TotalGBps = float64(c.Bytes) / r.TotalS / 1e9
	}
	if c.Bytes > 0 {
		r.CPUSPerGB = cpu / (float64(c.Bytes) / 1e9)
	}
	return r
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func newLoadCmd() *cobra.Command {
	var cfg loadConfig
	cmd := &cobra.Command{
		Use:   "load FILE.safetensors | tcp://HOST:PORT/NQN/NSID | INDEX.json",
		Short: "Load a safetensors checkpoint into GPU memory through the fastest path, report GB/s",
		Long: `Load a safetensors checkpoint into GPU memory and report the path, GB/s and CPU time.

The checkpoint is a local file, a namespace URL (tcp:// or rdma://
HOST:PORT/NQN/NSID: a shard exported byte for byte by a flashpath target,
read through flashpath's own NVMe-oF host), or a sharded checkpoint's
index (model.safetensors.index.json), whose shards all load at once, each
from where it lives: --shard NAME=LOCATION, else the location the index
records (flashpath's saves write it), else the file beside the index.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.File = args[0]
			o, err := cfg.options()
			if err != nil {
				return err
			}
			if gds.IsSharded(cfg.File) {
				return runShardedLoad(cmd.Context(), cmd.OutOrStdout(), cfg, o)
			}
			if len(cfg.Shards) > 0 || cfg.GPUs != "" {
				return fmt.Errorf("--shard and --gpus apply to an index (*.json) or a namespace URL, not to the file %s", cfg.File)
			}
			return runLoad(cmd.Context(), cmd.OutOrStdout(), cfg, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.GPU, "gpu", 0, "GPU ordinal")
	f.StringVar(&cfg.Path, "gpu-path", "auto", "path to GPU memory: auto, cufile or bounce; for namespace URLs and indexes auto, staging or rdma (NVMe/RDMA straight into GPU memory)")
	f.StringVar(&cfg.Direct, "direct", "auto", "bounce path: O_DIRECT reads auto (unless the file is in page cache), on or off")
	f.StringVar(&cfg.Reader, "reader", "auto", "bounce path: auto (io_uring for O_DIRECT reads, pread for buffered), io_uring, pread, or mmap (buffered: pins the page cache in place, no CPU copy)")
	f.StringVar(&cfg.CuFileIO, "cufile-io", "auto", "cufile path: auto (batch API with true GDS), batch (cuFileBatchIOSubmit) or sync (cuFileRead threads)")
	f.IntVar(&cfg.Workers, "workers", 0, fmt.Sprintf("reader threads (0: the CPUs, 2 to 12 for local files, here %d; 4 to 16 for namespace URLs, here %d)", gds.DefaultWorkers(), gds.DefaultRemoteWorkers()))
	f.IntVar(&cfg.Depth, "depth", 0, fmt.Sprintf("staging buffers in flight per reader (0: %d)", gds.DefaultDepth))
	f.IntVar(&cfg.ChunkMiB, "chunk-mib", 0, fmt.Sprintf("MiB per read and copy (0: %d)", gds.DefaultChunk>>20))
	f.IntVar(&cfg.Repeat, "repeat", 1, "load this many times in one process and report the first (cold) and last (warm) load")
	f.BoolVar(&cfg.Verify, "verify", false, "copy every tensor back and compare its CRC-32 with the file's")
	f.StringVarP(&cfg.Output, "output", "o", "text", "output format: text or json")
	f.StringArrayVar(&cfg.Shards, "shard", nil, "index loads: where a shard lives, NAME=PATH or NAME=tcp://HOST:PORT/NQN/NSID (repeat per shard)")
	f.StringVar(&cfg.GPUs, "gpus", "", "index loads: GPUs to spread the shards over, e.g. 0,1,2,3 (shard i on the (i mod n)-th)")
	f.IntVar(&cfg.Queues, "queues", 0, fmt.Sprintf("remote loads: I/O queues (NVMe/TCP connections) per target (0: %d)", gds.DefaultRemoteQueues))
	f.StringVar(&cfg.HostNQN, "hostnqn", "", "remote loads: host NQN to connect with (default /etc/nvme/hostnqn or one derived from the machine)")
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
	r := loadResult{File: cfg.File, GPU: cfg.GPU, InitS: init.Seconds(), Runs: max(cfg.Repeat, 1)}
	var c *gds.Checkpoint
	for i := range r.Runs {
		if c != nil {
			c.Close()
		}
		cpu0 := cpuSeconds()
		c, err = dev.LoadSafetensors(ctx, cfg.File, o)
		if err != nil {
			return err
		}
		run := newLoadRun(dev, c, cpuSeconds()-cpu0)
		if i == 0 {
			r.loadRun = run
			r.Path, r.Reason, r.Direct, r.Cached, r.Reader = c.Path, c.Reason, c.Direct, c.Cached, c.Reader
			r.Tensors, r.Bytes = len(c.Tensors), c.Bytes
		} else if i == r.Runs-1 {
			r.Warm = &run
		}
	}
	defer c.Close()
	eff := o.WithDefaults()
	r.Workers, r.Depth, r.ChunkMiB = eff.Workers, eff.Depth, float64(eff.Chunk)/(1<<20)
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
	fmt.Fprintf(w, "loaded %s: %s, %s into GPU %d\n", r.File, count(r.Tensors, "tensor"), decimalBytes(r.Bytes), r.GPU)
	fmt.Fprintf(w, "path:     %s (%s)\n", r.Path, r.Reason)
	if r.Reader != "" {
		fmt.Fprintf(w, "reader:   %s\n", r.Reader)
	}
	fmt.Fprintf(w, "rate:     %.2f GB/s  (transfer %.3f s, setup %.3f s = header %.3f + alloc %.3f + open %.3f, driver init %.3f s)\n",
		r.GBps, r.LoadS, r.SetupS, r.SetupHeaderS, r.SetupAllocS, r.SetupOpenS, r.InitS)
	fmt.Fprintf(w, "cpu:      %.3f s, %.3f s/GB\n", r.CPUS, r.CPUSPerGB)
	if r.Warm != nil {
		fmt.Fprintf(w, "warm:     %.2f GB/s transfer, %.2f GB/s with setup (setup %.3f s), load %d of %d in this process\n",
			r.Warm.GBps, r.Warm.TotalGBps, r.Warm.SetupS, r.Runs, r.Runs)
	}
	if r.Verified != nil {
		if *r.Verified {
			fmt.Fprintf(w, "verify:   OK, %d tensors match the file (CRC-32)\n", r.Tensors)
		} else {
			fmt.Fprintf(w, "verify:   FAILED: %s\n", r.VerifyErr)
		}
	}
	return verr
}

// decimalBytes writes n in GB, or in the unit below that suits it (a
// small checkpoint is no "0.00 GB"), decimal as the GB/s beside it.
func decimalBytes(n int64) string {
	switch {
	case n < 1e3:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

// count writes n things: "1 shard", "3 shards".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
