"""Hostile audio through the engine: no crash, every note-on gets its note-off.

Short signals (3 s) fed in random block sizes through the whole engine with
the ``fake`` model (random weights, the real architecture), with each shipped
trained model, and with a level-detector backend that
turns every loud frame into a note (the decoder's worst case). How many false
notes a trained model plays on silence and noise is measured by
``benchmarks/hostile_audio.py``, not here.
"""

from __future__ import annotations

import threading
import zlib

import numpy as np
import pytest
import soundfile as sf

from fakes import LevelBackend, ListSink, check_note_invariants
from rtpitch.backends import make_backend
from rtpitch.engine import Engine
from rtpitch.model import available_models, load_model_spec, resolve_model_path
from rtpitch.runner import run_stream
from rtpitch.filesource import FileSource

SECONDS = 3.0
MODELS = available_models()  # the shipped models


def _pink(n: int, rng) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0])
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / np.max(np.abs(x))


def _piano(rate: int, n: int) -> np.ndarray:
    from pathlib import Path

    x, sr = sf.read(Path(__file__).resolve().parent.parent / "benchmarks" / "audio" / "demo.flac",
                    dtype="float32", frames=int(n * 44100 / rate) + 1, always_2d=True)
    import soxr

    return soxr.resample(x.mean(axis=1), sr, rate)[:n].astype(np.float32)


def hostile(kind: str, rate: int) -> np.ndarray:
    """A hostile test signal of SECONDS at ``rate`` (float32, may be out of [-1, 1])."""
    n = int(SECONDS * rate)
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    t = np.arange(n) / rate
    if kind == "silence":
        x = np.zeros(n)
    elif kind == "white-20dB":
        x = 0.1 * rng.standard_normal(n)
    elif kind == "white-fullscale":
        x = rng.uniform(-1, 1, n)
    elif kind == "pink":
        x = 0.5 * _pink(n, rng)
    elif kind in ("hum50", "hum60"):
        f0 = 50.0 if kind == "hum50" else 60.0
        x = sum(0.5 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 8))
    elif kind == "clipped-piano":
        x = np.clip(20 * _piano(rate, n), -1, 1)
    elif kind == "dc-offset":
        x = 0.6 + 0.3 * _piano(rate, n)
    elif kind == "gain-jumps":
        gain = np.where((t // 0.25) % 2 == 0, 1e-4, 1.0)
        x = gain * np.clip(_piano(rate, n) * 3 + 0.05 * rng.standard_normal(n), -1, 1)
    elif kind == "clicks":
        x = np.zeros(n)
        x[:: rate // 7] = 1.0
    elif kind == "tiny":
        x = 1e-30 * rng.standard_normal(n)  # denormal range after filtering
    elif kind == "huge":
        x = 1e6 * rng.standard_normal(n)  # a float file far out of range (finite)
    elif kind == "nan-inf":
        x = 0.1 * rng.standard_normal(n)
        x[:: rate // 10] = np.nan
        x[5:: rate // 10] = np.inf
    else:
        raise ValueError(kind)
    return np.asarray(x, dtype=np.float32)


KINDS = ["silence", "white-20dB", "white-fullscale", "pink", "hum50", "hum60", "clipped-piano", "dc-offset",
         "gain-jumps", "clicks", "tiny", "huge", "nan-inf"]


def _feed(engine: Engine, x: np.ndarray, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    events, i = [], 0
    while i < x.shape[0]:
        n = int(rng.integers(1, 4096))
        events += engine.feed(x[i:i + n])
        i += n
    return events + engine.finish()


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    spec = load_model_spec(request.param)
    return spec, make_backend("onnxruntime", spec)


@pytest.mark.parametrize("rate", [16000, 48000])
@pytest.mark.parametrize("kind", KINDS)
def test_model_survives(kind, rate, model):
    """NaN/Inf reach the engine here only in 'nan-inf' (sources zero them; see
    the FileSource test below): the engine must still not crash or leave a
    note open."""
    spec, backend = model
    engine = Engine(spec, backend, source_rate=rate)
    events = _feed(engine, hostile(kind, rate))
    check_note_invariants(events, t_max=SECONDS + 0.5)


@pytest.mark.parametrize("kind", KINDS)
def test_decoder_worst_case_survives(kind):
    """Every loud frame a note: many notes, gaps and re-triggers, still well formed."""
    spec = load_model_spec("seed-cnn")
    engine = Engine(spec, LevelBackend(spec, level=-6.0), source_rate=44100)
    events = _feed(engine, hostile(kind, 44100), seed=1)
    check_note_invariants(events, t_max=SECONDS + 0.5)


def test_silence_plays_nothing():
    spec = load_model_spec("seed-cnn")
    for backend in (LevelBackend(spec), make_backend("onnxruntime", spec)):
        engine = Engine(spec, backend, source_rate=16000)
        assert _feed(engine, np.zeros(3 * 16000, np.float32)) == []


def test_nonfinite_file_zeroed_counted_and_reported(tmp_path):
    """NaN/Inf in a float WAV: the source zeroes and counts them, the run summary
    reports the count, and the notes match those of the same file with zeros."""
    rate = 22050
    x = hostile("white-20dB", rate)
    bad = x.copy()
    bad[:: rate // 10] = np.nan
    bad[5:: rate // 10] = -np.inf
    n_bad = int((~np.isfinite(bad)).sum())
    zeroed = np.where(np.isfinite(bad), bad, 0).astype(np.float32)
    sf.write(tmp_path / "bad.wav", bad, rate, subtype="FLOAT")
    sf.write(tmp_path / "zeroed.wav", zeroed, rate, subtype="FLOAT")
    spec = load_model_spec("seed-cnn")
    got = {}
    for name in ("bad", "zeroed"):
        sink = ListSink()
        src = FileSource(tmp_path / f"{name}.wav", realtime=False, blocksize=1000)
        summary = run_stream(src, Engine(spec, LevelBackend(spec), source_rate=rate), [sink],
                             stop=threading.Event())
        got[name] = (summary.nonfinite_samples, sink.events)
    assert got["bad"][0] == n_bad and got["zeroed"][0] == 0
    assert got["bad"][1] == got["zeroed"][1]
    check_note_invariants(got["bad"][1])
