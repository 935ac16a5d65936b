"""The streaming engine: samples in, note events out, one path for live and files.

    samples (source rate) -> StreamResampler -> MelFrontend
        -> predictor (step graph, or window graph on FrameWindow windows)
        -> NoteDecoder -> events (audio time, seconds)

``Engine.feed`` takes mono float32 blocks at the source rate; ``Engine.finish``
flushes every stage and closes sounding notes.  Compute time per stage is kept
in ``Engine.timings`` for the latency report and benchmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .decoder import NoteDecoder
from .events import Activations, NoteEvent
from .frontend import MelFrontend
from .model import ModelSpec
from .noise_floor import NoiseFloor
from .resample import StreamResampler
from .predictor import make_predictor


@dataclass
class StageTimes:
    """Per-call compute times in seconds, one list per stage."""

    frontend: list = field(default_factory=list)
    inference: list = field(default_factory=list)
    decoder: list = field(default_factory=list)
    frames: list = field(default_factory=list)  # frames handled by each inference call


class Engine:
    """Turns a stream of samples into note events.

    Parameters
    ----------
    spec : the model description (frontend, window, decoder thresholds).
    backend : an object with ``infer(mel (1, T, n_mels)) -> {head: (T-w+1, 88)}``
        and optionally ``make_stepper()`` (see :mod:`rtpitch.backends.base`).
    source_rate : sample rate of the samples given to ``feed`` (Hz).
    keep_timings : record per-stage compute times (for reports and benchmarks).
    step : run the model's step graph where the backend has one (same
        predictions, less compute per hop); False: always the window graph.
    on_activations : called with each :class:`~rtpitch.events.Activations`
        before it is decoded (for tools: decoder tuning, analysis).
    """

    def __init__(self, spec: ModelSpec, backend, *, source_rate: int, keep_timings: bool = False,
                 step: bool = True, on_activations=None):
        self.spec = spec
        self.backend = backend
        self.source_rate = int(source_rate)
        fe = spec.frontend
        self.resampler = StreamResampler(self.source_rate, fe.sample_rate)
        self.frontend = MelFrontend(fe)
        self.predictor = make_predictor(backend, spec, step=step)
        self.decoder = NoteDecoder(spec.decoder, fe.hop_s)
        self.noise_floor = NoiseFloor(fe.hop_s)
        self._floors = np.zeros(0, np.float32)  # noise floor of frames not yet predicted
        self._floors_first = 0  # frame index of _floors[0]
        self.timings = StageTimes() if keep_timings else None
        self.on_activations = on_activations
        self._heads = tuple(spec.outputs)
        self.time_offset_s = 0.0
        self.dropped_samples = 0
        self._fed = 0  # samples fed since the last restart (source rate)

    def feed(self, samples: np.ndarray) -> list[NoteEvent]:
        """Process mono float32 samples at the source rate; return new events."""
        self._fed += samples.shape[0]
        t0 = time.perf_counter()
        frames = self.frontend.process(self.resampler.process(samples))
        self._add_floors(frames)
        t1 = time.perf_counter()
        if self.timings is not None and frames.shape[0]:
            self.timings.frontend.append(t1 - t0)
        return self._run(frames)

    def finish(self, silence_after: bool = False) -> list[NoteEvent]:
        """End of stream: flush all stages, close every sounding note.

        ``silence_after``: the sound ended here (a recording's end), so the
        engine hears silence on until no window holds the sound, as a live
        stream does after a recording stops; otherwise (a stop, a lost
        device) it knows nothing after the last sample and its last frames
        are those whose window ends by it.
        """
        events = self._flush_stages(silence_after)
        events += self._shift(self.decoder.close())
        return events

    def close_notes(self) -> list[NoteEvent]:
        """Note-offs for every sounding note, without running the model again
        (the way out when the backend itself failed)."""
        return self._shift(self.decoder.close())

    def skip(self, n_samples: int) -> list[NoteEvent]:
        """Audio was lost (overrun): ``n_samples`` (source rate) are missing
        after the samples fed so far.

        The audio before the gap is finished as if the stream ended there (its
        last frames are predicted with silence after them), every note still
        sounding is closed at the gap (at most one hop after its start), the
        stages restart, and the clock moves past the gap: events after it carry
        the audio time they would have had without the loss.
        """
        events = self._flush_stages() if self._fed else []
        events += self._shift(self.decoder.close(self._fed / self.source_rate))
        self.time_offset_s += (self._fed + n_samples) / self.source_rate
        self.dropped_samples += n_samples
        for stage in (self.resampler, self.frontend, self.predictor, self.decoder, self.noise_floor):
            stage.reset()
        self._floors, self._floors_first = np.zeros(0, np.float32), 0
        self._fed = 0
        return events

    def _flush_stages(self, silence_after: bool = False) -> list[NoteEvent]:
        """Push the held-back samples and frames through (then, with
        ``silence_after``, a window's length of silence); decode the last frames."""
        fe = self.spec.frontend
        tail = self.resampler.flush()
        if silence_after:
            tail = np.concatenate([tail, np.zeros(fe.n_fft - fe.fall, np.float32)])
        frames = self.frontend.process(tail)
        frames = np.concatenate([frames, self.frontend.flush()])
        self._add_floors(frames)
        events = self._run(frames)
        events += self._run(None)
        return events

    def _run(self, frames) -> list[NoteEvent]:
        """Predict from new ``frames`` (k, n_mels), or flush the predictor (None); decode."""
        t0 = time.perf_counter()
        first, out = self.predictor.flush() if frames is None else self.predictor.push(frames)
        if out is None:
            return []
        t1 = time.perf_counter()
        n = out["frame"].shape[0]
        skip = first - self._floors_first
        floors = self._floors[skip : skip + n]
        self._floors, self._floors_first = self._floors[skip + n :], first + n
        acts = Activations(
            first_frame=first,
            frame=out["frame"], onset=out["onset"], velocity=out.get("velocity"), noise_floor=floors,
        )
        if self.on_activations is not None:
            self.on_activations(acts)
        events = self.decoder.process(acts)
        t2 = time.perf_counter()
        if self.timings is not None:
            self.timings.inference.append(t1 - t0)
            self.timings.decoder.append(t2 - t1)
            self.timings.frames.append(acts.n_frames)
        return self._shift(events)

    def _add_floors(self, frames: np.ndarray) -> None:
        if frames.shape[0]:
            self._floors = np.concatenate([self._floors, self.noise_floor.push(frames)])

    def _shift(self, events: list[NoteEvent]) -> list[NoteEvent]:
        if not self.time_offset_s:
            return events
        return [NoteEvent(e.time_s + self.time_offset_s, e.pitch, e.velocity, e.on, e.frame) for e in events]
