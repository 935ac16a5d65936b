"""Typed values passed between stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

LOWEST_MIDI = 21  # A0, key 0 of every (n, 88) array
N_KEYS = 88  # A0 .. C8
HIGHEST_MIDI = LOWEST_MIDI + N_KEYS - 1  # 108, C8
SUSTAIN_CC = 64  # MIDI controller of the sustain pedal (value >= 64: down)


@dataclass(frozen=True)
class NoteEvent:
    """A note-on (``on=True``, velocity 1..127) or note-off (velocity 0).

    ``time_s`` is the audio time of the frame the event belongs to (seconds from
    the first sample of the stream); ``frame`` is that frame's index.
    """

    time_s: float
    pitch: int
    velocity: int
    on: bool
    frame: int


@dataclass(frozen=True)
class PedalEvent:
    """The sustain pedal went down (``down=True``, MIDI CC64 127) or up (CC64 0).

    ``time_s`` (audio time, seconds) and ``frame`` as in :class:`NoteEvent`.
    """

    time_s: float
    down: bool
    frame: int


Event = Union[NoteEvent, PedalEvent]


@dataclass(frozen=True)
class Activations:
    """Model outputs for frames ``first_frame .. first_frame + n - 1``.

    frame, onset: probabilities, float32 (n, N_KEYS), key 0 = MIDI LOWEST_MIDI (A0).
    velocity: float32 (n, 88) in [0, 1] (MIDI velocity / 127), or None.
    noise_floor: float32 (n,), the input's noise floor at each frame
    (:mod:`rtpitch.noise_floor`), or None.
    start_s: audio time (s) of frame 0 (nonzero after a gap in the input:
    frames are counted again from the restart; :class:`rtpitch.stage.Block`).
    pedal: float32 (n,), probability that the sustain pedal is down, or None
    (the model has no pedal head).
    offset: float32 (n, 88), probability that the key was released at the
    frame (the model's offset head), or None.
    """

    first_frame: int
    frame: np.ndarray
    onset: np.ndarray
    velocity: Optional[np.ndarray] = None
    noise_floor: Optional[np.ndarray] = None
    start_s: float = 0.0
    pedal: Optional[np.ndarray] = None
    offset: Optional[np.ndarray] = None

    @property
    def n_frames(self) -> int:
        return self.frame.shape[0]
