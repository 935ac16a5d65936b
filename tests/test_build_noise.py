"""train/build_noise.py: noise-only segments that train.py reads like rendered music."""

import json

import numpy as np
import pytest

from rtpitch.frontend import FrontendSpec
from train.build_dataset import load_frontend
from train.build_noise import make_noise_segment, noise_audio
from train.train import load_split


def test_noise_is_at_the_drawn_level_and_switches_on_after_silence():
    sr = 16000
    for i in range(40):
        x, p = noise_audio(10 * sr, sr, np.random.default_rng([0, i]))
        tail = x[-2 * sr:] if "switched_on_s" in p else x
        assert 20 * np.log10(np.sqrt(np.mean(tail ** 2))) == pytest.approx(p["level_dbfs"], abs=3.0)
        if "switched_on_s" in p:
            before = x[: int(p["switched_on_s"] * sr)]
            assert np.sqrt(np.mean(before ** 2)) < 10 ** (-59 / 20)


def test_segments_have_zero_labels_load_in_train_and_are_deterministic(tmp_path):
    spec = FrontendSpec(**load_frontend("train/frontend-lowlat.json"))
    for out in (tmp_path / "a", tmp_path / "b"):
        for i in range(3):
            make_noise_segment(i, out, spec, 3.0, seed=7)
    segs = load_split(str(tmp_path / "a" / "train"))
    assert len(segs) == 3
    for s in segs:
        assert s["mel"].shape == (301, spec.n_mels) and np.isfinite(s["mel"].astype(np.float32)).all()
        assert all(s[k].shape == (301, 88) and not s[k].any() for k in ("frame", "onset", "offset", "velocity"))
    for i in range(3):
        a, b = (np.load(tmp_path / d / "train" / f"noise_{i:05d}.npz") for d in "ab")
        np.testing.assert_array_equal(a["mel"], b["mel"])
        assert json.loads(str(a["meta"]))["noise"] == json.loads(str(b["meta"]))["noise"]
    files = (tmp_path / "a" / "train").glob("*.npz")
    levels = {json.loads(str(np.load(f)["meta"]))["noise"]["level_dbfs"] for f in files}
    assert len(levels) == 3
