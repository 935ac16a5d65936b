"""The streaming engine: the list of its stages, one path for live and files.

    source Block -> ResampleStage -> FrontendStage -> NoiseFloorStage
        -> PredictorStage (step graph, or window graph on FrameWindow windows)
        -> DecoderStage -> note (and pedal) events (audio time, seconds)

Each stage keeps the :class:`rtpitch.stage.Stage` protocol; blocks carry their
position and side data (the noise floor) from stage to stage.
``Engine.process`` takes the source's blocks (a jump in their positions is
audio lost: :meth:`Engine.skip`); ``Engine.finish`` flushes every stage in
order and closes sounding notes (and lifts a pedal that is down).  Compute time per stage is kept in
``Engine.timings`` for the latency report and benchmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .decoder import DecoderStage
from .events import Event
from .frontend import FrontendStage
from .model import ModelSpec
from .noise_floor import NoiseFloorStage
from .predictor import PredictorStage
from .resample import ResampleStage
from .stage import Block


def build_stages(spec: ModelSpec, backend, *, source_rate: int, step: bool = True, block: int = 256,
                 on_activations=None) -> list:
    """The engine's stages for ``spec``, in order. ``block``: the source's block
    size (samples) assumed for the resampler's ``latency_s``. ``backend`` may be
    None for stages only asked for their latency."""
    fe = spec.frontend
    return [
        ResampleStage(source_rate, fe.sample_rate, block=block),
        FrontendStage(fe),
        NoiseFloorStage(fe.hop_s),
        PredictorStage(backend, spec, step=step, on_activations=on_activations),
        DecoderStage(spec.decoder, fe.hop_s),
    ]


@dataclass
class StageTimes:
    """Per-call compute times in seconds: ``per_stage[name]`` lists a stage's
    calls that gave output (the decoder's: every call); ``frames`` the frames
    of each prediction."""

    per_stage: dict = field(default_factory=dict)
    frames: list = field(default_factory=list)

    @property
    def inference(self) -> list:
        return self.per_stage.get("predictor", [])

    @property
    def decoder(self) -> list:
        return self.per_stage.get("decoder", [])


def _rows(out) -> int:
    """Rows in a stage's output (a Block, Activations, events, or None)."""
    if out is None:
        return 0
    if isinstance(out, Block):
        return out.samples.shape[0]
    if isinstance(out, list):
        return len(out)
    return out.n_frames


class Engine:
    """Turns a stream of samples into note events (and pedal events, for a
    model with a pedal head: :class:`~rtpitch.events.PedalEvent`).

    Parameters
    ----------
    spec : the model description (frontend, window, decoder thresholds).
    backend : an object with ``infer(mel (1, T, n_mels)) -> {head: (T-w+1, 88)}``
        and optionally ``make_stepper()`` (see :mod:`rtpitch.backends.base`).
    source_rate : sample rate of the source's blocks (Hz).
    keep_timings : record per-stage compute times (for reports and benchmarks).
    step : run the model's step graph where the backend has one (same
        predictions, less compute per hop); False: always the window graph.
    on_activations : called with each :class:`~rtpitch.events.Activations`
        before it is decoded (for tools: decoder tuning, analysis).
    block : the source's block size (samples), for the resampler's latency.

    Attributes
    ----------
    stages : the stages, in order (:func:`build_stages`).
    position : samples of the source seen so far, gaps included (source rate).
    dropped_samples : samples lost in gaps (:meth:`skip`).
    """

    def __init__(self, spec: ModelSpec, backend, *, source_rate: int, keep_timings: bool = False,
                 step: bool = True, on_activations=None, block: int = 256):
        self.spec = spec
        self.backend = backend
        self.source_rate = int(source_rate)
        self.stages = build_stages(spec, backend, source_rate=self.source_rate, step=step, block=block,
                                   on_activations=on_activations)
        self.timings = StageTimes() if keep_timings else None
        self.position = 0
        self.dropped_samples = 0
        self._segment = 0  # position where the stages last started

    @property
    def latency_s(self) -> float:
        """Sum of the stages' latencies (s)."""
        return sum(stage.latency_s for stage in self.stages)

    @property
    def predictor(self):
        """The model stage's predictor (StepPredictor or WindowPredictor)."""
        return next(s for s in self.stages if isinstance(s, PredictorStage)).predictor

    def process(self, block: Block) -> list[Event]:
        """One block from the source (mono float32, native rate); the new events.
        Audio missing before it (its position past the last block's end) is
        handled as :meth:`skip` does."""
        events = self.skip(block.position - self.position) if block.position > self.position else []
        self.position = block.end
        return events + self._run(block, 0)

    def feed(self, samples: np.ndarray) -> list[Event]:
        """Process mono float32 samples at the source rate, right after the last ones."""
        return self.process(Block(self.position, samples))

    def finish(self, silence_after: bool = False) -> list[Event]:
        """End of stream: flush every stage in order, close every sounding note
        (and lift the pedal).

        ``silence_after``: the sound ended here (a recording's end), so the
        engine hears silence on until no window holds the sound, as a live
        stream does after a recording stops; otherwise (a stop, a lost
        device) it knows nothing after the last sample and its last frames
        are those whose window ends by it.
        """
        return self._flush(silence_after=silence_after)

    def close_notes(self) -> list[Event]:
        """Note-offs for every sounding note (and pedal up), without running
        the model again (the way out when the backend itself failed)."""
        return self.stages[-1].flush()

    def skip(self, n_samples: int) -> list[Event]:
        """Audio was lost (overrun): ``n_samples`` (source rate) are missing
        after the samples fed so far.

        The audio before the gap is finished as if the stream ended there (its
        last frames are predicted with silence after them), every note still
        sounding is closed at the gap (at most one hop after its start), a
        pedal that is down goes up there, the
        stages restart, and the stream goes on after the gap: the first block
        after it gives the stages their new start (``Block.start_s``), so events
        after it carry the audio time they would have had without the loss.
        """
        gap_s = self.position / self.source_rate
        events = self._flush(close_at=gap_s) if self.position > self._segment else self.stages[-1].flush(gap_s)
        self.position += n_samples
        self.dropped_samples += n_samples
        for stage in self.stages:
            stage.reset()
        self._segment = self.position
        return events

    def _flush(self, *, silence_after: bool = False, close_at: float | None = None) -> list[Event]:
        """Flush the stages in order: each processes what the one before it
        let out at the end and then lets out what it held back, both at once
        for the next stage; the decoder's flush closes the sounding notes (at
        ``close_at``, audio time, when later than the next frame)."""
        for stage in self.stages:
            if isinstance(stage, FrontendStage):
                stage.silence_after = silence_after
        outs: list = []  # what the previous stage let out
        for stage in self.stages[:-1]:
            outs = [self._call(stage, out) for out in outs if _rows(out)] + [stage.flush()]
            outs = [out for out in outs if _rows(out)]
            if outs and isinstance(outs[0], Block):
                outs = [_join(outs)]
        decoder = self.stages[-1]
        return [e for out in outs for e in self._call(decoder, out)] + decoder.flush(close_at)

    def _run(self, out, first: int) -> list[Event]:
        """``out`` through the stages from index ``first`` on; the events."""
        for stage in self.stages[first:]:
            if not _rows(out):
                return []
            out = self._call(stage, out)
        return out

    def _call(self, stage, x):
        """``stage.process(x)``, timed when timings are kept."""
        t0 = time.perf_counter()
        out = stage.process(x)
        if self.timings is not None and (_rows(out) or stage is self.stages[-1]):
            self.timings.per_stage.setdefault(stage.name, []).append(time.perf_counter() - t0)
            if stage.name == "predictor":
                self.timings.frames.append(out.n_frames)
        return out


def _join(blocks: list[Block]) -> Block:
    """Consecutive blocks of one stream as one."""
    if len(blocks) == 1:
        return blocks[0]
    floors = [b.noise_floor for b in blocks]
    return Block(blocks[0].position, np.concatenate([b.samples for b in blocks]),
                 None if any(f is None for f in floors) else np.concatenate(floors), blocks[0].start_s)
