"""The interface every inference backend implements, and the checks they share.

A backend runs a model's ONNX graph on one window (or a run of windows) of
log-mel frames.  Input: ``mel`` float32 ``(1, T, n_mels)`` with
``T >= window_frames``.  Output: one float32 array ``(T - window_frames + 1, units)``
per head (``"frame"``, ``"onset"``, optionally ``"offset"``, ``"velocity"``: 88
units; ``"pedal"``: 1), row ``i`` being the prediction for the window
``mel[0, i : i + window_frames]``.  For a recurrent model
(:attr:`~rtpitch.model.ModelSpec.recurrent`) the rows of one call are one
sequence: its state starts at zero at row 0 and runs on through the call, so
``infer`` is meaningful for a whole stream at once or for timing, never for the
independent windows of a live stream (the predictor refuses that).

A backend may also run the model's step graph (:class:`~rtpitch.model.StepGraphSpec`)
through a :class:`Stepper` from :meth:`Backend.make_stepper`: the same
predictions, one hop's new frames at a time, with the time context kept in
caches instead of recomputed.

Tensor names, dtypes and ranks are read from the model itself (the runtime's
view of the ONNX file) and checked against the model's JSON once, at
construction, so :meth:`Backend.infer` has no checks on its hot path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from ..model import ModelSpec, head_units


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output as a runtime reports it.

    ``dtype`` is ``None`` for element types numpy has no name for; each entry of
    ``shape`` is an ``int`` for a fixed dimension or ``None`` for a dynamic one.
    """

    name: str
    dtype: np.dtype | None
    shape: tuple


class Stepper(ABC):
    """One stream through a model's step graph; holds that stream's caches."""

    @abstractmethod
    def run(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        """Advance by the frames ``mel`` (1, m, n_mels), m >= 1, C-contiguous float32.

        Returns dict head -> float32 (m, units) (88; 1 for ``pedal``), freshly
        allocated: row i predicts the frame ``lookahead_frames`` before input frame i.
        """

    @abstractmethod
    def reset(self) -> None:
        """Zero the caches (the caller primes them with pad frames)."""

    def zero_recurrent(self) -> None:
        """Zero the recurrent state only (the caches named in ``spec.step.recurrent``),
        keeping the convolutions' time context.

        The StepPredictor calls it just before the first real prediction: the
        recurrent state then starts there from zero, as it does at the first
        output of every training crop, instead of carrying what the priming
        (caches still zero, not yet pad frames) made of it.  A model without a
        recurrent state has nothing to zero.
        """


class Backend(ABC):
    """An inference runtime holding one model.

    Subclasses set :attr:`name`, load the model in ``__init__`` (raising
    :class:`~rtpitch.errors.ModelError` or :class:`~rtpitch.errors.BackendError`
    with a one-line message), call :func:`check_io` and :meth:`_self_check`.
    """

    #: Registry name of the runtime ("onnxruntime", "tensorrt").
    name: str = ""

    #: What the runtime raises when a model cannot run an input (used by
    #: :meth:`_self_check` to turn it into a ModelError).
    infer_errors: tuple = (RuntimeError, ValueError)

    def __init__(self, spec: ModelSpec):
        self.spec = spec

    @abstractmethod
    def infer(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model.

        Parameters
        ----------
        mel : float32 array (1, T, n_mels), C-contiguous, ``T >= window_frames``
            Log-mel frames.

        Returns
        -------
        dict head -> float32 array (T - window_frames + 1, units)
            Activations (probabilities) per head (88 units; 1 for ``pedal``),
            freshly allocated (the caller may keep them).  A recurrent model's
            state starts at zero at row 0 (module docstring).
        """

    @abstractmethod
    def describe(self) -> str:
        """One line for logs and the CLI: runtime, version, device, settings."""

    def make_stepper(self) -> Stepper | None:
        """A new stream through the step graph, or None where this backend or
        model has none (then the engine runs :meth:`infer` on windows)."""
        return None

    def close(self) -> None:
        """Release the runtime's resources; the backend cannot be used after."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _self_check(self) -> None:
        """Run one all-zero window and check the output shapes.

        Catches a JSON whose ``window.frames`` disagrees with the model's
        receptive field, and warms the runtime up before the first real hop.
        """
        w, n_mels = self.spec.window_frames, self.spec.frontend.n_mels
        self._probe(lambda: self.infer(np.zeros((1, w, n_mels), np.float32)), f"a {w}-frame window",
                    "; does the JSON's window.frames match the model?")

    def _self_check_step(self) -> None:
        """Run one pad frame through a new stepper and check the output shapes."""
        n_mels = self.spec.frontend.n_mels
        self._probe(lambda: self.make_stepper().run(np.zeros((1, 1, n_mels), np.float32)),
                    "the step graph on one frame")

    def _probe(self, run, what: str, hint: str = "") -> None:
        """Call ``run()`` (one prediction's input): a runtime error, or a head not
        shaped (1, units) (88; 1 for ``pedal``), is a one-line ModelError naming
        ``what``, then ``hint``."""
        name = self.spec.name
        try:
            out = run()
        except self.infer_errors as exc:
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModelError(f"model '{name}': {what} does not run ({text}){hint}") from None
        for head, arr in out.items():
            if arr.shape != (1, head_units(head)):
                raise ModelError(
                    f"model '{name}': {what} gave '{head}' output shape {arr.shape}, "
                    f"expected (1, {head_units(head)}){hint}"
                )


def _dims(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def check_io(spec: ModelSpec, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> None:
    """Check a model's graph inputs/outputs, as a runtime reads them, against its JSON.

    Raises
    ------
    ModelError
        One line naming the first disagreement.
    """
    where = f"model '{spec.name}': ONNX"
    by_name = {t.name: t for t in inputs}
    if spec.input_name not in by_name:
        have = ", ".join(repr(t.name) for t in inputs) or "none"
        raise ModelError(f"{where} has no input '{spec.input_name}' named in the JSON (inputs: {have})")
    if len(inputs) != 1:
        raise ModelError(f"{where} has {len(inputs)} inputs, expected one ('{spec.input_name}')")
    inp = by_name[spec.input_name]
    if inp.dtype != np.float32:
        raise ModelError(f"{where} input '{inp.name}' is {inp.dtype or 'a non-numpy type'}, expected float32")
    if len(inp.shape) != 3:
        raise ModelError(f"{where} input '{inp.name}' has shape {_dims(inp.shape)}, expected (batch, time, n_mels)")
    batch, time, n_mels = inp.shape
    if n_mels != spec.frontend.n_mels:
        got = "a dynamic number of" if n_mels is None else str(n_mels)
        raise ModelError(f"{where} input '{inp.name}' has {got} mel bins, JSON says {spec.frontend.n_mels}")
    if time is not None:
        raise ModelError(
            f"{where} input '{inp.name}' has a fixed time dimension ({time}); export it with a dynamic time axis"
        )
    if batch not in (None, 1):
        raise ModelError(f"{where} input '{inp.name}' has a fixed batch size {batch}, expected 1 or dynamic")

    outs = {t.name: t for t in outputs}
    for head, tensor in spec.outputs.items():
        if tensor not in outs:
            have = ", ".join(repr(t.name) for t in outputs) or "none"
            raise ModelError(f"{where} has no output '{tensor}' for head '{head}' (outputs: {have})")
        out = outs[tensor]
        if out.dtype != np.float32:
            raise ModelError(f"{where} output '{tensor}' is {out.dtype or 'a non-numpy type'}, expected float32")
        units = head_units(head)
        if len(out.shape) != 3 or out.shape[2] not in (None, units):
            raise ModelError(
                f"{where} output '{tensor}' has shape {_dims(out.shape)}, expected (batch, time, {units})"
            )


def check_step_io(spec: ModelSpec, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> None:
    """Check the step graph's inputs/outputs against the JSON's ``streaming`` section.

    Raises
    ------
    ModelError
        One line naming the first disagreement.
    """
    where = f"model '{spec.name}': step graph {spec.step.onnx_path.name}"
    ins, outs = {t.name: t for t in inputs}, {t.name: t for t in outputs}
    want_in = {spec.input_name: None, **{c[0]: c[2] for c in spec.step.caches}}
    want_out = {**{spec.outputs[h]: None for h in spec.outputs}, **{c[1]: c[2] for c in spec.step.caches}}
    for kind, have, want in (("input", ins, want_in), ("output", outs, want_out)):
        for name, shape in want.items():
            if name not in have:
                raise ModelError(f"{where} has no {kind} '{name}' named in the JSON")
            t = have[name]
            if t.dtype != np.float32:
                raise ModelError(f"{where} {kind} '{name}' is {t.dtype or 'a non-numpy type'}, expected float32")
            if shape is not None and t.shape != tuple(shape):
                raise ModelError(f"{where} {kind} '{name}' has shape {_dims(t.shape)}, JSON says {_dims(shape)}")
    if set(ins) != set(want_in):
        extra = ", ".join(sorted(set(ins) - set(want_in)))
        raise ModelError(f"{where} has inputs the JSON does not name: {extra}")
