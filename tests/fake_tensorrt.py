"""A stand-in for ``tensorrt`` and cuda-python's runtime that runs on the CPU, so
the TensorRT backend's own code (engine cache, buffers, bindings, the step
graph's swapped cache buffers) is exercised where no GPU is. Each "engine" is
an ONNX Runtime session; "device" memory is host memory, so copies are memmoves.
Only the calls rtpitch/backends/tensorrt.py makes are here.

    install(monkeypatch)  # then rtpitch.backends.tensorrt.TensorRTBackend(spec, cache_dir=...)
"""

from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import onnxruntime as ort

__version__ = "10.0.fake"


class Logger:
    ERROR = 3

    def __init__(self, level):
        pass


class BuilderFlag:  # no FP16: the engine stays float32 (as TensorRT 11)
    pass


class MemoryPoolType:
    WORKSPACE = 0


class TensorIOMode:
    INPUT, OUTPUT = 1, 2


def nptype(dtype):
    return dtype


def _session(data: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


class _Tensor:
    def __init__(self, arg):
        self.name, self.dtype = arg.name, np.float32 if arg.type == "tensor(float)" else np.int64
        self.shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)


class _Network:
    def __init__(self):
        self.inputs, self.outputs, self.data = [], [], None

    num_inputs = property(lambda self: len(self.inputs))
    num_outputs = property(lambda self: len(self.outputs))

    def get_input(self, i):
        return self.inputs[i]

    def get_output(self, i):
        return self.outputs[i]


class OnnxParser:
    def __init__(self, network, logger):
        self.network, self.num_errors = network, 0

    def parse(self, data: bytes) -> bool:
        sess = _session(data)
        self.network.inputs = [_Tensor(a) for a in sess.get_inputs()]
        self.network.outputs = [_Tensor(a) for a in sess.get_outputs()]
        self.network.data = data
        return True


class _Config:
    def set_memory_pool_limit(self, pool, size):
        pass

    def set_flag(self, flag):
        raise AssertionError("no FP16 here")

    def add_optimization_profile(self, profile):
        pass


class _Profile:
    def set_shape(self, name, lo, opt, hi):
        assert lo[1] <= opt[1] <= hi[1]


class Builder:
    platform_has_fast_fp16 = False

    def __init__(self, logger):
        pass

    def create_network(self, flags):
        return _Network()

    def create_builder_config(self):
        return _Config()

    def create_optimization_profile(self):
        return _Profile()

    def build_serialized_network(self, network, config):
        return network.data  # the "plan" is the ONNX file


class _Context:
    def __init__(self, engine):
        self.engine, self.addr, self.shapes = engine, {}, {}

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)

    def get_tensor_shape(self, name):
        return self._run(dry=True)[name].shape

    def _inputs(self):
        feed = {}
        for arg in self.engine.sess.get_inputs():
            shape = self.shapes.get(arg.name) or tuple(arg.shape)
            n = int(np.prod(shape))
            feed[arg.name] = np.ctypeslib.as_array((ctypes.c_float * n).from_address(self.addr[arg.name])) \
                .reshape(shape).copy() if arg.name in self.addr else np.zeros(shape, np.float32)
        return feed

    def _run(self, dry=False):
        names = [o.name for o in self.engine.sess.get_outputs()]
        return dict(zip(names, self.engine.sess.run(names, self._inputs())))

    def execute_async_v3(self, stream):
        for name, arr in self._run().items():
            ctypes.memmove(self.addr[name], np.ascontiguousarray(arr, np.float32).ctypes.data, arr.nbytes)
        return True


class _Engine:
    def __init__(self, plan: bytes):
        self.sess = _session(plan)
        self.names = [a.name for a in self.sess.get_inputs()] + [a.name for a in self.sess.get_outputs()]

    num_io_tensors = property(lambda self: len(self.names))

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if name in {a.name for a in self.sess.get_inputs()} else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return np.float32

    def create_execution_context(self):
        return _Context(self)


class Runtime:
    def __init__(self, logger):
        pass

    def deserialize_cuda_engine(self, plan):
        return _Engine(bytes(plan))


# -- cuda-python's runtime -------------------------------------------------------------


class _Cudart(types.SimpleNamespace):
    """cudart: every call returns (err, *values) with err 0; memory is host memory."""

    def __init__(self):
        super().__init__()
        self.buffers = {}
        self.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
        self.freed = 0

    def _alloc(self, n):
        buf = ctypes.create_string_buffer(max(int(n), 1))
        self.buffers[ctypes.addressof(buf)] = buf
        return 0, ctypes.addressof(buf)

    def cudaGetDeviceCount(self):
        return 0, 1

    def cudaSetDevice(self, i):
        return (0,)

    def cudaGetDeviceProperties(self, i):
        return 0, types.SimpleNamespace(name=b"Fake GPU", major=9, minor=0)

    def cudaMalloc(self, n):
        return self._alloc(n)

    def cudaMallocHost(self, n):
        return self._alloc(n)

    def cudaFree(self, ptr):
        self.buffers.pop(ptr)
        self.freed += 1
        return (0,)

    cudaFreeHost = cudaFree

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaMemsetAsync(self, ptr, value, n, stream):
        ctypes.memset(ptr, value, n)
        return (0,)

    def cudaStreamCreate(self):
        return 0, 7

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaStreamDestroy(self, stream):
        return (0,)


def install(monkeypatch) -> _Cudart:
    """Put the fakes where rtpitch's TensorRT backend looks; returns the fake cudart."""
    import rtpitch.backends.tensorrt as backend

    cudart = _Cudart()
    monkeypatch.setitem(sys.modules, "tensorrt", sys.modules[__name__])
    monkeypatch.setattr(backend, "import_cudart", lambda: cudart)
    monkeypatch.setattr(backend, "cuda_device_count", lambda: (1, "1 CUDA GPU (fake)"))
    return cudart
