"""What flows between a source, the stages and the sinks, and the protocols they keep.

    Source ──Block(audio)──► resampler ──► frontend ──► noise floor ──► predictor ──► decoder ──► sinks
                         samples      samples     frames      frames+floor  Activations  events

Every stage between the source and the sinks has the same small interface
(:class:`Stage`): ``process(block) -> block``, ``flush() -> block`` (the end of
the stream: what it still holds back), ``reset()`` (forget the stream: the
next block starts a new one) and ``latency_s`` (how long after a moment of
the input the stage can give the output for it). A :class:`Block` carries its
start position (``position``: index of its first row at the stage's rate,
counted from the stream's start ``start_s``) and its side data (the noise floor
of each frame) along with it, so no stage parks anything for another one.
The engine (:mod:`rtpitch.engine`) is the list of the stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import numpy as np

from .events import Activations, Event, NoteEvent, PedalEvent


@dataclass(frozen=True)
class Block:
    """A run of rows at one rate: audio samples (n,) or log-mel frames (k, n_mels).

    position: index of ``samples[0]`` at this rate, counted from the start of
        the stream (a source's own sample count at its native rate; after a
        gap the stages count again from the gap's end, see ``start_s``).
    samples: float32, first axis = time at this rate.
    noise_floor: float32 (k,), the input's noise floor at each frame
        (:mod:`rtpitch.noise_floor`), or None (not known yet, or not frames).
    start_s: audio time (s) of position 0: 0 for a source's blocks; after a
        gap in the input, the time the stages restarted at.
    """

    position: int
    samples: np.ndarray
    noise_floor: Optional[np.ndarray] = None
    start_s: float = 0.0

    @property
    def end(self) -> int:
        """Position after the last row."""
        return self.position + self.samples.shape[0]


@runtime_checkable
class Stage(Protocol):
    """One step between source and sinks (module docstring).

    ``process`` and ``flush`` return what is complete: an empty block (or no
    events) while the stage still waits for input. The output for a whole
    stream equals the concatenated outputs for any cut of it into blocks.
    """

    name: str  # short: "resampler", "frontend", ... (timings)
    latency_label: str  # its term in the latency budget
    latency_s: float

    def process(self, block): ...

    def flush(self): ...

    def reset(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Where events go (:mod:`rtpitch.sinks`): ``send(events)`` (NoteEvent and
    PedalEvent, in time order), ``close()``."""

    def send(self, events: list[Event]) -> None: ...

    def close(self) -> None: ...


class Source:
    """Where audio blocks come from: a device (:class:`rtpitch.capture.DeviceSource`)
    or a file (:class:`rtpitch.filesource.FileSource`).

    A source sets ``sample_rate`` (Hz, native) and implements ``start()``,
    ``read(timeout_s) -> Block | None`` (mono float32; ``position`` counts the
    source's samples, a jump is audio it lost), ``stop()`` and ``finished``
    (True: no more blocks will come). The flags and counters below default to
    "nothing happened"; a source that can tell overrides them (as attributes
    or properties).
    """

    sample_rate: int
    finished: bool
    ends_in_silence = False  # the input is silent after its end (a recording): Engine.finish(silence_after)
    lost = False  # the stream stopped by itself (a device gone, a JACK server dead)
    error: str | None = None  # one line saying why, when lost
    overrun_samples = 0  # samples dropped because the reader fell behind
    overrun_blocks = 0  # blocks dropped for the same reason
    input_overflows = 0  # blocks the audio system flagged as lost before rtpitch saw them
    nonfinite_samples = 0  # NaN/Inf samples replaced by 0

    def origin_monotonic(self) -> float | None:
        """``time.monotonic()`` of audio time 0, where the source has a clock."""
        return None


__all__ = ["Activations", "Block", "Event", "NoteEvent", "PedalEvent", "Sink", "Source", "Stage"]
