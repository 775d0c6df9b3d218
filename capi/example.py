"""Load a safetensors checkpoint into PyTorch CUDA tensors through flashpath.

    python3 capi/example.py model.safetensors [gpu] [auto|bounce|cufile]

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
    for f in ("fp_load", "fp_close", "fp_save"):
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
            x = torch.as_tensor(_CudaArray(t["ptr"], t["shape"], typestr), device=device)
            self[t["name"]] = x.view(view) if view is not None else x

    def close(self):
        self.clear()
        _call(self._lib, "fp_close", self.info["handle"])


def load(path, gpu=0, gpu_path="auto", lib=None):
    torch.cuda.init()  # flashpath uses the primary context, like torch
    lib = lib or _lib()
    info = _call(lib, "fp_load", path.encode(), gpu, gpu_path.encode())
    return Checkpoint(lib, info, torch.device("cuda", gpu))


if __name__ == "__main__":
    ck = load(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0, sys.argv[3] if len(sys.argv) > 3 else "auto")
    i = ck.info
    print(f"{len(ck)} tensors, {i['bytes'] / 1e9:.2f} GB via {i['path']} at {i['gbps']:.2f} GB/s ({i['reason']})")
    ck.close()
