"""Streaming sample-rate conversion: a low-delay polyphase FIR resampler.

The ratio out/in is reduced to L/M; one linear-phase Kaiser-windowed sinc,
designed at the rate in*L, is split into L polyphase branches (numba kernel).
It passes 0..0.45*min(in, out) (ripple < 0.01 dB) and stops 0.5*min(in, out)
upwards (>= 70 dB; 73.6 dB measured), with its cutoff at 0.475*min(in, out);
the filter length follows from Kaiser's formula for that transition band.

Output sample j is the signal at input time j / out_rate: the filter is
centred on it (group delay compensated, zeros before the signal), so a click
at input time t comes out at output time t. Output j is emitted as soon as the
last input its filter reaches has arrived, so the stream holds back the
filter's half-length (group delay) less up to one output sample; ``delay_s``
and ``max_delay_s`` give that exactly for ``block``-sample input blocks.

For a 16 kHz output (transition band 7.2..8 kHz; 3.6..4 kHz from 8 kHz):

    in rate    inputs per output   group delay   delay_s / max_delay_s (256)
    192 kHz         1107             2.88 ms        2.85 / 2.88 ms
     96 kHz          555             2.89 ms        2.85 / 2.88 ms
     48 kHz          279             2.90 ms        2.88 / 2.90 ms
   44.1 kHz        253-254           2.88 ms        2.84 / 2.88 ms
  22.05 kHz        126-127           2.88 ms        2.84 / 2.88 ms
      8 kHz         93-94            5.81 ms        5.81 / 5.81 ms

``flush()`` ends the signal: an input of n samples gives ceil(n*out/in)
output samples in all, one for every output time inside the signal (soxr
rounds n*out/in to nearest instead: at most one sample fewer). Streaming is
bit-identical to one call on the whole signal, for any block sizes.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import numba
import numpy as np

from .errors import ConfigError
from .stage import Block

# the sample rates rtpitch accepts anywhere (files, devices, models), Hz
MIN_RATE, MAX_RATE = 8000, 192000
PASS, STOP = 0.45, 0.5  # band edges, fractions of min(in, out)
ATTEN_DB = 74.0  # Kaiser design target (the formula slightly over-promises)
MAX_TAPS = 1 << 22  # coefficients (float64) in one filter table


class _Filter(NamedTuple):
    """Polyphase branches of one Kaiser-sinc filter.

    Output j, with j*step = k0*up + p, is taps[p, :last[p]-first[p]+1] (oldest
    input first, float64 (up, K)) applied to inputs k0+first[p] .. k0+last[p];
    half is the half-length in samples at the design rate in_rate*up.
    """

    taps: np.ndarray
    first: np.ndarray
    last: np.ndarray
    up: int
    step: int
    half: int


@lru_cache(maxsize=8)
def _design(in_rate: int, out_rate: int) -> _Filter:
    """Kaiser-windowed sinc for in_rate -> out_rate, split into branches."""
    g = math.gcd(in_rate, out_rate)
    up, step = out_rate // g, in_rate // g
    rate = in_rate * up  # design rate
    fmin = min(in_rate, out_rate)
    width = 2 * np.pi * (STOP - PASS) * fmin / rate  # transition, rad/sample
    half = math.ceil((ATTEN_DB - 7.95) / (2.285 * width) / 2)
    branch = np.arange(up)
    first = -((half - branch) // up)
    last = (branch + half) // up
    size = int((last - first).max()) + 1
    if up * size > MAX_TAPS:
        raise ConfigError(f"resampler: {in_rate} -> {out_rate} Hz needs {up} filter branches; "
                          "use a common rate")
    beta = 0.1102 * (ATTEN_DB - 8.7)
    fc = (PASS + STOP) / 2 * fmin / rate
    taps = np.zeros((up, size))
    for b in range(up):
        n = b - np.arange(first[b], last[b] + 1) * up  # design-rate offsets, |n| <= half
        h = np.sinc(2 * fc * n) * np.i0(beta * np.sqrt(1 - (n / half) ** 2))
        taps[b, : n.size] = h / h.sum()  # unit DC gain in every branch
    first, last = first.astype(np.int64), last.astype(np.int64)
    for arr in (taps, first, last):
        arr.flags.writeable = False
    return _Filter(taps, first, last, up, step, half)


@numba.njit(nogil=True, cache=True)
def _fir(buf, k0, p, taps, first, last, step, out):
    """Write the outputs computable from ``buf`` into ``out``, in order.

    buf: float64 input; the next output has branch p and centre input k0
    (index into buf). Returns (n written, k0, p) for the output after them.
    """
    up = taps.shape[0]
    n = 0
    while n < out.shape[0] and k0 + last[p] < buf.shape[0]:
        base = k0 + first[p]
        m = last[p] - first[p] + 1
        a0 = a1 = a2 = a3 = 0.0
        i = 0
        while i + 4 <= m:
            a0 += taps[p, i] * buf[base + i]
            a1 += taps[p, i + 1] * buf[base + i + 1]
            a2 += taps[p, i + 2] * buf[base + i + 2]
            a3 += taps[p, i + 3] * buf[base + i + 3]
            i += 4
        while i < m:
            a0 += taps[p, i] * buf[base + i]
            i += 1
        out[n] = (a0 + a1) + (a2 + a3)
        n += 1
        p += step
        k0 += p // up
        p %= up
    return n, k0, p


def _held_back(f: _Filter, out_rate: int, block: int) -> tuple[float, float]:
    """Mean and max output held back (s) in steady state, ``block``-sample blocks.

    After n inputs the stream has emitted every j with j*step + half < n*up;
    the deficit n*up/step - emitted is periodic in the block count: averaged
    over one period.
    """
    period = f.step // math.gcd(block * f.up, f.step)
    k = np.arange(period, dtype=np.int64) + f.half // (block * f.up) + 1
    n_up = k * block * f.up
    emitted = -((f.half - n_up) // f.step)
    deficit = n_up / f.step - emitted
    return float(deficit.mean() / out_rate), float(deficit.max() / out_rate)


class StreamResampler:
    """Streaming mono resampler; identity when the rates are equal.

    Parameters
    ----------
    in_rate, out_rate : int
        Sample rates (Hz), MIN_RATE..MAX_RATE (8000..192000).
    block : int
        Input block size (samples) assumed for ``delay_s``.

    Attributes
    ----------
    delay_s, max_delay_s : float
        Output held back by the stream in steady state, mean and max over
        ``block``-sample input blocks (s); 0 for the identity.
    """

    def __init__(self, in_rate: int, out_rate: int, *, block: int = 256):
        if in_rate <= 0 or out_rate <= 0:
            raise ConfigError(f"resampler: rates must be > 0 Hz, got {in_rate} -> {out_rate}")
        for r in (in_rate, out_rate):
            if not MIN_RATE <= r <= MAX_RATE:
                raise ConfigError(f"resampler: rate {r} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
        if block <= 0:
            raise ConfigError(f"resampler: block must be > 0 samples, got {block}")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.identity = self.in_rate == self.out_rate
        if self.identity:
            self.delay_s = self.max_delay_s = 0.0
            return
        self._f = _design(self.in_rate, self.out_rate)
        self.delay_s, self.max_delay_s = _held_back(self._f, self.out_rate, block)
        self.reset()

    def reset(self) -> None:
        """Forget all input: the next sample is sample 0 of a new signal."""
        if self.identity:
            return
        pre = -int(self._f.first[0])  # zeros before the signal for output 0
        self._hist = np.zeros(pre)
        self._k0, self._p = pre, 0
        self._n_in = self._n_out = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample mono float32 samples (n,) -> (m,) at ``out_rate``."""
        if self.identity:
            return x
        self._n_in += x.shape[0]
        return self._run(np.asarray(x, dtype=np.float32))

    def flush(self) -> np.ndarray:
        """End the signal (zeros after it): return the rest of the output and reset.

        The whole signal gives ceil(n_in * out_rate / in_rate) samples.
        """
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        f = self._f
        total = -(-self._n_in * f.up // f.step)
        need = ((total - 1) * f.step + f.half) // f.up + 1  # inputs for the last one
        done = self._n_out
        y = self._run(np.zeros(max(0, need - self._n_in), dtype=np.float32))[: total - done]
        self.reset()
        return y

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Append x to the history; return the outputs it completes (m,) float32."""
        f = self._f
        buf = np.concatenate((self._hist, x))
        out = np.empty(x.shape[0] * f.up // f.step + 1, dtype=np.float32)
        n, k0, p = _fir(buf, self._k0, self._p, f.taps, f.first, f.last, f.step, out)
        keep = k0 + int(f.first[p])  # the oldest input still needed
        self._hist = buf[keep:].copy()
        self._k0, self._p = k0 - keep, p
        self._n_out += n
        return out[:n]


class ResampleStage:
    """The resampler as a pipeline stage (:class:`rtpitch.stage.Stage`): source
    blocks (native rate, positions in the source's count) in, blocks at
    ``out_rate`` out, positions counted from the stream's start.

    The first block after :meth:`reset` fixes the stream's start: its
    ``position / in_rate`` (s) becomes ``start_s`` of every block after it, so
    a stream restarted after a gap keeps its audio time.
    """

    name = "resampler"
    latency_label = "resampler delay"

    def __init__(self, in_rate: int, out_rate: int, *, block: int = 256):
        self.resampler = StreamResampler(in_rate, out_rate, block=block)
        self.latency_s = self.resampler.delay_s
        self.reset()

    def reset(self) -> None:
        self.resampler.reset()
        self._out = 0  # output samples so far
        self._start_s = None

    def process(self, block):
        if self._start_s is None:
            self._start_s = block.start_s + block.position / self.resampler.in_rate
        y = self.resampler.process(block.samples)
        out = Block(self._out, y, start_s=self._start_s)
        self._out += y.shape[0]
        return out

    def flush(self):
        y = self.resampler.flush()
        out = Block(self._out, y, start_s=self._start_s or 0.0)
        self._out += y.shape[0]
        return out
