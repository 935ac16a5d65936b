"""Frame windows for the model: the last ``window_frames`` frames, per hop.

The model predicts frame ``j`` from frames ``j - context .. j + lookahead``.
The stream starts with ``context`` silent frames before frame 0 and, on
``flush()``, gets ``lookahead`` silent frames after the last one, so every real
frame is predicted exactly once, as in training.
"""

from __future__ import annotations

import numpy as np


class FrameWindow:
    """Collects frames and hands out model inputs.

    ``push(frames (k, n_mels))`` returns ``(first, mel)`` where ``mel`` is
    (1, window - 1 + m, n_mels) float32 covering the m frames now predictable,
    the first of which is frame ``first`` (None when none is ready).
    """

    def __init__(self, *, n_mels: int, window_frames: int, lookahead_frames: int, pad_value: float):
        self.n_mels = n_mels
        self.window = window_frames
        self.lookahead = lookahead_frames
        self.context = window_frames - 1 - lookahead_frames
        self.pad_value = np.float32(pad_value)
        self.reset()

    @property
    def latency_frames(self) -> int:
        """Frames that must arrive after a frame before it is predicted."""
        return self.lookahead

    def reset(self) -> None:
        self._frames = np.full((self.context, self.n_mels), self.pad_value, np.float32)
        self._next = 0  # index of the next frame to predict

    def push(self, frames: np.ndarray):
        if frames.shape[0]:
            self._frames = np.concatenate([self._frames, frames.astype(np.float32, copy=False)])
        ready = self._frames.shape[0] - self.window + 1
        if ready <= 0:
            return self._next, None
        mel = self._frames[None]
        first = self._next
        self._next += ready
        self._frames = self._frames[ready:]
        return first, mel

    def flush(self):
        """Pad ``lookahead`` silent frames: predictions for the last frames."""
        pad = np.full((self.lookahead, self.n_mels), self.pad_value, np.float32)
        return self.push(pad)
