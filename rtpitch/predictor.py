"""Frames in, activations out: the model stage of the engine, in two forms.

Both give the same predictions: frame ``j`` from frames ``j - context ..
j + lookahead``, with silent (pad) frames before frame 0 and, on ``flush()``,
``lookahead`` of them after the last frame, so every real frame is predicted
exactly once, as in training.  ``push(frames (k, n_mels))`` returns
``(first, out)``: ``out`` maps head -> (m, 88) (the pedal head (m, 1)) for the
m frames now predictable, the first of which is frame ``first`` (``out`` is None when none
is ready).

``WindowPredictor``
    runs the window graph (``Backend.infer``) on the last ``window - 1 + m``
    frames: every layer is recomputed over the whole window at each hop.
``StepPredictor``
    runs the step graph (``Backend.make_stepper``) on the new frames only, the
    time context kept in the graph's caches; after each ``reset`` it primes
    them with ``window - 1`` pad frames and drops the ``lookahead`` predictions
    that belong to pad frames.  It runs the graph one frame at a time: an int8
    graph quantizes its input per run, so runs of one frame keep every
    prediction independent of how the frames arrived (a live stream and a file
    give the same notes).

A recurrent model (``spec.recurrent``: stream-gru's GRU) carries a state from
hop to hop, so it runs only through ``StepPredictor``: independent windows
would restart the state at every hop.  Its state is zeroed just before the
first real prediction (after the priming and the lookahead rows it drops), as
a training crop's state starts at zero at its first output; its predictions
then equal the model run once over the whole stream with ``window - 1 -
lookahead`` pad frames before it and ``lookahead`` after
(tests/test_recurrent_step.py).
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, ModelError
from .events import Activations
from .model import PEDAL_HEAD, ModelSpec
from .stage import Block
from .window import FrameWindow


def _pad_value(spec: ModelSpec) -> np.float32:
    return np.float32(np.log(spec.frontend.log_offset))


class WindowPredictor:
    """The window graph over :class:`~rtpitch.window.FrameWindow` windows."""

    def __init__(self, backend, spec: ModelSpec):
        self.backend = backend
        self.window = FrameWindow(
            n_mels=spec.frontend.n_mels, window_frames=spec.window_frames,
            lookahead_frames=spec.lookahead_frames, pad_value=float(_pad_value(spec)),
        )

    def reset(self) -> None:
        self.window.reset()

    def push(self, frames: np.ndarray):
        return self._infer(*self.window.push(frames))

    def flush(self):
        return self._infer(*self.window.flush())

    def _infer(self, first: int, mel):
        return first, None if mel is None else self.backend.infer(mel)


class StepPredictor:
    """The step graph, one hop's new frames at a time (a :class:`~rtpitch.backends.base.Stepper`)."""

    def __init__(self, stepper, spec: ModelSpec):
        self.stepper = stepper
        self.n_mels = spec.frontend.n_mels
        self.window_frames = spec.window_frames
        self.lookahead = spec.lookahead_frames
        self.pad_value = _pad_value(spec)
        self.reset()

    def reset(self) -> None:
        self.stepper.reset()
        self._run(self._pad(self.window_frames - 1))
        self._skip = self.lookahead  # predictions still due for pad frames
        if not self._skip:
            self.stepper.zero_recurrent()
        self._next = 0  # index of the next frame to predict

    def push(self, frames: np.ndarray):
        if self._skip and frames.shape[0]:  # their predictions belong to pad frames
            drop = min(self._skip, frames.shape[0])
            self._run(frames[:drop])
            self._skip -= drop
            if not self._skip:  # the next run makes the first real prediction
                self.stepper.zero_recurrent()
            frames = frames[drop:]
        if not frames.shape[0]:
            return self._next, None
        out = self._run(frames)
        n = next(iter(out.values())).shape[0]
        first = self._next
        self._next += n
        return first, out

    def flush(self):
        """Pad ``lookahead`` silent frames: predictions for the last frames."""
        return self.push(self._pad(self.lookahead))

    def _run(self, frames: np.ndarray) -> dict:
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        outs = [self.stepper.run(frames[None, i : i + 1]) for i in range(frames.shape[0])]
        return {head: np.concatenate([o[head] for o in outs]) for head in outs[0]}

    def _pad(self, n: int) -> np.ndarray:
        return np.full((n, self.n_mels), self.pad_value, np.float32)


def make_predictor(backend, spec: ModelSpec, *, step: bool = True):
    """A StepPredictor where ``step`` and the backend has a step graph for this
    model, else a WindowPredictor (duck-typed backends without
    ``make_stepper`` get windows). ``backend`` None: only the stages'
    latencies are wanted (:func:`rtpitch.latency.model_budget`), the predictor
    never runs: a WindowPredictor whatever the model.

    Raises
    ------
    ConfigError
        ``step=False`` for a recurrent model (it has no window form).
    ModelError
        A recurrent model the backend has no step graph for (the JSON has no
        ``streaming`` section, or the backend cannot run one).
    """
    if backend is None:
        return WindowPredictor(backend, spec)
    if spec.recurrent and not step:
        raise ConfigError(f"model '{spec.name}' is recurrent (its GRU carries a state from hop to hop): it runs only "
                          "through its step graph, not on independent windows")
    stepper = backend.make_stepper() if step and hasattr(backend, "make_stepper") else None
    if stepper is None and spec.recurrent:
        why = ("its JSON has no streaming section (make it: python -m train.step_graph --model ...)"
               if spec.step is None else f"backend {getattr(backend, 'name', '') or type(backend).__name__} "
               "cannot run its step graph (use onnxruntime)")
        raise ModelError(f"model '{spec.name}' is recurrent and runs only through its step graph, but {why}")
    return StepPredictor(stepper, spec) if stepper is not None else WindowPredictor(backend, spec)


class PredictorStage:
    """The model as a pipeline stage (:class:`rtpitch.stage.Stage`): blocks of
    frames with their noise floor in, :class:`~rtpitch.events.Activations` for
    the frames now predictable out (None while none is), each with the noise
    floor of its frames (held here while the frames wait for their lookahead),
    the offset head's rows where the model has one, and, where the model has a
    pedal head, its (m, 1) output as ``pedal`` (m,).

    ``on_activations`` is called with each output (for tools: decoder tuning,
    analysis). ``latency_s``: the lookahead.
    """

    name = "predictor"

    def __init__(self, backend, spec: ModelSpec, *, step: bool = True, on_activations=None):
        self.predictor = make_predictor(backend, spec, step=step)
        hop_s = spec.frontend.hop_s
        self.latency_s = spec.lookahead_frames * hop_s
        self.latency_label = f"lookahead ({spec.lookahead_frames} x {1e3 * hop_s:g} ms hop)"
        self.on_activations = on_activations
        self.reset()

    def reset(self) -> None:
        self.predictor.reset()
        self._floors = np.zeros(0, np.float32)  # noise floor of the frames not yet predicted
        self._floors_first = 0  # frame index of _floors[0]
        self._start_s = 0.0

    def process(self, block: Block) -> Activations | None:
        self._start_s = block.start_s
        if block.noise_floor is not None and block.noise_floor.shape[0]:
            self._floors = np.concatenate([self._floors, block.noise_floor])
        return self._out(*self.predictor.push(block.samples))

    def flush(self) -> Activations | None:
        """Predictions for the last frames (lookahead pad frames after them)."""
        return self._out(*self.predictor.flush())

    def _out(self, first: int, out) -> Activations | None:
        if out is None:
            return None
        n = out["frame"].shape[0]
        skip = first - self._floors_first
        floors = self._floors[skip : skip + n]
        self._floors, self._floors_first = self._floors[skip + n :], first + n
        pedal = out.get(PEDAL_HEAD)
        acts = Activations(first_frame=first, frame=out["frame"], onset=out["onset"], velocity=out.get("velocity"),
                           noise_floor=floors, start_s=self._start_s, pedal=None if pedal is None else pedal[:, 0],
                           offset=out.get("offset"))
        if self.on_activations is not None:
            self.on_activations(acts)
        return acts
