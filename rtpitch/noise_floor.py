"""The input's noise floor, per frame, for the decoder's noise-adaptive onset threshold.

Per frame: the mean of its log-mel bins (natural log of power), smoothed by a
one-pole filter (time constant ``smooth_s``), then the minimum of that over
the last ``window_s`` seconds (minimum statistics: between notes, even dense
music falls back to its background, and steady noise never does).  Units are
those of the log-mel.  Measured (seed-cnn frontend): white / pink noise at
-20 dBFS sit at -1.2 / -1.5, at -40 dBFS at -3.5 / -3.8; rendered piano music
at -5.6 to -2.6 (the loudest of 30 validation pieces).

``push(frames (k, n_mels)) -> floors (k,)``: one value per frame, from that
frame and the ones before it (causal); ``reset()`` forgets the history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np

from .stage import Block


class NoiseFloor:
    """Running minimum of the smoothed mean log-mel (see module docstring)."""

    def __init__(self, hop_s: float, *, smooth_s: float = 0.2, window_s: float = 3.0):
        self.alpha = 1.0 - float(np.exp(-hop_s / smooth_s))
        self.window = max(1, int(round(window_s / hop_s)))
        self.reset()

    def reset(self) -> None:
        self._level = None
        self._recent: deque = deque()  # (frame index, smoothed level), increasing levels (monotonic queue)
        self._n = 0

    def push(self, frames: np.ndarray) -> np.ndarray:
        out = np.empty(frames.shape[0], np.float32)
        for i, e in enumerate(frames.mean(axis=1, dtype=np.float64)):
            self._level = e if self._level is None else self._level + self.alpha * (e - self._level)
            while self._recent and self._recent[-1][1] >= self._level:
                self._recent.pop()
            self._recent.append((self._n, self._level))
            if self._recent[0][0] <= self._n - self.window:
                self._recent.popleft()
            out[i] = self._recent[0][1]
            self._n += 1
        return out


class NoiseFloorStage:
    """The noise floor as a pipeline stage (:class:`rtpitch.stage.Stage`): blocks
    of frames in, the same blocks with their ``noise_floor`` out (causal: no
    latency)."""

    name = "noise floor"
    latency_label = "noise floor"
    latency_s = 0.0

    def __init__(self, hop_s: float):
        self.floor = NoiseFloor(hop_s)
        self._next = 0  # position after the last frame seen

    def reset(self) -> None:
        self.floor.reset()
        self._next = 0

    def process(self, block: Block) -> Block:
        self._next = block.end
        return replace(block, noise_floor=self.floor.push(block.samples))

    def flush(self) -> Block:
        return Block(self._next, np.zeros((0, 0), np.float32), noise_floor=np.zeros(0, np.float32))
