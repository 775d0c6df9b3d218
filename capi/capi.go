// Command capi is flashpath's C ABI, built as a shared library:
//
//	go build -buildmode=c-shared -o libflashpath.so ./capi
//
// Every function returns a JSON document allocated with malloc; the caller
// frees it with fp_free. On failure the document is {"error": "..."}.
//
//	char *fp_load(const char *path, int gpu, const char *gpu_path);
//	    → {"handle": H, "path": "bounce", "reason": "...", "gbps": 21.3,
//	       "bytes": N, "tensors": [{"name", "dtype", "shape", "ptr", "size"}]}
//	char *fp_load_ex(const char *path, const char *options_json);
//	    path: a file, a namespace URL (tcp://HOST:PORT/NQN/NSID, rdma://...)
//	    or a sharded checkpoint's index (*.json); options: {"gpu", "gpus":
//	    [0,1] (shard i on the (i mod n)-th), "gpu_path", "shards": {NAME:
//	    LOCATION}, "queues", "hostnqn", "verify"} → as fp_load, plus
//	    "shards": [{"name", "location", "path", "transport", "target",
//	    "nic", "bytes", "gbps", "reason", ...}] and "cpu_s_per_gb"
//	char *fp_close(long long handle);      frees the GPU memory of a load
//	char *fp_save(const char *path, int gpu, const char *gpu_path,
//	              const char *tensors_json); [{"name","dtype","shape","ptr"}]
//	char *fp_save_sharded(const char *index, int gpu, const char *plan_json);
//	    plan: {"shards": [{"name", "location", "tensors": [...]}],
//	    "metadata", "overwrite", "queues", "hostnqn"}: every shard written
//	    at once, flushed, then the index → {"index", "bytes", "gbps",
//	    "seconds", "shards": [...]}
//	void fp_free(char *doc);
//
// Device pointers live in the GPU's primary context, shared with PyTorch and
// CuPy in the same process; capi/example.py wraps them as torch tensors.
package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/flashpath/flashpath/gds"
	_ "github.com/flashpath/flashpath/gds/nvmf" // namespace URLs
)

var (
	mu      sync.Mutex
	devices = map[int]*gds.Device{}                  // open GPUs, kept for the process: primary context and pinned staging reused by every load; guarded by mu
	loads   = map[int64]interface{ Close() error }{} // *gds.Checkpoint or *gds.Sharded; guarded by mu
	next    int64                                    // guarded by mu
)

func device(gpu int) (*gds.Device, error) {
	mu.Lock()
	defer mu.Unlock()
	if d, ok := devices[gpu]; ok {
		return d, nil
	}
	d, err := gds.OpenDevice(gpu)
	if err != nil {
		return nil, err
	}
	devices[gpu] = d
	return d, nil
}

func doc(v any) *C.char {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return C.CString(string(b))
}

func fail(err error) *C.char { return doc(map[string]string{"error": err.Error()}) }

type tensorJSON struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Ptr   uint64  `json:"ptr"`
	Size  int64   `json:"size"`
	GPU   int     `json:"gpu"`
}

// loadJSON is what every load returns (fp_load, fp_load_ex).
type loadJSON struct {
	Handle  int64        `json:"handle"`
	Path    gds.Path     `json:"path"`
	Reason  string       `json:"reason"`
	Bytes   int64        `json:"bytes"`
	GBps    float64      `json:"gbps"`
	LoadS   float64      `json:"load_s"`
	SetupS  float64      `json:"setup_s"`
	Tensors []tensorJSON `json:"tensors"`
}

// tensorsJSON describes loaded tensors.
func tensorsJSON(ts []gds.Tensor) []tensorJSON {
	var out []tensorJSON
	for _, t := range ts {
		out = append(out, tensorJSON{Name: t.Name, DType: string(t.DType), Shape: t.Shape, Ptr: uint64(t.Ptr), Size: t.Size, GPU: t.GPU})
	}
	return out
}

//export fp_load
func fp_load(path *C.char, gpu C.int, gpuPath *C.char) *C.char {
	p, err := gds.ParsePath(C.GoString(gpuPath))
	if err != nil {
		return fail(err)
	}
	if name := C.GoString(path); gds.IsSharded(name) {
		return loadSharded(name, loadOptions{GPU: int(gpu), GPUPath: C.GoString(gpuPath)})
	}
	t0 := time.Now()
	d, err := device(int(gpu))
	if err != nil {
		return fail(err)
	}
	openS := time.Since(t0)
	c, err := d.LoadSafetensors(context.Background(), C.GoString(path), gds.Options{Path: p})
	if err != nil {
		return fail(err)
	}
	out := struct {
		loadJSON
		SetupHeaderS float64 `json:"setup_header_s"`
		SetupAllocS  float64 `json:"setup_alloc_s"`
		SetupOpenS   float64 `json:"setup_open_s"`
		OpenDeviceS  float64 `json:"open_device_s"` // cuInit and the primary context: first call in the process only
		StagingMiB   float64 `json:"staging_mib"`   // pinned staging kept for the next load
	}{loadJSON: loadJSON{Handle: keep(c), Path: c.Path, Reason: c.Reason, Bytes: c.Bytes, GBps: c.GBps(), LoadS: c.Transfer.Seconds(),
		SetupS: c.Setup.Seconds(), Tensors: tensorsJSON(c.Tensors)},
		SetupHeaderS: c.SetupHeader.Seconds(), SetupAllocS: c.SetupAlloc.Seconds(), SetupOpenS: c.SetupOpen.Seconds(),
		OpenDeviceS: openS.Seconds(), StagingMiB: float64(d.StagingBytes()) / (1 << 20)}
	return doc(out)
}

//export fp_close
func fp_close(handle C.longlong) *C.char {
	mu.Lock()
	c, ok := loads[int64(handle)]
	delete(loads, int64(handle))
	mu.Unlock()
	if !ok {
		return fail(fmt.Errorf("no load with handle %d", int64(handle)))
	}
	if err := c.Close(); err != nil {
		return fail(err)
	}
	return doc(map[string]bool{"ok": true})
}

//export fp_save
func fp_save(path *C.char, gpu C.int, gpuPath *C.char, tensors *C.char) *C.char {
	p, err := gds.ParsePath(C.GoString(gpuPath))
	if err != nil {
		return fail(err)
	}
	var ts []tensorJSON
	if err := json.Unmarshal([]byte(C.GoString(tensors)), &ts); err != nil {
		return fail(fmt.Errorf("tensors JSON: %w", err))
	}
	d, err := device(int(gpu))
	if err != nil {
		return fail(err)
	}
	save := make([]gds.SaveTensor, len(ts))
	for i, t := range ts {
		save[i] = gds.SaveTensor{Name: t.Name, DType: safetensorsDType(t.DType), Shape: t.Shape, Ptr: gds.DevicePtr(t.Ptr)}
	}
	st, err := d.SaveSafetensors(context.Background(), C.GoString(path), save, nil, gds.Options{Path: p})
	if err != nil {
		return fail(err)
	}
	return doc(map[string]any{"path": st.Path, "reason": st.Reason, "bytes": st.Bytes, "seconds": st.Elapsed.Seconds()})
}

// keep records a load and returns its handle.
func keep(c interface{ Close() error }) int64 {
	mu.Lock()
	defer mu.Unlock()
	next++
	loads[next] = c
	return next
}

//export fp_free
func fp_free(p *C.char) { C.free(unsafe.Pointer(p)) }

func main() {}
