"""Streaming log-mel frontend (numba).

Frame ``k`` is the windowed FFT of samples ``[k*hop - rise, k*hop + fall)`` of
the signal padded with zeros on both sides; its time stamp is the window's
peak, ``k*hop/sr`` seconds, and it can be computed once sample ``k*hop + fall``
has arrived (``fall / sr`` is the frontend's latency, "window alignment").
The window rises as half a Hann of length ``2*rise`` and falls as half a Hann of
length ``2*fall`` (``rise + fall = n_fft``).  By default ``fall = n_fft/2``: the
periodic Hann window stamped at its centre, i.e. ``librosa`` with
``center=True, pad_mode="constant"``.  A short ``fall`` (``window_fall`` in the
JSON) keeps the long window's frequency resolution with a short latency: the
frame sees mostly the past.
Each frame is computed by the same kernel from the same samples whatever the
block sizes, so streaming output is bit-identical to whole-signal output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import rocket_fft  # noqa: F401  (registers np.fft for numba)

from .errors import ConfigError
from .stage import Block


@dataclass(frozen=True)
class FrontendSpec:
    """Log-mel parameters, read from a model's JSON (``"frontend"``)."""

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    fmin: float
    fmax: float
    log_offset: float = 1e-4
    htk: bool = False
    window_fall: int | None = None  # samples from the window's peak to its end; None: n_fft/2

    def __post_init__(self):
        if self.n_fft % 2 or self.hop_length <= 0 or self.hop_length > self.n_fft:
            raise ConfigError(f"frontend: bad n_fft={self.n_fft} / hop_length={self.hop_length}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ConfigError(f"frontend: need 0 <= fmin < fmax <= sr/2, got {self.fmin}, {self.fmax}")
        if self.window_fall is not None and not 1 <= self.window_fall <= self.n_fft // 2:
            raise ConfigError(f"frontend: window_fall must be 1..n_fft/2 ({self.n_fft // 2}), got {self.window_fall}")

    @property
    def fall(self) -> int:
        """Samples from a frame's stamp (the window's peak) to its last sample."""
        return self.n_fft // 2 if self.window_fall is None else self.window_fall

    @property
    def rise(self) -> int:
        """Samples from a frame's first sample to its stamp."""
        return self.n_fft - self.fall

    @property
    def hop_s(self) -> float:
        """Hop in seconds."""
        return self.hop_length / self.sample_rate

    @property
    def alignment_s(self) -> float:
        """Delay from a frame's time stamp to the last sample it needs (s)."""
        return self.fall / self.sample_rate


def analysis_window(spec: FrontendSpec) -> np.ndarray:
    """The FFT window, float64 (n_fft,): half a Hann of length 2*rise rising to 1 at
    index ``rise``, then half a Hann of length 2*fall falling towards 0.  For
    ``rise == fall`` it is the periodic Hann window (scipy / librosa "hann")."""
    r, f = spec.rise, spec.fall
    up = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
    down = 0.5 + 0.5 * np.cos(np.pi * np.arange(f) / f)
    return np.concatenate([up, down])


def _hz_to_mel(f, htk):
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m, htk):
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def _band_edges_hz(spec: FrontendSpec) -> np.ndarray:
    """n_mels + 2 frequencies equally spaced in mel from fmin to fmax, Hz: band i
    rises from edge i, peaks at edge i + 1 and falls to edge i + 2."""
    lo, hi = _hz_to_mel(spec.fmin, spec.htk), _hz_to_mel(spec.fmax, spec.htk)
    return _mel_to_hz(np.linspace(lo, hi, spec.n_mels + 2), spec.htk)


def mel_band_centres(spec: FrontendSpec) -> np.ndarray:
    """The frequency at which each mel band peaks, (n_mels,) Hz, ascending."""
    return _band_edges_hz(spec)[1:-1]


@lru_cache(maxsize=8)
def mel_filterbank(spec: FrontendSpec) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape (n_mels, n_fft//2 + 1).

    Same construction as ``librosa.filters.mel(norm="slaney")``; the result is
    cached and read-only.
    """
    n_bins = spec.n_fft // 2 + 1
    fft_hz = np.linspace(0.0, spec.sample_rate / 2, n_bins)
    mel_hz = _band_edges_hz(spec)
    fdiff = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def _sparse_bands(weights: np.ndarray):
    """Non-zero span of each filter: (starts, stops) int64, shape (n_mels,)."""
    nz = weights > 0
    starts = np.where(nz.any(1), nz.argmax(1), 0).astype(np.int64)
    stops = np.where(nz.any(1), weights.shape[1] - nz[:, ::-1].argmax(1), 0).astype(np.int64)
    return starts, stops


@numba.njit(nogil=True, cache=True)
def _logmel_frames(buf, n_frames, hop, window, weights, starts, stops, log_offset, out):
    """Write ``n_frames`` log-mel frames of ``buf`` into ``out[:n_frames]``.

    buf: float32 samples, frame i covers buf[i*hop : i*hop + n_fft].
    out: float32 (>= n_frames, n_mels), allocated by the caller.
    """
    n_fft = window.shape[0]
    frame = np.empty(n_fft, dtype=np.float64)
    for i in range(n_frames):
        base = i * hop
        for j in range(n_fft):
            frame[j] = buf[base + j] * window[j]
        spec = np.fft.rfft(frame)
        for m in range(weights.shape[0]):
            acc = 0.0
            for b in range(starts[m], stops[m]):
                acc += weights[m, b] * np.abs(spec[b])
            out[i, m] = np.log(acc + log_offset)


class MelFrontend:
    """Streaming log-mel spectrogram: samples in, frames out.

    ``process(block)`` takes mono float32 samples at ``spec.sample_rate`` and
    returns the frames completed by them, float32 (n_frames, n_mels).
    ``flush()`` pads the end with ``fall`` zeros and returns the last frames.
    """

    def __init__(self, spec: FrontendSpec):
        self.spec = spec
        n = spec.n_fft
        self._window = analysis_window(spec)
        self._weights = mel_filterbank(spec).astype(np.float64)
        self._starts, self._stops = _sparse_bands(self._weights)
        self._buf = np.zeros(n, dtype=np.float32)
        self.reset()

    @property
    def latency_frames(self) -> float:
        """Delay from a frame's stamp to when it is computed, in hops."""
        return self.spec.fall / self.spec.hop_length

    def reset(self) -> None:
        """Forget all input: the next sample is sample 0 of a new signal."""
        self._fill = self.spec.rise  # the leading zero pad
        self._buf[: self._fill] = 0.0
        self.frames_out = 0

    def _ensure(self, size: int) -> None:
        if self._buf.shape[0] < size:
            grown = np.zeros(max(size, 2 * self._buf.shape[0]), dtype=np.float32)
            grown[: self._fill] = self._buf[: self._fill]
            self._buf = grown

    def process(self, block: np.ndarray) -> np.ndarray:
        """Append samples (n,) float32; return the completed frames (k, n_mels)."""
        n = block.shape[0]
        self._ensure(self._fill + n)
        self._buf[self._fill : self._fill + n] = block
        self._fill += n
        return self._emit()

    def flush(self) -> np.ndarray:
        """End the signal: zero-pad ``fall`` samples and return the last frames."""
        fall = self.spec.fall
        self._ensure(self._fill + fall)
        self._buf[self._fill : self._fill + fall] = 0.0
        self._fill += fall
        return self._emit()

    def _emit(self) -> np.ndarray:
        spec = self.spec
        if self._fill < spec.n_fft:
            return np.empty((0, spec.n_mels), dtype=np.float32)
        k = (self._fill - spec.n_fft) // spec.hop_length + 1
        out = np.empty((k, spec.n_mels), dtype=np.float32)
        _logmel_frames(self._buf, k, spec.hop_length, self._window, self._weights,
                       self._starts, self._stops, spec.log_offset, out)
        used = k * spec.hop_length
        rest = self._fill - used
        self._buf[:rest] = self._buf[used : self._fill]
        self._fill = rest
        self.frames_out += k
        return out


def logmel(samples: np.ndarray, spec: FrontendSpec) -> np.ndarray:
    """Whole-signal log-mel, (1 + n//hop, n_mels): the streaming frontend run once."""
    fe = MelFrontend(spec)
    head = fe.process(np.ascontiguousarray(samples, dtype=np.float32))
    return np.concatenate([head, fe.flush()])


class FrontendStage:
    """The log-mel frontend as a pipeline stage (:class:`rtpitch.stage.Stage`):
    blocks of samples at ``spec.sample_rate`` in, blocks of frames
    (k, n_mels) out, ``position`` = index of the first frame.

    ``latency_s``: the window alignment (frame stamp to the last sample it
    needs). ``silence_after`` (set before :meth:`flush`): the input is silent
    after its end, so the last frames see a whole window of zeros (a
    recording's end; :meth:`rtpitch.engine.Engine.finish`).
    """

    name = "frontend"
    latency_label = "FFT window alignment (peak to end)"

    def __init__(self, spec: FrontendSpec):
        self.frontend = MelFrontend(spec)
        self.latency_s = spec.alignment_s
        self.reset()

    def reset(self) -> None:
        self.frontend.reset()
        self._start_s = 0.0
        self.silence_after = False

    def process(self, block):
        self._start_s = block.start_s
        first = self.frontend.frames_out
        return Block(first, self.frontend.process(block.samples), start_s=block.start_s)

    def flush(self):
        first = self.frontend.frames_out
        spec = self.frontend.spec
        frames = self.frontend.process(np.zeros(spec.rise if self.silence_after else 0, np.float32))
        frames = np.concatenate([frames, self.frontend.flush()])
        return Block(first, frames, start_s=self._start_s)
