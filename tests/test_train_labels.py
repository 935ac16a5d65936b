"""Exact checks of the training labels (train/labels.py) and segment cutting."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_train_{name}", ROOT / "train" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


labels = _load("labels")
render = _load("render")


def _perf(notes, pedal=()):
    notes = np.array(notes, dtype=np.float64).reshape(-1, 4)
    pedal = np.array(pedal, dtype=np.float64).reshape(-1, 2)
    return render.Performance(onset=notes[:, 0], offset=notes[:, 1], pitch=notes[:, 2].astype(int),
                              velocity=notes[:, 3].astype(int), pedal_time=pedal[:, 0],
                              pedal_value=pedal[:, 1].astype(int))


def test_frame_onset_offset_velocity_exact():
    hop = 0.02
    # A4 (key 48) from 0.05 to 0.11 s; C4 (key 39) shorter than a hop: 0.205 .. 0.212
    perf = _perf([[0.047, 0.113, 69, 90], [0.205, 0.212, 60, 30]], pedal=[[0.0, 0], [0.1, 100], [0.15, 0]])
    lab = labels.frame_labels(perf, 20, hop)
    # frames with 0.047 <= k*hop < 0.113: k*0.02 in {0.06, 0.08, 0.10}
    assert np.flatnonzero(lab["frame"][:, 48]).tolist() == [3, 4, 5]
    assert np.flatnonzero(lab["onset"][:, 48]).tolist() == [2]  # round(2.35)
    assert lab["velocity"][2, 48] == 90 and lab["velocity"].sum() == 90 + 30
    assert np.flatnonzero(lab["offset"][:, 48]).tolist() == [6]  # round(5.65)
    # short note: onset frame round(10.25) = 10 and exactly one active frame there
    assert np.flatnonzero(lab["onset"][:, 39]).tolist() == [10]
    assert np.flatnonzero(lab["frame"][:, 39]).tolist() == [10]
    assert lab["frame"].dtype == np.uint8 and lab["frame"].shape == (20, 88)
    ped = labels.pedal_frames(perf, 20, hop)
    assert np.flatnonzero(ped).tolist() == [5, 6, 7]


def test_sustain_pedal_extends_sound_not_labels():
    perf = _perf([[0.0, 0.5, 60, 64], [0.2, 0.3, 64, 64], [0.4, 0.6, 64, 64]], pedal=[[0.1, 127], [1.0, 0]])
    end = render.sounding_end(perf)
    # note 0 released at 0.5 with pedal down -> sounds until 1.0; note 1 cut by the re-strike at 0.4
    assert np.allclose(end, [1.0, 0.4, 1.0])
    lab = labels.frame_labels(perf, 60, 0.02)
    assert lab["frame"][:, 60 - 21].sum() == 25  # 0.00 .. 0.48
    seg = perf.segment(0.15, 1.0)
    assert np.allclose(seg.onset, [0.05, 0.25]) and seg.pedal_down_at(np.array([0.0]))[0]
