"""Streaming sample-rate conversion (libsoxr via python-soxr).

soxr's output is time-aligned with its input (an impulse at input time t comes
out at output time t: the filter's group delay is compensated), but the stream
holds back output until it has the input its filter needs. That held-back
audio is this stage's latency; :class:`StreamResampler` measures it once at
construction and exposes it as ``delay_s`` (mean) and ``max_delay_s``.
"""

from __future__ import annotations

import numpy as np
import soxr

from .errors import ConfigError

_QUALITIES = ("LQ", "MQ", "HQ", "VHQ")


def _measure_delay(in_rate: int, out_rate: int, quality: str, block: int) -> tuple[float, float]:
    """Mean and max held-back output (s) while 1 s of input is fed in ``block``-sample blocks."""
    s = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
    x = np.zeros(block, dtype=np.float32)
    got = 0
    deficits = []
    n_blocks = max(1, in_rate // block)
    for k in range(1, n_blocks + 1):
        got += s.resample_chunk(x).shape[0]
        if k > n_blocks // 4:  # skip the start-up transient
            deficits.append(k * block * out_rate / in_rate - got)
    d = np.asarray(deficits)
    return float(d.mean() / out_rate), float(d.max() / out_rate)


class StreamResampler:
    """Streaming mono resampler; identity when the rates are equal.

    Parameters
    ----------
    in_rate, out_rate : int
        Sample rates (Hz).
    quality : {"LQ", "MQ", "HQ", "VHQ"}
        soxr quality recipe.
    block : int
        Input block size (samples) assumed when measuring ``delay_s``.

    Attributes
    ----------
    delay_s, max_delay_s : float
        Output held back by the stream, mean and max over 1 s of input fed in
        ``block``-sample blocks (s); 0 for the identity.
    """

    def __init__(self, in_rate: int, out_rate: int, *, quality: str = "HQ", block: int = 256):
        if in_rate <= 0 or out_rate <= 0:
            raise ConfigError(f"resampler: rates must be > 0 Hz, got {in_rate} -> {out_rate}")
        if quality not in _QUALITIES:
            raise ConfigError(f"resampler: quality must be one of {', '.join(_QUALITIES)}, got {quality!r}")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.quality = quality
        self.identity = self.in_rate == self.out_rate
        if self.identity:
            self.delay_s = self.max_delay_s = 0.0
            self._stream = None
        else:
            self.delay_s, self.max_delay_s = _measure_delay(self.in_rate, self.out_rate, quality, block)
            self._stream = soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=quality)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample mono float32 samples (n,) -> (m,) at ``out_rate``."""
        if self._stream is None:
            return x
        return self._stream.resample_chunk(np.ascontiguousarray(x, dtype=np.float32))

    def flush(self) -> np.ndarray:
        """End the signal and return the held-back output."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)

    def reset(self) -> None:
        """Forget all input: the next sample starts a new signal."""
        if self._stream is not None:
            self._stream.clear()
