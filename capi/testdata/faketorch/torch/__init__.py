"""A stand-in for the few parts of PyTorch that capi/example.py uses, for
testing example.py on machines without a GPU or torch, behind the fake
libcuda (gds/internal/cuda/testdata/fakecuda.c), whose device pointers are
host memory. Not a tensor library: a tensor is a pointer, a shape and a
dtype; its bytes are read with ctypes.
"""
import ctypes
import math


class dtype:
    def __init__(self, name, itemsize):
        self.name, self.itemsize = name, itemsize

    def __repr__(self):
        return "torch." + self.name


bool = dtype("bool", 1)  # noqa: A001 (torch's own name)
uint8, int8 = dtype("uint8", 1), dtype("int8", 1)
int16, uint16, float16, bfloat16 = dtype("int16", 2), dtype("uint16", 2), dtype("float16", 2), dtype("bfloat16", 2)
int32, uint32, float32 = dtype("int32", 4), dtype("uint32", 4), dtype("float32", 4)
int64, uint64, float64 = dtype("int64", 8), dtype("uint64", 8), dtype("float64", 8)
float8_e4m3fn, float8_e5m2 = dtype("float8_e4m3fn", 1), dtype("float8_e5m2", 1)

_TYPESTRS = {"|b1": bool, "|u1": uint8, "|i1": int8, "<i2": int16, "<u2": uint16, "<f2": float16,
             "<i4": int32, "<u4": uint32, "<f4": float32, "<i8": int64, "<u8": uint64, "<f8": float64}


class device:
    def __init__(self, kind, index=None):
        self.type, self.index = kind, index

    def __eq__(self, other):
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __repr__(self):
        return f"device(type={self.type!r}, index={self.index})"


class Tensor:
    def __init__(self, ptr, shape, dt, dev):
        self._ptr, self.shape, self.dtype, self.device = ptr, tuple(shape), dt, dev

    def numel(self):
        return math.prod(self.shape)

    def element_size(self):
        return self.dtype.itemsize

    def data_ptr(self):
        return self._ptr

    def is_contiguous(self):
        return True

    def view(self, dt):
        if dt.itemsize != self.dtype.itemsize:
            raise ValueError(f"view {self.dtype} as {dt}: a different element size")
        return Tensor(self._ptr, self.shape, dt, self.device)

    def bytes(self):
        """The tensor's bytes (the fake's device memory is host memory)."""
        return ctypes.string_at(self._ptr, self.numel() * self.element_size()) if self.numel() else b""


def as_tensor(obj, device):
    a = obj.__cuda_array_interface__
    if a.get("version") != 3 or a["data"][1]:
        raise ValueError(f"unexpected __cuda_array_interface__ {a}")
    return Tensor(a["data"][0], a["shape"], _TYPESTRS[a["typestr"]], device)


class _Cuda:
    initialized = False
    synchronized = []

    def init(self):
        self.initialized = True

    def synchronize(self, dev=None):
        self.synchronized.append(dev)


cuda = _Cuda()
