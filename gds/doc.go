// Package gds moves file data to and from GPU memory: the CUDA driver API
// and NVIDIA's cuFile (GPUDirect Storage) behind a Go API, for loading and
// saving checkpoints (Device.LoadSafetensors, Device.SaveSafetensors) and for
// the GPU bench engines (bench/gpu).
//
// A Device is an open GPU (its primary context, which PyTorch and CuPy in
// the same process share, so their tensors are valid DevicePtrs). A File
// is a file open for transfers to or from it, through one of two paths,
// both behind the Transfer submit/reap interface:
//
//   - cufile: cuFile reads and writes the file straight into GPU memory
//     (true GDS with the nvidia-fs driver, or cuFile's compat mode),
//     from worker threads (cuFileRead) or the batch API.
//   - bounce: reader threads fill pinned staging buffers (pread, or
//     io_uring READ_FIXED) and each buffer's host-to-device copy overlaps
//     the next read; or the mmap reader pins the page cache's pages in
//     place and copies from them.
//
// Device.Open (reads) and Device.OpenFile pick a path per file (PathAuto)
// and say why (File.Reason), or take the one Options.Path names.
//
// LoadShards loads checkpoint shards from local files and from remotes
// (NVMe-oF namespaces, through gds/nvmf): a shard goes through pinned
// staging buffers (PathStaging), or, from an NVMe/RDMA namespace (a
// DeviceRemote) whose tensors all go to one GPU, straight into GPU memory
// (PathRDMA): the GPU's memory is registered with the NIC as a dma-buf,
// else by address where nvidia-peermem is loaded, and the target's RDMA
// WRITEs land each tensor in place. PathAuto takes rdma where it can and
// says why not in ShardReport.Reason; PathRDMA fails where it cannot.
//
// libcuda and libcufile are opened at run time with dlopen
// (gds/internal/cuda), so flashpath builds and runs without CUDA, its
// headers or a GPU; $FLASHPATH_LIBCUDA and $FLASHPATH_LIBCUFILE name other
// libraries (tests load fakes, see gds/gdstest). Where the machine lacks
// the driver, a GPU or cuFile, or the build lacks the binding (it needs
// Linux and cgo), errors wrap ErrNotSupported and say what to install or
// how to build: callers fall back, tests skip.
package gds
