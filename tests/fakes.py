"""Test doubles for the run loop and the engine: sources, sinks, a backend.

``LevelBackend`` is a deterministic stand-in for a model: one key (A4) sounds
while the loudest mel band of the centre frame is above a level, with an onset
on the first such frame. It makes timing tests exact (a tone is a note) where
the shipped model with its tuned thresholds produces few notes on test tones.
With ``pedal_level`` it also has a pedal head: the sustain pedal is down while
that band is above ``pedal_level``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from rtpitch.decoder import DecoderSpec
from rtpitch.events import LOWEST_MIDI, N_KEYS, NoteEvent, PedalEvent
from rtpitch.frontend import FrontendSpec
from rtpitch.model import MODELS_DIR, ModelSpec
from rtpitch.stage import Block, Source

A4 = 69


class LevelBackend:
    """``infer`` like a model: frame/onset/velocity (T - window + 1, 88).

    Key ``pitch`` is on (frame = 1) while ``max(mel[centre]) > level`` (log
    units); onset = 1 on the first such frame. ``fail_after``: raise
    RuntimeError on that call (counting from 1). ``pedal_level``: also a
    ``pedal`` head (T - window + 1, 1), 1 while ``max(mel[centre]) > pedal_level``.
    """

    name = "level"

    def __init__(self, spec, *, pitch: int = A4, level: float = -4.0, fail_after: int | None = None,
                 pedal_level: float | None = None):
        self.spec = spec
        self.window = spec.window_frames
        self.context = spec.context_frames
        self.key = pitch - LOWEST_MIDI
        self.level = level
        self.calls = 0
        self.fail_after = fail_after
        self.pedal_level = pedal_level

    def infer(self, mel: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("backend exploded")
        n = mel.shape[1] - self.window + 1
        loud = mel[0].max(axis=1) > self.level  # per input frame
        on = loud[self.context:self.context + n]
        before = loud[self.context - 1:self.context - 1 + n] if self.context else np.r_[False, on[:-1]]
        frame = np.zeros((n, N_KEYS), np.float32)
        onset = np.zeros((n, N_KEYS), np.float32)
        frame[:, self.key] = on
        onset[:, self.key] = on & ~before
        out = {"frame": frame, "onset": onset, "velocity": np.full((n, N_KEYS), 0.5, np.float32)}
        if self.pedal_level is not None:
            band = mel[0, self.context:self.context + n].max(axis=1)
            out["pedal"] = (band > self.pedal_level).astype(np.float32)[:, None]
        return out

    def describe(self) -> str:
        return "level detector (tests)"


class ArraySource(Source):
    """The Source interface over an array (mono or (n, channels)), as fast as read.

    ``drop``: (start, end) sample range whose blocks are dropped as by a full
    ring (positions jump, ``overrun_samples`` counts them). ``lose_after``:
    after that many blocks the source reports ``lost`` (a device gone).
    ``fail_after``: ``read`` raises ``exc`` after that many blocks.
    """

    def __init__(self, x, rate: int, *, blocksize: int = 256, drop=None, lose_after=None,
                 fail_after=None, exc: Exception | None = None, log: list | None = None):
        x = np.asarray(x, dtype=np.float32)
        self.x = x if x.ndim == 1 else x.mean(axis=1)
        self.sample_rate = rate
        self.blocksize = blocksize
        self.drop = drop
        self.lose_after = lose_after
        self.fail_after = fail_after
        self.exc = exc or OSError("read failed")
        self.log = log if log is not None else []
        self.overrun_samples = 0
        self.overrun_blocks = 0
        self.nonfinite_samples = 0
        self.input_overflows = 0
        self._pos = 0
        self._blocks = 0
        self.lost = False
        self.stopped = False

    @property
    def error(self):
        return "audio device 'array' stopped (test)" if self.lost else None

    @property
    def finished(self) -> bool:
        return self.lost or self.stopped or self._pos >= self.x.shape[0]

    def start(self) -> None:
        self.log.append("source.start")

    def read(self, timeout_s: float):
        while True:
            if self.finished:
                return None
            if self.lose_after is not None and self._blocks >= self.lose_after:
                self.lost = True
                return None
            if self.fail_after is not None and self._blocks >= self.fail_after:
                raise self.exc
            pos = self._pos
            block = self.x[pos:pos + self.blocksize]
            self._pos += block.shape[0]
            self._blocks += 1
            if self.drop is not None and self.drop[0] <= pos < self.drop[1]:
                self.overrun_samples += block.shape[0]
                self.overrun_blocks += 1
                continue
            return Block(pos, block.copy())

    def stop(self) -> None:
        self.stopped = True
        self.log.append("source.stop")


class ListSink:
    """Keeps every event; logs ``close``; ``fail_on``: raise on that send call (1-based)."""

    def __init__(self, name: str = "list", *, fail_on: int | None = None, log: list | None = None,
                 close_error: Exception | None = None):
        self.name = name
        self.events: list[NoteEvent] = []
        self.sends = 0
        self.fail_on = fail_on
        self.log = log if log is not None else []
        self.close_error = close_error
        self.closed = False

    def send(self, events) -> None:
        self.sends += 1
        if self.fail_on is not None and self.sends >= self.fail_on:
            raise OSError(f"{self.name} is broken")
        self.events.extend(events)

    def close(self) -> None:
        self.closed = True
        self.log.append(f"{self.name}.close")
        if self.close_error is not None:
            raise self.close_error


def check_note_invariants(events, *, t_max: float | None = None) -> int:
    """Events in time order; every on has exactly one later off; no overlapping
    notes of one pitch; pitches 21..108, velocities 1..127 (ons), finite
    times >= 0 (and <= t_max); pedal events alternate down/up, starting down
    and ending up. Returns the number of notes."""
    sounding: dict[int, float] = {}
    last = -np.inf
    notes = 0
    pedal_down = False
    for e in events:
        assert np.isfinite(e.time_s) and e.time_s >= 0, e
        if t_max is not None:
            assert e.time_s <= t_max + 1e-9, (e, t_max)
        assert e.time_s >= last - 1e-12, f"events out of time order at {e}"
        last = e.time_s
        if isinstance(e, PedalEvent):
            assert e.down != pedal_down, f"pedal event {e} repeats the pedal's state"
            pedal_down = e.down
            continue
        assert LOWEST_MIDI <= e.pitch < LOWEST_MIDI + N_KEYS, e
        if e.on:
            assert 1 <= e.velocity <= 127, e
            assert e.pitch not in sounding, f"note-on {e} while {e.pitch} sounds"
            sounding[e.pitch] = e.time_s
            notes += 1
        else:
            assert e.velocity == 0, e
            assert e.pitch in sounding, f"note-off {e} without a note-on"
            assert e.time_s > sounding.pop(e.pitch), f"zero-length note at {e}"
    assert not sounding, f"notes never ended: {sorted(sounding)}"
    assert not pedal_down, "the pedal never went up"
    return notes


def make_wired_model(folder: Path, *, thresholds: float = 0.25) -> Path:
    """A copy of the shipped ``seed-cnn`` with low decoder thresholds, so that it
    plays many notes on any piano audio: for wiring tests. Returns the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = json.loads((MODELS_DIR / "seed-cnn.json").read_text())
    meta["name"] = "wired"
    meta["decoder"] = {"onset_threshold": thresholds, "frame_threshold": thresholds,
                       "off_threshold": thresholds * 0.6}
    for key in ("onnx", "streaming"):  # the window graph and, where shipped, the step graph
        name = meta["onnx"] if key == "onnx" else meta.get("streaming", {}).get("onnx")
        if name:
            shutil.copy(MODELS_DIR / name, folder / name)
    path = folder / "wired.json"
    path.write_text(json.dumps(meta))
    return path


def tone(rate: int, seconds: float, spans, *, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """Silence with sine bursts at ``spans`` [(start_s, end_s), ...]."""
    x = np.zeros(int(round(seconds * rate)), np.float32)
    t = np.arange(x.shape[0]) / rate
    for a, b in spans:
        m = (t >= a) & (t < b)
        x[m] = amp * np.sin(2 * np.pi * freq * t[m])
    return x


# -- a small model spec and a loudness "model" for the engine tests --------------
SMALL_FE = FrontendSpec(sample_rate=16000, n_fft=512, hop_length=160, n_mels=32, fmin=30.0, fmax=8000.0)


def make_spec(window=20, lookahead=9, *, pedal: bool = False):
    """A small model description; ``pedal``: it has a pedal head."""
    outputs = {"frame": "frame", "onset": "onset", **({"pedal": "pedal"} if pedal else {})}
    return ModelSpec(
        name="fake", onnx_path=None, onnx_sha256="", frontend=SMALL_FE, window_frames=window,
        lookahead_frames=lookahead, input_name="mel", outputs=outputs,
        decoder=DecoderSpec(onset_threshold=0.5, frame_threshold=0.5, off_threshold=0.3,
                            min_duration_ms=0.0, restrike_gap_ms=60.0),
    )


class LoudnessBackend:
    """A 'model' that hears a note on key 60 while the predicted frame is loud.

    The predicted frame is ``window - 1 - lookahead`` frames into each window; it
    reports onset on the first loud frame and frame while loud.
    """

    def __init__(self, spec):
        self.ctx = spec.context_frames
        self.w = spec.window_frames
        self.calls = 0

    def infer(self, mel):
        self.calls += 1
        x = mel[0]
        n = x.shape[0] - self.w + 1
        loud = x.max(1) > -4.0
        frame = np.zeros((n, 88), np.float32)
        onset = np.zeros((n, 88), np.float32)
        for i in range(n):
            j = i + self.ctx  # the predicted frame inside this window
            frame[i, 39] = float(loud[j])
            onset[i, 39] = float(loud[j] and not loud[j - 1])
        return {"frame": frame, "onset": onset}


def tone_bursts(sr=16000):
    """1.5 s: a loud 262 Hz tone from 0.30 to 0.80 s, silence elsewhere."""
    t = np.arange(int(1.5 * sr)) / sr
    x = np.where((t >= 0.3) & (t < 0.8), 0.5 * np.sin(2 * np.pi * 262 * t), 0.0)
    return x.astype(np.float32)
