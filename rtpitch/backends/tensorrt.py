"""TensorRT on an NVIDIA GPU (extra ``rtpitch[tensorrt]``: ``tensorrt``, ``cuda-python``).

Written to the TensorRT 10 Python API (it also runs on TensorRT 11, which has no
FP16 builder flag: there the engine keeps the ONNX graph's float32).  The first run on a machine builds an
engine from the model's ONNX file (FP16 where the GPU has fast FP16; one
optimisation profile for input shapes (1, window..max_frames, n_mels), optimised
for one window) and saves it under ``cache_dir``; the file name holds the
model's sha256, the GPU name and compute capability, the TensorRT version and
the precision, so any change builds a new engine.  Later runs load it.

Device memory, the stream and pinned host buffers come from cuda-python's
runtime bindings (``cuda.bindings.runtime``; older releases spell it
``cuda.cudart``) and are allocated once, for the largest input.  ``infer``
copies in, enqueues, synchronises and copies out.

It runs the window graph only (``make_stepper`` gives None): on a GPU a hop
costs a few kernel launches whatever the window, and the step graph's saving
is CPU work.

Nothing here imports ``tensorrt`` or cuda-python until a backend is built.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import BackendError, ModelError
from ..model import ModelSpec, head_width
from .base import Backend, TensorInfo, check_io

INSTALL_HINT = "pip install 'rtpitch[tensorrt]' (needs an NVIDIA GPU and driver)"
DEFAULT_CACHE_DIR = Path("~/.cache/rtpitch/trt")
#: Largest input (frames) the engine accepts in one run; longer inputs are split.
MAX_FRAMES = 256
_WORKSPACE_BYTES = 1 << 30


def import_cudart():
    """cuda-python's runtime module, whichever way this release spells it.

    Raises
    ------
    BackendError
        cuda-python is not installed.
    """
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6

        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python < 12.6 (removed in 13)

        return cudart
    except ImportError:
        raise BackendError(f"cuda-python is not installed: {INSTALL_HINT}") from None


def _check(result, what: str):
    """Unpack a cuda-python ``(err, *values)`` tuple; raise BackendError on failure."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        raise BackendError(f"tensorrt: {what} failed: {name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_device_count() -> tuple[int, str]:
    """Number of CUDA GPUs visible to cuda-python, and why when there are none.

    Never raises: a missing cuda-python or driver counts as no GPU.
    """
    try:
        cudart = import_cudart()
    except BackendError:
        return 0, "cuda-python not installed"
    try:
        err, count = cudart.cudaGetDeviceCount()
    except RuntimeError as exc:  # bindings that cannot load the CUDA driver library
        return 0, f"no CUDA driver ({exc})"
    if int(err) != 0:
        return 0, f"no CUDA GPU ({getattr(err, 'name', err)})"
    if count == 0:
        return 0, "no CUDA GPU"
    return count, f"{count} CUDA GPU{'s' if count > 1 else ''}"


def _import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise BackendError(f"TensorRT is not installed: {INSTALL_HINT}") from None
    return tensorrt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


class TensorRTBackend(Backend):
    """Run a model with TensorRT on CUDA device 0.

    Parameters
    ----------
    spec : ModelSpec
        The model; its ONNX bytes are checked against the JSON's sha256.
    cache_dir : path or None
        Where engines are cached (default ``~/.cache/rtpitch/trt``).
    fp16 : bool
        Allow FP16 kernels where the GPU has fast FP16 (outputs stay float32).

    Raises
    ------
    BackendError
        TensorRT or cuda-python missing, no GPU, or TensorRT cannot build the
        engine.
    ModelError
        Hash mismatch, an ONNX file TensorRT cannot parse, or inputs/outputs
        that disagree with the JSON.
    """

    name = "tensorrt"

    def __init__(self, spec: ModelSpec, *, cache_dir: str | os.PathLike | None = None, fp16: bool = True):
        super().__init__(spec)
        trt = _import_tensorrt()
        cudart = import_cudart()
        self._trt, self._cudart = trt, cudart
        self._device_ptrs: list[int] = []
        self._host_ptrs: list[int] = []
        self._stream = None
        self._context = self._engine = None

        count, why = cuda_device_count()
        if count == 0:
            raise BackendError(f"tensorrt: {why}")
        _check(cudart.cudaSetDevice(0), "cudaSetDevice")
        props = _check(cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
        gpu = props.name.decode(errors="replace").rstrip("\0") if isinstance(props.name, bytes) else str(props.name)
        self.gpu = f"{gpu} (sm_{props.major}{props.minor})"

        data = spec.onnx_bytes()
        self._logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10: always explicit batch
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(data):
            errors = "; ".join(str(parser.get_error(i)).splitlines()[0] for i in range(min(parser.num_errors, 2)))
            raise ModelError(f"model '{spec.name}': TensorRT cannot parse {spec.onnx_path.name}: {errors}")
        check_io(
            spec,
            [self._network_info(network.get_input(i)) for i in range(network.num_inputs)],
            [self._network_info(network.get_output(i)) for i in range(network.num_outputs)],
        )
        # FP16 by builder flag ("weak typing") exists in TensorRT 10 only; TensorRT 11
        # removed it and runs each layer in the ONNX graph's own types (fp32 here).
        weak_fp16 = hasattr(trt.BuilderFlag, "FP16") and getattr(builder, "platform_has_fast_fp16", False)
        self.precision = "fp16" if fp16 and weak_fp16 else "fp32"
        n_mels, w = spec.frontend.n_mels, spec.window_frames
        self.max_frames = max(MAX_FRAMES, w)

        key = "|".join([
            spec.onnx_sha256, gpu, f"{props.major}.{props.minor}", trt.__version__, self.precision,
            f"1x{w}..{self.max_frames}x{n_mels}",
        ])
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR.expanduser()
        self.engine_path = cache / (
            f"{_slug(spec.name)}-{spec.onnx_sha256[:12]}-{_slug(gpu)}-sm{props.major}{props.minor}"
            f"-trt{trt.__version__}-{self.precision}-{digest}.engine"
        )

        runtime = trt.Runtime(self._logger)
        self._runtime = runtime
        engine = None
        if self.engine_path.is_file():
            engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            self.cache = "cache hit" if engine is not None else "cache unreadable, rebuilt"
        else:
            self.cache = "cache miss, built"
        if engine is None:
            config = builder.create_builder_config()
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
            if self.precision == "fp16":
                config.set_flag(trt.BuilderFlag.FP16)
            profile = builder.create_optimization_profile()
            profile.set_shape(spec.input_name, (1, w, n_mels), (1, w, n_mels), (1, self.max_frames, n_mels))
            config.add_optimization_profile(profile)
            plan = builder.build_serialized_network(network, config)
            if plan is None:
                raise BackendError(f"model '{spec.name}': TensorRT could not build an engine (see its log above)")
            plan = bytes(plan)
            self._save(plan)
            engine = runtime.deserialize_cuda_engine(plan)
            if engine is None:
                raise BackendError(f"model '{spec.name}': TensorRT could not load the engine it built")
        self._engine = engine
        self._context = engine.create_execution_context()
        self._allocate()
        self._self_check()

    @staticmethod
    def _network_info(tensor) -> TensorInfo:
        import tensorrt as trt

        try:
            dtype = np.dtype(trt.nptype(tensor.dtype))
        except TypeError:
            dtype = None
        return TensorInfo(tensor.name, dtype, tuple(None if d < 0 else int(d) for d in tensor.shape))

    def _save(self, plan: bytes) -> None:
        """Write the engine atomically; a cache that cannot be written is not fatal."""
        try:
            self.engine_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.engine_path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(plan)
            os.replace(tmp, self.engine_path)
        except OSError as exc:
            self.cache = f"cache miss, built, not saved ({exc.strerror})"

    def _pinned(self, shape: tuple) -> np.ndarray:
        nbytes = int(np.prod(shape)) * 4
        ptr = _check(self._cudart.cudaMallocHost(nbytes), "cudaMallocHost")
        self._host_ptrs.append(ptr)
        buf = (ctypes.c_float * int(np.prod(shape))).from_address(ptr)
        return np.frombuffer(buf, dtype=np.float32).reshape(shape)

    def _device(self, nbytes: int) -> int:
        ptr = _check(self._cudart.cudaMalloc(nbytes), "cudaMalloc")
        self._device_ptrs.append(ptr)
        return ptr

    def _allocate(self) -> None:
        """Pinned host and device buffers for the largest input, bound once."""
        spec, ctx = self.spec, self._context
        n_mels, w, t_max = spec.frontend.n_mels, spec.window_frames, self.max_frames
        self._stream = _check(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._h_in = self._pinned((t_max, n_mels))
        self._d_in = self._device(self._h_in.nbytes)
        ctx.set_tensor_address(spec.input_name, self._d_in)
        self._heads = list(spec.outputs)
        self._h_out, self._d_out = [], []
        for head in self._heads:
            host = self._pinned((t_max - w + 1, head_width(head)))
            dev = self._device(host.nbytes)
            ctx.set_tensor_address(spec.outputs[head], dev)
            self._h_out.append(host)
            self._d_out.append(dev)
        # Extra engine outputs the JSON does not name still need somewhere to go.
        trt = self._trt
        named = {spec.input_name, *spec.outputs.values()}
        for i in range(self._engine.num_io_tensors):
            tname = self._engine.get_tensor_name(i)
            if tname in named or self._engine.get_tensor_mode(tname) != trt.TensorIOMode.OUTPUT:
                continue
            ctx.set_input_shape(spec.input_name, (1, t_max, n_mels))
            shape = tuple(ctx.get_tensor_shape(tname))
            size = int(np.prod(shape)) * np.dtype(trt.nptype(self._engine.get_tensor_dtype(tname))).itemsize
            ctx.set_tensor_address(tname, self._device(max(size, 1)))
        self._shape_t = None

    def _run(self, mel2d: np.ndarray) -> list[np.ndarray]:
        """One engine run on (t, n_mels) frames, t <= max_frames."""
        cudart, stream = self._cudart, self._stream
        t = mel2d.shape[0]
        n_out = t - self.spec.window_frames + 1
        if t != self._shape_t:
            self._context.set_input_shape(self.spec.input_name, (1, t, mel2d.shape[1]))
            self._shape_t = t
        self._h_in[:t] = mel2d
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(self._d_in, self._h_in.ctypes.data, mel2d.nbytes, h2d, stream), "copy in")
        if not self._context.execute_async_v3(int(stream)):
            raise BackendError(f"model '{self.spec.name}': TensorRT execution failed")
        for host, dev in zip(self._h_out, self._d_out):
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, dev, n_out * host.shape[1] * 4, d2h, stream), "copy out")
        _check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return [host[:n_out].copy() for host in self._h_out]

    def infer(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        frames = mel[0]
        t, w, t_max = frames.shape[0], self.spec.window_frames, self.max_frames
        if t <= t_max:
            outs = self._run(frames)
        else:  # a long catch-up: overlapping chunks of at most max_frames
            parts, start, step = [], 0, t_max - w + 1
            while start + w <= t:
                parts.append(self._run(frames[start : min(start + t_max, t)]))
                start += step
            outs = [np.concatenate(p) for p in zip(*parts)]
        return dict(zip(self._heads, outs))

    def describe(self) -> str:
        return (
            f"tensorrt {self._trt.__version__} on {self.gpu}, {self.precision}, "
            f"engine {self.cache} ({self.engine_path.name})"
        )

    def close(self) -> None:
        cudart = self._cudart
        self._context = self._engine = None
        for ptr in self._device_ptrs:
            cudart.cudaFree(ptr)
        for ptr in self._host_ptrs:
            cudart.cudaFreeHost(ptr)
        self._device_ptrs, self._host_ptrs = [], []
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self):
        if getattr(self, "_cudart", None) is not None and (
            getattr(self, "_device_ptrs", None) or getattr(self, "_host_ptrs", None)
        ):
            self.close()
