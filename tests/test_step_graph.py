"""The step graph: the predictor bookkeeping (priming, lookahead, flush, reset),
train/step_graph.py's graph surgery, and the shipped model's step graph against
its window graph."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import stream_predictions
from rtpitch.backends import make_backend
from rtpitch.backends.base import Stepper
from rtpitch.engine import Engine
from rtpitch.errors import ModelError
from rtpitch.events import N_KEYS
from rtpitch.model import MODELS_DIR, available_models, load_model_spec
from rtpitch.predictor import StepPredictor, WindowPredictor, make_predictor

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "benchmarks" / "audio" / "demo.flac"


def _window_means(frames: np.ndarray, w: int) -> dict:
    """A "model": for each full w-frame window of ``frames`` (T, n_mels), the mean
    of its first 88 bins ("frame") and its negative ("onset"): (T - w + 1, 88)."""
    c = np.concatenate([np.zeros((1, N_KEYS)), np.cumsum(frames[:, :N_KEYS].astype(np.float64), axis=0)])
    mean = ((c[w:] - c[:-w]) / w).astype(np.float32)
    return {"frame": mean, "onset": -mean}


class _MeanWindow:
    """That model as a window backend."""

    def __init__(self, spec):
        self.w = spec.window_frames

    def infer(self, mel):
        return _window_means(mel[0], self.w)


class _MeanStepper(Stepper):
    """The same model stepped: caches the last window - 1 frames."""

    def __init__(self, spec):
        self.w, self.n_mels = spec.window_frames, spec.frontend.n_mels
        self.reset()

    def reset(self):
        self.cache = np.zeros((self.w - 1, self.n_mels), np.float32)

    def run(self, mel):
        full = np.concatenate([self.cache, mel[0]])
        self.cache = full[-(self.w - 1):]
        return _window_means(full, self.w)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_predictor_gives_the_window_predictions(seed):
    spec = load_model_spec()
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    mel = rng.normal(-5, 2, (n, spec.frontend.n_mels)).astype(np.float32)
    cuts = np.sort(rng.integers(0, n + 1, int(rng.integers(0, 30))))
    chunks = np.split(mel, cuts)  # random sizes, empty chunks included
    window = WindowPredictor(_MeanWindow(spec), spec)
    step = StepPredictor(_MeanStepper(spec), spec)
    for _ in range(2):  # and again after a reset
        ref, got = stream_predictions(window, chunks), stream_predictions(step, chunks)
        assert ref["frame"].shape == (n, N_KEYS)
        for head in ref:
            np.testing.assert_allclose(got[head], ref[head], atol=1e-5)
        window.reset()
        step.reset()


def test_backends_without_a_step_graph_get_windows():
    spec = load_model_spec()
    assert isinstance(make_predictor(_MeanWindow(spec), spec), WindowPredictor)


# -- the shipped model -------------------------------------------------------------


@pytest.mark.parametrize("name", available_models())
def test_shipped_model_has_a_step_graph_that_onnxruntime_runs(name):
    spec = load_model_spec(name)
    assert spec.step is not None, f"{name}.json has no streaming section (run python -m train.step_graph)"
    be = make_backend("onnxruntime", spec)
    assert "step graph" in be.describe()
    assert isinstance(Engine(spec, be, source_rate=16000).predictor, StepPredictor)
    assert isinstance(Engine(spec, be, source_rate=16000, step=False).predictor, WindowPredictor)


def _demo(seconds: float | None = None):
    """The demo recording, mono, and its rate."""
    audio, rate = sf.read(DEMO, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    return (mono if seconds is None else mono[: int(seconds * rate)]), rate


def _events(engine, mono, block: int) -> list:
    """Everything ``engine`` emits for ``mono`` fed in ``block``-sample blocks."""
    events = []
    for i in range(0, len(mono), block):
        events += engine.feed(mono[i : i + block])
    return events + engine.finish()


def _activations(spec, backend, step: bool):
    """Frame/onset activations over the demo recording, through the engine."""
    mono, rate = _demo()
    acts = []
    events = _events(Engine(spec, backend, source_rate=rate, step=step, on_activations=acts.append), mono, 4096)
    frames = np.concatenate([a.frame for a in acts])
    onsets = np.concatenate([a.onset for a in acts])
    return frames, onsets, [(e.pitch, e.on, e.frame) for e in events]


@pytest.mark.parametrize("name", available_models())
def test_shipped_step_graph_matches_the_window_graph_on_a_recording(name):
    spec = load_model_spec(name)
    be = make_backend("onnxruntime", spec)
    f_win, o_win, ev_win = _activations(spec, be, step=False)
    f_step, o_step, ev_step = _activations(spec, be, step=True)
    assert f_step.shape == f_win.shape
    tol = spec.info["streaming"]["parity_max_abs_diff"] * 2 + 1e-5
    assert np.abs(f_step - f_win).max() <= tol and np.abs(o_step - o_win).max() <= tol
    notes = lambda ev: {(p, f) for p, on, f in ev if on}  # noqa: E731
    same = len(notes(ev_win) & notes(ev_step))
    assert same >= 0.97 * len(notes(ev_win)), f"{same} of {len(notes(ev_win))} note-ons agree"


# -- model file checks -------------------------------------------------------------


def _copy_model(tmp_path) -> Path:
    for f in MODELS_DIR.glob("seed-cnn*"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "seed-cnn.json"


def test_corrupt_step_graph_is_a_model_error(tmp_path):
    path = _copy_model(tmp_path)
    step = tmp_path / json.loads(path.read_text())["streaming"]["onnx"]
    step.write_bytes(step.read_bytes()[:1000])
    with pytest.raises(ModelError, match="does not match the sha256"):
        make_backend("onnxruntime", load_model_spec(str(path)))


def test_step_graph_cache_shape_disagreeing_with_json_is_a_model_error(tmp_path):
    path = _copy_model(tmp_path)
    meta = json.loads(path.read_text())
    meta["streaming"]["caches"][0]["shape"][2] += 1
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="JSON says"):
        make_backend("onnxruntime", load_model_spec(str(path)))


# -- train/step_graph.py -----------------------------------------------------------


@pytest.mark.parametrize("int8", [False, True])
def test_step_graph_tool_rebuilds_a_working_step_graph(tmp_path, int8):
    pytest.importorskip("onnx")
    path = _copy_model(tmp_path)
    meta = json.loads(path.read_text())
    shipped = meta.pop("streaming")
    (tmp_path / shipped["onnx"]).unlink()
    path.write_text(json.dumps(meta))
    cmd = [sys.executable, str(ROOT / "train" / "step_graph.py"), "--model", str(path)] + (["--int8"] if int8 else [])
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    made = json.loads(path.read_text())["streaming"]
    assert made["caches"] == shipped["caches"]
    assert made["parity_max_abs_diff"] <= (0.05 if int8 else 1e-4)
    spec = load_model_spec(str(path))
    be = make_backend("onnxruntime", spec)
    f_win, _, _ = _activations(spec, be, step=False)
    f_step, _, _ = _activations(spec, be, step=True)
    assert np.abs(f_step - f_win).max() <= (0.05 if int8 else 1e-4)


def test_shipped_model_gives_the_same_notes_for_any_block_size():
    """The int8 step graph quantizes its input per run; one frame per run keeps
    a live stream (small blocks) and a file (large blocks) note for note equal."""
    spec = load_model_spec()
    be = make_backend("onnxruntime", spec)
    mono, rate = _demo(seconds=20)
    runs = [_events(Engine(spec, be, source_rate=rate), mono, block) for block in (256, 8192, 777)]
    assert len(runs[0]) > 20
    assert runs[0] == runs[1] == runs[2]
