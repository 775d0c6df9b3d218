// Package nvmlgpus lists GPUs through NVIDIA's NVML (go-nvml), for
// topo.Config.NVML. It is apart from topo because go-nvml's binding
// leaves NVML's symbols for the dynamic linker to resolve: fine in an
// executable, which binds them lazily, but a shared library that links it
// cannot be loaded by dlopen with RTLD_NOW (Python's ctypes) unless
// libnvidia-ml is already loaded. The C ABI (capi) must never import it.
package nvmlgpus
