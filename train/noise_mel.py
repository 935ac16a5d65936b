"""Loud background noise added to training crops in the log-mel domain.

The rendered data carries noise 25-60 dB below the music and no stretch of
noise alone, so a model trained on it has never heard hiss without a piano:
white or pink noise at -20 dBFS made the seed CNN fire 1.4-6 false notes a
minute (benchmarks/hostile_audio.py).  This module replaces a crop's music by
noise alone at an absolute level (its labels emptied), or mixes noise into the
music at a signal-to-noise ratio the music can still be heard through (a
model asked to find notes it cannot hear learns to invent them), at the cost
of one exp/log per crop instead of re-rendering audio.

Noise and music are independent, so their powers add (the cross term averages
out over a mel band):  ``mel' = log(exp(mel) - off + g * N + off)`` with ``off``
the frontend's log offset, ``N`` the mel power of unit-RMS noise (white, pink
or brown, made once through rtpitch's own frontend) and ``g`` the noise power.
"""

from __future__ import annotations

import numpy as np

from augment import _colored_noise
from rtpitch.frontend import FrontendSpec, logmel

COLORS = ("white", "pink", "brown")


class NoiseBank:
    """Mel power (T, n_mels) of ``seconds`` of unit-RMS noise per colour.

    frontend: the FrontendSpec fields of the data (a dict).
    """

    def __init__(self, frontend: dict, *, seconds: float = 60.0, seed: int = 0):
        spec = FrontendSpec(**frontend)
        self.log_offset = spec.log_offset
        rng = np.random.default_rng(seed)
        n = int(seconds * spec.sample_rate)
        self.power = {}
        for color in COLORS:
            x = _colored_noise(n, rng, color)
            x = (x / np.sqrt(np.mean(x * x))).astype(np.float32)
            self.power[color] = np.exp(logmel(x, spec).astype(np.float64)) - self.log_offset

    def _noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        bank = self.power[COLORS[int(rng.integers(len(COLORS)))]]
        start = int(rng.integers(0, bank.shape[0] - n))
        return bank[start : start + n]

    def alone(self, n: int, rng: np.random.Generator, *, level_db: float) -> np.ndarray:
        """(n, n_mels) log-mel of noise alone at ``level_db`` dBFS RMS."""
        noise = self._noise(n, rng) * 10.0 ** (level_db / 10.0)
        return np.log(noise + self.log_offset).astype(np.float32)

    def mix(self, mel: np.ndarray, rng: np.random.Generator, *, snr_db: float) -> np.ndarray:
        """``mel`` (L, n_mels) with noise ``snr_db`` below its mean mel power."""
        music = np.maximum(np.exp(mel.astype(np.float64)) - self.log_offset, 0.0)
        noise = self._noise(mel.shape[0], rng)
        noise *= music.mean() / noise.mean() * 10.0 ** (-snr_db / 10.0)
        return np.log(music + noise + self.log_offset).astype(np.float32)
