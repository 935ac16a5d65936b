"""Sympathetic string resonance: what the dampers let the other strings add (training data).

A real piano's strings ring along with what is played whenever their dampers are up: all
of them while the sustain pedal is down, a held key's own string otherwise. That halo
(harmonically related strings swelling, dying away when the pedal comes up) is the sound
of the pedal, and it is on real recordings; the sampled renders lack it, so the pedal is
heard there only through notes that go on after their key's release.

- ``damper_free(perf, n_blocks, block_s)``: (n_blocks, 88) bool, each key's damper up.
- ``string_resonance(dry, perf, sr, coupling_db)``: (n,) float32, the 88 strings' added sound.

Each string is a feedback comb (Karplus-Strong: a delay of one period and a two-point
average in the loop), so it passes the partials of the input that lie on its harmonics
and sustains them: for ``T60_FREE_S`` (its key's value) while its damper is up, for
``T60_DAMPED_S`` once the damper is down. Its input is scaled by (1 - loop gain when
free), so a free string's peak gain is about 1 (0 dB); ``coupling_db`` scales the sum.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rtpitch.events import LOWEST_MIDI, N_KEYS
from train.harmonics import key_hz

BLOCK_S = 0.01  # damper states change at this resolution, seconds
T60_DAMPED_S = 0.12  # a string under its damper
T60_FREE_LOW_S, T60_FREE_HIGH_S = 12.0, 1.0  # free strings, A0 and C8 (geometric in between)


def t60_free() -> np.ndarray:
    """(88,) float64 decay times of free strings, seconds (long in the bass, short in the treble)."""
    return T60_FREE_LOW_S * (T60_FREE_HIGH_S / T60_FREE_LOW_S) ** (np.arange(N_KEYS) / (N_KEYS - 1))


def damper_free(perf, n_blocks: int, block_s: float = BLOCK_S) -> np.ndarray:
    """(n_blocks, 88) bool: the key's damper is up during the block (pedal down, or the key held)."""
    t = (np.arange(n_blocks) + 0.5) * block_s
    free = np.repeat(perf.pedal_down_at(t)[:, None], N_KEYS, axis=1)
    for on, off, p in zip(perf.onset, perf.offset, perf.pitch):
        a, b = int(on / block_s), int(np.ceil(off / block_s))
        free[max(a, 0):max(b, 0), int(p) - LOWEST_MIDI] = True
    return free


def loop_gain(period_samples: np.ndarray, t60_s: np.ndarray, sr: int) -> np.ndarray:
    """Gain per round trip of a delay of ``period_samples`` that decays 60 dB in ``t60_s``."""
    return 10.0 ** (-3.0 * period_samples / (sr * t60_s))


def string_resonance(dry: np.ndarray, perf, sr: int, coupling_db: float) -> np.ndarray:
    """(n,) float32: the strings' resonance to ``dry`` (n,) mono float (the rendered piano),
    ``coupling_db`` (e.g. -24) the level of a free string's resonant peak against its input."""
    x = np.ascontiguousarray(dry, dtype=np.float32)
    block = max(1, int(round(BLOCK_S * sr)))
    n_blocks = -(-len(x) // block)
    period = sr / key_hz()
    g_free = loop_gain(period, t60_free(), sr)
    g_damped = loop_gain(period, np.full(N_KEYS, T60_DAMPED_S), sr)
    gains = np.where(damper_free(perf, n_blocks, block / sr), g_free, g_damped).astype(np.float32)
    size = 1 << int(np.ceil(np.log2(period.max() + 4)))
    lines = np.zeros((N_KEYS, size), np.float32)
    last = np.zeros(N_KEYS, np.float32)
    out = np.zeros(len(x), np.float32)
    _strings(x, period - 0.5, (1.0 - g_free).astype(np.float32), gains, block, lines, last, out)
    out *= np.float32(10.0 ** (coupling_db / 20.0))
    return out


@njit(cache=True, nogil=True)
def _strings(x, delay, in_gain, gains, block, lines, last, out):  # pragma: no cover - numba
    """Sum of K feedback combs over x (n,): delay (K,) samples (the loop average adds 0.5),
    in_gain (K,), gains (n_blocks, K) loop gain per round trip, lines (K, 2**m) and last (K,)
    zeroed state, out (n,) written."""
    mask = lines.shape[1] - 1
    for n in range(len(x)):
        g = gains[n // block]
        xn = x[n]
        acc = 0.0
        for k in range(len(delay)):
            pos = n - delay[k]
            i = int(np.floor(pos))
            fr = pos - i
            z = (1.0 - fr) * lines[k, i & mask] + fr * lines[k, (i + 1) & mask]
            y = in_gain[k] * xn + g[k] * 0.5 * (z + last[k])
            last[k] = z
            lines[k, n & mask] = y
            acc += y
        out[n] = acc
