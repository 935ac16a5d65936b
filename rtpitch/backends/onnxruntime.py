"""ONNX Runtime on the CPU: the default backend.

One ``InferenceSession`` per model: ``CPUExecutionProvider``, sequential
execution, all graph optimisations, ``intra_op_num_threads=threads`` and one
inter-op thread.  ``infer`` is a plain ``session.run``: I/O binding to
preallocated outputs works only for one fixed T and needs a copy-out, for a
saving too small to matter (docs/RESULTS.md, "ONNX Runtime call paths"), so the
single plain path stays.

Where the model has a step graph, a second session runs it for
:meth:`OnnxRuntimeBackend.make_stepper`; both graphs are loaded and checked at
construction.  The stepper feeds each cache output back as the next run's
input, a recurrent state (a GRU's ``state{k}`` / ``state{k}_out``) like a
convolution's cache.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ortstate

from ..errors import BackendError, ConfigError, ModelError
from ..model import ModelSpec
from .base import Backend, Stepper, TensorInfo, check_io, check_step_io

# Element types as ONNX Runtime spells them -> numpy.
_ORT_DTYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
}

# What onnxruntime raises for a file it cannot load as a model.
_LOAD_ERRORS = (_ortstate.InvalidProtobuf, _ortstate.InvalidGraph, _ortstate.Fail, _ortstate.InvalidArgument)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _info(arg) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorInfo(arg.name, _ORT_DTYPES.get(arg.type), shape)


class OnnxRuntimeBackend(Backend):
    """Run a model with ONNX Runtime on the CPU.

    Parameters
    ----------
    spec : ModelSpec
        The model; its ONNX bytes are checked against the JSON's sha256.
    threads : int
        Intra-op threads (``1`` keeps the other cores for capture and the
        frontend; more helps only for large models).

    Raises
    ------
    ModelError
        Hash mismatch, corrupt ONNX file, or inputs/outputs that disagree with
        the JSON.
    BackendError
        ONNX Runtime cannot run the graph (e.g. an operator it lacks).
    """

    name = "onnxruntime"
    infer_errors = (_ortstate.InvalidArgument, _ortstate.Fail, _ortstate.RuntimeException)

    def __init__(self, spec: ModelSpec, *, threads: int = 1):
        super().__init__(spec)
        if threads < 1:
            raise ConfigError(f"onnxruntime: threads must be >= 1, got {threads}")
        self.threads = threads
        self._opts = self._options(threads)
        self._session = self._load(spec.onnx_bytes(), spec.onnx_path.name)
        check_io(
            spec,
            [_info(a) for a in self._session.get_inputs()],
            [_info(a) for a in self._session.get_outputs()],
        )
        self._input = spec.input_name
        self._heads = list(spec.outputs)
        self._tensors = [spec.outputs[h] for h in self._heads]
        self._self_check()
        self._step_session = None
        if spec.step is not None:
            self._step_session = self._load(spec.step_onnx_bytes(), spec.step.onnx_path.name)
            check_step_io(
                spec,
                [_info(a) for a in self._step_session.get_inputs()],
                [_info(a) for a in self._step_session.get_outputs()],
            )
            self._self_check_step()

    @staticmethod
    def _options(threads: int) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: no optimiser chatter on stderr
        return opts

    def _load(self, data: bytes, file: str) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(data, sess_options=self._opts, providers=["CPUExecutionProvider"])
        except _LOAD_ERRORS as exc:
            raise ModelError(f"model '{self.spec.name}': onnxruntime cannot load {file}: {_first_line(exc)}") from None
        except _ortstate.NotImplemented as exc:
            raise BackendError(f"model '{self.spec.name}': onnxruntime cannot run {file}: {_first_line(exc)}") from None

    def infer(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        outs = self._session.run(self._tensors, {self._input: mel})
        return {head: out[0] for head, out in zip(self._heads, outs)}

    def make_stepper(self) -> Stepper | None:
        if self._step_session is None:
            return None
        return _OrtStepper(self._step_session, self.spec, self._tensors, self._heads)

    def describe(self) -> str:
        unit = "thread" if self.threads == 1 else "threads"
        graph = "step graph" if self._step_session is not None else "window graph"
        return f"onnxruntime {ort.__version__} CPUExecutionProvider, {self.threads} {unit}, {graph}"

    def close(self) -> None:
        self._session = self._step_session = None


class _OrtStepper(Stepper):
    """The step graph in an ONNX Runtime session, with this stream's caches."""

    def __init__(self, session: ort.InferenceSession, spec: ModelSpec, tensors: list, heads: list):
        self._session = session
        self._input = spec.input_name
        self._heads = heads
        self._cache_in = [c[0] for c in spec.step.caches]
        self._shapes = [c[2] for c in spec.step.caches]
        self._recurrent = [(c[0], c[2]) for c in spec.step.caches if c[0] in spec.step.recurrent]
        self._fetch = tensors + [c[1] for c in spec.step.caches]
        self.reset()

    def reset(self) -> None:
        self._feed = {name: np.zeros(shape, np.float32) for name, shape in zip(self._cache_in, self._shapes)}

    def zero_recurrent(self) -> None:
        for name, shape in self._recurrent:
            self._feed[name] = np.zeros(shape, np.float32)

    def run(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        self._feed[self._input] = mel
        outs = self._session.run(self._fetch, self._feed)
        n = len(self._heads)
        for name, cache in zip(self._cache_in, outs[n:]):
            self._feed[name] = cache
        return {head: out[0] for head, out in zip(self._heads, outs[:n])}
