package gds

import (
	"errors"
	"fmt"
	"os"
)

// How a shard's data reaches GPU memory.
type directMode int

const (
	viaStaging directMode = iota // pinned staging buffers, then a copy
	viaDMABuf                    // NVMe/RDMA into GPU memory registered as a dma-buf
	viaAddr                      // NVMe/RDMA into GPU memory registered by address (nvidia-peermem)
)

// directInput is what decides whether a shard goes straight into GPU
// memory: the asked path, the shard's source, its placement and the GPU's
// and the kernel's support.
type directInput struct {
	want      Path  // Options.Path
	remote    bool  // a remote, not a local file
	gpuDirect error // nil: a DeviceRemote whose transport reaches GPU memory; else why not
	gpus      int   // devices the shard's tensors go to
	dmabuf    bool  // the device exports dma-bufs (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED)
	dmabufErr error // asking the device failed
	peermem   bool  // nvidia-peermem is loaded
}

// errNoDeviceRemote is a remote's gpuDirect when it is no DeviceRemote.
var errNoDeviceRemote = errors.New("its remote cannot read into GPU memory")

// decideDirect picks a shard's way into GPU memory and says why in words:
// how the memory is registered when direct, else why the shard stages.
// It reads nothing: LoadShards gathers the input.
func decideDirect(in directInput) (directMode, string) {
	switch {
	case in.want != PathAuto && in.want != PathRDMA:
		return viaStaging, fmt.Sprintf("gpu path %s asked for", in.want)
	case !in.remote:
		return viaStaging, "a local file, not an NVMe/RDMA namespace"
	case in.gpuDirect != nil:
		return viaStaging, in.gpuDirect.Error()
	case in.gpus == 0:
		return viaStaging, "the shard holds no tensors"
	case in.gpus > 1:
		return viaStaging, "tensors of this shard are placed on several GPUs"
	case in.dmabuf:
		return viaDMABuf, "GPU memory registered with the NIC as a dma-buf (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED=1)"
	case in.peermem:
		return viaAddr, "GPU memory registered with the NIC by address through nvidia-peermem (the GPU has no dma-buf support)"
	case in.dmabufErr != nil:
		return viaStaging, fmt.Sprintf("asking the GPU for dma-buf support failed (%v) and nvidia-peermem is not loaded", in.dmabufErr)
	}
	return viaStaging, "GPU has no dma-buf support (CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED=0) and nvidia-peermem is not loaded"
}

// directFix says what to do when gpu path rdma was asked for and a shard
// cannot take it.
func directFix(in directInput) string {
	switch {
	case !in.remote || in.gpuDirect != nil:
		return "serve the shard over NVMe/RDMA (rdma://HOST:PORT/NQN/NSID), or load with gpu path auto to stage it through host memory"
	case in.gpus != 1:
		return "place each shard's tensors on one GPU, or load with gpu path auto to stage it through host memory"
	}
	return "load nvidia-peermem (modprobe nvidia-peermem) or use a driver with dma-buf support (NVIDIA's open kernel modules), or load with gpu path auto to stage through host memory"
}

// peerMemLoaded reports whether the nvidia-peermem module is loaded: with
// it, RDMA NICs register GPU memory by address (ibv_reg_mr).
func peerMemLoaded() bool {
	_, err := os.Stat("/sys/module/nvidia_peermem")
	return err == nil
}
