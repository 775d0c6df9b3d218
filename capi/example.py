"""Load a safetensors checkpoint into PyTorch CUDA tensors through flashpath.

    python3 capi/example.py model.safetensors [gpu] [auto|bounce|cufile]
    python3 capi/example.py tcp://10.0.0.1:4420/nqn.2026-12.io.flashpath:ckpt/1
    python3 capi/example.py model.safetensors.index.json [gpu] [auto] \
        [SHARD=tcp://HOST:PORT/NQN/NSID ...]

A checkpoint is a local file, a namespace URL (a shard a flashpath target
exports, read through flashpath's own NVMe-oF host: no kernel NVMe host,
no filesystem, no nvidia-fs on this node) or a sharded checkpoint's index,
whose shards load all at once, each from where it lives. save_sharded()
writes a dict of CUDA tensors as shards to files or namespaces, in
parallel, and the index last.

The tensors alias flashpath's GPU allocation: keep the Checkpoint alive as
long as they are used, and call close() to free the memory.
"""
import ctypes, json, os, sys

import torch

# safetensors dtype -> (__cuda_array_interface__ typestr, torch dtype to view as)
_DTYPES = {
    "BOOL": ("|b1", None), "U8": ("|u1", None), "I8": ("|i1", None),
    "I16": ("<i2", None), "U16": ("<u2", None), "F16": ("<f2", None), "BF16": ("<i2", torch.bfloat16),
    "I32": ("<i4", None), "U32": ("<u4", None), "F32": ("<f4", None),
    "I64": ("<i8", None), "U64": ("<u8", None), "F64": ("<f8", None),
    "F8_E4M3": ("|u1", torch.float8_e4m3fn), "F8_E5M2": ("|u1", torch.float8_e5m2),
}


def _lib(path=None):
    path = path or os.environ.get("FLASHPATH_CAPI") or os.path.join(os.path.dirname(__file__), "..", "bin", "libflashpath.so")
    lib = ctypes.CDLL(path)
    for f in ("fp_load", "fp_load_ex", "fp_close", "fp_save", "fp_save_sharded"):
        getattr(lib, f).restype = ctypes.c_void_p
    lib.fp_close.argtypes = [ctypes.c_longlong]
    lib.fp_free.argtypes = [ctypes.c_void_p]
    return lib


def _call(lib, fn, *args):
    p = getattr(lib, fn)(*args)
    doc = json.loads(ctypes.string_at(p))
    lib.fp_free(p)
    if "error" in doc:
        raise RuntimeError(f"flashpath {fn}: {doc['error']}")
    return doc


class _CudaArray:
    def __init__(self, ptr, shape, typestr):
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": typestr, "data": (ptr, False), "version": 3}


class Checkpoint(dict):
    """name -> torch tensor on the GPU, plus .info (path used, GB/s) and close()."""

    def __init__(self, lib, info, device):
        super().__init__()
        self._lib, self.info = lib, info
        for t in info["tensors"]:
            typestr, view = _DTYPES[t["dtype"]]
            dev = torch.device("cuda", t.get("gpu", device.index))
            x = torch.as_tensor(_CudaArray(t["ptr"], t["shape"], typestr), device=dev)
            self[t["name"]] = x.view(view) if view is not None else x

    def close(self):
        self.clear()
        _call(self._lib, "fp_close", self.info["handle"])


def load(path, gpu=0, gpu_path="auto", lib=None, shards=None, gpus=None, queues=0, hostnqn="", verify=False):
    """path: a file, a namespace URL or an index (*.json). shards: {shard
    file name: path or URL} for an index; gpus: spread the shards over
    these GPUs (shard i on the (i mod n)-th)."""
    torch.cuda.init()  # flashpath uses the primary context, like torch
    lib = lib or _lib()
    opts = {"gpu": gpu, "gpu_path": gpu_path, "shards": shards or {}, "gpus": gpus or [], "queues": queues,
            "hostnqn": hostnqn, "verify": verify}
    info = _call(lib, "fp_load_ex", path.encode(), json.dumps(opts).encode())
    return Checkpoint(lib, info, torch.device("cuda", gpu))


_TORCH_DTYPES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.float64: "F64",
                 torch.int8: "I8", torch.uint8: "U8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64",
                 torch.bool: "BOOL"}


def save_sharded(index, tensors, locations, gpu=0, metadata=None, overwrite=False, queues=0, hostnqn="", lib=None):
    """Write tensors (name -> contiguous CUDA tensor on gpu) as len(locations)
    shards of about equal size, shard i to locations[i] (a path or a
    namespace URL), all at once; flushed; the index written last. Returns
    flashpath's report."""
    lib = lib or _lib()
    names = list(tensors)
    total = sum(tensors[n].numel() * tensors[n].element_size() for n in names)
    per = total / len(locations)
    shards, cur, size = [], [], 0
    for n in names:
        t = tensors[n]
        if not t.is_contiguous() or t.device != torch.device("cuda", gpu):
            raise ValueError(f"{n}: save_sharded wants contiguous tensors on cuda:{gpu}")
        cur.append({"name": n, "dtype": _TORCH_DTYPES[t.dtype], "shape": list(t.shape), "ptr": t.data_ptr()})
        size += t.numel() * t.element_size()
        if size >= per * (len(shards) + 1) and len(shards) < len(locations) - 1:
            shards.append(cur)
            cur = []
    shards.append(cur)
    while len(shards) < len(locations):
        shards.append([])
    k = len(locations)
    plan = {"shards": [{"name": f"model-{i + 1:05d}-of-{k:05d}.safetensors", "location": loc, "tensors": ts}
                       for i, (loc, ts) in enumerate(zip(locations, shards))],
            "metadata": metadata or {"format": "pt"}, "overwrite": overwrite, "queues": queues, "hostnqn": hostnqn}
    torch.cuda.synchronize(gpu)  # the tensors' last writes land before flashpath copies them
    return _call(lib, "fp_save_sharded", index.encode(), gpu, json.dumps(plan).encode())


if __name__ == "__main__":
    locs = dict(a.split("=", 1) for a in sys.argv[4:])
    ck = load(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0, sys.argv[3] if len(sys.argv) > 3 else "auto", shards=locs)
    i = ck.info
    print(f"{len(ck)} tensors, {i['bytes'] / 1e9:.2f} GB via {i['path']} at {i['gbps']:.2f} GB/s ({i['reason']})")
    for s in i.get("shards", []):
        print(f"  {s['name']}: {s['location']} {s['path']} {s['bytes'] / 1e9:.2f} GB at {s['gbps']:.2f} GB/s")
    ck.close()
