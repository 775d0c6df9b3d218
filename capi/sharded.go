//go:build cgo

package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unsafe"

	"github.com/flashpath/flashpath/gds"
)

// loadOptions are fp_load_ex's options.
type loadOptions struct {
	GPU     int               `json:"gpu"`
	GPUs    []int             `json:"gpus"`
	GPUPath string            `json:"gpu_path"`
	Shards  map[string]string `json:"shards"`
	Queues  int               `json:"queues"`
	HostNQN string            `json:"hostnqn"`
	Verify  bool              `json:"verify"`
}

//export fp_load_ex
func fp_load_ex(path *C.char, options *C.char) *C.char {
	var o loadOptions
	if s := C.GoString(options); strings.TrimSpace(s) != "" {
		if err := json.Unmarshal([]byte(s), &o); err != nil {
			return fail(fmt.Errorf("options JSON: %w", err))
		}
	}
	name := C.GoString(path)
	if !gds.IsSharded(name) {
		if len(o.GPUs) > 0 || len(o.Shards) > 0 {
			return fail(fmt.Errorf("%s: gpus and shards apply to an index (*.json) or a namespace URL", name))
		}
		cp, cg := C.CString(o.GPUPath), C.int(o.GPU)
		defer C.free(unsafe.Pointer(cp))
		return fp_load(path, cg, cp)
	}
	return loadSharded(name, o)
}

// loadSharded loads an index or a namespace URL (gds.LoadShards).
func loadSharded(name string, o loadOptions) *C.char {
	p, err := gds.ParsePath(o.GPUPath)
	if err != nil {
		return fail(err)
	}
	shards, err := gds.OpenShards(name, o.Shards)
	if err != nil {
		return fail(err)
	}
	gpus := o.GPUs
	if len(gpus) == 0 {
		gpus = []int{o.GPU}
	}
	var devs []*gds.Device
	for _, g := range gpus {
		d, err := device(g)
		if err != nil {
			return fail(err)
		}
		devs = append(devs, d)
	}
	plan := gds.LoadPlan{Shards: shards, Devices: devs, Options: gds.Options{Path: p}, Verify: o.Verify,
		Remote: gds.RemoteOptions{Queues: o.Queues, HostNQN: o.HostNQN}} // shard i on the (i mod n)-th GPU
	ck, err := gds.LoadShards(context.Background(), plan)
	if err != nil {
		return fail(err)
	}
	out := struct {
		loadJSON
		CPUSPerGB float64           `json:"cpu_s_per_gb"`
		Shards    []gds.ShardReport `json:"shards"`
	}{loadJSON: loadJSON{Handle: keep(ck), Bytes: ck.Bytes, GBps: ck.GBps(), LoadS: ck.Transfer.Seconds(), SetupS: ck.Setup.Seconds(),
		Tensors: tensorsJSON(ck.Tensors)}, CPUSPerGB: ck.CPUPerGB(), Shards: ck.Shards}
	if len(ck.Shards) > 0 {
		out.Path, out.Reason = ck.Shards[0].Path, ck.Shards[0].Reason
	}
	return doc(out)
}

// savePlan is fp_save_sharded's plan.
type savePlan struct {
	Shards []struct {
		Name     string       `json:"name"`
		Location string       `json:"location"`
		Tensors  []tensorJSON `json:"tensors"`
	} `json:"shards"`
	Metadata  map[string]string `json:"metadata"`
	Overwrite bool              `json:"overwrite"`
	Queues    int               `json:"queues"`
	HostNQN   string            `json:"hostnqn"`
}

//export fp_save_sharded
func fp_save_sharded(index *C.char, gpu C.int, planJSON *C.char) *C.char {
	var sp savePlan
	if err := json.Unmarshal([]byte(C.GoString(planJSON)), &sp); err != nil {
		return fail(fmt.Errorf("plan JSON: %w", err))
	}
	d, err := device(int(gpu))
	if err != nil {
		return fail(err)
	}
	plan := gds.SavePlan{Index: C.GoString(index), Metadata: sp.Metadata, Overwrite: sp.Overwrite,
		Remote: gds.RemoteOptions{Queues: sp.Queues, HostNQN: sp.HostNQN}}
	for _, s := range sp.Shards {
		sh := gds.SaveShard{Name: s.Name, Location: s.Location}
		for _, t := range s.Tensors {
			sh.Tensors = append(sh.Tensors, gds.SaveTensor{Name: t.Name, DType: safetensorsDType(t.DType), Shape: t.Shape, Ptr: gds.DevicePtr(t.Ptr)})
		}
		plan.Shards = append(plan.Shards, sh)
	}
	rep, err := d.SaveShards(context.Background(), plan)
	if err != nil {
		return fail(err)
	}
	return doc(map[string]any{"index": rep.Index, "bytes": rep.Bytes, "gbps": rep.GBps(), "seconds": rep.Elapsed.Seconds(),
		"cpu_s": rep.CPU.Seconds(), "shards": rep.Shards})
}
