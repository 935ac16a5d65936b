"""ONNX Runtime on the CPU: the default backend.

One ``InferenceSession`` per model: ``CPUExecutionProvider``, sequential
execution, all graph optimisations, ``intra_op_num_threads=threads`` and one
inter-op thread.  ``infer`` is a plain ``session.run``.  Measured on a (1, 20, 229)
window with 1 thread (2-core x86 VM, onnxruntime 1.32): a 4-layer 1-D CNN takes
130 us median per call with ``run``, 125 us with I/O binding to preallocated
outputs, 170 us with ``run_with_ort_values``; a small 2-D CNN 1.28 ms vs 1.26 ms.
I/O binding saves ~5 us (0.02 % of a 32 ms hop) but works only for one fixed T
and needs a copy-out, so the single plain path stays.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ortstate

from ..errors import BackendError, ConfigError, ModelError
from ..model import ModelSpec
from .base import Backend, TensorInfo, check_io

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
        data = spec.onnx_bytes()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: no optimiser chatter on stderr
        try:
            self._session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except _LOAD_ERRORS as exc:
            raise ModelError(
                f"model '{spec.name}': onnxruntime cannot load {spec.onnx_path.name}: {_first_line(exc)}"
            ) from None
        except _ortstate.NotImplemented as exc:
            raise BackendError(f"model '{spec.name}': onnxruntime cannot run it: {_first_line(exc)}") from None
        check_io(
            spec,
            [_info(a) for a in self._session.get_inputs()],
            [_info(a) for a in self._session.get_outputs()],
        )
        self._input = spec.input_name
        self._heads = list(spec.outputs)
        self._tensors = [spec.outputs[h] for h in self._heads]
        self._self_check()

    def infer(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        outs = self._session.run(self._tensors, {self._input: mel})
        return {head: out[0] for head, out in zip(self._heads, outs)}

    def describe(self) -> str:
        unit = "thread" if self.threads == 1 else "threads"
        return f"onnxruntime {ort.__version__} CPUExecutionProvider, {self.threads} {unit}"

    def close(self) -> None:
        self._session = None
