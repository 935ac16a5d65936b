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

It runs the window graph (``make_stepper`` gives None): on a GPU a hop costs a
few kernel launches whatever the window, and the step graph's saving is CPU
work.  A recurrent model (``spec.recurrent``: stream-gru's GRU) has no window
form, so for it a second engine is built from the step graph (profile (1,
1..STEP_MAX_FRAMES, n_mels), optimised for one frame; cached the same way,
``<name>-step-...engine``) and ``make_stepper`` gives a stepper whose caches,
the GRU's state among them, stay on the device: two buffers each, bound as the
run's input and output and swapped after every run (``set_tensor_address``,
``execute_async_v3``).  Tested only where a GPU is (tests/test_recurrent_step.py).

Nothing here imports ``tensorrt`` or cuda-python until a backend is built.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
from pathlib import Path

import numpy as np

from ..atomic_file import write_atomic
from ..errors import BackendError, ModelError
from ..model import ModelSpec, head_units
from .base import Backend, Stepper, TensorInfo, check_io, check_step_io

INSTALL_HINT = "pip install 'rtpitch[tensorrt]' (needs an NVIDIA GPU and driver)"
DEFAULT_CACHE_DIR = Path("~/.cache/rtpitch/trt")
#: Largest input (frames) the engine accepts in one run; longer inputs are split.
MAX_FRAMES = 256
#: Largest input (frames) of one step-graph run (the StepPredictor sends one); longer ones are split.
STEP_MAX_FRAMES = 16
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
        self._streams: list = []  # the steppers' CUDA streams
        self._context = self._engine = self._step_engine = self._long_stepper = None

        count, why = cuda_device_count()
        if count == 0:
            raise BackendError(f"tensorrt: {why}")
        _check(cudart.cudaSetDevice(0), "cudaSetDevice")
        props = _check(cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
        gpu = props.name.decode(errors="replace").rstrip("\0") if isinstance(props.name, bytes) else str(props.name)
        self.gpu = f"{gpu} (sm_{props.major}{props.minor})"

        self._logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(self._logger)
        self._props, self._gpu_name = props, gpu
        self._cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR.expanduser()
        n_mels, w = spec.frontend.n_mels, spec.window_frames
        self.max_frames = max(MAX_FRAMES, w)
        builder, network, parser = self._parse(spec.onnx_bytes(), spec.onnx_path.name)
        check_io(
            spec,
            [self._network_info(network.get_input(i)) for i in range(network.num_inputs)],
            [self._network_info(network.get_output(i)) for i in range(network.num_outputs)],
        )
        # FP16 by builder flag ("weak typing") exists in TensorRT 10 only; TensorRT 11
        # removed it and runs each layer in the ONNX graph's own types (fp32 here).
        weak_fp16 = hasattr(trt.BuilderFlag, "FP16") and getattr(builder, "platform_has_fast_fp16", False)
        self.precision = "fp16" if fp16 and weak_fp16 else "fp32"
        self._engine, self.engine_path, self.cache = self._engine_for(
            builder, network, spec.onnx_sha256, ((1, w, n_mels), (1, w, n_mels), (1, self.max_frames, n_mels)),
            f"1x{w}..{self.max_frames}x{n_mels}", "")
        del parser
        self._context = self._engine.create_execution_context()
        self._allocate()
        self._self_check()
        # A recurrent model runs only through its step graph (rtpitch.predictor), so
        # TensorRT builds that too; other models keep the window graph (module docstring).
        self._step_engine = None
        if spec.recurrent and spec.step is not None:
            builder, network, parser = self._parse(spec.step_onnx_bytes(), spec.step.onnx_path.name)
            check_step_io(
                spec,
                [self._network_info(network.get_input(i)) for i in range(network.num_inputs)],
                [self._network_info(network.get_output(i)) for i in range(network.num_outputs)],
            )
            one = (1, 1, n_mels)
            self._step_engine, self.step_engine_path, self.step_cache = self._engine_for(
                builder, network, spec.step.onnx_sha256, (one, one, (1, STEP_MAX_FRAMES, n_mels)),
                f"step 1x1..{STEP_MAX_FRAMES}x{n_mels}", "-step")
            del parser
            self._self_check_step()

    def _parse(self, data: bytes, file: str):
        """(builder, network, parser) for the ONNX bytes ``data``; ModelError if TensorRT cannot parse them."""
        trt = self._trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10: always explicit batch
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(data):
            errors = "; ".join(str(parser.get_error(i)).splitlines()[0] for i in range(min(parser.num_errors, 2)))
            raise ModelError(f"model '{self.spec.name}': TensorRT cannot parse {file}: {errors}")
        return builder, network, parser

    def _engine_for(self, builder, network, sha256: str, shapes: tuple, shape_key: str, suffix: str):
        """The engine for ``network`` (one optimisation profile: ``shapes`` = min, opt,
        max of the mel input), from the cache or built and saved: (engine, path, cache status)."""
        trt, spec, props, gpu = self._trt, self.spec, self._props, self._gpu_name
        key = "|".join([sha256, gpu, f"{props.major}.{props.minor}", trt.__version__, self.precision, shape_key])
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        path = self._cache_dir / (
            f"{_slug(spec.name)}{suffix}-{sha256[:12]}-{_slug(gpu)}-sm{props.major}{props.minor}"
            f"-trt{trt.__version__}-{self.precision}-{digest}.engine"
        )
        engine = None
        if path.is_file():
            engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            status = "cache hit" if engine is not None else "cache unreadable, rebuilt"
        else:
            status = "cache miss, built"
        if engine is None:
            config = builder.create_builder_config()
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
            if self.precision == "fp16":
                config.set_flag(trt.BuilderFlag.FP16)
            profile = builder.create_optimization_profile()
            profile.set_shape(spec.input_name, *shapes)
            config.add_optimization_profile(profile)
            plan = builder.build_serialized_network(network, config)
            if plan is None:
                raise BackendError(f"model '{spec.name}': TensorRT could not build an engine (see its log above)")
            plan = bytes(plan)
            status = self._save(path, plan, status)
            engine = self._runtime.deserialize_cuda_engine(plan)
            if engine is None:
                raise BackendError(f"model '{spec.name}': TensorRT could not load the engine it built")
        return engine, path, status

    @staticmethod
    def _network_info(tensor) -> TensorInfo:
        import tensorrt as trt

        try:
            dtype = np.dtype(trt.nptype(tensor.dtype))
        except TypeError:
            dtype = None
        return TensorInfo(tensor.name, dtype, tuple(None if d < 0 else int(d) for d in tensor.shape))

    @staticmethod
    def _save(path: Path, plan: bytes, status: str) -> str:
        """Write the engine atomically; a cache that cannot be written is not fatal
        (the status says so)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, plan)
        except OSError as exc:
            return f"cache miss, built, not saved ({exc.strerror})"
        return status

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
        self._units = [head_units(h) for h in self._heads]
        self._h_out, self._d_out = [], []
        for head, units in zip(self._heads, self._units):
            host = self._pinned((t_max - w + 1, units))
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
        for host, dev, units in zip(self._h_out, self._d_out, self._units):
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, dev, n_out * units * 4, d2h, stream), "copy out")
        _check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return [host[:n_out].copy() for host in self._h_out]

    def infer(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        frames = mel[0]
        t, w, t_max = frames.shape[0], self.spec.window_frames, self.max_frames
        if t <= t_max:
            outs = self._run(frames)
        elif self.spec.recurrent:  # one sequence: overlapping chunks would restart its state
            return self._infer_stepped(frames)
        else:  # a long catch-up: overlapping chunks of at most max_frames
            parts, start, step = [], 0, t_max - w + 1
            while start + w <= t:
                parts.append(self._run(frames[start : min(start + t_max, t)]))
                start += step
            outs = [np.concatenate(p) for p in zip(*parts)]
        return dict(zip(self._heads, outs))

    def _infer_stepped(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """A recurrent model's window graph over more than ``max_frames`` frames, as
        the step graph computes it: the first window - 1 frames fill the caches,
        then the state starts at zero at the first full window, as in the window graph."""
        if self._step_engine is None:
            raise BackendError(f"model '{self.spec.name}': tensorrt runs a recurrent model's window graph on at most "
                               f"{self.max_frames} frames at once without its step graph")
        if self._long_stepper is None:
            self._long_stepper = self.make_stepper()
        stepper, w = self._long_stepper, self.spec.window_frames
        stepper.reset()
        stepper.run(frames[None, : w - 1])
        stepper.zero_recurrent()
        return stepper.run(frames[None, w - 1 :])

    def make_stepper(self) -> Stepper | None:
        """A stream through the step graph: only for a recurrent model (module docstring)."""
        return None if self._step_engine is None else _TrtStepper(self)

    def describe(self) -> str:
        step = "" if self._step_engine is None else (
            f"; step graph, engine {self.step_cache} ({self.step_engine_path.name})")
        return (
            f"tensorrt {self._trt.__version__} on {self.gpu}, {self.precision}, "
            f"engine {self.cache} ({self.engine_path.name}){step}"
        )

    def close(self) -> None:
        cudart = self._cudart
        self._context = self._engine = self._step_engine = self._long_stepper = None
        for stream in self._streams:
            cudart.cudaStreamDestroy(stream)
        self._streams = []
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


class _TrtStepper(Stepper):
    """One stream through the step-graph engine: its own execution context and
    CUDA stream; each cache (a convolution's time context or a GRU's state) lives
    on the device in two buffers, the run's input and its output, swapped after
    every run, so the state never leaves the GPU."""

    def __init__(self, backend: TensorRTBackend):
        self._b = backend
        spec, cudart = backend.spec, backend._cudart
        self._cudart = cudart
        self._name, self._input, self._n_mels = spec.name, spec.input_name, spec.frontend.n_mels
        self._ctx = backend._step_engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        backend._streams.append(self._stream)
        self._h_in = backend._pinned((STEP_MAX_FRAMES, self._n_mels))
        d_in = backend._device(self._h_in.nbytes)
        self._ctx.set_tensor_address(spec.input_name, d_in)
        self._d_in = d_in
        self._heads = list(spec.outputs)
        self._outs = []  # (head, units, pinned host, device)
        for head in self._heads:
            units = head_units(head)
            host = backend._pinned((STEP_MAX_FRAMES, units))
            dev = backend._device(host.nbytes)
            self._ctx.set_tensor_address(spec.outputs[head], dev)
            self._outs.append((head, units, host, dev))
        self._caches = []  # [input name, output name, bytes, recurrent, current buffer, other buffer]
        for cin, cout, shape in spec.step.caches:
            nbytes = int(np.prod(shape)) * 4
            self._caches.append([cin, cout, nbytes, cin in spec.step.recurrent,
                                 backend._device(nbytes), backend._device(nbytes)])
        self._shape_m = None
        self.reset()

    def _zero(self, recurrent_only: bool) -> None:
        for cin, _, nbytes, recurrent, cur, _ in self._caches:
            if recurrent or not recurrent_only:
                _check(self._cudart.cudaMemsetAsync(cur, 0, nbytes, self._stream), "cudaMemsetAsync")
        _check(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def reset(self) -> None:
        self._zero(recurrent_only=False)

    def zero_recurrent(self) -> None:
        self._zero(recurrent_only=True)

    def run(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        frames = mel[0]
        if frames.shape[0] > STEP_MAX_FRAMES:
            parts = [self.run(frames[None, i : i + STEP_MAX_FRAMES])
                     for i in range(0, frames.shape[0], STEP_MAX_FRAMES)]
            return {h: np.concatenate([p[h] for p in parts]) for h in self._heads}
        cudart, stream, ctx = self._cudart, self._stream, self._ctx
        m = frames.shape[0]
        if m != self._shape_m:
            ctx.set_input_shape(self._input, (1, m, self._n_mels))
            self._shape_m = m
        for cin, cout, _, _, cur, other in self._caches:
            ctx.set_tensor_address(cin, cur)
            ctx.set_tensor_address(cout, other)
        self._h_in[:m] = frames
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(self._d_in, self._h_in.ctypes.data, frames.nbytes, h2d, stream), "copy in")
        if not ctx.execute_async_v3(int(stream)):
            raise BackendError(f"model '{self._name}': TensorRT execution of the step graph failed")
        for _, units, host, dev in self._outs:
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, dev, m * units * 4, d2h, stream), "copy out")
        _check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        for c in self._caches:  # this run's outputs are the next run's inputs
            c[4], c[5] = c[5], c[4]
        return {head: host[:m].copy() for head, _, host, _ in self._outs}
