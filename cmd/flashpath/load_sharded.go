package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/flashpath/flashpath/gds"
	_ "github.com/flashpath/flashpath/gds/nvmf" // namespace URLs for load and save
)

// shardedResult is what `flashpath load` reports for an index or a URL.
type shardedResult struct {
	Checkpoint string            `json:"checkpoint"`
	GPUs       []int             `json:"gpus"`
	Path       gds.Path          `json:"path"` // staging where any shard staged from a fabric, else rdma where any went direct, else bounce
	Tensors    int               `json:"tensors"`
	Bytes      int64             `json:"bytes"`
	Workers    int               `json:"workers"`
	ChunkMiB   float64           `json:"chunk_mib"`
	SetupS     float64           `json:"setup_s"` // connect, headers, allocation, staging
	LoadS      float64           `json:"load_s"`
	GBps       float64           `json:"gbps"`
	TotalGBps  float64           `json:"total_gbps"` // setup included
	CPUS       float64           `json:"cpu_s"`
	CPUSPerGB  float64           `json:"cpu_s_per_gb"`
	Shards     []gds.ShardReport `json:"shards"`
	VerifyS    float64           `json:"verify_s,omitempty"`
	Verified   *bool             `json:"verified,omitempty"`
}

// parseShardFlags turns --shard NAME=LOCATION values into a map.
func parseShardFlags(vals []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range vals {
		name, loc, ok := strings.Cut(v, "=")
		if !ok || name == "" || loc == "" {
			return nil, fmt.Errorf("--shard %q: want NAME=LOCATION, e.g. model-00001-of-00003.safetensors=tcp://10.0.0.1:4420/nqn.2026-12.io.flashpath:ckpt/1", v)
		}
		m[name] = loc
	}
	return m, nil
}

// parseGPUs parses --gpus 0,1,2.
func parseGPUs(s string, def int) ([]int, error) {
	if s == "" {
		return []int{def}, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		g, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || g < 0 {
			return nil, fmt.Errorf("--gpus %q: want GPU ordinals separated by commas, e.g. 0,1,2,3", s)
		}
		out = append(out, g)
	}
	return out, nil
}

func runShardedLoad(ctx context.Context, w io.Writer, cfg loadConfig, o gds.Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Path == gds.PathCuFile {
		return fmt.Errorf("--gpu-path cufile: a sharded or remote load takes auto, staging (NVMe-oF into pinned buffers, then the GPU) or rdma (NVMe/RDMA straight into GPU memory)")
	}
	locs, err := parseShardFlags(cfg.Shards)
	if err != nil {
		return err
	}
	gpus, err := parseGPUs(cfg.GPUs, cfg.GPU)
	if err != nil {
		return err
	}
	shards, err := gds.OpenShards(cfg.File, locs)
	if err != nil {
		return err
	}
	var devs []*gds.Device
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()
	for _, g := range gpus {
		d, err := gds.OpenDevice(g)
		if err != nil {
			return err
		}
		devs = append(devs, d)
	}
	// Several GPUs: LoadShards puts shard i on the (i mod n)-th.
	plan := gds.LoadPlan{Shards: shards, Devices: devs, Options: o, Verify: cfg.Verify,
		Remote: gds.RemoteOptions{Queues: cfg.Queues, HostNQN: cfg.HostNQN}}
	var ck *gds.Sharded
	runs := max(cfg.Repeat, 1)
	for i := range runs {
		if ck != nil {
			ck.Close()
		}
		plan.Verify = cfg.Verify && i == runs-1
		if ck, err = gds.LoadShards(ctx, plan); err != nil {
			return err
		}
	}
	defer ck.Close()
	r := shardedResult{Checkpoint: cfg.File, GPUs: gpus, Path: gds.PathBounce, Tensors: len(ck.Tensors), Bytes: ck.Bytes,
		Workers: ck.Workers, ChunkMiB: float64(ck.Chunk) / (1 << 20), SetupS: ck.Setup.Seconds(), LoadS: ck.Transfer.Seconds(),
		GBps: ck.GBps(), CPUS: ck.CPU.Seconds(), CPUSPerGB: ck.CPUPerGB(), Shards: ck.Shards}
	if t := ck.Setup + ck.Transfer; t > 0 {
		r.TotalGBps = float64(ck.Bytes) / t.Seconds() / 1e9
	}
	for _, s := range ck.Shards {
		if s.Path == gds.PathStaging || s.Path == gds.PathRDMA && r.Path != gds.PathStaging {
			r.Path = s.Path // staging where any shard staged, else rdma where any went direct
		}
	}
	if cfg.Verify {
		ok := true
		r.Verified, r.VerifyS = &ok, ck.Verified.Seconds()
	}
	if cfg.Output == "json" {
		return writeJSON(w, r)
	}
	writeSharded(w, r)
	return nil
}

// writeSharded writes a sharded load's report as text.
func writeSharded(w io.Writer, r shardedResult) {
	fmt.Fprintf(w, "loaded %s: %s, %s, %s into GPU %v\n", r.Checkpoint, count(len(r.Shards), "shard"), count(r.Tensors, "tensor"), decimalBytes(r.Bytes), r.GPUs)
	fmt.Fprintf(w, "rate:     %.2f GB/s  (transfer %.3f s, setup %.3f s; %.2f GB/s with setup)\n", r.GBps, r.LoadS, r.SetupS, r.TotalGBps)
	fmt.Fprintf(w, "cpu:      %.3f s, %.3f s/GB\n", r.CPUS, r.CPUSPerGB)
	for _, s := range r.Shards {
		nic := ""
		if s.NIC != "" {
			nic = "  NIC " + s.NIC
		}
		where := s.Name + "  " + s.Location
		if s.Location == s.Name || s.Location == "" { // a namespace URL loaded alone is its own name
			where = s.Name
		}
		fmt.Fprintf(w, "shard:    %s  %s in %.3f s = %.2f GB/s  GPU %v%s  path %s: %s\n",
			where, decimalBytes(s.Bytes), s.Seconds, s.GBps, s.GPUs, nic, s.Path, s.Reason)
	}
	if r.Verified != nil {
		fmt.Fprintf(w, "verify:   OK, %s match (CRC-32C), %.3f s\n", count(r.Tensors, "tensor"), r.VerifyS)
	}
}
