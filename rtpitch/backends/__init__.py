"""Inference backends: one interface (:class:`~rtpitch.backends.base.Backend`), one module per runtime.

Choosing a backend
------------------
``make_backend(name, spec)`` with ``name`` one of :data:`BACKENDS`:

``"onnxruntime"``
    ONNX Runtime on the CPU (always installed).
``"tensorrt"``
    TensorRT on an NVIDIA GPU (extra ``rtpitch[tensorrt]``).
``"auto"``
    The environment variable ``RTPITCH_BACKEND``, when set, names the backend
    (any of the three); otherwise TensorRT when it is installed and cuda-python
    sees a CUDA GPU, else ONNX Runtime.  :func:`resolve_backend` says which and
    why, e.g. ``"auto -> onnxruntime (TensorRT not installed)"``; print it.

An explicit name always wins over the environment.  Runtimes are imported only
when a backend of that kind is made.
"""

from __future__ import annotations

import importlib.util
import os

from ..errors import ConfigError
from ..model import ModelSpec
from .base import Backend

BACKENDS = ("auto", "onnxruntime", "tensorrt")
ENV_VAR = "RTPITCH_BACKEND"

__all__ = ["BACKENDS", "ENV_VAR", "Backend", "make_backend", "resolve_backend"]


def _check_name(name: str, where: str) -> str:
    key = name.strip().lower()
    if key not in BACKENDS:
        raise ConfigError(f"unknown backend '{name}'{where}; choose one of: {', '.join(BACKENDS)}")
    return key


def resolve_backend(name: str = "auto") -> tuple[str, str]:
    """Resolve a backend name to a concrete runtime.

    Parameters
    ----------
    name : str
        One of :data:`BACKENDS`.

    Returns
    -------
    (chosen, reason) : (str, str)
        ``chosen`` is ``"onnxruntime"`` or ``"tensorrt"``; ``reason`` is one line
        for the user, e.g. ``"auto -> tensorrt (1 CUDA GPU)"``.

    Raises
    ------
    ConfigError
        An unknown name (argument or ``RTPITCH_BACKEND``).
    """
    key = _check_name(name, "")
    if key != "auto":
        return key, f"{key} (requested)"
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        chosen = _check_name(env, f" in {ENV_VAR}")
        if chosen != "auto":
            return chosen, f"auto -> {chosen} ({ENV_VAR}={env})"
    if importlib.util.find_spec("tensorrt") is None:
        return "onnxruntime", "auto -> onnxruntime (TensorRT not installed)"
    from .tensorrt import cuda_device_count

    count, why = cuda_device_count()
    if count == 0:
        return "onnxruntime", f"auto -> onnxruntime (TensorRT installed, {why})"
    return "tensorrt", f"auto -> tensorrt ({why})"


def make_backend(name: str, spec: ModelSpec, *, threads: int = 1) -> Backend:
    """Build the backend ``name`` (see :func:`resolve_backend`) for ``spec``.

    Parameters
    ----------
    name : str
        ``"auto"``, ``"onnxruntime"`` or ``"tensorrt"``.
    spec : ModelSpec
        The model to load.
    threads : int
        CPU threads for ONNX Runtime (ignored by TensorRT).

    Raises
    ------
    ConfigError
        Unknown backend name.
    BackendError
        The runtime is missing (the message names the extra to install) or
        cannot run the model.
    ModelError
        The model file is corrupt or disagrees with its JSON.
    """
    chosen, _ = resolve_backend(name)
    if chosen == "tensorrt":
        from .tensorrt import TensorRTBackend

        return TensorRTBackend(spec)
    from .onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(spec, threads=threads)
